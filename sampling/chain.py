"""The discrete reverse chain shared by the DDPM- and DDIM-form samplers.

Extended Analytic-DPM's `_sample_dtdpm` (reference A.4.3): for consecutive (s, t) of
tau = [0, tau_1, ..., tau_K], from t = tau_K down,

  mean, var = reverse_step(s, t, x_t, model output)
  s > 0:  if s <= tau[clip_sigma_idx]: var <- clamp(var, 0, (clip_pixel 2/255 sqrt(pi/2))^2)
          x_s = mean + sqrt(var) z,  z ~ N(0, I)
  s = 0:  x_0 = mean (= x0_hat, clipped to the model's data_range when it has one)

clip_sigma_idx = 0 never clips; 1 clips only the step landing on tau_1 (every README run of
EAD): at most clip_pixel grey levels of expected perturbation, E|sigma z| <= clip_pixel 2/255.
A duplicated entry (s = t, tqch's quadratic subsequence) is an identity step.

Keys: sample i starts from N(0, I) drawn with fold_in(keys[i], 0) and step j = 1..K draws
its z with fold_in(keys[i], j), so samples do not depend on the batch size or the devices.
NFE = the number of pairs (K; more for tq_linear when N % K != 0).
"""
import jax
import jax.numpy as jnp
import numpy as np

from sampling.noise import normal

CLIP_GREY_LEVEL = 2.0 / 255.0  # one grey level of a [-1, 1] image (A.4.3)


def clip_var_max(clip_pixel):
  """(clip_pixel 2/255 sqrt(pi/2))^2: clip_pixel 1 -> 9.6627e-5, 2 -> 3.8651e-4."""
  return (clip_pixel * CLIP_GREY_LEVEL * np.sqrt(np.pi / 2))**2


def run(apply, params, schedule, keys, shape, tau, reverse_step, *, clip_sigma_idx=0,
        clip_pixel=2, dtype=jnp.float32):
  """The chain over tau with reverse_step(s, t, x_t, out) -> (mean, var): (x, nfe)."""
  if not 0 <= clip_sigma_idx < len(tau):
    raise ValueError(f'clip_sigma_idx must be in 0..{len(tau) - 1}, got {clip_sigma_idx}')
  clip_below = int(tau[clip_sigma_idx])
  var_max = clip_var_max(clip_pixel)
  s_seq, t_seq = jnp.asarray(tau[:-1][::-1]), jnp.asarray(tau[1:][::-1])
  b = keys.shape[0]
  x = normal(keys, 0, shape, dtype)

  def step(x, inp):
    j, s, t = inp
    out = apply(params, x, jnp.full((b,), schedule.lam_at(t)), None)
    mean, var = reverse_step(s, t, x, out)
    var = jnp.where((s > 0) & (s <= clip_below), jnp.clip(var, 0.0, var_max), var)
    x_s = jnp.where(s > 0, mean + jnp.sqrt(var) * normal(keys, j, shape, dtype), mean)
    return jnp.where(s == t, x, x_s).astype(dtype), None

  x, _ = jax.lax.scan(step, x, (jnp.arange(1, len(s_seq) + 1), s_seq, t_seq))
  return x, len(s_seq)
