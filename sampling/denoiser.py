"""The one noise-coordinate map for EDM-style samplers: any model -> D(x, sigma) = E[x0 | x].

EDM samplers work in the VE coordinate x = x0 + sigma n (x unscaled). A model
of the adapter contract (`apply(params, x_t, lam, y)`, lam the log-SNR) is seen
there through (Karras et al. 2022, Table 1 and eq. 7-8, x_VE = x_VP / alpha,
sigma_VE = sigma_VP / alpha):

  lam   = -2 log sigma                    (sigma = exp(-lam / 2))
  'vp': alpha = 1 / sqrt(1 + sigma^2) = sqrt(sigmoid(lam)),  sigma_vp = alpha sigma,
        the model sees x_t = alpha x;
  've': alpha = 1, sigma_ve = sigma, the model sees x_t = x;

and its main prediction (eps, x0, v, score) becomes x0 with
`diffusion.predictions.to_x0_eps(kind, out, x_t, alpha, sigma_model)`; x0 is in
the data coordinate for both processes, so D(x, sigma) = x0.

The ModelSpec's `round` rule: 'none' leaves sigma as it is; 'index' (a discrete
model with N = spec.N on `schedule`) snaps sigma to the nearest grid level
sigma_n = exp(-lam_n / 2), n = 1..N, nearest by |sigma - sigma_n| as EDM's
iDDPMPrecond.round_sigma does (argmin of the absolute difference; EDM measures
it in float32, we in float64), and the model is then called with exactly
lam_n. Samplers use `round_sigma` for their own levels too (EDM rounds the time
steps through net.round_sigma), and `sigma_range` for EDM's clamping of
sigma_min / sigma_max to what the network supports.
"""
import jax.numpy as jnp
import numpy as np

from diffusion import predictions

KINDS = ('eps', 'x0', 'denoised', 'v', 'score')


def _check(spec, schedule):
  if spec.process not in ('vp', 've'):
    raise ValueError(f'unknown process {spec.process!r}; allowed: vp, ve')
  if spec.round == 'index':
    if schedule is None or schedule.N != spec.N:
      got = None if schedule is None else schedule.N
      raise ValueError(f"round='index' needs the model's discrete schedule with N={spec.N}; "
                       f'got N={got}')
  elif spec.round != 'none':
    raise ValueError(f'unknown round rule {spec.round!r}; allowed: none, index')


def _grid(schedule):
  """(sigma_n, lam_n) for n = 1..N, float64 numpy, sigma increasing in n."""
  lam = schedule.lam[1:]
  return np.exp(-0.5 * lam), lam


def rounded_level(spec, schedule, sigma):
  """(sigma', lam') the model is evaluated at: sigma itself, or its nearest grid level."""
  _check(spec, schedule)
  sigma = jnp.asarray(sigma, jnp.result_type(float))
  if spec.round == 'none':
    return sigma, -2.0 * jnp.log(sigma)
  grid, lam = _grid(schedule)
  n = jnp.argmin(jnp.abs(sigma[..., None] - grid), axis=-1)
  return jnp.asarray(grid)[n], jnp.asarray(lam)[n]


def round_sigma(spec, schedule, sigma):
  """EDM's net.round_sigma: the noise level the model actually sees (see module doc)."""
  return rounded_level(spec, schedule, sigma)[0]


def sigma_range(spec, schedule):
  """(sigma_min, sigma_max) the model supports: its grid's ends for 'index', else (0, inf)."""
  _check(spec, schedule)
  if spec.round == 'none':
    return 0.0, float('inf')
  grid, _ = _grid(schedule)
  return float(grid[0]), float(grid[-1])


def edm_denoiser(apply, params, spec, schedule=None):
  """D(x, sigma, y=None) -> x0 in the EDM/VE coordinate (module doc); sigma scalar or [B]."""
  _check(spec, schedule)
  if spec.prediction not in KINDS:
    raise ValueError(f'EDM samplers need a prediction in {", ".join(KINDS)}; '
                     f'{spec.prediction!r} needs the discrete posterior of an ancestral step')

  def D(x, sigma, y=None):
    sigma, lam = rounded_level(spec, schedule, sigma)
    b = x.shape[0]
    col = lambda v: jnp.broadcast_to(v, (b,)).reshape((b,) + (1,) * (x.ndim - 1))
    if spec.process == 'vp':
      alpha = 1.0 / jnp.sqrt(1.0 + sigma**2)
      a, s = col(alpha), col(alpha * sigma)
    else:
      a, s = 1.0, col(sigma)
    x_t = a * x
    out = apply(params, x_t, jnp.broadcast_to(lam, (b,)), y)[spec.prediction]
    x0, _ = predictions.to_x0_eps(spec.prediction, out, x_t, a, s)
    return x0.astype(x.dtype)

  return D
