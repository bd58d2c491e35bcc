"""The DDIM reverse step for a jump t -> s (s < t on a DiscreteSchedule's grid).

Song et al. 2021 (DDIM, eq. 12) in Extended Analytic-DPM's form (reference A.4.1):

  lambda^2 = eta^2 beta~(s, t)                      (beta~: posterior variance of q(x_s|x_t,x0))
  mean     = sqrt(alphabar_s) x0_hat + sqrt(1 - alphabar_s - lambda^2) eps_hat
  var      = lambda^2                                              ('small')
           = lambda^2 + gamma^2 C,                                 (optimal: 'analytic', 'sn', 'npr')
  gamma    = sqrt(alphabar_s) - sqrt((1 - alphabar_s - lambda^2) alphabar_t / (1 - alphabar_t))

with C the clamped Cov[x0 | x_t] estimate of `diffusion.analytic` (Analytic-DPM's scalar
from ms_eps, SN-DPM's eps2 - eps^2, NPR-DPM's eps_res). x0_hat is clipped to the model's
data_range when it has one; eps_hat is, per `ddim_mean`,
  raw_eps     the network's eps (EAD: not recomputed from the clipped x0_hat), or
  clipped_x0  (x_t - sqrt(alphabar_t) x0_hat) / sqrt(1 - alphabar_t) from the clipped x0_hat
              (tqch/ddpm-torch's c1' x0_hat + c2' x_t, reference B.3).
Without clipping the two agree. eta = 1 with 'small' is the DDPM step with fixed-small
variance; at s = 0 the mean is x0_hat (coefficients 1 and 0); s = t (a duplicated
trajectory entry) gives beta~ = 0, gamma = 0 and, with clipped_x0 or without clipping,
mean = x_t exactly.
"""
import jax.numpy as jnp

from diffusion import analytic
from diffusion import ddpm
from diffusion import predictions

VAR_TYPES = ('small', 'analytic', 'sn', 'npr')
DDIM_MEANS = ('raw_eps', 'clipped_x0')


def lambda2(schedule, s, t, eta):
  """lambda^2 = eta^2 beta~(s, t) (float64)."""
  return jnp.asarray(eta)**2 * schedule.posterior(s, t)[2]


def coefficients(schedule, s, t, eta):
  """(sqrt(alphabar_s), sqrt(1 - alphabar_s - lambda^2), lambda^2): the DDIM mean's weights."""
  lam2 = lambda2(schedule, s, t, eta)
  alpha_s, _ = schedule.alpha_sigma(s)
  return alpha_s, jnp.sqrt(jnp.maximum(jnp.asarray(schedule.sigma2)[s] - lam2, 0.0)), lam2


def gamma2(schedule, s, t, eta):
  """gamma^2 = (sqrt(alphabar_s) - sqrt((1 - alphabar_s - lambda^2) alphabar_t/(1 - alphabar_t)))^2.

  The weight of Cov[x0 | x_t] in Var[x_s | x_t]; eta = 1 gives the DDPM form's
  alphabar_s beta_{t|s}^2 / (1 - alphabar_t)^2 (reference A.4.2, note).
  """
  alpha_s, c_eps, _ = coefficients(schedule, s, t, eta)
  alpha_t, sigma_t = schedule.alpha_sigma(t)
  return (alpha_s - c_eps * alpha_t / sigma_t)**2


def reverse_var(schedule, s, t, eta, var_type, out=None, ms_eps=None, data_range=None,
                avg_cov=False):
  """sigma^2 of the DDIM-form p(x_s | x_t): float64 [B] or scalar ('small', 'analytic'),
  elementwise for 'sn' / 'npr' (per example with avg_cov)."""
  lam2 = lambda2(schedule, s, t, eta)
  if var_type == 'small':
    return lam2
  if var_type in analytic.COV_TYPES:
    c = analytic.cov_x0(schedule, t, var_type, out, ms_eps, data_range, avg_cov)
    return ddpm._b(lam2, c) + ddpm._b(gamma2(schedule, s, t, eta), c) * c
  raise ValueError(f'unknown DDIM var_type {var_type!r}; allowed: {", ".join(VAR_TYPES)}')


def p_mean_var(schedule, s, t, x_t, out, prediction, *, eta, var_type='small',
               ddim_mean='raw_eps', ms_eps=None, data_range=None, avg_cov=False):
  """Mean, variance (broadcast to x_t, in its dtype) and clipped x0_hat of the DDIM step."""
  if ddim_mean not in DDIM_MEANS:
    raise ValueError(f'unknown ddim_mean {ddim_mean!r}; allowed: {", ".join(DDIM_MEANS)}')
  cast = lambda c: ddpm._b(c, x_t).astype(x_t.dtype)
  x0, eps = ddpm.x0_eps_hat(schedule, t, x_t, out, prediction)
  x0 = predictions.clip_x0(x0, data_range)
  if ddim_mean == 'clipped_x0':
    alpha_t, sigma_t = schedule.alpha_sigma(t)
    eps = predictions.from_x0('eps', x0, x_t, cast(alpha_t), cast(sigma_t))
  alpha_s, c_eps, _ = coefficients(schedule, s, t, eta)
  mean = cast(alpha_s) * x0 + cast(c_eps) * eps
  var = reverse_var(schedule, s, t, eta, var_type, out, ms_eps, data_range, avg_cov)
  return mean, jnp.broadcast_to(cast(var), x_t.shape), x0
