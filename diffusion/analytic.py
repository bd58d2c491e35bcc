"""Analytic-DPM, SN-DPM and NPR-DPM: the estimate of Cov[x0 | x_t] behind the optimal variances.

With eps_hat ~ E[eps | x_t], Cov[x0 | x_t] = ((1 - alphabar_t)/alphabar_t) Cov[eps | x_t]
(Bao et al. 2022a, Analytic-DPM; 2022b, SN/NPR-DPM; reference A.4.2), estimated as

  analytic  C_t = ((1 - alphabar_t)/alphabar_t) (1 - Gamma_t), a scalar per step, with
            Gamma_t = E_q ||eps_hat(x_t, t)||^2 / d (= ms_eps[t], `estimate_ms_eps`);
  sn        C = ((1 - alphabar_t)/alphabar_t) (eps2 - eps^2), elementwise (model's eps2 head);
  npr       C = ((1 - alphabar_t)/alphabar_t) eps_res, elementwise (model's eps_res head);

clamped to [0, (range/2)^2] for bounded data (EAD's [0, 1] for data in [-1, 1]), and at 0
below only when the model has no data_range. With avg_cov (EAD's --avg_cov) an elementwise
estimate is first averaged over each example's elements (a scalar per example). The optimal DDPM-form variance of a jump t -> s
is then beta~(s, t) + c0(s, t)^2 C with c0 = beta_{t|s} sqrt(alphabar_s)/(1 - alphabar_t)
the posterior's x0 coefficient (A.4.2 table: alphabar_s beta_{t|s}^2 / beta_bar_t^2); the
DDIM form is in `diffusion.ddim`.
"""
import jax
import jax.numpy as jnp
import numpy as np

COV_TYPES = ('analytic', 'sn', 'npr')
COV_OUTPUTS = {'analytic': ('eps',), 'sn': ('eps', 'eps2'), 'npr': ('eps_res',)}


def _b(c, x):
  """Broadcast a per-example coefficient [B] (or scalar) against x [B, ...]."""
  c = jnp.asarray(c)
  return c.reshape(c.shape + (1,) * (jnp.ndim(x) - c.ndim))


def clamp_cov(c, data_range):
  """Clamp a Cov[x0 | x_t] estimate to [0, (range/2)^2]; no upper end without a data_range."""
  hi = None if data_range is None else ((data_range[1] - data_range[0]) / 2)**2
  return jnp.clip(c, 0.0, hi)


def _cov_eps_to_x0(schedule, t):
  """(1 - alphabar_t)/alphabar_t at integer t (float64)."""
  return jnp.asarray(schedule.sigma2)[t] * jnp.exp(-jnp.asarray(schedule.log_alphabar)[t])


def cov_x0_analytic(schedule, t, ms_eps):
  """Analytic-DPM's scalar Cov[x0 | x_t] = (1 - alphabar_t)/alphabar_t (1 - Gamma_t), unclamped."""
  if ms_eps is None:
    raise ValueError("Analytic-DPM needs ms_eps (Gamma_t, [N + 1]); see estimate_ms_eps")
  return _cov_eps_to_x0(schedule, t) * (1.0 - jnp.asarray(ms_eps)[t])


def cov_x0(schedule, t, cov_type, out=None, ms_eps=None, data_range=None, avg_cov=False):
  """Clamped Cov[x0 | x_t] estimate: scalar per example (analytic) or elementwise (sn, npr;
  with avg_cov their mean over each example's elements, [B, 1, ...])."""
  if cov_type == 'analytic':
    c = cov_x0_analytic(schedule, t, ms_eps)
  elif cov_type in ('sn', 'npr'):
    missing = [k for k in COV_OUTPUTS[cov_type] if out is None or k not in out]
    if missing:
      raise ValueError(f'{cov_type} covariance needs the model outputs {", ".join(missing)}')
    h = out['eps2'] - out['eps']**2 if cov_type == 'sn' else out['eps_res']
    c = _b(_cov_eps_to_x0(schedule, t), h) * h
    if avg_cov:
      c = jnp.mean(c, axis=tuple(range(1, c.ndim)), keepdims=True)
  else:
    raise ValueError(f'unknown covariance type {cov_type!r}; allowed: {", ".join(COV_TYPES)}')
  return clamp_cov(c, data_range)


def estimate_ms_eps(apply, params, spec, schedule, data, key, *, batch_size=1000,
                    return_stderr=False):
  """Gamma_n = mean over data of mean over elements of eps_hat(x_n, n)^2, n = 1..N (A.5).

  One noise draw per data point and step: x_n = sqrt(alphabar_n) x0_i + sqrt(1 - alphabar_n)
  eps with eps from fold_in(fold_in(key, i), n), i the point's global index, so the
  estimate does not depend on the batching. `data` is an array [M, ...] or an iterable of
  such batches. The model is called through the adapter with lam_n (its ModelSpec's
  time_input turns that into the network's input); eps_hat comes from any prediction kind
  through `diffusion.ddpm.x0_eps_hat`. Returns float64 [N + 1] with index 0 = 0 (and the
  Monte-Carlo standard errors, same shape, with return_stderr).
  """
  from diffusion import ddpm  # ddpm may import this module for its variances

  n_all = jnp.arange(1, schedule.N + 1)

  @jax.jit
  def moments(params, x0, idx):
    b = x0.shape[0]
    point_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)

    def per_n(_, n):
      eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, n), x0.shape[1:],
                                                 x0.dtype))(point_keys)
      alpha, sigma = schedule.alpha_sigma(n)
      x_n = (alpha * x0 + sigma * eps).astype(x0.dtype)
      out = apply(params, x_n, jnp.full((b,), schedule.lam_at(n)), None)
      _, eps_hat = ddpm.x0_eps_hat(schedule, n, x_n, out, spec.prediction)
      m = jnp.mean(jnp.reshape(eps_hat.astype(jnp.float64)**2, (b, -1)), axis=1)
      return None, (jnp.sum(m), jnp.sum(m**2))

    _, (s1, s2) = jax.lax.scan(per_n, None, n_all)
    return s1, s2

  batches = [data] if hasattr(data, 'shape') else data
  s1 = np.zeros(schedule.N, np.float64)
  s2 = np.zeros(schedule.N, np.float64)
  count = 0
  for batch in batches:
    batch = np.asarray(batch)
    for lo in range(0, len(batch), batch_size):
      x0 = jnp.asarray(batch[lo:lo + batch_size])
      idx = jnp.arange(count, count + len(x0))
      a, b2 = moments(params, x0, idx)
      s1 += np.asarray(a)
      s2 += np.asarray(b2)
      count += len(x0)
  if count == 0:
    raise ValueError('estimate_ms_eps needs at least one data point')
  mean = s1 / count
  ms_eps = np.concatenate([[0.0], mean])
  if not return_stderr:
    return ms_eps
  var = np.maximum(s2 / count - mean**2, 0.0) / max(count - 1, 1)
  return ms_eps, np.concatenate([[0.0], np.sqrt(var)])
