"""The improved-diffusion UNet (openai/improved-diffusion `UNetModel` = Extended-Analytic-DPM
`libs.iddpm.UNetModel`) and EAD's SN-DPM / NPR-DPM head (`UNetModel4Pretrained`).

Reference A.10.1 (CIFAR-10 LS/CS), A.10.2 (ImageNet 64x64, learned sigma), A.3.2 (heads):
  emb   = Dense(SiLU(Dense(timestep_embedding(t, model_channels))))  [+ label_emb(y); y = -1,
          the null label of classifier-free guidance (ours), adds nothing]
          timestep_embedding = [cos(t f_i) || sin(t f_i)], f_i = exp(-ln(1e4) i / half)
          (models/embeddings.py, cos_first, no endpoint, formula 'product')
  input_blocks: conv3x3, then per level num_res_blocks x (ResBlock [+ Attention at the
          downsampling factors in attention_resolutions]) and a Downsample (stride-2 conv,
          symmetric padding 1) between levels; middle_block: Res, Attention, Res;
  output_blocks: per level (reversed) num_res_blocks + 1 x ResBlock on [h || popped skip]
          [+ Attention] with an Upsample (nearest x2, conv3x3) after the last;
  out   = conv3x3(SiLU(GN(h))), out_channels = 3 (eps) or 6 ([eps | var_values], learned sigma).
  ResBlock: h = conv(SiLU(GN(x))); use_scale_shift_norm: (scale, shift) = split(Dense(SiLU(emb)))
          (scale first) and h = GN(h) (1 + scale) + shift, else GN(h + Dense(SiLU(emb)));
          out = skip(x) + conv(Dropout(SiLU(h))), skip = identity | 1x1 conv (| 3x3 if use_conv).
  Attention: qkv = Dense(GN(x)) with the 3C channels grouped per head ([head][q|k|v][C/heads]),
          q and k each scaled by (C/heads)^(-1/4), softmax over keys in float32, proj_out, residual.
GroupNorm32: 32 groups, eps 1e-5, statistics in float32. Zero-initialised output convs as in the
original (`zero_module`); other weights use torch's default uniform(+-1/sqrt(fan_in)), biases 0.
`UNetModel4Pretrained` adds `out2` on the last trunk feature h (simple: GN, SiLU, conv3x3;
complex: a ResBlock(h, emb) first) and returns [eps || head]: a 6-channel (learned-sigma)
trunk output keeps only its first 3 channels (the variance values are dropped).
Parameter names mirror the PyTorch keys with '.' -> '_' (`input_blocks.5.1.qkv` ->
`input_blocks_5_1/qkv`), so models/convert/iddpm_unet.py maps them one to one.
"""
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import embeddings

_TORCH_INIT = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
_ZERO = nn.initializers.zeros


def group_norm(x, name, dtype):
  """GroupNorm32: 32 groups, eps 1e-5, computed in float32, cast back to the compute dtype."""
  norm = nn.GroupNorm(num_groups=32, epsilon=1e-5, use_fast_variance=False, dtype=jnp.float32,
                      param_dtype=jnp.float32, name=name)
  return norm(x.astype(jnp.float32)).astype(dtype)


def conv(features, name, dtype, kernel=3, stride=1, zero=False):
  pad = (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), kernel_init=_ZERO if zero else _TORCH_INIT,
                 bias_init=_ZERO, dtype=dtype, param_dtype=jnp.float32, name=name)


def dense(features, name, dtype, zero=False):
  return nn.Dense(features, kernel_init=_ZERO if zero else _TORCH_INIT, bias_init=_ZERO,
                  dtype=dtype, param_dtype=jnp.float32, name=name)


class ResBlock(nn.Module):
  """improved-diffusion ResBlock (keys in_layers.{0,2}, emb_layers.1, out_layers.{0,3},
  skip_connection)."""
  channels: int
  emb_channels: int
  dropout: float
  out_channels: Optional[int] = None
  use_conv: bool = False
  use_scale_shift_norm: bool = False
  dims: int = 2  # only 2 (create() checks)
  use_checkpoint: bool = False  # applied by the UNet, which wraps the block in nn.remat
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, emb, train=False):
    out_ch = self.out_channels or self.channels
    h = conv(out_ch, 'in_layers_2', self.dtype)(nn.silu(group_norm(x, 'in_layers_0', self.dtype)))
    emb_out = dense(2 * out_ch if self.use_scale_shift_norm else out_ch, 'emb_layers_1',
                    self.dtype)(nn.silu(emb))[:, None, None, :]
    if self.use_scale_shift_norm:
      scale, shift = jnp.split(emb_out, 2, axis=-1)
      h = group_norm(h, 'out_layers_0', self.dtype) * (1 + scale) + shift
    else:
      h = group_norm(h + emb_out, 'out_layers_0', self.dtype)
    h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
    h = conv(out_ch, 'out_layers_3', self.dtype, zero=True)(h)
    if out_ch == self.channels:
      skip = x
    else:
      skip = conv(out_ch, 'skip_connection', self.dtype, kernel=3 if self.use_conv else 1)(x)
    return skip + h


class AttentionBlock(nn.Module):
  """Self-attention over positions (keys norm, qkv, proj_out); legacy per-head qkv layout."""
  channels: int
  num_heads: int = 1
  use_checkpoint: bool = False  # applied by the UNet, which wraps the block in nn.remat
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, emb=None, train=False):
    del emb, train  # the same call signature as ResBlock (for the shared block loop)
    b, hh, ww, c = x.shape
    qkv = dense(3 * c, 'qkv', self.dtype)(group_norm(x, 'norm', self.dtype))
    qkv = qkv.reshape(b, hh * ww, self.num_heads, 3 * c // self.num_heads)
    q, k, v = jnp.split(qkv, 3, axis=-1)
    scale = 1 / math.sqrt(math.sqrt(c // self.num_heads))
    weight = jnp.einsum('bthc,bshc->bhts', q * scale, k * scale)
    weight = jax.nn.softmax(weight.astype(jnp.float32), axis=-1).astype(self.dtype)
    h = jnp.einsum('bhts,bshc->bthc', weight, v).reshape(b, hh, ww, c)
    return x + dense(c, 'proj_out', self.dtype, zero=True)(h)


class Downsample(nn.Module):
  """Stride-2 conv3x3 with padding 1 (`op`), or 2x2 average pooling without conv_resample."""
  channels: int
  use_conv: bool
  dims: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, emb=None, train=False):
    del emb, train
    if self.use_conv:
      return conv(self.channels, 'op', self.dtype, stride=2)(x)
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class Upsample(nn.Module):
  """Nearest-neighbour x2, then conv3x3 (`conv`) with conv_resample."""
  channels: int
  use_conv: bool
  dims: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, emb=None, train=False):
    del emb, train
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    if self.use_conv:
      x = conv(self.channels, 'conv', self.dtype)(x)
    return x


def blocks(m):
  """The original's block lists: {'input_blocks' | 'middle_block' | 'output_blocks': [...]}.

  Each entry of input/output_blocks is one TimestepEmbedSequential: a list of
  (kind, kwargs) with kind in conv | res | attn | down | up; middle_block is one such list.
  Shared by the module and the converter, so both walk the same architecture.
  """
  emb_dim = m.model_channels * 4
  heads_up = m.num_heads if m.num_heads_upsample == -1 else m.num_heads_upsample
  res = lambda ch, out: ('res', dict(channels=ch, emb_channels=emb_dim, dropout=m.dropout,
                                      out_channels=out, dims=m.dims,
                                      use_scale_shift_norm=m.use_scale_shift_norm))
  attn = lambda ch, heads: ('attn', dict(channels=ch, num_heads=heads))
  inputs = [[('conv', dict(features=m.model_channels))]]
  chans, ch, ds = [m.model_channels], m.model_channels, 1
  for level, mult in enumerate(m.channel_mult):
    for _ in range(m.num_res_blocks):
      layers = [res(ch, mult * m.model_channels)]
      ch = mult * m.model_channels
      if ds in m.attention_resolutions:
        layers.append(attn(ch, m.num_heads))
      inputs.append(layers)
      chans.append(ch)
    if level != len(m.channel_mult) - 1:
      inputs.append([('down', dict(channels=ch, use_conv=m.conv_resample, dims=m.dims))])
      chans.append(ch)
      ds *= 2
  middle = [res(ch, ch), attn(ch, m.num_heads), res(ch, ch)]
  outputs = []
  for level, mult in list(enumerate(m.channel_mult))[::-1]:
    for i in range(m.num_res_blocks + 1):
      layers = [res(ch + chans.pop(), m.model_channels * mult)]
      ch = m.model_channels * mult
      if ds in m.attention_resolutions:
        layers.append(attn(ch, heads_up))
      if level and i == m.num_res_blocks:
        layers.append(('up', dict(channels=ch, use_conv=m.conv_resample, dims=m.dims)))
        ds //= 2
      outputs.append(layers)
  return {'input_blocks': inputs, 'middle_block': middle, 'output_blocks': outputs}


class UNetModel(nn.Module):
  """improved-diffusion UNetModel; `t` as the original receives it (EAD CIFAR-10: n in 1..1000;
  ImageNet64: (n-1)*1000/4000). Output NHWC float32 with out_channels channels."""
  in_channels: int
  model_channels: int
  out_channels: int
  num_res_blocks: int
  attention_resolutions: Sequence[int]
  dropout: float = 0.0
  channel_mult: Sequence[int] = (1, 2, 4, 8)
  conv_resample: bool = True
  dims: int = 2
  num_classes: Optional[int] = None  # None or 0: unconditional
  use_checkpoint: bool = False  # gradient checkpointing (nn.remat) of every res/attention block
  num_heads: int = 1
  num_heads_upsample: int = -1  # -1: num_heads
  use_scale_shift_norm: bool = False
  dtype: Any = jnp.float32

  def _layer(self, kind, kwargs, name):
    if kind == 'conv':
      return conv(kwargs['features'], name, self.dtype)
    cls = {'res': ResBlock, 'attn': AttentionBlock, 'down': Downsample, 'up': Upsample}[kind]
    if kind in ('res', 'attn'):
      kwargs = dict(kwargs, use_checkpoint=self.use_checkpoint)
      if self.use_checkpoint:
        cls = nn.remat(cls, static_argnums=(3,))
    return cls(**kwargs, dtype=self.dtype, name=name)

  def _sequential(self, layers, prefix, h, emb, train):
    for j, (kind, kwargs) in enumerate(layers):
      layer = self._layer(kind, kwargs, f'{prefix}_{j}')
      h = layer(h) if kind == 'conv' else layer(h, emb, train)
    return h

  def trunk(self, x, t, y, train):
    """(h, emb): the last output block's features and the time (+ label) embedding."""
    conditional = bool(self.num_classes)
    if (y is not None) != conditional:
      raise ValueError('must specify y if and only if the model is class-conditional '
                       f'(num_classes={self.num_classes})')
    emb_dim = self.model_channels * 4
    emb = dense(emb_dim, 'time_embed_0', self.dtype)(embeddings.sinusoidal(
        t, self.model_channels, cos_first=True, endpoint=False, formula='product'))
    emb = dense(emb_dim, 'time_embed_2', self.dtype)(nn.silu(emb))
    if conditional:
      label = nn.Embed(self.num_classes, emb_dim, embedding_init=nn.initializers.normal(1.0),
                       param_dtype=jnp.float32, name='label_emb')
      y = jnp.asarray(y, jnp.int32)  # -1: the null label of guidance, no label embedding
      emb = emb + jnp.where((y >= 0)[:, None], label(jnp.maximum(y, 0)), 0.0).astype(self.dtype)
    plan = blocks(self)
    hs, h = [], x.astype(self.dtype)
    for i, layers in enumerate(plan['input_blocks']):
      h = self._sequential(layers, f'input_blocks_{i}', h, emb, train)
      hs.append(h)
    h = self._sequential(plan['middle_block'], 'middle_block', h, emb, train)
    for i, layers in enumerate(plan['output_blocks']):
      h = self._sequential(layers, f'output_blocks_{i}', jnp.concatenate([h, hs.pop()], -1),
                           emb, train)
    return h, emb

  def out(self, h):
    h = nn.silu(group_norm(h, 'out_0', self.dtype))
    return conv(self.out_channels, 'out_2', self.dtype, zero=True)(h)

  @nn.compact
  def __call__(self, x, t, y=None, train=False):
    h, _ = self.trunk(x, t, y, train)
    return self.out(h).astype(jnp.float32)


class UNetModel4Pretrained(UNetModel):
  """EAD's trunk + SN-DPM / NPR-DPM head (reference A.3.2): [eps (3 ch) || head]."""
  head_out_channels: int = 3
  mode: str = 'simple'  # simple: out2 = conv(SiLU(GN(h))); complex: ResBlock(h, emb) first

  @nn.compact
  def __call__(self, x, t, y=None, train=False):
    h, emb = self.trunk(x, t, y, train)
    out = self.out(h)
    if out.shape[-1] == 6:  # learned-sigma trunk: keep eps, drop the variance values
      out = out[..., :3]
    ch = h.shape[-1]
    if self.mode == 'simple':
      g = group_norm(h, 'out2_0', self.dtype)
      head = conv(self.head_out_channels, 'out2_2', self.dtype, zero=True)(nn.silu(g))
    elif self.mode == 'complex':
      g = self._layer('res', dict(channels=ch, emb_channels=self.model_channels * 4,
                                  dropout=self.dropout, dims=self.dims,
                                  use_scale_shift_norm=self.use_scale_shift_norm),
                      'out2_0')(h, emb, train)
      g = nn.silu(group_norm(g, 'out2_1', self.dtype))
      head = conv(self.head_out_channels, 'out2_3', self.dtype, zero=True)(g)
    else:
      raise ValueError(f'mode={self.mode!r} is not one of: simple, complex')
    return jnp.concatenate([out, head], axis=-1).astype(jnp.float32)


_TRUNK_KWARGS = ('in_channels', 'model_channels', 'out_channels', 'num_res_blocks',
                 'attention_resolutions', 'dropout', 'channel_mult', 'conv_resample', 'dims',
                 'num_classes', 'use_checkpoint', 'num_heads', 'num_heads_upsample',
                 'use_scale_shift_norm')
_HEAD_KWARGS = ('head_out_channels', 'mode')


def create(kwargs):
  """UNetModel(**kwargs), or UNetModel4Pretrained when `head_out_channels` / `mode` are given.

  Lists stand for tuples; num_classes 0 or None means unconditional; only dims=2 is supported.
  """
  kwargs = dict(kwargs)
  unknown = sorted(set(kwargs) - set(_TRUNK_KWARGS) - set(_HEAD_KWARGS))
  if unknown:
    raise ValueError(f'unknown iddpm_unet kwargs: {", ".join(unknown)}; allowed: '
                     f'{", ".join(_TRUNK_KWARGS + _HEAD_KWARGS)}')
  for k in ('attention_resolutions', 'channel_mult'):
    if k in kwargs:
      kwargs[k] = tuple(kwargs[k])
  if kwargs.get('dims', 2) != 2:
    raise ValueError(f'iddpm_unet: dims={kwargs["dims"]} is not supported (only 2-D images)')
  if kwargs.get('num_classes') == 0:
    kwargs['num_classes'] = None
  head = any(k in kwargs for k in _HEAD_KWARGS)
  if head and kwargs.get('mode', 'simple') not in ('simple', 'complex'):
    raise ValueError(f'iddpm_unet: mode={kwargs["mode"]!r} is not one of: simple, complex')
  return (UNetModel4Pretrained if head else UNetModel)(**kwargs)


def param_shapes(module, image_size=None):
  """jax.eval_shape of module.init: the parameter tree as ShapeDtypeStructs (no compute)."""
  size = image_size or 2 ** len(module.channel_mult)
  x = jax.ShapeDtypeStruct((1, size, size, module.in_channels), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.float32)
  y = jax.ShapeDtypeStruct((1,), jnp.int32) if module.num_classes else None
  return jax.eval_shape(lambda k, x, t, y: module.init({'params': k}, x, t, y),
                        jax.random.key(0), x, t, y)
