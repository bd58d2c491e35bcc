"""VDM's ScoreUNet as i-DODE trains it (google-research/vdm and thu-ml/i-DODE `model_vdm.py`,
`ScoreUNet`, `ResnetBlock`, `AttnBlock`, `Base2FourierFeatures`; reference idode A.6).

  s    = (g_t - gamma_min) / (gamma_max - gamma_min)             the network's own [0, 1] time
  cond = swish(dense1(swish(dense0([sinusoid(1000 s, n_embd) || conditioning]))))   4 n_embd
  h    = conv_in([z || sin(2 pi 2^n z_c), cos(2 pi 2^n z_c), n = 6, 7])     3 + 12 channels
  down.block_i (+ down.attn_i), i < sm_n_layer; every output kept as a skip (conv_in's too)
  mid.block_1, mid.attn_1 (always), mid.block_2
  up.block_i([h || skip]) (+ up.attn_i), i <= sm_n_layer
  out  = conv_out(swish(GroupNorm(h))) + z                              (zero-initialised)
Everything runs at the input resolution (no down- or up-sampling); convolutions are 3x3 SAME;
GroupNorm has 32 groups, eps 1e-6; kernels lecun-normal, biases zero; conv2, cond_proj,
proj_out and conv_out start at zero, so a fresh network is the identity z -> z.

`g_t` is what the original receives: gamma itself (gamma = -log-SNR), rescaled here with the
gamma range of the config. `conditioning` (y) is cifar10_aug's per-example 0/1 flag "this
example was flipped or rotated" (reference A.5), appended to the time embedding; None = 0, the
value of every non-augmented dataset and of evaluation.

The parameter tree is the original's module for module (names `dense0`, `down.block_0`,
`mid.attn_1`, `GroupNorm_0`, ...), so a VDM / i-DODE checkpoint's `ema_params['score_model']`
(the msgpack `ckpt-N.flax`, reference A.7) is this module's `params` as it stands. There are no
buffers: the fixed gamma schedule of i-DODE has no parameters (VDM's learnable schedules live
beside the network, under `gamma`).
"""
import functools
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import embeddings

# Fields of the original VDMConfig that the score network does not read; create() accepts
# them so that a VDM / i-DODE `config.model` dict can be passed as it is.
VDM_CONFIG_FIELDS = frozenset((
    'vocab_size', 'sample_softmax', 'antithetic_time_sampling', 'gamma_type', 'sm_n_timesteps',
    'sm_kernel_init', 'schedule', 'second_order', 'velocity', 'importance', 'dequantization',
    'num_importance'))


def _group_norm(name, dtype):
  """Flax GroupNorm defaults as in the original (32 groups, eps 1e-6); statistics in float32."""
  return nn.GroupNorm(num_groups=32, epsilon=1e-6, dtype=dtype, param_dtype=jnp.float32,
                      name=name)


def _conv(features, name, dtype, zero=False):
  kw = dict(kernel_init=nn.initializers.zeros) if zero else {}
  return nn.Conv(features, (3, 3), strides=(1, 1), padding='SAME', dtype=dtype,
                 param_dtype=jnp.float32, name=name, **kw)


def _dense(features, name, dtype, use_bias=True, zero=False):
  kw = dict(kernel_init=nn.initializers.zeros) if zero else {}
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, name=name,
                  **kw)


def base2_fourier_features(z, start=6, stop=8):
  """[sin(2 pi 2^n z_c) for c, n] || [cos(...)], channel-major (`Base2FourierFeatures`), in f32."""
  z = z.astype(jnp.float32)
  n = stop - start
  w = 2.0 ** jnp.arange(start, stop, dtype=jnp.float32) * 2 * jnp.pi
  h = jnp.repeat(z, n, axis=-1) * jnp.tile(w, z.shape[-1])
  return jnp.concatenate([jnp.sin(h), jnp.cos(h)], axis=-1)


class ResnetBlock(nn.Module):
  """x + conv2(dropout(swish(GN_1(conv1(swish(GN_0(x))) + cond_proj(cond))))).

  The shortcut is a Dense `nin_shortcut` (1x1, with bias) when the width changes; no rescaling.
  """
  out_ch: Optional[int] = None
  sm_pdrop: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train=False):
    c = x.shape[-1]
    out_ch = c if self.out_ch is None else self.out_ch
    h = nn.swish(_group_norm('GroupNorm_0', self.dtype)(x))
    h = _conv(out_ch, 'conv1', self.dtype)(h)
    h = h + _dense(out_ch, 'cond_proj', self.dtype, use_bias=False, zero=True)(cond)[:, None, None]
    h = nn.swish(_group_norm('GroupNorm_1', self.dtype)(h))
    h = nn.Dropout(rate=self.sm_pdrop)(h, deterministic=not train)
    h = _conv(out_ch, 'conv2', self.dtype, zero=True)(h)
    if c != out_ch:
      x = _dense(out_ch, 'nin_shortcut', self.dtype)(x)
    return x + h


class AttnBlock(nn.Module):
  """One-head self-attention over all H*W positions: x + proj_out(softmax(q k^T / sqrt C) v).

  q, k, v, proj_out are Dense C -> C (proj_out zero-initialised) on GroupNorm(x); logits and
  softmax in float32 (the original's `dot_product_attention`). ScoreUNet always uses 1 head.
  """
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hh, ww, c = x.shape
    h = _group_norm('GroupNorm_0', self.dtype)(x)
    q, k, v = (_dense(c, n, self.dtype)(h).reshape(b, hh * ww, c) for n in ('q', 'k', 'v'))
    logits = jnp.einsum('bqc,bkc->bqk', q.astype(jnp.float32) / math.sqrt(c),
                        k.astype(jnp.float32))
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    h = jnp.einsum('bqk,bkc->bqc', weights, v).reshape(b, hh, ww, c)
    return x + _dense(c, 'proj_out', self.dtype, zero=True)(h)


class ScoreUNet(nn.Module):
  """VDM / i-DODE ScoreUNet; fields are the VDMConfig fields it reads (defaults: i-DODE cifar10).

  sm_n_embd: width of every block (time embedding n_embd, conditioning 4 n_embd).
  sm_n_layer: ResnetBlocks in the down stack (the up stack has one more).
  sm_pdrop: dropout rate inside the ResnetBlocks (active only when train=True).
  with_attention: an AttnBlock after every down/up block (the middle one is always there).
  with_fourier_features: append the base-2 Fourier features (n = 6, 7) of z to the input.
  gamma_min, gamma_max: the gamma range mapped to the network's time s in [0, 1].
  """
  sm_n_embd: int = 128
  sm_n_layer: int = 32
  sm_pdrop: float = 0.1
  with_attention: bool = False
  with_fourier_features: bool = True
  gamma_min: float = -13.3
  gamma_max: float = 5.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, t, y=None, train=False):
    n_embd, dt = self.sm_n_embd, self.dtype
    z = x.astype(jnp.float32)
    b = z.shape[0]

    # Conditioning vector from g_t and the per-example conditioning scalar.
    s = (jnp.broadcast_to(jnp.asarray(t, jnp.float32), (b,)) - self.gamma_min) / (
        self.gamma_max - self.gamma_min)
    y = jnp.zeros((b,), jnp.float32) if y is None else jnp.asarray(y, jnp.float32)
    cond = jnp.concatenate([embeddings.sinusoidal(1000.0 * s, n_embd), y[:, None]], axis=1)
    cond = nn.swish(_dense(4 * n_embd, 'dense0', dt)(cond))
    cond = nn.swish(_dense(4 * n_embd, 'dense1', dt)(cond))

    # Input (with Fourier features) -> conv_in; down stack, keeping every output.
    h = z
    if self.with_fourier_features:
      h = jnp.concatenate([z, base2_fourier_features(z)], axis=-1)
    hs = [_conv(n_embd, 'conv_in', dt)(h)]
    block = functools.partial(ResnetBlock, sm_pdrop=self.sm_pdrop, dtype=dt)
    for i in range(self.sm_n_layer):
      h = block(out_ch=n_embd, name=f'down.block_{i}')(hs[-1], cond, train)
      if self.with_attention:
        h = AttnBlock(dtype=dt, name=f'down.attn_{i}')(h)
      hs.append(h)

    # Middle.
    h = block(name='mid.block_1')(hs[-1], cond, train)
    h = AttnBlock(dtype=dt, name='mid.attn_1')(h)
    h = block(name='mid.block_2')(h, cond, train)

    # Up stack over the skips, last in first out.
    for i in range(self.sm_n_layer + 1):
      h = jnp.concatenate([h, hs.pop()], axis=-1)
      h = block(out_ch=n_embd, name=f'up.block_{i}')(h, cond, train)
      if self.with_attention:
        h = AttnBlock(dtype=dt, name=f'up.attn_{i}')(h)

    # Output head and the base measure (skip of the input), also under velocity prediction.
    h = nn.swish(_group_norm('GroupNorm_0', dt)(h))
    out = _conv(z.shape[-1], 'conv_out', dt, zero=True)(h)
    return out.astype(jnp.float32) + z


def create(kwargs: dict) -> nn.Module:
  """ScoreUNet from VDMConfig-named kwargs; the config's non-network fields are accepted."""
  fields = set(ScoreUNet.__dataclass_fields__) - {'parent', 'name'}
  unknown = sorted(set(kwargs) - fields - VDM_CONFIG_FIELDS)
  if unknown:
    raise ValueError(f'unknown vdm_unet kwargs: {", ".join(unknown)}; '
                     f'allowed: {", ".join(sorted(fields | VDM_CONFIG_FIELDS))}')
  return ScoreUNet(**{k: v for k, v in kwargs.items() if k in fields})
