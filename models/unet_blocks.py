"""The DDPM UNet (Ho et al. 2020), shared by its two PyTorch ports (reference A.10.3, B.5.1).

pesser/pytorch_diffusion's `Model` (= Extended-Analytic-DPM `libs.ddpm.Model`) and
tqch/ddpm-torch's `UNet` compute the same network under different names; both families
(models/ddpm_unet.py, models/ddpm_torch_unet.py) build it with `trunk` from these blocks:

  temb  = Dense(swish(Dense(sinusoid(t, ch))))         [sin || cos], f_i = exp(-ln(1e4) i/(half-1))
          (models/embeddings.py's defaults: get_timestep_embedding of both ports)
  h     = conv_in(x); per level i: num_res_blocks x ResnetBlock (+ AttnBlock if attn[i]),
          each output kept as a skip, then (not on the last level) Downsample, kept as well
  mid   = ResnetBlock, AttnBlock, ResnetBlock
  up    = per level i (coarsest first): num_res_blocks + 1 x ResnetBlock([h || popped skip])
          (+ AttnBlock), then (i > 0) Upsample
  ResnetBlock: h = conv1(swish(GN(x))) + temb_proj(swish(temb)); out = shortcut(x) +
          conv2(dropout(swish(GN(h)))), shortcut = identity | 1x1 `nin_shortcut`; no rescaling.
  AttnBlock (one head): x + proj_out(softmax(q k^T / sqrt(C)) v), q, k, v 1x1 on GN(x).
  Downsample: zero pad right/bottom by 1, 3x3 stride-2 conv (or 2x2 average pool);
  Upsample: nearest x2, then a 3x3 conv (or nothing).
GroupNorm: 32 groups, eps 1e-6. Initialisation as TF DDPM and ddpm-torch (`XAVIER`, `ZERO`).
Layout NHWC: 1x1 convs are Dense layers on the channel axis, attention reshapes
[B, H, W, C] <-> [B, HW, C] only (free in XLA), GroupNorm reduces a [B, HW, G, C/G] view and
applies one per-(example, channel) affine map that XLA fuses with the activation after it, and
the upsampling conv runs as four 2x2 convs at the low resolution (`UpsampleConv`, the same
kernel): the forward pass compiles to convolutions, dots and fusions without a transpose.

Flax names are pytorch_diffusion's keys with '.' -> '_' (`down.1.attn.0.q` ->
`down_1_attn_0/q`); the converters (models/convert/ddpm_unet.py, ddpm_torch.py) map both
checkpoint layouts onto them.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import embeddings

# TF DDPM's initialisation (ddpm-torch's too): Xavier-uniform weights, zero biases, and the
# layers that end a residual branch (conv2, proj_out, conv_out) at zero (scale 1e-10 there).
XAVIER = nn.initializers.xavier_uniform()
ZERO = nn.initializers.zeros
# PyTorch's default (kaiming-uniform, a = sqrt(5): U(+-1/sqrt(fan_in))), EAD's head conv_out2.
TORCH_DEFAULT = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def conv(features, name, dtype, kernel=3, stride=1, padding=1, init=XAVIER):
  pad = ((padding, padding), (padding, padding)) if isinstance(padding, int) else padding
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=pad,
                 kernel_init=init, bias_init=ZERO, dtype=dtype, param_dtype=jnp.float32,
                 name=name)


def dense(features, name, dtype, init=XAVIER):
  return nn.Dense(features, kernel_init=init, bias_init=ZERO, dtype=dtype,
                  param_dtype=jnp.float32, name=name)


class GroupNorm(nn.Module):
  """GroupNorm over the last (channel) axis; statistics in float32, output in `dtype`.

  The two-pass variance mean((x - mean)^2) keeps float32 accuracy when a group's mean
  is large against its spread; the result is (x - mean_c) a_c + bias_c with per-(example,
  channel) vectors a, mean_c, one elementwise pass that XLA fuses with its consumer.
  """
  num_groups: int = 32
  epsilon: float = 1e-6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, c, g = x.shape[0], x.shape[-1], self.num_groups
    if c % g:
      raise ValueError(f'GroupNorm: {c} channels are not divisible into {g} groups')
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    xf = x.astype(jnp.float32)
    xg = xf.reshape(b, -1, g, c // g)
    mean = jnp.mean(xg, axis=(1, 3), keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=(1, 3), keepdims=True)
    bshape = (b,) + (1,) * (x.ndim - 2) + (c,)
    a = (jax.lax.rsqrt(var + self.epsilon) * scale.reshape(g, c // g)).reshape(bshape)
    mean_c = jnp.broadcast_to(mean, (b, 1, g, c // g)).reshape(bshape)
    return ((xf - mean_c) * a + bias).astype(self.dtype)


class ResnetBlock(nn.Module):
  """pytorch_diffusion `ResnetBlock` (= ddpm-torch `ResidualBlock`), with a time embedding."""
  out_channels: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, temb, train=False):
    dt, out = self.dtype, self.out_channels
    h = conv(out, 'conv1', dt)(nn.swish(GroupNorm(dtype=dt, name='norm1')(x)))
    h = h + dense(out, 'temb_proj', dt)(nn.swish(temb))[:, None, None, :]
    h = nn.swish(GroupNorm(dtype=dt, name='norm2')(h))
    if self.dropout > 0:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = conv(out, 'conv2', dt, init=ZERO)(h)
    if x.shape[-1] != out:
      x = dense(out, 'nin_shortcut', dt)(x)
    return x + h


class AttnBlock(nn.Module):
  """One-head self-attention over the H*W positions, scale C^-1/2, softmax in float32.

  fused_qkv: one 1x1 projection to [q | k | v] (ddpm-torch `project_in`), else three
  (pytorch_diffusion `q`, `k`, `v`).
  """
  fused_qkv: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hh, ww, c = x.shape
    dt = self.dtype
    h = GroupNorm(dtype=dt, name='norm')(x)
    if self.fused_qkv:
      q, k, v = jnp.split(dense(3 * c, 'qkv', dt)(h), 3, axis=-1)
    else:
      q, k, v = (dense(c, n, dt)(h) for n in ('q', 'k', 'v'))
    q, k, v = (a.reshape(b, hh * ww, c) for a in (q, k, v))
    logits = jnp.einsum('bic,bjc->bij', q, k, preferred_element_type=jnp.float32)
    w = jax.nn.softmax(logits * (c ** -0.5), axis=-1).astype(v.dtype)
    h = jnp.einsum('bij,bjc->bic', w, v).reshape(b, hh, ww, c)
    return x + dense(c, 'proj_out', dt, init=ZERO)(h)


class Downsample(nn.Module):
  """Pad (0, 1, 0, 1) and a 3x3 stride-2 conv `conv`, or a 2x2 average pool."""
  with_conv: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.with_conv:
      return conv(x.shape[-1], 'conv', self.dtype, stride=2, padding=((0, 1), (0, 1)))(x)
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class UpsampleConv(nn.Module):
  """conv3x3(nearest_x2(x)) with the 3x3 kernel [3, 3, C, O] of that conv, at 4/9 of its cost.

  Output row 2i + a of the upsampled conv sees input rows {i - 1: w0, i: w1 + w2} for a = 0
  and {i: w0 + w1, i + 1: w2} for a = 1 (likewise for columns), so each of the four output
  phases is a 2x2 conv of x with summed taps; the phases are interleaved at the end.
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    kernel = self.param('kernel', XAVIER, (3, 3, c, self.features), jnp.float32)
    bias = self.param('bias', ZERO, (self.features,), jnp.float32)
    taps = (lambda k: jnp.stack([k[0], k[1] + k[2]]), lambda k: jnp.stack([k[0] + k[1], k[2]]))
    x = x.astype(self.dtype)
    rows = []
    for a in range(2):
      ka = jnp.moveaxis(taps[a](kernel), 1, 0)  # [kw, 2 (rows), C, O]
      cols = [jnp.moveaxis(taps[p](ka), 0, 1).astype(self.dtype) for p in range(2)]
      rows.append(jnp.stack([jax.lax.conv_general_dilated(
          x, cols[p], (1, 1), ((1 - a, a), (1 - p, p)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
                             for p in range(2)], axis=3))  # [B, H, W, 2 (cols), O]
    y = jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, self.features)
    return y + bias.astype(self.dtype)


class Upsample(nn.Module):
  """Nearest-neighbour x2, then a 3x3 conv `conv` (if with_conv; computed by `UpsampleConv`)."""
  with_conv: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.with_conv:
      return UpsampleConv(x.shape[-1], self.dtype, name='conv')(x)
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
    return x.reshape(b, 2 * h, 2 * w, c)


def trunk(x, t, *, ch, ch_mult, num_res_blocks, attn, dropout, resamp_with_conv, temb_ch,
          fused_qkv, train, dtype):
  """The UNet up to its last feature map (before norm_out): returns (h, temb).

  Called inside a family module's compact `__call__`, so the layers are that module's
  children. attn[i]: attention after every ResnetBlock of level i (down and up paths).
  """
  levels = len(ch_mult)
  temb = embeddings.sinusoidal(t, ch)
  temb = nn.swish(dense(temb_ch, 'temb_dense_0', dtype)(temb))
  temb = dense(temb_ch, 'temb_dense_1', dtype)(temb)
  block = lambda c, name: ResnetBlock(c, dropout, dtype, name=name)
  attn_block = lambda name: AttnBlock(fused_qkv, dtype, name=name)

  hs = [conv(ch, 'conv_in', dtype)(x)]
  for i in range(levels):
    for j in range(num_res_blocks):
      h = block(ch * ch_mult[i], f'down_{i}_block_{j}')(hs[-1], temb, train)
      if attn[i]:
        h = attn_block(f'down_{i}_attn_{j}')(h)
      hs.append(h)
    if i != levels - 1:
      hs.append(Downsample(resamp_with_conv, dtype, name=f'down_{i}_downsample')(hs[-1]))

  h = hs[-1]
  c = h.shape[-1]
  h = block(c, 'mid_block_1')(h, temb, train)
  h = attn_block('mid_attn_1')(h)
  h = block(c, 'mid_block_2')(h, temb, train)

  for i in reversed(range(levels)):
    for j in range(num_res_blocks + 1):
      h = block(ch * ch_mult[i], f'up_{i}_block_{j}')(jnp.concatenate([h, hs.pop()], -1), temb,
                                                       train)
      if attn[i]:
        h = attn_block(f'up_{i}_attn_{j}')(h)
    if i != 0:
      h = Upsample(resamp_with_conv, dtype, name=f'up_{i}_upsample')(h)
  return h, temb


def out_layers(h, out_ch, dtype, norm_name, conv_name, init=ZERO):
  """conv(swish(GroupNorm(h))), the output layers of both ports."""
  h = nn.swish(GroupNorm(dtype=dtype, name=norm_name)(h))
  return conv(out_ch, conv_name, dtype, init=init)(h)


def check_kwargs(name, cls, kwargs, required):
  """The dataclass kwargs of `cls` from original-named kwargs (lists -> tuples), or ValueError."""
  fields = set(cls.__dataclass_fields__) - {'parent', 'name'}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f'unknown {name} kwargs: {", ".join(unknown)}; allowed: '
                     f'{", ".join(sorted(fields))}')
  missing = sorted(set(required) - set(kwargs))
  if missing:
    raise ValueError(f'{name} kwargs lack {", ".join(missing)} (required by the original)')
  return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}

