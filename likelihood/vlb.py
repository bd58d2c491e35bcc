"""The discrete variational bound of a DDPM chain, in nats and bits/dim.

  -log p(x0) <= KL(q(x_N|x0) || N(0,I)) + sum_{(s,t), s>0} KL(q(x_s|x_t,x0) || p(x_s|x_t))
                - log p(x0 | x_tau1)                                    (Ho et al. eq. 5)
over the pairs of a trajectory tau (the K-step chain's own bound, Bao et al. 2022
Analytic-DPM sec. 4; K = N is the full chain). Each term draws its own x_t from
q(x_t | x0) with a fresh eps (unbiased per term, as the references do). Example i
uses `keys[i]`, so the result does not depend on batching. NFE = K per example.
Images (spec.data_range set) get the discretised decoder and x0_hat clipped to the range,
as EAD's nll4test (reference A.7); vector data a Gaussian decoder.
"""
import jax
import jax.numpy as jnp
import numpy as np

from diffusion import ddpm
from diffusion import timesteps


def vlb(apply, params, spec, schedule, x0, keys, *, var_type, steps=None, trajectory='linear'):
  """Per-example bound of x0 [B, ...]: (nats [B], bits/dim [B], nfe)."""
  tau = timesteps.trajectory(schedule.N, steps or schedule.N, trajectory)
  b = x0.shape[0]

  def term(total, inp):
    j, s, t = inp
    eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, j), x0.shape[1:], x0.dtype))(keys)
    alpha, sigma = schedule.alpha_sigma(t)
    x_t = (alpha * x0 + sigma * eps).astype(x0.dtype)
    out = apply(params, x_t, jnp.full((b,), schedule.lam_at(t)), None)
    term = ddpm.vlb_term(schedule, s, t, x0, x_t, out, spec.prediction, var_type,
                         spec.data_range, clip=spec.data_range is not None)
    return total + term, None

  pairs = (jnp.arange(len(tau) - 1), jnp.asarray(tau[:-1]), jnp.asarray(tau[1:]))
  nats, _ = jax.lax.scan(term, ddpm.prior_kl(schedule, x0), pairs)
  dims = np.prod(x0.shape[1:])
  return nats, nats / (dims * np.log(2.0)), len(tau) - 1
