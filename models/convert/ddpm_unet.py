"""pytorch_diffusion / Extended-Analytic-DPM DDPM UNet state dicts -> models/ddpm_unet.py params.

A flat state dict of `libs.ddpm.Model` or `Model4Pretrained` (reference A.10.3, A.3.2): the
Flax names are the PyTorch keys with '.' -> '_' down to the block, and the layer names
inside blocks are the same (`down.1.attn.0.q.weight` -> `down_1_attn_0/q/kernel`).
`read_layers` walks the expected Flax tree and asks the Reader for each layer's tensors
(shared with models/convert/ddpm_torch.py, which renames the keys).
"""
import re

import jax
import jax.numpy as jnp
import numpy as np

from models import ddpm_unet
from models.convert import layout

# Flax Dense layers stored as 1x1 Conv2d weights [O, I, 1, 1] (the others are Linear [O, I]).
CONV1X1 = frozenset(('q', 'k', 'v', 'qkv', 'proj_out', 'nin_shortcut'))


def expected_params(net, x_shape):
  """jax.eval_shape of net.init on a [1, H, W, C] input: the tree a converter must build."""
  x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.float32)
  return jax.eval_shape(lambda k, x, t: net.init(k, x, t), jax.random.key(0), x, t)


def _layer(r, key, want, name):
  """One Conv / Dense / GroupNorm from `key`.{weight,bias}, shaped as the Flax leaves `want`."""
  if 'scale' in want:
    return {'scale': r.get(f'{key}.weight', want['scale'].shape),
            'bias': r.get(f'{key}.bias', want['bias'].shape)}
  k = want['kernel'].shape
  if len(k) == 4:  # [kh, kw, I, O] <- [O, I, kh, kw]
    w = np.transpose(r.get(f'{key}.weight', (k[3], k[2], k[0], k[1])), (2, 3, 1, 0))
  else:  # [I, O] <- [O, I] (Linear) or [O, I, 1, 1] (1x1 conv)
    w = r.get(f'{key}.weight', (k[1], k[0]) + ((1, 1) if name in CONV1X1 else ())).reshape(
        k[1], k[0]).T
  return {'kernel': w, 'bias': r.get(f'{key}.bias', want['bias'].shape)}


def read_layers(r, expected, torch_key):
  """The Flax tree of `expected` with each layer read from r at torch_key(flax path)."""
  def walk(tree, path):
    if 'kernel' in tree or 'scale' in tree:
      return _layer(r, torch_key(path), tree, path[-1])
    return {name: walk(sub, path + (name,)) for name, sub in tree.items()}
  return walk(expected, ())


def torch_key(path):
  """('down_1_attn_0', 'q') -> 'down.1.attn.0.q'; ('temb_dense_0',) -> 'temb.dense.0'."""
  top = path[0]
  m = re.fullmatch(r'(down|up)_(\d+)_(block|attn)_(\d+)', top)
  if m:
    top = '.'.join(m.groups())
  elif re.fullmatch(r'(down|up)_\d+_(downsample|upsample)', top):
    top = top.replace('_', '.')
  elif top.startswith('mid_'):
    top = 'mid.' + top[len('mid_'):]
  elif top.startswith('temb_dense_'):
    top = 'temb.dense.' + top[len('temb_dense_'):]
  return '.'.join((top,) + path[1:])


def convert(state_dict, kwargs):
  """{'params': ...} of ddpm_unet.create(kwargs) from a flat state dict; Mismatch if it differs."""
  net = ddpm_unet.create(kwargs)
  expected = expected_params(net, (1, net.resolution, net.resolution, net.in_channels))
  r = layout.Reader(state_dict)
  params = {'params': read_layers(r, expected['params'], torch_key)}
  return r.finish(params, expected=expected)
