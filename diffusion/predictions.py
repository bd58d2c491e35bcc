"""The one prediction converter: any network output -> (x0, eps).

For every process x_t = alpha x_0 + sigma eps (VP: alpha^2 + sigma^2 = 1; VE and
EDM: alpha = 1; the straight path: alpha = 1 - t, sigma = t) the outputs are
related by
  x0    = (x_t - sigma eps) / alpha
  eps   = (x_t - alpha x0) / sigma
  score = grad log p(x_t) = -eps / sigma                     (Tweedie)
  v     = alpha eps - sigma x0                               (Salimans & Ho 2022)
          => x0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2),
             eps = (sigma x_t + alpha v) / (alpha^2 + sigma^2)
  mean  = c0 x0 + ct x_t, the discrete one-step posterior mean of q(x_s | x_t, x0)
          (only for discrete schedules: the caller passes (c0, ct)).
Clipping x0 to the data range is the sampler's choice; nothing here recomputes
eps from a clipped x0 behind the caller's back.
"""
import jax.numpy as jnp

KINDS = ('eps', 'x0', 'v', 'score', 'mean')


def to_x0_eps(kind, out, x_t, alpha, sigma, posterior=None):
  """(x0, eps) from a prediction of the given kind; posterior = (c0, ct) for 'mean'."""
  if kind == 'eps':
    return (x_t - sigma * out) / alpha, out
  if kind in ('x0', 'denoised'):
    return out, (x_t - alpha * out) / sigma
  if kind == 'score':
    eps = -sigma * out
    return (x_t - sigma * eps) / alpha, eps
  if kind == 'v':
    norm = alpha**2 + sigma**2
    return (alpha * x_t - sigma * out) / norm, (sigma * x_t + alpha * out) / norm
  if kind == 'mean':
    if posterior is None:
      raise ValueError("a 'mean' prediction needs the discrete posterior coefficients")
    c0, ct = posterior
    x0 = (out - ct * x_t) / c0
    return x0, (x_t - alpha * x0) / sigma
  raise ValueError(f'unknown prediction kind {kind!r}; allowed: {", ".join(KINDS)}')


def from_x0(kind, x0, x_t, alpha, sigma, posterior=None):
  """The prediction of the given kind that corresponds to x0 (the inverse map)."""
  eps = (x_t - alpha * x0) / sigma
  if kind == 'eps':
    return eps
  if kind in ('x0', 'denoised'):
    return x0
  if kind == 'score':
    return -eps / sigma
  if kind == 'v':
    return alpha * eps - sigma * x0
  if kind == 'mean':
    c0, ct = posterior
    return c0 * x0 + ct * x_t
  raise ValueError(f'unknown prediction kind {kind!r}; allowed: {", ".join(KINDS)}')


def clip_x0(x0, data_range):
  """Clamp x0 to [lo, hi] = data_range; None (vector data, oracle tests) leaves it."""
  if data_range is None:
    return x0
  return jnp.clip(x0, data_range[0], data_range[1])
