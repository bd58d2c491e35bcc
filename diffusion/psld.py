"""PSLD's phase-space Langevin diffusion (Pandey & Mandt 2023; idode_vdm_psld.md B.1, B.3).

The state is z = [x, m]: data x and a momentum m of the same shape, concatenated on the
last axis (PSLD concatenates NCHW channels; here NHWC channels or vector entries), and
all 2x2 algebra acts independently on each pair (x_j, m_j). With critical damping
M = 4 / (Gamma - nu)^2, beta(t) = beta_min + t (beta_max - beta_min) and
B(t) = int_0^t beta = beta_min t + t^2 (beta_max - beta_min) / 2, the forward SDE is

  dx = beta/2 (M^-1 m - Gamma x) dt + sqrt(beta Gamma) dW_x
  dm = beta/2 (-x - nu m) dt        + sqrt(beta M nu) dW_m

i.e. dz = beta/2 A z dt + G dW, A = [[-Gamma, M^-1], [-1, -nu]], G^2 = beta diag(Gamma, M nu),
with stationary law N(0, diag(I, M I)). A has the double eigenvalue -l, l = (nu + Gamma)/2,
so for an integrated beta b the transition is exact in closed form:

  Phi(b) = e^{A b / 2} = e^{-l b / 2} [[1 + (nu - Gamma) b / 4, M^-1 b / 2],
                                       [-b / 2,              1 + (Gamma - nu) b / 4]]
  N(b)   = Sigma_inf - Phi Sigma_inf Phi^T, Sigma_inf = diag(1, M), written without
           cancellation (u = l b, phi3(u) = e^u - 1 - u - u^2/2 >= 0, S = e^{-u}):
    Nxx = S [Gamma b + nu Gamma b^2 / 2 + phi3(u)]
    Nxm = S (nu - Gamma) b^2 / 4
    Nmm = S M [nu b + nu Gamma b^2 / 2 + phi3(u)]

These equal B.1's Sigma formulas term by term (PSLD `_cov`, evaluated there as differences
of O(b) terms, which float32 cannot resolve at small t). The kernel from an initial mean
(x0, m0) and diagonal initial covariance diag(Sxx0, Smm0) is

  mean = Phi(B(t)) (x0, m0),  Sigma = Phi diag(Sxx0, Smm0) Phi^T + N(B(t)) + eps I

(eps = numerical_eps = 1e-9 on the diagonal, as PSLD adds it). HSM (every released script):
m0 = 0, Sxx0 = 0, Smm0 = kappa M, the initial momentum N(0, kappa M) marginalised; DSM:
m0 drawn from N(0, kappa M), Sxx0 = Smm0 = 0. The Cholesky factor L = [[L11, 0], [L21, L22]]
gives z_t = mean + L eps and the score -L^-T eps. Everything is float64 (x64 on).
"""
import dataclasses

import jax.numpy as jnp
import numpy as np

MODES = ('hsm', 'dsm')


def phi3(u):
  """e^u - 1 - u - u^2/2 for u >= 0 without cancellation (a series below u = 1)."""
  us = jnp.minimum(u, 1.0)
  term, series = us**3 / 6.0, 0.0
  for k in range(4, 24):  # adds u^k / k! for k = 3..22: the remainder is below 4e-23
    series, term = series + term, term * us / k
  return jnp.where(u < 1.0, series, jnp.expm1(u) - u - 0.5 * u * u)


def split(z):
  """(x, m): the two halves of the last axis of z = [x, m]."""
  c = z.shape[-1] // 2
  return z[..., :c], z[..., c:]


def join(x, m):
  return jnp.concatenate([x, m], axis=-1)


def _per_example(v, z):
  """A scalar or per-example [B] coefficient shaped to broadcast against z [B, ...]."""
  v = jnp.asarray(v)
  return v.reshape(v.shape + (1,) * (z.ndim - v.ndim)) if v.ndim else v


@dataclasses.dataclass(frozen=True)
class PhaseSpaceProcess:
  """PSLD's forward process (PSLD `PSLD`, B.1) on t in [0, T = 1]; the defaults are the
  CIFAR-10 README/train-script constants (nu 4.01, Gamma 0.01, kappa 0.04, beta 8)."""
  nu: float = 4.01
  gamma: float = 0.01
  kappa: float = 0.04
  beta_min: float = 8.0
  beta_max: float = 8.0
  mode: str = 'hsm'            # the training kernel: hsm | dsm (samplers always use HSM)
  numerical_eps: float = 1e-9  # added to both diagonal entries of every kernel covariance
  T: float = 1.0

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f'unknown PSLD mode {self.mode!r}; allowed: {", ".join(MODES)}')
    if self.nu < 0 or self.gamma < 0 or self.nu == self.gamma:
      raise ValueError(f'PSLD needs nu, gamma >= 0 and nu != gamma (critical damping '
                       f'M = 4 / (gamma - nu)^2); got nu={self.nu}, gamma={self.gamma}')
    if self.kappa < 0 or self.beta_min <= 0 or self.beta_max <= 0 or self.numerical_eps < 0:
      raise ValueError('PSLD needs kappa >= 0, beta_min, beta_max > 0 and numerical_eps >= 0')

  # ------------------------------------------------------------------ constants and time
  @property
  def M_inv(self):
    return (self.gamma - self.nu)**2 / 4.0

  @property
  def M(self):
    return 4.0 / (self.gamma - self.nu)**2

  @property
  def score_mode(self):
    """PSLD.mode: where noise enters: score_m (Gamma = 0), score_x (nu = 0), else score_xm."""
    return 'score_m' if self.gamma == 0 else 'score_x' if self.nu == 0 else 'score_xm'

  def beta(self, t):
    return self.beta_min + t * (self.beta_max - self.beta_min)

  def B(self, t):
    """int_0^t beta(s) ds."""
    return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

  def initial_cov(self, mode=None):
    """(Sxx0, Smm0) of the kernel: hsm (0, kappa M), dsm (0, 0)."""
    mode = self.mode if mode is None else mode
    if mode not in MODES:
      raise ValueError(f'unknown PSLD mode {mode!r}; allowed: {", ".join(MODES)}')
    return (0.0, self.kappa * self.M) if mode == 'hsm' else (0.0, 0.0)

  # ------------------------------------------------------------------ closed-form transition
  def transition(self, b):
    """Phi(b) = e^{A b / 2} as (xx, xm, mx, mm) for an integrated beta b (scalar or [B])."""
    b = jnp.asarray(b, jnp.float64)
    s = jnp.exp(-0.25 * (self.nu + self.gamma) * b)
    return (s * (1 + 0.25 * (self.nu - self.gamma) * b), s * 0.5 * self.M_inv * b,
            -s * 0.5 * b, s * (1 + 0.25 * (self.gamma - self.nu) * b))

  def noise_cov(self, b):
    """N(b) = Sigma_inf - Phi Sigma_inf Phi^T as (xx, xm, mm), cancellation-free (docstring)."""
    b = jnp.asarray(b, jnp.float64)
    u = 0.5 * (self.nu + self.gamma) * b
    s, p3, ng = jnp.exp(-u), phi3(u), 0.5 * self.nu * self.gamma * b**2
    return (s * (self.gamma * b + ng + p3), s * 0.25 * (self.nu - self.gamma) * b**2,
            s * self.M * (self.nu * b + ng + p3))

  # ------------------------------------------------------------------ the perturbation kernel
  def mean(self, x0, m0, t):
    """Kernel mean Phi(B(t)) (x0, m0) -> (mu_x, mu_m); t scalar or per example [B]."""
    xx, xm, mx, mm = (_per_example(c, x0) for c in self.transition(self.B(t)))
    return xx * x0 + xm * m0, mx * x0 + mm * m0

  def cov(self, t, sxx0, smm0):
    """Kernel covariance (xx, xm, mm) at t from diag(Sxx0, Smm0), numerical_eps included.
    Sxx0 and Smm0 broadcast against t (a Gaussian-mixture component passes its variance)."""
    xx, xm, mx, mm = self.transition(self.B(t))
    nxx, nxm, nmm = self.noise_cov(self.B(t))
    e = self.numerical_eps
    return (xx**2 * sxx0 + xm**2 * smm0 + nxx + e, xx * mx * sxx0 + xm * mm * smm0 + nxm,
            mx**2 * sxx0 + mm**2 * smm0 + nmm + e)

  def kernel_cov(self, t, mode=None):
    """The training kernel's covariance at t: HSM or DSM initial condition (initial_cov)."""
    return self.cov(t, *self.initial_cov(mode))

  @staticmethod
  def cholesky(cov):
    """(L11, L21, L22) of [[xx, xm], [xm, mm]] (PSLD get_coeff, decomp_mode 'lower')."""
    xx, xm, mm = cov
    l11 = jnp.sqrt(xx)
    l21 = xm / l11
    return l11, l21, jnp.sqrt(mm - l21**2)

  def perturb(self, x0, t, eps, m0=None, mode=None):
    """z_t = mean + L eps (PSLD perturb_data); eps = [eps_x, eps_m]. HSM: m0 = 0 (the
    initial momentum is in the covariance); DSM: m0 ~ N(0, kappa M) must be given."""
    mode = self.mode if mode is None else mode
    if m0 is None:
      if mode == 'dsm':
        raise ValueError('the DSM kernel starts from a drawn momentum: give m0 ~ N(0, kappa M)')
      m0 = jnp.zeros_like(x0)
    mu_x, mu_m = self.mean(x0, m0, t)
    l11, l21, l22 = (_per_example(c, x0) for c in self.cholesky(self.kernel_cov(t, mode)))
    ex, em = split(eps)
    return join(mu_x + l11 * ex, mu_m + l21 * ex + l22 * em)

  # ------------------------------------------------------------------ score <-> eps
  def get_score(self, eps, t, m_only=False):
    """grad_z log p_t = -L^-T eps with the HSM covariance, whatever the training mode
    (PSLD get_score; quirk B.7.1), for eps = [eps_x, eps_m] [B, ..., 2C]. m_only: eps is
    eps_m alone [B, ..., C] (a score_m network, Gamma = 0, PSLD out_ch = C): score_x is
    set to 0 (it multiplies G_x^2 = beta Gamma = 0), score_m = -eps_m / L22."""
    l11, l21, l22 = (_per_example(c, eps) for c in self.cholesky(self.kernel_cov(t, 'hsm')))
    if m_only:
      if self.gamma != 0:
        raise ValueError(f'a network predicting eps_m alone needs gamma = 0 (score_m); '
                         f'gamma={self.gamma}')
      return join(jnp.zeros_like(eps), -eps / l22)
    ex, em = split(eps)
    return join(-ex / l11 + l21 / (l11 * l22) * em, -em / l22)

  def eps_from_score(self, score, t, mode=None):
    """The eps a network trained with `mode`'s kernel predicts: E[eps | z] = -L^T score."""
    l11, l21, l22 = (_per_example(c, score) for c in self.cholesky(self.kernel_cov(t, mode)))
    sx, sm = split(score)
    return join(-(l11 * sx + l21 * sm), -l22 * sm)

  # ------------------------------------------------------------------ SDE coefficients
  def prior_scale(self, z_shape, dtype=jnp.float64):
    """[1, ..., 1, sqrt(M), ..., sqrt(M)] over the last axis of a z of shape z_shape."""
    c = z_shape[-1] // 2
    return jnp.concatenate([jnp.ones(c, dtype), jnp.full(c, np.sqrt(self.M), dtype)])

  def drift(self, z, t):
    """The forward drift f(z, t) = beta/2 A z."""
    x, m = split(z)
    beta = _per_example(self.beta(t), z)
    return join(0.5 * beta * (self.M_inv * m - self.gamma * x), 0.5 * beta * (-x - self.nu * m))

  def diffusion_sq(self, t):
    """(G_x^2, G_m^2) = (beta Gamma, beta M nu) at t."""
    beta = self.beta(t)
    return beta * self.gamma, beta * self.M * self.nu

  def reverse_drift(self, z, t, score, probability_flow=False):
    """PSLD reverse_sde in reverse time tau = T - t: -f(z, t) + G^2 score (SDE, diffusion
    G) or -f + G^2 score / 2 (probability flow, no diffusion)."""
    gx, gm = (_per_example(g, z) for g in self.diffusion_sq(t))
    sx, sm = split(score)
    w = 0.5 if probability_flow else 1.0
    return -self.drift(z, t) + w * join(gx * sx, gm * sm)

  def reverse_ou_transition(self, b):
    """The exact transition of SSCS's linear part, dz = beta/2 [[-Gamma, -M^-1], [1, -nu]] z
    dtau + G dW (= -f + G^2 grad log p_inf), over an integrated beta b >= 0 (B.3): the
    forward transition with m -> -m, i.e. P Phi(b) P and P N(b) P + eps I, P = diag(1, -1).
    Returns ((xx, xm, mx, mm) of the mean map, (xx, xm, mm) of the covariance)."""
    xx, xm, mx, mm = self.transition(b)
    nxx, nxm, nmm = self.noise_cov(b)
    e = self.numerical_eps
    return (xx, -xm, -mx, mm), (nxx + e, -nxm, nmm + e)
