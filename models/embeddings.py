"""Time embeddings shared by the networks."""
import math

import jax.numpy as jnp


def sinusoidal(t, dim):
  """[sin(t f_i) || cos(t f_i)], f_i = exp(-i ln(10000) / (dim/2 - 1)), i < dim/2.

  Ho et al. 2020 (diffusion_utils `get_timestep_embedding`); tqch/ddpm-torch uses
  the same denominator half - 1 (reference B.4.3, B.5.1).
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
  args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
