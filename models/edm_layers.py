"""EDM's building blocks (`EDM:training/networks.py`, reference A.3.1) in Flax linen.

Fields carry the original constructor's keyword names (UNetBlock's `init` is `init_default`:
`init` is Flax's Module.init); tensors are NHWC, conv kernels HWIO,
dense kernels [in, out]. Parameters are float32; `dtype` is the compute dtype of convs and
dense layers, GroupNorm statistics and the attention softmax run in float32.

  Linear      y = x W + b
  Conv2d      optional up/down resampling with the FIR `resample_filter` F = f f^T / (sum f)^2
              (up: depthwise transposed conv with 4F, stride 2, padding (len f - 1)//2;
              down: depthwise conv with F, stride 2, same padding), then the k x k conv
              (padding k//2) and the bias; `fused_resample` pads the conv by k//2 + f_pad and
              resamples after it (down) or resamples with padding k//2 + f_pad before an
              unpadded conv (up). kernel = 0: resampling only, no weights. F is a constant
              here (the checkpoint's `resample_filter` buffer is checked, not loaded).
  GroupNorm   min(num_groups, C // min_channels_per_group) groups
  UNetBlock   norm0-silu-conv0(up/down), affine(emb) as a shift (or [scale, shift] with
              adaptive_scale), norm1, silu, dropout, conv1, skip (1x1 or resampling only),
              * skip_scale; then self-attention with q, k, v interleaved per channel and
              grouped by head exactly as the original's qkv reshape (no weight permutation)
  PositionalEmbedding  [cos(x w) | sin(x w)], w_i = (1/max_positions)^(i / (C/2 - endpoint))
                       (models/embeddings.py, formula 'power')
  FourierEmbedding     [cos(2 pi x f) | sin(2 pi x f)], f ~ N(0, scale^2) a fixed buffer,
                       held in params as `freqs` behind stop_gradient (never trained)
Initialisers follow EDM's `weight_init` (xavier/kaiming, uniform/normal, times init_weight,
biases with the same fans times init_bias).
"""
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import embeddings


def weight_init(mode, fan_in, fan_out, scale):
  """EDM's `weight_init(shape, mode, fan_in, fan_out) * scale` as a Flax initialiser."""
  def init(key, shape, dtype=jnp.float32):
    if mode == 'xavier_uniform':
      w = math.sqrt(6 / (fan_in + fan_out)) * jax.random.uniform(key, shape, dtype, -1, 1)
    elif mode == 'xavier_normal':
      w = math.sqrt(2 / (fan_in + fan_out)) * jax.random.normal(key, shape, dtype)
    elif mode == 'kaiming_uniform':
      w = math.sqrt(3 / fan_in) * jax.random.uniform(key, shape, dtype, -1, 1)
    elif mode == 'kaiming_normal':
      w = math.sqrt(1 / fan_in) * jax.random.normal(key, shape, dtype)
    else:
      raise ValueError(f'invalid init mode {mode!r}')
    return (w * scale).astype(dtype)
  return init


def resample_filter_2d(resample_filter):
  """The `resample_filter` buffer f f^T / (sum f)^2 as float32 [len f, len f]."""
  f = np.asarray(resample_filter, np.float32)
  return np.outer(f, f) / np.square(f.sum())


class Linear(nn.Module):
  in_features: int
  out_features: int
  bias: bool = True
  init_mode: str = 'kaiming_normal'
  init_weight: float = 1
  init_bias: float = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    fans = (self.in_features, self.out_features)
    w = self.param('kernel', weight_init(self.init_mode, *fans, self.init_weight), fans)
    x = jnp.asarray(x, self.dtype) @ w.astype(self.dtype)
    if self.bias:
      b = self.param('bias', weight_init(self.init_mode, *fans, self.init_bias),
                     (self.out_features,))
      x = x + b.astype(self.dtype)
    return x


def _conv(x, w, stride=1, padding=0, groups=1, lhs_dilation=1):
  return jax.lax.conv_general_dilated(
      x, w, (stride, stride), [(padding, padding)] * 2, lhs_dilation=(lhs_dilation,) * 2,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=groups)


def _depthwise_up(x, f, padding):
  """torch conv_transpose2d(x, 4 f per channel, stride 2, padding), f symmetric or not."""
  c, k = x.shape[-1], f.shape[0]
  w = jnp.tile((4 * f)[::-1, ::-1, None, None], (1, 1, 1, c))
  return _conv(x, w, padding=k - 1 - padding, groups=c, lhs_dilation=2)


def _depthwise_down(x, f, padding):
  """torch conv2d(x, f per channel, stride 2, padding)."""
  c = x.shape[-1]
  return _conv(x, jnp.tile(f[:, :, None, None], (1, 1, 1, c)), stride=2, padding=padding, groups=c)


class Conv2d(nn.Module):
  in_channels: int
  out_channels: int
  kernel: int
  bias: bool = True
  up: bool = False
  down: bool = False
  resample_filter: Sequence[int] = (1, 1)
  fused_resample: bool = False
  init_mode: str = 'kaiming_normal'
  init_weight: float = 1
  init_bias: float = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.up and self.down:
      raise ValueError('Conv2d cannot both up- and downsample')
    k = self.kernel
    fans = (self.in_channels * k * k, self.out_channels * k * k)
    x = jnp.asarray(x, self.dtype)
    w = b = f = None
    if k:
      w = self.param('kernel', weight_init(self.init_mode, *fans, self.init_weight),
                     (k, k, self.in_channels, self.out_channels)).astype(self.dtype)
      if self.bias:
        b = self.param('bias', weight_init(self.init_mode, *fans, self.init_bias),
                       (self.out_channels,)).astype(self.dtype)
    if self.up or self.down:
      f = jnp.asarray(resample_filter_2d(self.resample_filter), self.dtype)
    w_pad = k // 2
    f_pad = (f.shape[0] - 1) // 2 if f is not None else 0

    if self.fused_resample and self.up and w is not None:
      x = _conv(_depthwise_up(x, f, w_pad + f_pad), w)
    elif self.fused_resample and self.down and w is not None:
      x = _depthwise_down(_conv(x, w, padding=w_pad + f_pad), f, 0)
    else:
      if self.up:
        x = _depthwise_up(x, f, f_pad)
      if self.down:
        x = _depthwise_down(x, f, f_pad)
      if w is not None:
        x = _conv(x, w, padding=w_pad)
    if b is not None:
      x = x + b
    return x


class GroupNorm(nn.Module):
  num_channels: int
  num_groups: int = 32
  min_channels_per_group: int = 4
  eps: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    g = min(self.num_groups, self.num_channels // self.min_channels_per_group)
    scale = self.param('scale', nn.initializers.ones_init(), (self.num_channels,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.num_channels,), jnp.float32)
    h = jnp.asarray(x, jnp.float32)
    h = h.reshape(h.shape[:-1] + (g, self.num_channels // g))
    axes = tuple(range(1, h.ndim - 2)) + (h.ndim - 1,)
    mean = h.mean(axes, keepdims=True)
    var = jnp.square(h - mean).mean(axes, keepdims=True)
    h = ((h - mean) * jax.lax.rsqrt(var + self.eps)).reshape(x.shape)
    return (h * scale + bias).astype(self.dtype)


class UNetBlock(nn.Module):
  in_channels: int
  out_channels: int
  emb_channels: int
  up: bool = False
  down: bool = False
  attention: bool = False
  num_heads: Optional[int] = None
  channels_per_head: int = 64
  dropout: float = 0
  skip_scale: float = 1
  eps: float = 1e-5
  resample_filter: Sequence[int] = (1, 1)
  resample_proj: bool = False
  adaptive_scale: bool = True
  init_default: Any = None  # the original's `init` (Module.init is taken); None = {}
  init_zero: Any = None  # conv1 and proj; None = {'init_weight': 0}
  init_attn: Any = None  # qkv; None = init_default
  dtype: Any = jnp.float32

  @property
  def heads(self):
    """0 without attention; else num_heads, or out_channels // channels_per_head (may be 0)."""
    if not self.attention:
      return 0
    if self.num_heads is not None:
      return self.num_heads
    return self.out_channels // self.channels_per_head

  @nn.compact
  def __call__(self, x, emb, train=False):
    init = dict(self.init_default or {})
    init_zero = dict(self.init_zero) if self.init_zero is not None else {'init_weight': 0}
    init_attn = dict(self.init_attn) if self.init_attn is not None else init
    c, dt, eps = self.out_channels, self.dtype, self.eps
    orig = x
    x = Conv2d(self.in_channels, c, 3, up=self.up, down=self.down,
               resample_filter=self.resample_filter, dtype=dt, name='conv0', **init)(
                   nn.silu(GroupNorm(self.in_channels, eps=eps, dtype=dt, name='norm0')(x)))
    params = Linear(self.emb_channels, c * (2 if self.adaptive_scale else 1), dtype=dt,
                    name='affine', **init)(emb)[:, None, None, :].astype(dt)
    norm1 = GroupNorm(c, eps=eps, dtype=dt, name='norm1')
    if self.adaptive_scale:
      scale, shift = jnp.split(params, 2, axis=-1)
      x = nn.silu(shift + norm1(x) * (scale + 1))
    else:
      x = nn.silu(norm1(x + params))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = Conv2d(c, c, 3, dtype=dt, name='conv1', **init_zero)(x)
    if c != self.in_channels or self.up or self.down:
      kernel = 1 if self.resample_proj or c != self.in_channels else 0
      orig = Conv2d(self.in_channels, c, kernel, up=self.up, down=self.down,
                    resample_filter=self.resample_filter, dtype=dt, name='skip', **init)(orig)
    x = (x + orig) * self.skip_scale

    heads = self.heads
    if heads:
      b, h, w, _ = x.shape
      qkv = Conv2d(c, c * 3, 1, dtype=dt, name='qkv', **init_attn)(
          GroupNorm(c, eps=eps, dtype=dt, name='norm2')(x))
      qkv = qkv.reshape(b, h * w, heads, c // heads, 3)  # channel ((head, c), s) as in torch
      q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
      k = k / math.sqrt(c // heads)
      logits = jnp.einsum('bihc,bjhc->bhij', q.astype(jnp.float32), k.astype(jnp.float32))
      weights = jax.nn.softmax(logits, axis=-1).astype(dt)
      a = jnp.einsum('bhij,bjhc->bihc', weights, v).reshape(b, h, w, c)
      x = (Conv2d(c, c, 1, dtype=dt, name='proj', **init_zero)(a) + x) * self.skip_scale
    return x


class PositionalEmbedding(nn.Module):
  num_channels: int
  max_positions: int = 10000
  endpoint: bool = False

  def __call__(self, x):
    return embeddings.sinusoidal(x, self.num_channels, max_period=self.max_positions,
                                 cos_first=True, endpoint=self.endpoint, formula='power')


class FourierEmbedding(nn.Module):
  num_channels: int
  scale: float = 16

  @nn.compact
  def __call__(self, x):
    freqs = self.param('freqs', lambda key, shape: jax.random.normal(key, shape, jnp.float32)
                       * self.scale, (self.num_channels // 2,))
    freqs = jax.lax.stop_gradient(freqs)
    x = jnp.asarray(x, jnp.float32)[:, None] * (2 * np.pi * freqs)[None, :]
    return jnp.concatenate([jnp.cos(x), jnp.sin(x)], axis=1)
