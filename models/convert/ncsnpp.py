"""NCSN++ / DDPM++ checkpoints (score_sde layout) -> Flax params of models/ncsnpp.py.

Two public sources hold this network's flat state dict:
  * Extended-Analytic-DPM's CIFAR-10 (VP SDE) files (plain and SN/NPR-DPM head): the
    bare state dict of NCSNpp / NCSNpp4Pretrained, no prefix (reference A.10), plus the
    float64 `sigmas` buffer [num_scales], which never affects the eps output and is
    accepted without being read.
  * PSLD's Lightning checkpoints (idode_vdm_psld.md B.5): `state_dict` holds the online
    network under `score_fn.` and the EMA network, the one PSLD samples with, under
    `ema_score_fn.`; `psld_state_dict` narrows the loaded file to one of them (the EMA one
    unless asked otherwise).

Keys map by name: `all_modules.<i>.<Sub>.<param>` <-> params['all_modules_<i>'][Sub][...]
(`gn_out2`, `conv_out2` for the head). Conv2d weight [O, I, kh, kw] -> kernel [kh, kw, I, O];
Linear weight [O, I] -> kernel [I, O]; GroupNorm weight -> scale; NIN `W` [in, out], NIN `b`
and the Fourier `W` are taken as stored. The walk follows the Flax tree that the kwargs
build (jax.eval_shape), so a checkpoint of another configuration raises layout.Mismatch
with its missing, unexpected and mis-shaped keys.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np

from models import ncsnpp
from models.convert import checkpoint_io
from models.convert import layout

BUFFERS = ('sigmas',)  # score_sde's noise-level table (scale_by_sigma=False: unused)
PSLD_NETWORKS = ('ema_score_fn', 'score_fn')  # EMA (sampling) first; online second


def expected_params(kwargs):
  """jax.eval_shape of create(kwargs).init: the tree convert() must return."""
  net = ncsnpp.create(kwargs)
  channels = net.in_ch or net.num_channels
  x = jax.ShapeDtypeStruct((1, net.image_size, net.image_size, channels), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.float32)
  return jax.eval_shape(lambda k, x, t: net.init({'params': k}, x, t), jax.random.key(0), x, t)


def _torch_name(flax_name):
  m = re.fullmatch(r'all_modules_(\d+)', flax_name)
  return f'all_modules.{m.group(1)}' if m else flax_name


def _read(reader, tree, prefix=''):
  out = {}
  for name, sub in tree.items():
    if isinstance(sub, dict):
      out[name] = _read(reader, sub, f'{prefix}{_torch_name(name)}.')
      continue
    shape = tuple(sub.shape)
    if name == 'kernel' and len(shape) == 4:  # Conv2d
      w = reader.get(prefix + 'weight', (shape[3], shape[2], shape[0], shape[1]))
      out[name] = np.transpose(w, (2, 3, 1, 0))
    elif name == 'kernel':  # Linear
      out[name] = reader.get(prefix + 'weight', shape[::-1]).T
    elif name == 'scale':  # GroupNorm
      out[name] = reader.get(prefix + 'weight', shape)
    else:  # bias, NIN W / b, Fourier W
      out[name] = reader.get(prefix + name, shape)
  return out


def convert(state_dict, kwargs):
  """{'params': ...} (float32 numpy) for ncsnpp.create(kwargs) from a flat state dict."""
  expected = expected_params(kwargs)
  reader = layout.Reader(state_dict)
  for key in BUFFERS:
    reader.mark_used(key)
  params = {'params': _read(reader, expected['params'])}
  return reader.finish(params, expected)


def psld_state_dict(checkpoint, network='ema_score_fn'):
  """One network of a loaded PSLD Lightning checkpoint, prefix stripped.

  `network` is 'ema_score_fn' (default: the EMA weights PSLD samples with) or
  'score_fn' (the online weights, only when asked for by name).
  """
  if network not in PSLD_NETWORKS:
    raise ValueError(f'network={network!r} is not one of: {", ".join(PSLD_NETWORKS)}')
  sd = checkpoint_io.walk(checkpoint, ['state_dict'])
  prefix = network + '.'
  out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
  if not out:
    raise checkpoint_io.CheckpointError(
        f'the checkpoint has no {prefix}* weights (prefixes present: '
        f'{", ".join(sorted({k.split(".")[0] + "." for k in sd}))})')
  return out
