"""The sinusoidal time embedding of every network family, in each original's own convention.

  e = [sin(t w) || cos(t w)]  (cos first if cos_first),  w_i = (1 / max_period)^(i / d),
  i < half = dim // 2,  d = half - 1 if endpoint (the last frequency is 1 / max_period) else half.

The originals agree on this formula and differ in the order of the halves, in d and in the
float32 operations that form w. Their arguments reach ~1e3 (integer steps, 999 t, 1000 s), where
one ulp of w moves the output by ~1e-4, so `formula` repeats each original's rounding
(r = ln(max_period) / d; every step in float32):
  'rate'     w = exp(i * -r)                      r rounded once, one product
  'product'  w = exp((-ln(max_period) * i) / d)   the product rounded, then the division
  'power'    w = (1 / max_period) ** (i / d)      i / d rounded, then a float32 power
For 64 frequencies, 'rate' gives torch's float32 values of the 'rate' originals in 58 places,
'product' in 7.

Each original's choice (max_period is 10000 in all of them):
* Ho et al. 2020 diffusion_utils `get_timestep_embedding` and its ports: pesser/pytorch_diffusion
  (= EAD libs.ddpm, reference A.10.3), tqch/ddpm-torch `get_timestep_embedding` (B.4.3, B.5.1;
  its exp(-i * r) is the same float32 number), score_sde layers.get_timestep_embedding
  (A.10.4, idode B.4; `max_positions`), google-research/vdm = i-DODE `get_timestep_embedding`
  of 1000 s (idode A.6): sin first, endpoint, 'rate' -- the defaults.
* openai/improved-diffusion nn.timestep_embedding (= EAD libs.iddpm, A.10.1, A.12 item 2;
  `max_period`): cos_first=True, endpoint=False, formula='product'.
* EDM PositionalEmbedding (edm A.3.1; `max_positions`, `endpoint`): cos_first=True,
  formula='power'; SongUNet uses endpoint=True (and swaps the halves after it), DhariwalUNet
  endpoint=False.
An odd dim gets a zero last column, as each original that allows one pads (EDM's networks need
an even channel count: their first Linear takes all C channels).
"""
import math

import jax.numpy as jnp

FORMULAS = ('rate', 'product', 'power')


def sinusoidal(t, dim, *, max_period=10000, cos_first=False, endpoint=True, formula='rate'):
  """The [B, dim] float32 embedding of t [B]; the defaults are Ho et al.'s (module docstring)."""
  if formula not in FORMULAS:
    raise ValueError(f'formula {formula!r} is not one of: {", ".join(FORMULAS)}')
  half = dim // 2
  d = half - 1 if endpoint else half
  i = jnp.arange(half, dtype=jnp.float32)
  if formula == 'rate':
    freqs = jnp.exp(i * -(math.log(max_period) / d))
  elif formula == 'product':
    freqs = jnp.exp(-math.log(max_period) * i / d)
  else:
    freqs = jnp.power(jnp.float32(1 / max_period), i / d)
  args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None, :]
  halves = [jnp.cos(args), jnp.sin(args)] if cos_first else [jnp.sin(args), jnp.cos(args)]
  return jnp.pad(jnp.concatenate(halves, axis=-1), ((0, 0), (0, dim % 2)))
