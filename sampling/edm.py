"""EDM samplers (Karras et al. 2022): Algorithm 2 and the generalised ablation sampler.

One function, `sample`, is NVlabs/edm's `ablation_sampler` (reference A.1.3)
with alpha = 1; its defaults (discretization 'edm', noise_schedule 'linear',
scaling 'none') make it `edm_sampler`, the paper's Algorithm 2 (A.1.2):
deterministic Heun for S_churn = 0, stochastic churn otherwise, 'euler' too.
Any model works through `sampling.denoiser` (VP/VE, discrete or continuous,
with the ModelSpec's round rule applied to every level, as net.round_sigma is).

In t, with sigma(t) the noise schedule and s(t) the scaling, the probability
flow ODE is dx/dt = (sigma'/sigma + s'/s) x - sigma' s / sigma D(x / s, sigma)
(paper eq. 4); sigma' and s' come from jax.jvp. Everything runs in float64 as
EDM does; sample i draws its noise from keys[i] folded with 0 (x at sigma_max)
and with i + 1 (churn noise of step i), so samples do not depend on batch size
or devices. NFE = N for Euler, 2N - 1 for Heun (the last step, to sigma = 0, is
Euler).
"""
import jax
import jax.numpy as jnp
import numpy as np

from sampling import denoiser
from sampling.noise import normal

DISCRETIZATIONS = ('edm', 'vp', 've', 'iddpm')
NOISE_SCHEDULES = ('linear', 'vp', 've')
SCALINGS = ('none', 'vp')
SOLVERS = ('heun', 'euler')
EPSILON_S, C_1, C_2, M = 1e-3, 0.001, 0.008, 1000  # ablation sampler constants (A.1.3)


def vp_sigma(beta_d, beta_min, xp=jnp):
  """sigma_VP(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1); xp = np for host-side grids."""
  return lambda t: xp.sqrt(xp.expm1(0.5 * beta_d * t**2 + beta_min * t))


def vp_sigma_inv(beta_d, beta_min):
  """t(sigma) = (sqrt(beta_min^2 + 2 beta_d log(sigma^2 + 1)) - beta_min) / beta_d."""
  return lambda s: (jnp.sqrt(beta_min**2 + 2 * beta_d * jnp.log1p(s**2)) - beta_min) / beta_d


def vp_betas(sigma_min, sigma_max):
  """(beta_d, beta_min) refitted so that sigma_VP(eps_s) = sigma_min and sigma_VP(1) = sigma_max."""
  beta_d = 2 * (np.log1p(sigma_min**2) / EPSILON_S - np.log1p(sigma_max**2)) / (EPSILON_S - 1)
  return beta_d, np.log1p(sigma_max**2) - 0.5 * beta_d


def default_range(discretization):
  """EDM's (sigma_min, sigma_max) when none are given, per discretization."""
  vp = vp_sigma(19.9, 0.1, np)
  return {'vp': (float(vp(EPSILON_S)), float(vp(1.0))), 've': (0.02, 100.0),
          'iddpm': (0.002, 81.0), 'edm': (0.002, 80.0)}[discretization]


def iddpm_u():
  """Improved DDPM's noise levels u_0 > ... > u_M = 0 (float64, [M + 1]), as EDM builds them:
  u_{j-1} = sqrt((u_j^2 + 1) / max(abar(j-1) / abar(j), C_1) - 1),
  abar(j) = sin^2(pi j / (2 M (C_2 + 1))), the ratio in float32 as in EDM (j is an
  integer tensor there; torch's float32 sin differs from numpy's by an ulp at some j,
  so u agrees with EDM's to ~1e-5 relative, exactly at j = M - 1). It is the cosine schedule
  (diffusion.schedules 'cosine', 1000 steps) read backwards: u_j = sigma_{M - j}."""
  j = np.arange(M + 1).astype(np.float32)
  abar = np.sin(j * np.float32(0.5 * np.pi) / np.float32(M) / np.float32(C_2 + 1))**2
  ratio = np.maximum(abar[:-1] / abar[1:], np.float32(C_1)).astype(np.float64)
  u = np.zeros(M + 1)
  for i in range(M, 0, -1):
    u[i - 1] = np.sqrt((u[i]**2 + 1) / ratio[i - 1] - 1)
  return u


def edm_sigmas(steps, sigma_min, sigma_max, rho=7.0, discretization='edm'):
  """sigma_0 > ... > sigma_{N-1}, then 0 (float64 numpy, [N + 1]); reference A.1.1, A.1.3.

  edm:   sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
  vp:    sigma_VP(1 + i/(N-1) (eps_s - 1)) with betas refitted to [sigma_min, sigma_max]
  ve:    sigma_i = sqrt(sigma_max^2 (sigma_min^2 / sigma_max^2)^(i/(N-1)))
  iddpm: the u_j within [sigma_min, sigma_max], at indices round((len - 1) i/(N-1)) (half to even)
  No rounding to a model's levels here: the sampler does that.
  """
  if discretization not in DISCRETIZATIONS:
    raise ValueError(f'unknown discretization {discretization!r}; '
                     f'allowed: {", ".join(DISCRETIZATIONS)}')
  if int(steps) < 2:
    raise ValueError(f'steps={steps}: EDM grids need at least 2 steps')
  i = np.arange(steps, dtype=np.float64)
  if discretization == 'edm':
    lo, hi = sigma_min**(1 / rho), sigma_max**(1 / rho)
    sig = (hi + i / (steps - 1) * (lo - hi))**rho
  elif discretization == 'vp':
    sig = vp_sigma(*vp_betas(sigma_min, sigma_max), np)(1 + i / (steps - 1) * (EPSILON_S - 1))
  elif discretization == 've':
    sig = np.sqrt(sigma_max**2 * (sigma_min**2 / sigma_max**2)**(i / (steps - 1)))
  else:
    u = iddpm_u()
    u = u[(u >= sigma_min) & (u <= sigma_max)]
    sig = u[np.round((len(u) - 1) / (steps - 1) * i).astype(np.int64)]
  return np.concatenate([sig, [0.0]]).astype(np.float64)


def _schedule_fns(noise_schedule, scaling, sigma_min, sigma_max):
  """(sigma(t), sigma^-1, s(t)) of the ablation sampler's noise schedule and scaling."""
  if noise_schedule == 'vp':
    betas = vp_betas(sigma_min, sigma_max)
    sigma, sigma_inv = vp_sigma(*betas), vp_sigma_inv(*betas)
  elif noise_schedule == 've':
    sigma, sigma_inv = jnp.sqrt, lambda s: s**2
  else:
    sigma, sigma_inv = (lambda t: t), (lambda s: s)
  if scaling == 'vp':
    scale = lambda t: 1 / jnp.sqrt(1 + sigma(t)**2)
  else:
    scale = jnp.ones_like
  return sigma, sigma_inv, scale


def sample(apply, params, spec, schedule, keys, shape, *, steps, solver='heun',
           sigma_min=None, sigma_max=None, rho=7.0, discretization='edm',
           noise_schedule='linear', scaling='none', S_churn=0.0, S_min=0.0,
           S_max=float('inf'), S_noise=1.0, dtype=jnp.float64, y=None):
  """EDM Algorithm 2 / ablation sampler (Karras et al. 2022; reference A.1.2-A.1.3).

  keys [B] (one per sample), shape of one sample -> (x [B, *shape] in the data
  coordinate, nfe). Options:
    steps           N, number of noise levels before sigma = 0
    solver          'heun' (2nd order, default) or 'euler'
    sigma_min/max   noise range; None: EDM's default for the discretization (0.002 / 80
                    for 'edm'); clamped to the model's range (its grid for round='index')
    rho             exponent of the 'edm' time-step grid (7)
    discretization  'edm' (rho grid, default), 'vp', 've', 'iddpm'
    noise_schedule  sigma(t): 'linear' (sigma = t, default), 'vp', 've'
    scaling         s(t): 'none' (1, default) or 'vp' (1 / sqrt(1 + sigma^2))
    S_churn         total churn (a Python number); gamma_i = min(S_churn / N, sqrt(2) - 1);
                    0 (default): deterministic, no noise is drawn
    S_min, S_max    churn only where S_min <= sigma(t_i) <= S_max
    S_noise         std multiplier of the churn noise (1)
    y               labels passed to the model (None: unconditional)
    dtype           dtype of x (float64 as in EDM; levels and steps are float64 regardless)
  With S_churn = 0 the level is not re-rounded (t_hat = t_i; EDM recomputes
  sigma^-1(round_sigma(sigma(t_i))), equal up to rounding).
  """
  for name, v, allowed in (('solver', solver, SOLVERS),
                           ('discretization', discretization, DISCRETIZATIONS),
                           ('noise_schedule', noise_schedule, NOISE_SCHEDULES),
                           ('scaling', scaling, SCALINGS)):
    if v not in allowed:
      raise ValueError(f'unknown {name} {v!r}; allowed: {", ".join(allowed)}')
  D = denoiser.edm_denoiser(apply, params, spec, schedule)
  round_sigma = lambda s: denoiser.round_sigma(spec, schedule, s)

  # Noise range: defaults per discretization, clamped to what the model supports.
  lo, hi = default_range(discretization)
  net_lo, net_hi = denoiser.sigma_range(spec, schedule)
  sigma_min = max(lo if sigma_min is None else sigma_min, net_lo)
  sigma_max = min(hi if sigma_max is None else sigma_max, net_hi)
  sigma, sigma_inv, scale = _schedule_fns(noise_schedule, scaling, sigma_min, sigma_max)
  deriv = lambda f, t: jax.jvp(f, (t,), (jnp.ones_like(t),))[1]

  # Time step discretization: t_i = sigma^-1(round_sigma(sigma_i)), t_N = 0.
  sig = edm_sigmas(steps, sigma_min, sigma_max, rho, discretization)
  t_steps = jnp.concatenate([sigma_inv(round_sigma(jnp.asarray(sig[:-1]))), jnp.zeros(1)])

  def slope(x, t):
    """dx/dt = (sigma'/sigma + s'/s) x - sigma' s / sigma D(x / s, sigma)."""
    sg, s = sigma(t), scale(t)
    return deriv(sigma, t) * (x - s * D(x / s, sg, y)) / sg + deriv(scale, t) / s * x

  def step(x, i, t_cur, t_next, second_order):
    # Increase noise temporarily.
    if S_churn > 0:
      gamma = jnp.where((S_min <= sigma(t_cur)) & (sigma(t_cur) <= S_max),
                        min(S_churn / steps, np.sqrt(2) - 1), 0.0)
      t_hat = sigma_inv(round_sigma(sigma(t_cur) + gamma * sigma(t_cur)))
      t_hat = jnp.where(gamma > 0, t_hat, t_cur)
      noise = jnp.sqrt(jnp.maximum(sigma(t_hat)**2 - sigma(t_cur)**2, 0.0)) * scale(t_hat)
      x = jnp.where(gamma > 0, scale(t_hat) / scale(t_cur) * x
                    + noise * S_noise * normal(keys, i + 1, shape, dtype), x)
    else:
      t_hat = t_cur
    # Euler step.
    h = t_next - t_hat
    d = slope(x, t_hat)
    if not second_order:
      return (x + h * d).astype(dtype)
    # Apply 2nd order correction.
    x_next = x + h * d
    return (x + h * (0.5 * d + 0.5 * slope(x_next, t_next))).astype(dtype)

  x = (normal(keys, 0, shape, dtype) * (sigma(t_steps[0]) * scale(t_steps[0]))).astype(dtype)
  heun = solver == 'heun'
  x, _ = jax.lax.scan(lambda x, inp: (step(x, *inp, heun), None), x,
                      (jnp.arange(steps - 1), t_steps[:-2], t_steps[1:-1]))
  x = step(x, steps - 1, t_steps[-2], t_steps[-1], False)
  return x, (2 * steps - 1 if heun else steps)
