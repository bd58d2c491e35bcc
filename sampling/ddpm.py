"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) on a timestep subsequence.

Each step of `sampling.chain` uses the mean and variance of `diffusion.ddpm.p_mean_logvar`
(x0_hat clipped to the model's data_range when it has one): var_type fixed-small,
fixed-large or learned, or the optimal forms 'analytic' (Analytic-DPM, needs ms_eps), 'sn'
and 'npr' (SN-DPM / NPR-DPM from the model's eps2 / eps_res). K = N is the full chain; the
last step returns the mean, x0_hat itself. NFE = K.
"""
import jax.numpy as jnp

from diffusion import ddpm
from diffusion import timesteps
from sampling import chain


def sample(apply, params, spec, schedule, keys, shape, *, steps, var_type, trajectory='linear',
           ms_eps=None, avg_cov=False, clip_sigma_idx=0, clip_pixel=2, dtype=jnp.float32):
  """keys [B] (one per sample), shape of one sample -> (x [B, *shape], nfe); avg_cov averages
  sn / npr covariances over each sample's elements (EAD --avg_cov)."""
  tau = timesteps.trajectory(schedule.N, steps, trajectory, ms_eps=ms_eps, schedule=schedule)
  ms = None if ms_eps is None else jnp.asarray(ms_eps, jnp.float64)

  def reverse_step(s, t, x, out):
    mean, logvar, _ = ddpm.p_mean_logvar(schedule, s, t, x, out, spec.prediction, var_type,
                                         spec.data_range, ms, avg_cov)
    return mean, jnp.exp(logvar)

  return chain.run(apply, params, schedule, keys, shape, tau, reverse_step,
                   clip_sigma_idx=clip_sigma_idx, clip_pixel=clip_pixel, dtype=dtype)
