"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) on a timestep subsequence.

For consecutive (s, t) of tau = [0, tau_1, ..., tau_K], from t = tau_K = N down:
  x_s = mean(s, t) + 1[s > 0] exp(logvar(s, t) / 2) z,   z ~ N(0, I)
with the mean and variance of `diffusion.ddpm.p_mean_logvar` (x0_hat clipped to
the model's data_range when it has one); var_type 'sn' / 'npr' gives SN-DPM /
NPR-DPM's optimal diagonal covariance from the model's eps2 / eps_res outputs. K = N is the full chain; the last step
returns the mean, x0_hat itself. Sample i draws its noise from its own key
(`keys[i]`, folded with the step index), so samples do not depend on the batch
size or on the devices they run on. NFE = K.
"""
import jax
import jax.numpy as jnp

from diffusion import ddpm
from diffusion import timesteps


def _normal(keys, j, shape, dtype):
  return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, j), shape, dtype))(keys)


def sample(apply, params, spec, schedule, keys, shape, *, steps, var_type,
           trajectory='linear', dtype=jnp.float32):
  """keys [B] (one per sample), shape of one sample -> (x [B, *shape], nfe)."""
  tau = timesteps.trajectory(schedule.N, steps, trajectory)
  s_seq, t_seq = jnp.asarray(tau[:-1][::-1]), jnp.asarray(tau[1:][::-1])
  b = keys.shape[0]
  x = _normal(keys, 0, shape, dtype)

  def step(x, inp):
    j, s, t = inp
    lam = jnp.full((b,), schedule.lam_at(t))
    out = apply(params, x, lam, None)
    mean, logvar, _ = ddpm.p_mean_logvar(schedule, s, t, x, out, spec.prediction, var_type,
                                         spec.data_range)
    z = _normal(keys, j, shape, dtype)
    return jnp.where(s > 0, mean + jnp.exp(0.5 * logvar) * z, mean).astype(dtype), None

  x, _ = jax.lax.scan(step, x, (jnp.arange(1, len(s_seq) + 1), s_seq, t_seq))
  return x, len(s_seq)
