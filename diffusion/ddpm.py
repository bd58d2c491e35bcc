"""The discrete DDPM reverse process p(x_s | x_t), its variational bound and losses.

Reverse step from t down to s (s < t on the grid of a DiscreteSchedule):
  mean   = c0(s,t) x0_hat + ct(s,t) x_t           (posterior mean with x0 -> x0_hat)
  logvar = one of (var_type)
    fixed-small: log beta~(s,t), the posterior variance   (Ho et al. 2020, sigma^2 = beta~)
    fixed-large: log beta_{t|s}                          (Ho et al. 2020, sigma^2 = beta)
    learned:     f log beta_{t|s} + (1 - f) log beta~(s,t), f = (v + 1)/2 with v the
                 network's `var_values` (Improved DDPM, Nichol & Dhariwal 2021 eq. 15).
    analytic, sn, npr:
                 beta~(s,t) + c0(s,t)^2 C, c0^2 = alphabar_s beta_{t|s}^2 / (1 - alphabar_t)^2,
                 the optimal variance given C ~ Cov[x0 | x_t] from Analytic-DPM's ms_eps,
                 SN-DPM's eps2 or NPR-DPM's eps_res (`diffusion.analytic`, reference A.4.2).
  At s = 0 the posterior variance is 0; every type then uses beta~(1,2) as its lower
  end (the reference's "clipped" log-variance), and fixed-large uses it too.
tqch/ddpm-torch's own 'learned' reads the raw output as a log-variance and cannot
run (reference B.2, B.9); this is the Improved-DDPM interpolation instead.

Variational bound (Ho et al. eq. 5), per example in nats, summed over elements:
  L = KL(q(x_N|x0) || N(0,I)) + sum_{s>0} KL(q(x_s|x_t,x0) || p(x_s|x_t)) - log p(x0|x_t1)
with a continuous Gaussian decoder p(x0|x_t1) = N(x0_hat, e^logvar) for vector data
(as the reference's toy code does).
"""
import jax
import jax.numpy as jnp
import numpy as np

from diffusion import analytic
from diffusion import gaussian
from diffusion import predictions

VAR_TYPES = ('fixed-small', 'fixed-large', 'learned')
LOSSES = ('mse', 'kl', 'hybrid')
PREDICTIONS = ('eps', 'x0', 'v', 'mean')


def _b(c, x):
  """Broadcast a per-example coefficient [B] (or scalar) against x [B, ...]."""
  c = jnp.asarray(c)
  return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))


def reverse_logvar(schedule, s, t, var_type, out=None, data_range=None, ms_eps=None,
                   avg_cov=False):
  """log sigma^2 of p(x_s | x_t) for the variance type (module docstring).

  Fixed types and analytic give float64 [B] (or scalar); learned, sn and npr read
  the model's output dict `out` and give per-element values (sn / npr with avg_cov: one per
  example, [B, 1, ...]); analytic needs ms_eps.
  """
  _, b_ts = schedule.transition(s, t)
  _, _, post_var = schedule.posterior(s, t)
  floor = schedule.betas[2] * schedule.sigma2[1] / schedule.sigma2[2]  # beta~(1,2), numpy
  log_small = jnp.log(jnp.where(s == 0, floor, post_var))
  if var_type == 'fixed-small':
    return log_small
  log_large = jnp.log(b_ts)
  if var_type == 'fixed-large':
    return jnp.where(s == 0, log_small, log_large)
  if var_type == 'learned':
    v = out['var_values']
    frac = (v + 1.0) / 2.0
    return frac * _b(log_large, v) + (1.0 - frac) * _b(log_small, v)
  if var_type in analytic.COV_TYPES:
    c0, _, _ = schedule.posterior(s, t)
    cov = analytic.cov_x0(schedule, t, var_type, out, ms_eps, data_range, avg_cov)
    var = _b(post_var, cov) + _b(c0**2, cov) * cov
    return jnp.where(_b(s == 0, cov), _b(log_small, cov), jnp.log(var))
  raise ValueError(f'unknown var_type {var_type!r}; allowed: {", ".join(VAR_TYPES)}')


def x0_eps_hat(schedule, t, x_t, out, prediction):
  """(x0_hat, eps_hat) at integer level t from the network's output dict.

  A 'mean' prediction is of the one-step posterior mean of x_{t-1}.
  """
  alpha, sigma = schedule.alpha_sigma(t)
  c0, ct, _ = schedule.posterior(t - 1, t)
  cast = lambda c: _b(c, x_t).astype(x_t.dtype)
  return predictions.to_x0_eps(prediction, out[prediction], x_t, cast(alpha), cast(sigma),
                               posterior=(cast(c0), cast(ct)))


def p_mean_logvar(schedule, s, t, x_t, out, prediction, var_type, data_range=None, ms_eps=None,
                  avg_cov=False):
  """Mean, log-variance and x0_hat of p(x_s | x_t); x0_hat clipped to data_range."""
  x0, _ = x0_eps_hat(schedule, t, x_t, out, prediction)
  x0 = predictions.clip_x0(x0, data_range)
  c0, ct, _ = schedule.posterior(s, t)
  mean = _b(c0, x_t).astype(x_t.dtype) * x0 + _b(ct, x_t).astype(x_t.dtype) * x_t
  logvar = reverse_logvar(schedule, s, t, var_type, out, data_range, ms_eps, avg_cov)
  return mean, _b(logvar, x_t).astype(x_t.dtype), x0


def _sum(x):
  return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def vlb_term(schedule, s, t, x0, x_t, out, prediction, var_type, data_range=None, clip=False):
  """One term of the bound in nats per example: the KL for s > 0, the decoder for s = 0.

  The decoder is Gaussian for vector data (data_range None) and the discretised Gaussian of
  the 256 levels of data_range for images; `clip` clips x0_hat to data_range first (EAD's
  nll4test, reference A.7; training bounds do not clip).
  """
  mean_p, logvar_p, _ = p_mean_logvar(schedule, s, t, x_t, out, prediction, var_type,
                                      data_range if clip else None)
  c0, ct, var_q = schedule.posterior(s, t)
  mean_q = _b(c0, x_t).astype(x_t.dtype) * x0 + _b(ct, x_t).astype(x_t.dtype) * x_t
  logvar_q = _b(jnp.log(jnp.where(s == 0, 1.0, var_q)), x_t).astype(x_t.dtype)
  kl = _sum(gaussian.normal_kl(mean_q, logvar_q, mean_p, logvar_p))
  if data_range is None:
    decoder = -_sum(gaussian.normal_log_prob(x0, mean_p, logvar_p))
  else:
    decoder = -_sum(gaussian.discretized_log_prob(x0, mean_p, logvar_p, data_range))
  return jnp.where(s == 0, decoder, kl)


def prior_kl(schedule, x0):
  """KL(q(x_N | x0) || N(0, I)) in nats per example."""
  alpha, _ = schedule.alpha_sigma(schedule.N)
  log_s2 = float(np.log(schedule.sigma2[schedule.N]))
  return _sum(gaussian.normal_kl(alpha.astype(x0.dtype) * x0, log_s2, 0.0, 0.0))


def loss(model, schedule, x0, key, *, prediction, loss_type, var_type, vlb_weight=1e-3,
         data_range=None):
  """Per-example DDPM training loss terms, n ~ U{1..N}, eps ~ N(0, I).

  mse:    mean_elements (target - out)^2, target eps / x0 / v = alpha eps - sigma x0 /
          posterior mean (Ho et al. eq. 14; v: Salimans & Ho 2022)
  kl:     the bound's term at n in bits/dim (tqch/ddpm-torch `kl` loss)
  hybrid: mse + vlb_weight * N * term in bits/dim with the mean stop-gradiented,
          so the bound trains only the variance (Improved DDPM, L_hybrid, lambda = 0.001).
  `model(x_t, n)` returns the output dict of the model adapter.
  """
  k_n, k_eps = jax.random.split(key)
  b = x0.shape[0]
  n = jax.random.randint(k_n, (b,), 1, schedule.N + 1)
  eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
  alpha, sigma = schedule.alpha_sigma(n)
  x_t = _b(alpha, x0).astype(x0.dtype) * x0 + _b(sigma, x0).astype(x0.dtype) * eps
  out = model(x_t, n)
  dims = np.prod(x0.shape[1:])
  terms = {}
  if loss_type in ('mse', 'hybrid'):
    c0, ct, _ = schedule.posterior(n - 1, n)
    cast = lambda c: _b(c, x0).astype(x0.dtype)
    target = {'eps': eps, 'x0': x0, 'v': cast(alpha) * eps - cast(sigma) * x0,
              'mean': cast(c0) * x0 + cast(ct) * x_t}[prediction]
    terms['mse'] = _sum((target - out[prediction])**2) / dims
  if loss_type in ('kl', 'hybrid'):
    vlb_out = dict(out)
    if loss_type == 'hybrid':
      vlb_out[prediction] = jax.lax.stop_gradient(out[prediction])
    terms['vlb_bpd'] = vlb_term(schedule, n - 1, n, x0, x_t, vlb_out, prediction, var_type,
                                 data_range) / (dims * np.log(2.0))
  if loss_type == 'mse':
    terms['loss'] = terms['mse']
  elif loss_type == 'kl':
    terms['loss'] = terms['vlb_bpd']
  elif loss_type == 'hybrid':
    terms['loss'] = terms['mse'] + vlb_weight * schedule.N * terms['vlb_bpd']
  else:
    raise ValueError(f'unknown loss {loss_type!r}; allowed: {", ".join(LOSSES)}')
  return terms
