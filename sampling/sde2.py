"""Second-order SDE samplers: the 2nd-SED fork as coded, and a consistent Ito-Taylor step.

Reference: edm_and_second_order_sde.md B.1.1-B.1.4 (DannHuang/edm, `generate.py`
`edm_sampler`). Both samplers work in EDM's VE coordinate x = x0 + sigma n with the
denoiser D of `sampling.denoiser` (any model, its `round` rule applied to the grid),
in float64, with a lax.scan over steps. Sample i draws its latent from keys[i] folded
with 0 and the noise of step j from keys[i] folded with j + 1, so samples do not
depend on batch size or devices. NFE counts a forward pass as 1, a jvp pass as 2 and a
jvp-of-jvp (Hutchinson Laplacian) pass as 4.

Shared quantities (B.1.1), sigma_min / sigma_max clamped to the model's range:

  A = sigma_max^(1/rho), B = sigma_min^(1/rho) - sigma_max^(1/rho) (< 0)
  sigma(t) = (A + B t)^rho, t in [0, 1]; sigma_i = round_sigma(sigma(i h)), h = 1/(N-1);
  g = h^((rho-1)/2) (-B)^(rho/2)                                 (the fork's "diffusion_coff")
  Gamma(tau, s) = sum_{j=1}^{floor(rho)-1} C(rho, j) B^j tau^(j-1) s^((rho-j)/rho)
  db:  dW = sqrt(h) e;  ddb: dZ = sqrt(h^3/3) e1, dW = sqrt(3h)/2 e1 + sqrt(h)/2 e2
       (Var dW = h, Var dZ = h^3/3, Cov = h^2/2; dZ = int (W_s - W_t) ds).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

from sampling import denoiser
from sampling.noise import normal

RANDN_LIKE = ('db', 'ddb')
VARIANTS = ('split', 'unsplit')
LAST_NOISE = ('reuse', 'zero')


def rho_grid(steps, sigma_min, sigma_max, rho):
  """(A, B, h, sigma_0..sigma_{N-1}) of B.1.1 (float64 numpy; no rounding, no trailing 0)."""
  if int(steps) < 2:
    raise ValueError(f'steps={steps}: needs at least 2 steps')
  A = sigma_max**(1 / rho)
  B = sigma_min**(1 / rho) - A
  h = 1.0 / (steps - 1)
  return A, B, h, (A + B * h * np.arange(steps, dtype=np.float64))**rho


def fork_g(steps, sigma_min, sigma_max, rho):
  """The fork's constant diffusion coefficient g = h^((rho-1)/2) (-B)^(rho/2) (B.1.1)."""
  _, B, h, _ = rho_grid(steps, sigma_min, sigma_max, rho)
  return h**((rho - 1) / 2) * (-B)**(rho / 2)


def gamma_fn(tau, s, B, rho):
  """Gamma(tau, s) (B.1.1): the sigma increment over tau per unit tau, top term dropped."""
  out, coef = 0.0, 1.0
  for j in range(1, int(math.floor(rho))):
    coef = coef * (rho - j + 1) / j
    out = out + coef * B**j * tau**(j - 1) * s**((rho - j) / rho)
  return out


def _setup(apply, params, spec, schedule, steps, sigma_min, sigma_max, rho):
  D = denoiser.edm_denoiser(apply, params, spec, schedule)
  net_lo, net_hi = denoiser.sigma_range(spec, schedule)
  sigma_min, sigma_max = max(sigma_min, net_lo), min(sigma_max, net_hi)
  A, B, h, sig = rho_grid(steps, sigma_min, sigma_max, rho)
  with jax.ensure_compile_time_eval():  # host-side grid, also under jit
    sig = np.asarray(denoiser.round_sigma(spec, schedule, jnp.asarray(sig)), np.float64)
  return D, A, B, h, sig, sigma_min, sigma_max


def _increments(keys, j, shape, dtype, h, randn_like):
  """(dW, dZ) of step j - 1 (B.1.1); dZ = 0 for db (the fork has none)."""
  if randn_like == 'db':
    dW = math.sqrt(h) * normal(keys, j, shape, dtype)
    return dW, jnp.zeros_like(dW)
  e = normal(keys, j, (2,) + tuple(shape), dtype)
  e1, e2 = e[:, 0], e[:, 1]
  return math.sqrt(3 * h) / 2 * e1 + math.sqrt(h) / 2 * e2, math.sqrt(h**3 / 3) * e1


def sed_fork(apply, params, spec, schedule, keys, shape, *, steps, rho=3.0, sigma_min=0.002,
             sigma_max=80.0, S_max=float('inf'), randn_like='db', last_noise='reuse',
             dtype=jnp.float64, y=None):
  """The 2nd-SED sampler exactly as DannHuang/edm codes it (B.1.2), bugs included.

  For i = 0..N-1, x_base = x, s = sigma_i, tau = h, x~ = x_base, and for i < N-1:
    x~ = x_base + g dW,  s = sqrt(sigma_i^2 + h g^2),  tau = (sigma_{i+1}^(1/rho) - s^(1/rho)) / B
  (the last step draws nothing and keeps step N-2's dW, dZ: last_noise='reuse'; 'zero' is
  B.1.4's alternative row). Gamma = Gamma(tau, s). If i > 0 and s >= S_max (the jvp branch,
  needs randn_like='ddb'):
    v_x = (tau^2/2 Gamma f_prev + g dZ) / s,  v_sigma = tau^2 / (2 s)
    (D~, J) = jvp(D, (x~, s), (v_x, v_sigma))
    K = tau^2 Gamma f_prev / s + tau^2/2 g dW / s + dZ / s - J
    f = (x~ - D~) / s,  x = x~ + Gamma (tau f + K)
  else (first-order branch; NB the base is the pre-noise state):
    f = (x~ - D(x~, s)) / s,  x = x_base + Gamma tau f.
  f_prev is the previous step's f. S_max is this sampler's jvp threshold (on the inflated
  s), not EDM's churn window; S_churn, S_min, S_noise are unused by the fork and absent here.
  The published setting is steps=84, rho=3, S_max=inf (B.1.3): no jvp, NFE = N.
  Differences from the fork: noise comes from jax.random (ddb draws float64, not float32),
  D is evaluated in the model's dtype. Returns (x [B, *shape], nfe).
  """
  if randn_like not in RANDN_LIKE:
    raise ValueError(f'unknown randn_like {randn_like!r}; allowed: {", ".join(RANDN_LIKE)}')
  if last_noise not in LAST_NOISE:
    raise ValueError(f'unknown last_noise {last_noise!r}; allowed: {", ".join(LAST_NOISE)}')
  D, A, B, h, sig, sigma_min, sigma_max = _setup(apply, params, spec, schedule, steps,
                                                 sigma_min, sigma_max, rho)
  g = h**((rho - 1) / 2) * (-B)**(rho / 2)
  # Host-side schedule: s_i, tau_i and the branch of every step.
  s = np.concatenate([np.sqrt(sig[:-1]**2 + h * g**2), sig[-1:]])
  tau = np.concatenate([(sig[1:]**(1 / rho) - s[:-1]**(1 / rho)) / B, [h]])
  jvp_step = (np.arange(steps) > 0) & (s >= S_max)
  if jvp_step.any() and randn_like == 'db':
    raise ValueError("sed_fork: the jvp branch (s >= S_max at a step i > 0) needs "
                     "randn_like='ddb' (the fork crashes there with db: no dZ)")
  nfe = int(steps + jvp_step.sum())  # a jvp pass counts 2

  def step(carry, inp):
    x, f_prev, dW, dZ = carry
    i, s_i, tau_i, use_jvp, noise = inp
    x_base = x
    if noise:
      dW, dZ = _increments(keys, i + 1, shape, dtype, h, randn_like)
      xt = x_base + g * dW
    else:
      if last_noise == 'zero':
        dW, dZ = jnp.zeros_like(dW), jnp.zeros_like(dZ)
      xt = x_base
    G = gamma_fn(tau_i, s_i, B, rho)

    def second(_):
      vx = (0.5 * tau_i**2 * G * f_prev + g * dZ) / s_i
      vs = jnp.asarray(0.5 * tau_i**2 / s_i, dtype)
      Dt, J = jax.jvp(lambda xx, ss: D(xx, ss, y), (xt, jnp.asarray(s_i, dtype)), (vx, vs))
      K = tau_i**2 * G * f_prev / s_i + 0.5 * tau_i**2 * g * dW / s_i + dZ / s_i - J
      f = (xt - Dt) / s_i
      return (xt + G * (tau_i * f + K)).astype(dtype), f.astype(dtype)

    def first(_):
      f = (xt - D(xt, jnp.asarray(s_i, dtype), y)) / s_i
      return (x_base + G * tau_i * f).astype(dtype), f.astype(dtype)

    x, f = jax.lax.cond(use_jvp, second, first, None)
    return (x, f, dW, dZ), None

  x = (normal(keys, 0, shape, dtype) * sig[0]).astype(dtype)
  zero = jnp.zeros_like(x)
  carry = (x, zero, zero, zero)
  n = steps - 1
  carry, _ = jax.lax.scan(lambda c, inp: step(c, inp + (True,)), carry,
                          (jnp.arange(n), jnp.asarray(s[:n]), jnp.asarray(tau[:n]),
                           jnp.asarray(jvp_step[:n])))
  carry, _ = step(carry, (n, s[n], tau[n], bool(jvp_step[n]), False))
  return carry[0], nfe


def _probe(key, shape, dtype):
  """Rademacher probe v (E v v^T = I)."""
  return jax.random.rademacher(key, shape, dtype)


def ito_taylor2(apply, params, spec, schedule, keys, shape, *, steps, variant='split', rho=3.0,
                sigma_min=0.002, sigma_max=80.0, g=None, laplacian=True, probes=1,
                dtype=jnp.float64, y=None):
  """A consistent second-order step (B.1.4); g = None: the fork's g (B.1.1), else a constant.

  variant='split' (K_ode, the recommended one; 2 passes per step, NFE = 3N): the fork's
  noise-injection split done consistently. For i < N-1 the noise step
    x~ = x_i + g dW,  s = sqrt(sigma_i^2 + h g^2),  tau = (sigma_{i+1}^(1/rho) - s^(1/rho)) / B
  maps p(.; sigma_i) exactly onto p(.; s); then the deterministic Taylor step of the
  probability-flow ODE from s to sigma_{i+1}:
    f = (x~ - D(x~, s)) / s,  Gamma = Gamma(tau, s)
    x_{i+1} = x~ + Gamma (tau f + K_ode),
    K_ode = -jvp(D; primals (x~, s), tangents v_x = tau^2/2 Gamma f / s, v_sigma = tau^2/2 Gamma / s).
  The last step (i = N-1) draws no noise: s = sigma_{N-1}, tau = h, the same Taylor step.
  No dZ, no Laplacian (the noise step is exact); `laplacian`, `probes` are ignored.

  variant='unsplit' (ddb increments): the Ito-Taylor step of the marginal-preserving SDE
    dx = c(t) f dt + g dW,  c = sigma' - g^2 / (2 sigma),  a = c f,
  around (x_n, sigma_n), tau = h, sigma' = rho B sigma^((rho-1)/rho), sigma'' = rho (rho-1) B^2
  sigma^((rho-2)/rho) (exact derivatives of sigma(t) = (A + B t)^rho), f = f(x_n, sigma_n):
    x_{n+1} = x_n + c tau f + g dW + tau^2/2 (sigma'' + g^4 / (4 sigma^3)) f
              + c [g dZ / sigma - jvp(D; (x_n, sigma_n), v_x = (tau^2/2 c f + g dZ) / sigma,
                                             v_sigma = tau^2/2 sigma' / sigma)]
              + g^2 tau^2 / 4 Lap_x a,
  for n = 0..N-2, then x_N = D(x_{N-1}, sigma_min) (as B.1.4's test). Lap_x a = c Lap_x f =
  -c Lap_x D / sigma is estimated (laplacian=True) by Hutchinson, the mean over `probes`
  Rademacher v of d^2/de^2 a(x + e v)|_0 (a jvp of a jvp; one fresh set of v per step keeps
  weak order 2, B.1.4 (a)); laplacian=False drops the term (weak order 1 where a is
  non-affine in x). NFE = 2 (N-1) + 4 probes (N-1) [laplacian] + 1.
  Returns (x [B, *shape], nfe).
  """
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r}; allowed: {", ".join(VARIANTS)}')
  if int(probes) < 1:
    raise ValueError(f'probes={probes}: needs at least 1')
  D, A, B, h, sig, sigma_min, sigma_max = _setup(apply, params, spec, schedule, steps,
                                                 sigma_min, sigma_max, rho)
  g = fork_g(steps, sigma_min, sigma_max, rho) if g is None else float(g)
  x = (normal(keys, 0, shape, dtype) * sig[0]).astype(dtype)
  n = steps - 1

  if variant == 'split':
    s = np.concatenate([np.sqrt(sig[:-1]**2 + h * g**2), sig[-1:]])
    tau = np.concatenate([(sig[1:]**(1 / rho) - s[:-1]**(1 / rho)) / B, [h]])

    def step(x, inp, noise):
      i, s_i, tau_i = inp
      xt = x + g * math.sqrt(h) * normal(keys, i + 1, shape, dtype) if noise else x
      G = gamma_fn(tau_i, s_i, B, rho)
      sv = jnp.asarray(s_i, dtype)
      f = (xt - D(xt, sv, y)) / s_i
      _, J = jax.jvp(lambda xx, ss: D(xx, ss, y), (xt, sv),
                     (0.5 * tau_i**2 * G * f / s_i, jnp.asarray(0.5 * tau_i**2 * G / s_i, dtype)))
      return (xt + G * (tau_i * f - J)).astype(dtype)

    x, _ = jax.lax.scan(lambda x, inp: (step(x, inp, True), None), x,
                        (jnp.arange(n), jnp.asarray(s[:n]), jnp.asarray(tau[:n])))
    return step(x, (n, s[n], tau[n]), False), 3 * steps

  # unsplit
  def a_fn(xx, sv, c):
    return c * (xx - D(xx, sv, y)) / sv

  def step(x, inp):
    i, s_i = inp
    sv = jnp.asarray(s_i, dtype)
    u = s_i**(1 / rho)
    d1 = rho * B * u**(rho - 1)
    d2 = rho * (rho - 1) * B**2 * u**(rho - 2)
    c = d1 - g**2 / (2 * s_i)
    dW, dZ = _increments(keys, i + 1, shape, dtype, h, 'ddb')
    f = (x - D(x, sv, y)) / s_i
    _, J = jax.jvp(lambda xx, ss: D(xx, ss, y), (x, sv),
                   ((0.5 * h**2 * c * f + g * dZ) / s_i, jnp.asarray(0.5 * h**2 * d1 / s_i, dtype)))
    out = (x + c * h * f + g * dW + 0.5 * h**2 * (d2 + g**4 / (4 * s_i**3)) * f
           + c * (g * dZ / s_i - J))
    if laplacian:
      pk = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, i + 1), 1))(keys)

      def one(p):
        v = jax.vmap(lambda k: _probe(jax.random.fold_in(k, p), shape, dtype))(pk)
        first = lambda xx: jax.jvp(lambda z: a_fn(z, sv, c), (xx,), (v,))[1]
        return jax.jvp(first, (x,), (v,))[1]

      lap = sum(one(p) for p in range(probes)) / probes
      out = out + 0.25 * g**2 * h**2 * lap
    return out.astype(dtype), None

  x, _ = jax.lax.scan(step, x, (jnp.arange(n), jnp.asarray(sig[:n])))
  x = D(x, jnp.asarray(sig[n], dtype), y).astype(dtype)
  nfe = 2 * n + (4 * probes * n if laplacian else 0) + 1
  return x, nfe
