"""NCSN++ building blocks in Flax, NHWC (score_sde layerspp.py, layers.py, up_or_down_sampling.py).

The same code serves score_sde's DDPM++ (Extended-Analytic-DPM's CIFAR-10 VP SDE
model, reference A.10.4) and PSLD's NCSN++ (idode_vdm_psld.md B.4). Submodule and
parameter names are the PyTorch attribute names (`GroupNorm_0`, `Conv_0`,
`Dense_0`, `NIN_0`, `Conv2d_0`, `W`, `b`), so a state-dict key maps onto the Flax
tree by name alone (models/convert/ncsnpp.py).

  * GroupNorm: min(C // 4, 32) groups, eps 1e-6, statistics in float32.
  * Initialisers as the original: DDPM variance scaling (fan_avg, uniform; scale 0
    means 1e-10), zero biases; NIN `W` is [in, out] with scale 0.1.
  * FIR resampling is StyleGAN2's upfirdn2d with the kernel outer(k, k) / sum^2:
    down = pad (1, 1), filter, every second sample; up = zero insertion, pad (2, 1),
    filter with 4K; the input pyramid's conv-down = pad (2, 2), filter, 3x3 conv,
    stride 2, no padding (for k = [1, 3, 3, 1]). Without FIR: 2x2 mean / nearest repeat.
"""
import functools
import math
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

SQRT2 = math.sqrt(2.0)  # a Python float, so sums stay float32 under x64

ACTIVATIONS = {  # score_sde layers.get_act
    'elu': nn.elu,
    'relu': nn.relu,
    'lrelu': functools.partial(nn.leaky_relu, negative_slope=0.2),
    'swish': nn.swish,
}


def default_init(scale=1.0):
  """DDPM's initialiser (layers.default_init): variance scaling, fan_avg, uniform."""
  return nn.initializers.variance_scaling(1e-10 if scale == 0 else scale, 'fan_avg', 'uniform')


def group_norm(channels, dtype, name):
  return nn.GroupNorm(num_groups=min(channels // 4, 32), epsilon=1e-6, use_fast_variance=False,
                      dtype=dtype, param_dtype=jnp.float32, name=name)


def conv(features, kernel, dtype, name, stride=1, padding=None, init_scale=1.0):
  """Conv2d with DDPM init; `padding` defaults to kernel // 2 on every side (ddpm_conv3x3/1x1)."""
  p = kernel // 2 if padding is None else padding
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((p, p), (p, p)),
                 kernel_init=default_init(init_scale), bias_init=nn.initializers.zeros,
                 dtype=dtype, param_dtype=jnp.float32, name=name)


def dense(features, dtype, name):
  return nn.Dense(features, kernel_init=default_init(), bias_init=nn.initializers.zeros,
                  dtype=dtype, param_dtype=jnp.float32, name=name)


# Resampling (up_or_down_sampling.py) ------------------------------------------
def fir_kernel_2d(k):
  """_setup_kernel: outer(k, k) normalised to sum 1 (float32 numpy)."""
  k = np.asarray(k, np.float32)
  k = np.outer(k, k) if k.ndim == 1 else k
  return k / np.sum(k)


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
  """StyleGAN2 upfirdn2d on NHWC: insert up-1 zeros after every sample, pad (pad0, pad1)
  on both spatial axes, convolve each channel with `kernel`, keep every down-th sample."""
  c = x.shape[-1]
  w = jnp.asarray(kernel[::-1, ::-1], x.dtype)  # a true convolution (upfirdn2d flips)
  w = jnp.tile(w[:, :, None, None], (1, 1, 1, c))
  padding = [(pad[0], pad[1] + up - 1)] * 2  # the trailing zeros of the last inserted block
  return jax.lax.conv_general_dilated(x, w, (down, down), padding, lhs_dilation=(up, up),
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=c)


def upsample_2d(x, k, factor=2):
  kernel = fir_kernel_2d(k) * factor ** 2
  p = kernel.shape[0] - factor
  return upfirdn2d(x, kernel, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x, k, factor=2):
  kernel = fir_kernel_2d(k)
  p = kernel.shape[0] - factor
  return upfirdn2d(x, kernel, down=factor, pad=((p + 1) // 2, p // 2))


def naive_upsample_2d(x, factor=2):
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def naive_downsample_2d(x, factor=2):
  b, h, w, c = x.shape
  return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


# Layers -------------------------------------------------------------------------
class NIN(nn.Module):
  """Per-pixel linear map x @ W + b over channels; W is [in, out] (layers.NIN)."""
  num_units: int
  init_scale: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    w = self.param('W', default_init(self.init_scale), (x.shape[-1], self.num_units), jnp.float32)
    b = self.param('b', nn.initializers.zeros, (self.num_units,), jnp.float32)
    y = jnp.einsum('...c,cd->...d', x.astype(self.dtype), w.astype(self.dtype))
    return y + b.astype(self.dtype)


class GaussianFourierProjection(nn.Module):
  """[sin(2 pi W x) | cos(2 pi W x)] with a frozen W ~ N(0, scale^2) of size embedding_size.

  Evaluated as x[:, None] * W[None, :] * 2 * pi in float32, the original's order.
  """
  embedding_size: int = 256
  scale: float = 1.0

  @nn.compact
  def __call__(self, x):
    w = self.param('W', nn.initializers.normal(self.scale), (self.embedding_size,), jnp.float32)
    w = jax.lax.stop_gradient(w)  # requires_grad=False in the original
    x_proj = x.astype(jnp.float32)[:, None] * w[None, :] * 2 * math.pi
    return jnp.concatenate([jnp.sin(x_proj), jnp.cos(x_proj)], axis=-1)


class AttnBlockpp(nn.Module):
  """Single-head self-attention over all positions, softmax(q k^T / sqrt(C)) in float32;
  out = (x + NIN_3(attn v)) / sqrt(2) with skip_rescale (layerspp.AttnBlockpp)."""
  skip_rescale: bool = False
  init_scale: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hh, ww, c = x.shape
    h = group_norm(c, self.dtype, 'GroupNorm_0')(x)
    q = NIN(c, dtype=self.dtype, name='NIN_0')(h).reshape(b, hh * ww, c)
    k = NIN(c, dtype=self.dtype, name='NIN_1')(h).reshape(b, hh * ww, c)
    v = NIN(c, dtype=self.dtype, name='NIN_2')(h).reshape(b, hh * ww, c)
    w = jnp.einsum('bqc,bkc->bqk', q, k, preferred_element_type=jnp.float32) * (int(c) ** (-0.5))
    w = jax.nn.softmax(w, axis=-1)
    h = jnp.einsum('bqk,bkc->bqc', w.astype(self.dtype), v).reshape(b, hh, ww, c)
    h = NIN(c, init_scale=self.init_scale, dtype=self.dtype, name='NIN_3')(h)
    return (x + h) / SQRT2 if self.skip_rescale else x + h


class Downsample(nn.Module):
  """The input pyramid's learned downsampler (layerspp.Downsample, with_conv=True).

  fir: upfirdn2d padding then a 3x3 stride-2 valid conv `Conv2d_0` (conv_downsample_2d);
  otherwise: zero-pad right/bottom by 1, then a 3x3 stride-2 valid conv `Conv_0`.
  """
  out_ch: int
  fir: bool = False
  fir_kernel: Sequence[int] = (1, 3, 3, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.fir:
      kernel = fir_kernel_2d(self.fir_kernel)
      p = (kernel.shape[0] - 2) + (3 - 1)
      x = upfirdn2d(x, kernel, pad=((p + 1) // 2, p // 2))
      return conv(self.out_ch, 3, self.dtype, 'Conv2d_0', stride=2, padding=0)(x)
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    return conv(self.out_ch, 3, self.dtype, 'Conv_0', stride=2, padding=0)(x)


class ResnetBlockBigGANpp(nn.Module):
  """BigGAN-style residual block (layerspp.ResnetBlockBigGANpp).

  h = act(GN_0(x)); up/down: the same resampling of h and x; h = Conv_0(h) +
  Dense_0(act(temb)); h = Conv_1(Dropout(act(GN_1(h)))); x = Conv_2(x) (1x1) when the
  channels change or the block resamples; out = (x + h) / sqrt(2) with skip_rescale.
  """
  act: Callable = nn.swish
  out_ch: Optional[int] = None
  up: bool = False
  down: bool = False
  dropout: float = 0.1
  fir: bool = False
  fir_kernel: Sequence[int] = (1, 3, 3, 1)
  skip_rescale: bool = True
  init_scale: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, temb, train=False):
    in_ch = x.shape[-1]
    out_ch = self.out_ch or in_ch
    h = self.act(group_norm(in_ch, self.dtype, 'GroupNorm_0')(x))
    if self.up or self.down:
      if self.up:
        resample = (functools.partial(upsample_2d, k=self.fir_kernel) if self.fir
                    else naive_upsample_2d)
      else:
        resample = (functools.partial(downsample_2d, k=self.fir_kernel) if self.fir
                    else naive_downsample_2d)
      h, x = resample(h), resample(x)
    h = conv(out_ch, 3, self.dtype, 'Conv_0')(h)
    h = h + dense(out_ch, self.dtype, 'Dense_0')(self.act(temb))[:, None, None, :]
    h = self.act(group_norm(out_ch, self.dtype, 'GroupNorm_1')(h))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    h = conv(out_ch, 3, self.dtype, 'Conv_1', init_scale=self.init_scale)(h)
    if in_ch != out_ch or self.up or self.down:
      x = conv(out_ch, 1, self.dtype, 'Conv_2')(x)
    return (x + h) / SQRT2 if self.skip_rescale else x + h
