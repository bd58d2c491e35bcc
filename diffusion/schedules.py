"""Discrete-time noise schedules on the integer grid n = 0..N (float64 tables).

The forward process is q(x_n | x_0) = N(alpha_n x_0, sigma_n^2 I) with
alpha_n^2 = alphabar_n = prod_{i<=n} (1 - beta_i), sigma_n^2 = 1 - alphabar_n
(Ho et al. 2020, eq. 4), and the canonical noise coordinate is the log-SNR
lam_n = log(alpha_n^2 / sigma_n^2). The beta array is padded: beta_0 = 0, so
alphabar_0 = 1 and lam_0 = +inf. Tables are indexed by integer n, never by
floor(t * N); off-grid levels (a discrete model under a continuous sampler)
use piecewise-linear log alphabar in n.

Singular endpoints are explicit: `jsd` has beta_N = 1, hence alphabar_N = 0,
lam_N = -inf and x_N independent of x_0; `cosine` clips beta at 0.999 as
Improved DDPM does, and alphabar is the product of the clipped betas.
"""
import dataclasses

import jax.numpy as jnp
import numpy as np

SCHEDULES = ('linear', 'quad', 'cosine', 'warmup10', 'warmup50', 'jsd', 'const', 'vpsde')


def named_betas(name, num_steps, beta_start=1e-4, beta_end=0.02):
  """beta_1..beta_N (float64) of a named schedule.

  linear, quad, warmup10/50, jsd, const: tqch/ddpm-torch `get_beta_schedule`
  (reference B.1); cosine: Improved DDPM (Nichol & Dhariwal 2021, eq. 17) with
  s = 0.008 and beta clipped at 0.999; vpsde: the VP SDE of Song et al. 2021
  with beta_min = beta_start, beta_max = beta_end (EAD uses 0.1 and 20),
  beta_n = 1 - exp(-int_{(n-1)/N}^{n/N} beta(s) ds).
  """
  n = num_steps
  if name == 'linear':
    return np.linspace(beta_start, beta_end, n, dtype=np.float64)
  if name == 'quad':
    return np.linspace(beta_start**0.5, beta_end**0.5, n, dtype=np.float64)**2
  if name in ('warmup10', 'warmup50'):
    betas = np.full(n, beta_end, dtype=np.float64)
    w = int(n * (0.1 if name == 'warmup10' else 0.5))
    betas[:w] = np.linspace(beta_start, beta_end, w, dtype=np.float64)
    return betas
  if name == 'const':
    return np.full(n, beta_end, dtype=np.float64)
  if name == 'jsd':
    return 1.0 / np.linspace(n, 1, n, dtype=np.float64)
  if name == 'cosine':
    f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2)**2
    i = np.arange(n, dtype=np.float64)
    return np.minimum(1 - f((i + 1) / n) / f(i / n), 0.999)
  if name == 'vpsde':
    t = np.arange(n + 1, dtype=np.float64) / n
    integral = beta_start * np.diff(t) + (beta_end - beta_start) * np.diff(t**2) / 2
    return -np.expm1(-integral)
  raise ValueError(f'unknown schedule {name!r}; allowed: {", ".join(SCHEDULES)}')


@dataclasses.dataclass(frozen=True, eq=False)
class DiscreteSchedule:
  """A variance-preserving schedule on n = 0..N, stored as float64 numpy tables."""
  betas: np.ndarray  # [N + 1], betas[0] = 0

  @classmethod
  def named(cls, name, num_steps, beta_start=1e-4, beta_end=0.02):
    betas = named_betas(name, num_steps, beta_start, beta_end)
    if not np.all((betas > 0) & (betas <= 1)):
      raise ValueError(f'schedule {name!r} gives betas outside (0, 1]')
    return cls(np.concatenate([[0.0], betas]))

  @property
  def N(self):
    return len(self.betas) - 1

  @property
  def log_alphabar(self):
    """log alphabar_n = sum_{i<=n} log(1 - beta_i); -inf where beta = 1 (jsd)."""
    with np.errstate(divide='ignore'):
      return np.cumsum(np.log1p(-self.betas))

  @property
  def alphabar(self):
    return np.exp(self.log_alphabar)

  @property
  def sigma2(self):
    """1 - alphabar_n, computed without cancellation for small n."""
    return -np.expm1(self.log_alphabar)

  @property
  def lam(self):
    """log-SNR lam_n = log alphabar_n - log(1 - alphabar_n); lam_0 = +inf."""
    with np.errstate(divide='ignore'):
      return self.log_alphabar - np.log(self.sigma2)

  def transition(self, s, t):
    """(alpha_{t|s}^2, beta_{t|s}) = (alphabar_t / alphabar_s, 1 - that), s < t.

    Works on numpy or jax integer arrays (tables are gathered, float64).
    """
    la = jnp.asarray(self.log_alphabar)
    d = la[t] - la[s]
    return jnp.exp(d), -jnp.expm1(d)

  def posterior(self, s, t):
    """q(x_s | x_t, x_0) = N(c0 x_0 + ct x_t, var) for 0 <= s < t <= N.

    c0 = beta_{t|s} sqrt(alphabar_s) / (1 - alphabar_t),
    ct = sqrt(alpha_{t|s}^2) (1 - alphabar_s) / (1 - alphabar_t),
    var = beta_{t|s} (1 - alphabar_s) / (1 - alphabar_t)   (Ho et al. eq. 6-7,
    generalised to a jump s -> t as in Bao et al. 2022, Analytic-DPM eq. 3).
    """
    a2_ts, b_ts = self.transition(s, t)
    la = jnp.asarray(self.log_alphabar)
    s2 = jnp.asarray(self.sigma2)
    c0 = b_ts * jnp.exp(0.5 * la[s]) / s2[t]
    ct = jnp.sqrt(a2_ts) * s2[s] / s2[t]
    var = b_ts * s2[s] / s2[t]
    return c0, ct, var

  def alpha_sigma(self, n):
    """(alpha_n, sigma_n) at integer n (float64)."""
    la = jnp.asarray(self.log_alphabar)
    return jnp.exp(0.5 * la[n]), jnp.sqrt(jnp.asarray(self.sigma2)[n])

  def lam_at(self, n):
    return jnp.asarray(self.lam)[n]

  def n_from_lam(self, lam):
    """Continuous n with the given log-SNR, by piecewise-linear log alphabar.

    Exact (to rounding) on the grid. A lam of -inf maps to N (jsd's endpoint);
    levels outside the finite part of the table are clamped to its ends.
    """
    la = self.log_alphabar
    finite = np.isfinite(la)
    log_ab = -jnp.logaddexp(0.0, -lam)  # log sigmoid(lam)
    # np.interp needs increasing xp: log alphabar decreases in n.
    n = jnp.interp(-log_ab, -la[finite], np.arange(self.N + 1, dtype=np.float64)[finite])
    return jnp.where(jnp.isneginf(lam), float(self.N), n)


def vp_alpha_sigma(lam):
  """Variance preserving: alpha^2 = sigmoid(lam), sigma^2 = sigmoid(-lam)."""
  return jnp.sqrt(jnp.exp(-jnp.logaddexp(0.0, -lam))), jnp.sqrt(jnp.exp(-jnp.logaddexp(0.0, lam)))


def ve_alpha_sigma(lam):
  """Variance exploding / EDM: alpha = 1, sigma = exp(-lam / 2)."""
  return jnp.ones_like(lam), jnp.exp(-0.5 * lam)


PROCESSES = {'vp': vp_alpha_sigma, 've': ve_alpha_sigma}
