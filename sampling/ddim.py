"""DDIM and its optimal-variance forms (Analytic-DPM, SN-DPM, NPR-DPM) on a timestep subsequence.

Each step of `sampling.chain` (Extended Analytic-DPM's `_sample_dtdpm`, reference A.4.3,
with its clip_sigma_idx / clip_pixel rule) is the DDIM step of `diffusion.ddim` (A.4.1-A.4.2)
with eta, ddim_mean and var_type. 'small' with eta = 0 is deterministic; the optimal forms
inject gamma^2 C even at eta = 0; eta = 1 'small' reproduces the DDPM fixed-small chain draw
for draw (same keys). NFE = number of pairs.
"""
import jax.numpy as jnp

from diffusion import ddim
from diffusion import timesteps
from sampling import chain

def sample(apply, params, spec, schedule, keys, shape, *, steps, eta=0.0, trajectory='linear',
           ddim_mean='raw_eps', var_type='small', ms_eps=None, avg_cov=False, clip_sigma_idx=0,
           clip_pixel=2, dtype=jnp.float32):
  """keys [B] (one per sample), shape of one sample -> (x [B, *shape], nfe).

  var_type 'analytic' needs ms_eps (Gamma, [N + 1]); 'sn' / 'npr' need the model's eps2 /
  eps_res outputs (avg_cov: averaged over each sample's elements, EAD --avg_cov); trajectory
  'dp_seg' needs ms_eps too. eta may be a traced scalar.
  """
  tau = timesteps.trajectory(schedule.N, steps, trajectory, ms_eps=ms_eps, schedule=schedule)
  ms_eps = None if ms_eps is None else jnp.asarray(ms_eps, jnp.float64)

  def reverse_step(s, t, x, out):
    return ddim.p_mean_var(schedule, s, t, x, out, spec.prediction, eta=eta, var_type=var_type,
                           ddim_mean=ddim_mean, ms_eps=ms_eps, data_range=spec.data_range,
                           avg_cov=avg_cov)[:2]

  return chain.run(apply, params, schedule, keys, shape, tau, reverse_step,
                   clip_sigma_idx=clip_sigma_idx, clip_pixel=clip_pixel, dtype=dtype)
