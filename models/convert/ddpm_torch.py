"""tqch/ddpm-torch checkpoints -> Flax params: image UNet and toy MLP (reference B.7, B.4.5).

`convert(state_dict, kwargs)` takes the weights already located in the file (a release file
is the bare EMA dict; a trainer dict's `ema/shadow`, or its `model` with DDP's `module.`
stripped) and the original constructor's kwargs: UNet kwargs give models/ddpm_torch_unet.py
params, Decoder kwargs (in_features, mid_features, num_temporal_layers) models/toy_mlp.py's.

UNet keys -> Flax (pytorch_diffusion names, models/unet_blocks.py):
  embed.0 / embed.2 -> temb_dense_0 / temb_dense_1; in_conv -> conv_in;
  downsamples.level_i.j -> down_i_block_j (its `.0` and the AttentionBlock `.1` -> down_i_attn_j
  on attention levels); downsamples.level_i.<num_res_blocks>.1 -> down_i_downsample/conv;
  middle.{0,1,2} -> mid_block_1, mid_attn_1, mid_block_2; upsamples likewise with
  upsamples.level_i.<num_res_blocks + 1>.1 -> up_i_upsample/conv; out_conv.{0,2} -> norm_out,
  conv_out; inside blocks fc -> temb_proj, skip -> nin_shortcut, project_in -> qkv,
  project_out -> proj_out.
Toy: the Decoder repeats one TemporalLayer object, so temp_fc.0.*, temp_fc.1.*, ... are copies
of one tensor set; toy_mlp's single tied `temp_fc` takes them after checking they are equal.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np

from models import ddpm_torch_unet
from models import toy_mlp
from models.convert import ddpm_unet
from models.convert import layout

TOY_KWARGS = ('in_features', 'mid_features', 'num_temporal_layers')
_INNER = {'temb_proj': 'fc', 'nin_shortcut': 'skip', 'qkv': 'project_in',
          'proj_out': 'project_out', 'conv': '1'}
_TOP = {'temb_dense_0': 'embed.0', 'temb_dense_1': 'embed.2', 'conv_in': 'in_conv',
        'mid_block_1': 'middle.0', 'mid_attn_1': 'middle.1', 'mid_block_2': 'middle.2',
        'norm_out': 'out_conv.0', 'conv_out': 'out_conv.2'}
TOY_LAYER_KEYS = ('norm1.weight', 'norm1.bias', 'fc1.weight', 'enc.weight', 'enc.bias',
                  'norm2.weight', 'norm2.bias', 'fc2.weight')


class UntiedLayers(ValueError):
  """A toy checkpoint whose temporal layers are not copies of one layer (toy_mlp ties them)."""


def unet_key(net):
  """The ddpm-torch key of a Flax path of `net` (a ddpm_torch_unet.UNet)."""
  attn, nrb = net.attn_levels(), net.num_res_blocks

  def key(path):
    top = path[0]
    m = re.fullmatch(r'(down|up)_(\d+)_(block|attn|downsample|upsample)(?:_(\d+))?', top)
    if m:
      side, i, kind, j = m.group(1), int(m.group(2)), m.group(3), m.group(4)
      base = f'{"downsamples" if side == "down" else "upsamples"}.level_{i}'
      if kind == 'block':
        top = f'{base}.{j}' + ('.0' if attn[i] else '')
      elif kind == 'attn':
        top = f'{base}.{j}.1'
      else:
        top = f'{base}.{nrb if kind == "downsample" else nrb + 1}'
    else:
      top = _TOP[top]
    return '.'.join((top,) + tuple(_INNER.get(n, n) for n in path[1:]))

  return key


def convert_unet(state_dict, kwargs):
  net = ddpm_torch_unet.create(kwargs)
  levels = len(net.ch_multipliers)
  size = 2 ** levels  # any size divisible by 2^(levels - 1) builds the same tree
  expected = ddpm_unet.expected_params(net, (1, size, size, net.in_channels))
  r = layout.Reader(state_dict)
  params = {'params': ddpm_unet.read_layers(r, expected['params'], unet_key(net))}
  return r.finish(params, expected=expected)


def toy_config(kwargs):
  """config.model entries of toy_mlp for Decoder kwargs (its output has in_features channels)."""
  _check_toy(kwargs)
  return dict(features=kwargs['mid_features'], num_layers=kwargs['num_temporal_layers'])


def toy_network(kwargs):
  """toy_mlp.ToyMLP equal to Decoder(**kwargs)."""
  _check_toy(kwargs)
  return toy_mlp.ToyMLP(features=kwargs['mid_features'], num_layers=kwargs['num_temporal_layers'],
                        out_dim=kwargs['in_features'])


def _check_toy(kwargs):
  unknown = sorted(set(kwargs) - set(TOY_KWARGS))
  missing = sorted(set(TOY_KWARGS) - set(kwargs))
  if unknown or missing:
    raise ValueError(f'ddpm-torch Decoder kwargs are {", ".join(TOY_KWARGS)}'
                     + (f'; unknown: {", ".join(unknown)}' if unknown else '')
                     + (f'; missing: {", ".join(missing)}' if missing else ''))


def convert_toy(state_dict, kwargs):
  net = toy_network(kwargs)
  d = kwargs['in_features']
  expected = jax.eval_shape(
      lambda k, x, t: net.init(k, x, t), jax.random.key(0),
      jax.ShapeDtypeStruct((1, d), jnp.float32), jax.ShapeDtypeStruct((1,), jnp.float32))
  r = layout.Reader(state_dict)
  for i in range(1, kwargs['num_temporal_layers']):
    for key in TOY_LAYER_KEYS:
      copy, first = f'temp_fc.{i}.{key}', f'temp_fc.0.{key}'
      if r.has(copy) and r.has(first) and not np.array_equal(r.get(copy), r.get(first)):
        raise UntiedLayers(
            f'{copy} differs from {first}: the temporal layers are not copies of one layer, '
            f'but toy_mlp applies one tied layer {kwargs["num_temporal_layers"]} times (as '
            "ddpm-torch's Decoder does)")
      r.get(copy)  # recorded as used, or as missing
  layer = r.sub('temp_fc.0.')
  params = {'params': {
      't_proj': r.dense('t_proj.0'), 'in_fc': r.dense('in_fc', bias=False),
      'temp_fc': {'norm1': layer.norm('norm1'), 'fc1': layer.dense('fc1', bias=False),
                  'enc': layer.dense('enc'), 'norm2': layer.norm('norm2'),
                  'fc2': layer.dense('fc2', bias=False)},
      'out_norm': r.norm('out_norm'), 'out_fc': r.dense('out_fc')}}
  return r.finish(params, expected=expected)


def convert(state_dict, kwargs):
  """Flax params for ddpm-torch `UNet(**kwargs)` or, with Decoder kwargs, the toy MLP."""
  if 'mid_features' in kwargs:
    return convert_toy(state_dict, kwargs)
  return convert_unet(state_dict, kwargs)
