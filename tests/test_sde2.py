"""Second-order SDE samplers (sampling/sde2.py) against exact answers.

Reference: edm_and_second_order_sde.md B.1.1-B.1.4. On B.1.4's analytic test (data
N(0, 0.5^2), exact denoiser D(x, sigma) = q(sigma) x, q = 0.25 / (0.25 + sigma^2)) every
sample is a linear combination of the independent normals the sampler draws, so the final
std is exact: the `_exact_*` recursions below track the coefficient vector of x over
(z, e_{1,1}, e_{1,2}, ...) with the reference's formulas written out again, independently
of sampling/sde2.py (Gamma from the exact sigma increment with the top term dropped, not
from the binomial sum; D's jvp by hand: q(s) v_x + q'(s) v_sigma x). The Monte-Carlo std
of the sampler (10^6 values unless stated; standard error std / sqrt(2 n)) must agree with
the exact value, and the exact value must round to the reference's.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from models import gmm_oracle
from sampling import denoiser, sde2

SD = 0.5
INF = float('inf')


def _keys(n, seed=0):
  return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n))


def _gauss(dim):
  return gmm_oracle.oracle_model(gmm_oracle.GaussianMixture.create(np.zeros((1, dim)), SD), 've')


def _run(fn, n=125_000, dim=8, seed=0, **kw):
  model = _gauss(dim)
  out = jax.jit(lambda k: fn(model.apply, {}, model.spec, None, k, (dim,), **kw)[0])(_keys(n, seed))
  return np.asarray(out)


q = lambda s: SD**2 / (SD**2 + s * s)
dq = lambda s: -2 * s * SD**2 / (SD**2 + s * s)**2


def _grid(N, rho, smin=0.002, smax=80.0):
  A = smax**(1 / rho)
  B = smin**(1 / rho) - A
  h = 1 / (N - 1)
  return A, B, h, (A + B * h * np.arange(N))**rho


def _gam(tau, s, B, rho):
  """Gamma tau = sigma(t + tau) - sigma(t) - (B tau)^rho for integer rho (B.1.1)."""
  u = s**(1 / rho)
  return ((u + B * tau)**rho - s - (B * tau)**rho) / tau


def _exact_fork(N, rho=3, S_max=INF, ddb=False, last_zero=False):
  """B.1.2 as coded on the linear denoiser: the exact final std."""
  A, B, h, sig = _grid(N, rho)
  g = h**((rho - 1) / 2) * (-B)**(rho / 2)
  I = np.eye(1 + 2 * N)
  x = sig[0] * I[0]
  f_prev = dW = dZ = 0 * I[0]
  for i in range(N):
    xb = x
    if i < N - 1:
      e1, e2 = I[1 + 2 * i], I[2 + 2 * i]
      dW, dZ = ((math.sqrt(3 * h) / 2 * e1 + math.sqrt(h) / 2 * e2, math.sqrt(h**3 / 3) * e1)
                if ddb else (math.sqrt(h) * e1, 0 * e1))
      xt, s = xb + g * dW, math.sqrt(sig[i]**2 + h * g * g)
      tau = (sig[i + 1]**(1 / rho) - s**(1 / rho)) / B
    else:
      if last_zero:
        dW, dZ = 0 * dW, 0 * dZ
      xt, s, tau = xb, sig[i], h
    G = _gam(tau, s, B, rho)
    if i > 0 and s >= S_max:
      vx, vs = (0.5 * tau**2 * G * f_prev + g * dZ) / s, 0.5 * tau**2 / s
      J = q(s) * vx + dq(s) * vs * xt
      K = tau**2 * G * f_prev / s + 0.5 * tau**2 * g * dW / s + dZ / s - J
      f = (1 - q(s)) * xt / s
      x = xt + G * (tau * f + K)
    else:
      f = (1 - q(s)) * xt / s
      x = xb + G * tau * f
    f_prev = f
  return float(np.linalg.norm(x))


def _exact_split(N, rho=3):
  """K_ode (B.1.4) on the linear denoiser; x is c z + independent noise (c, v tracked)."""
  A, B, h, sig = _grid(N, rho)
  g = h**((rho - 1) / 2) * (-B)**(rho / 2)
  c, v = sig[0], 0.0
  for i in range(N):
    if i < N - 1:
      v += g * g * h
      s = math.sqrt(sig[i]**2 + h * g * g)
      tau = (sig[i + 1]**(1 / rho) - s**(1 / rho)) / B
    else:
      s, tau = sig[i], h
    G = _gam(tau, s, B, rho)
    k = (1 - q(s)) / s                                   # f = k x~
    J = q(s) * 0.5 * tau**2 * G * k / s + dq(s) * 0.5 * tau**2 * G / s
    m = 1 + G * (tau * k - J)
    c, v = m * c, m * m * v
  return math.sqrt(c * c + v)


def _unsplit_coeffs(N, rho=3, g=None, euler=False):
  """B.1.4's unsplit marginal-preserving step, then x_N = D(x_{N-1}, sigma_min): x_N's
  coefficients over (z, e_{1,1}, e_{1,2}, ..., e_{N-1,1}, e_{N-1,2}) (ddb: dW = sqrt(3h)/2 e1
  + sqrt(h)/2 e2, dZ = sqrt(h^3/3) e1). euler=True: the first-order Euler-Maruyama truncation
  x + c h f + g dW instead (the baseline B.1.4 compares with)."""
  A, B, h, sig = _grid(N, rho)
  g = h**((rho - 1) / 2) * (-B)**(rho / 2) if g is None else g
  I = np.eye(1 + 2 * N)
  x = sig[0] * I[0]
  for i in range(N - 1):
    t = i * h
    s, d1, d2 = sig[i], rho * B * (A + B * t)**(rho - 1), rho * (rho - 1) * B * B * (A + B * t)**(rho - 2)
    c = d1 - g * g / (2 * s)
    e1, e2 = I[1 + 2 * i], I[2 + 2 * i]
    dW, dZ = math.sqrt(3 * h) / 2 * e1 + math.sqrt(h) / 2 * e2, math.sqrt(h**3 / 3) * e1
    f = (1 - q(s)) * x / s
    if euler:
      x = x + c * h * f + g * dW
      continue
    J = q(s) * (0.5 * h * h * c * f + g * dZ) / s + dq(s) * 0.5 * h * h * d1 / s * x
    x = (x + c * h * f + g * dW + 0.5 * h * h * (d2 + g**4 / (4 * s**3)) * f
         + c * (g * dZ / s - J))
  return q(sig[-1]) * x


def _exact_unsplit(N, rho=3, g=None, euler=False):
  """Exact E x_N^2 of the unsplit step (or its Euler-Maruyama truncation)."""
  x = _unsplit_coeffs(N, rho, g, euler)
  return float(x @ x)


def _sde_second_moment(g, rho=3, smin=0.002, smax=80.0):
  """E x^2 of the exact solution of dx = c(t) f dt + g dW (c = sigma' - g^2 / (2 sigma), f the
  exact Gaussian f = sigma x / (s_d^2 + sigma^2)) from x(0) ~ N(0, sigma_max^2) to t = 1, then
  D(., sigma_min): the variance V solves V' = 2 lambda V + g^2, lambda = (sigma sigma' - g^2/2)
  / (s_d^2 + sigma^2); V = s_d^2 + sigma^2 + delta with delta' = (2 sigma sigma' - g^2) delta /
  (s_d^2 + sigma^2), so delta(1) = -s_d^2 (s_d^2 + sigma_min^2) / (s_d^2 + sigma_max^2)
  exp(-g^2 int_0^1 dt / (s_d^2 + sigma(t)^2)) (quadrature to 1e-13)."""
  A = smax**(1 / rho)
  B = smin**(1 / rho) - A
  sd2 = SD**2
  I, _ = integrate.quad(lambda t: 1 / (sd2 + (A + B * t)**(2 * rho)), 0, 1, epsabs=1e-14,
                        epsrel=1e-13, limit=500)
  V = sd2 + smin**2 - sd2 * (sd2 + smin**2) / (sd2 + smax**2) * math.exp(-g * g * I)
  return q(smin)**2 * V


def _check(x, exact, ref, ref_tol=5e-4):
  se = exact / math.sqrt(2 * x.size)
  assert abs(exact - ref) <= ref_tol, (exact, ref)
  assert abs(x.std() - exact) < 4 * se, (x.std(), exact, se)
  return se


# ----------------------------------------------------------------------------- sed_fork

# (N, S_max, randn_like, last_noise, reference std) -- B.1.4's table, rows 1-4, rho = 3.
FORK_ROWS = [(84, INF, 'db', 'reuse', 0.475), (18, INF, 'db', 'reuse', 0.396),
             (18, 5.0, 'ddb', 'reuse', 0.822), (18, 0.0, 'ddb', 'reuse', 2.434)]

# B.1.4's whole table (rho = 3; N = 18, 40, 84): fork rows 1-4, K_ode, unsplit + x_N = D.
TABLE = {'fork_inf': (0.396, 0.446, 0.475), 'fork_smax5': (0.822, 0.635, 0.558),
         'fork_smax0': (2.434, 1.112, 0.736), 'fork_smax0_zero': (2.388, 1.112, 0.734),
         'k_ode': (0.498, 0.498, 0.499), 'unsplit': (0.577, 0.514, 0.503)}


def test_exact_recursions_reproduce_b14_table():
  """The exact (no Monte Carlo) recursions give every B.1.4 number this module covers, to the
  reference's 3 decimals; the sampler is checked against them below (MC or per sample)."""
  for j, N in enumerate((18, 40, 84)):
    got = {'fork_inf': _exact_fork(N), 'fork_smax5': _exact_fork(N, 3, 5.0, True),
           'fork_smax0': _exact_fork(N, 3, 0.0, True),
           'fork_smax0_zero': _exact_fork(N, 3, 0.0, True, True),
           'k_ode': _exact_split(N), 'unsplit': math.sqrt(_exact_unsplit(N))}
    for name, val in got.items():
      assert abs(val - TABLE[name][j]) <= 5e-4 + 1e-9, (name, N, val, TABLE[name][j])
  assert abs(_exact_fork(18, 3, INF, True) - _exact_fork(18)) < 1e-14  # db = ddb without jvp


@pytest.mark.parametrize('N,S_max,randn,last,ref', FORK_ROWS)
def test_sed_fork_b14_table(N, S_max, randn, last, ref):
  """B.1.4: the fork as coded ends at the reference's std; published setting (N = 84,
  S_max = inf) 0.475 and 0.396 at N = 18, its jvp branch (S_max = 0) 2.434 at N = 18.
  Measured (exact / MC, seed 0): 0.47482 / 0.47509 (10^6 values), 0.39633 / 0.39651 (10^6),
  S_max = 5: 0.82202 / 0.82154 (2.5 10^5), S_max = 0: 2.43445 / 2.43341 (2.5 10^5).
  Asserted: exact within 5e-4 of the reference, MC within 4 standard errors of exact."""
  n = 125_000 if S_max == INF else 31_250   # 10^6 / 2.5 10^5 values
  x = _run(sde2.sed_fork, n=n, steps=N, rho=3.0, S_max=S_max, randn_like=randn, last_noise=last)
  exact = _exact_fork(N, 3, S_max, randn == 'ddb', last == 'zero')
  _check(x, exact, ref)
  print(f'sed_fork N={N} S_max={S_max} {randn} {last}: exact {exact:.5f} '
        f'MC {x.std():.5f} ({x.size} values) ref {ref}')


def test_sed_fork_db_jvp_raises():
  """The jvp branch with db is the fork's crash (no dZ), refused here; bad options too."""
  with pytest.raises(ValueError, match='ddb'):
    _run(sde2.sed_fork, n=2, steps=18, S_max=5.0, randn_like='db')
  with pytest.raises(ValueError, match='randn_like'):
    _run(sde2.sed_fork, n=2, steps=18, randn_like='dz')
  with pytest.raises(ValueError, match='variant'):
    _run(sde2.ito_taylor2, n=2, steps=18, variant='both')


def test_gamma_closed_form():
  """Gamma (binomial sum) = (sigma(t+tau) - sigma(t) - (B tau)^rho) / tau for integer rho,
  and the reference's N = 84, rho = 3 check: i = 0, Gamma tau = -2.774187 vs -2.774315."""
  A, B, h, sig = _grid(84, 3)
  for rho in (2, 3, 5, 7):
    A_, B_, _, _ = _grid(18, rho)
    for s, tau in ((80.0, 0.01), (0.3, 0.05), (0.002, 0.0588)):
      np.testing.assert_allclose(sde2.gamma_fn(tau, s, B_, rho), _gam(tau, s, B_, rho),
                                 rtol=1e-9, atol=1e-12)
  g = h * (-B)**1.5
  s = math.sqrt(80.0**2 + h * g * g)
  tau = (sig[1]**(1 / 3) - s**(1 / 3)) / B
  np.testing.assert_allclose(sde2.gamma_fn(tau, s, B, 3) * tau, -2.774187, atol=2e-6)
  np.testing.assert_allclose(sig[1] - s, -2.774315, atol=2e-6)
  np.testing.assert_allclose(sde2.fork_g(84, 0.002, 80.0, 3.0), 0.103071, rtol=1e-5)


# ----------------------------------------------------------------------------- ito_taylor2

@pytest.mark.parametrize('N,ref', [(18, 0.498), (84, 0.499)])
def test_ito_taylor2_split_b14(N, ref):
  """B.1.4: K_ode (split-consistent, 2 passes/step) reaches 0.498 at N = 18, 0.499 at 84.
  Measured exact / MC: 0.49784 / 0.49807 (10^6 values), 0.49942 / 0.49914 (2.5 10^5)."""
  x = _run(sde2.ito_taylor2, n=125_000 if N == 18 else 31_250, steps=N, variant='split', rho=3.0)
  exact = _exact_split(N)
  _check(x, exact, ref)
  print(f'ito_taylor2 split N={N}: exact {exact:.5f} MC {x.std():.5f} ref {ref}')


def _normals(keys, N, dim):
  """The sampler's normals: z from fold_in(k, 0), (e_{i,1}, e_{i,2}) from fold_in(k, i + 1)."""
  def one(k):
    z = jax.random.normal(jax.random.fold_in(k, 0), (1, dim), jnp.float64)
    e = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(k, i + 1), (2, dim),
                                             jnp.float64))(jnp.arange(N - 1))
    return jnp.concatenate([z, e.reshape(2 * (N - 1), dim)])
  return np.asarray(jax.vmap(one)(keys))  # [n, 1 + 2 (N - 1), dim]


def test_ito_taylor2_unsplit_weak_order_fixed_g():
  """Linear SDE with known solution moments: Gaussian data, g = 1 fixed independently of the
  step size, dx = c f dt + g dW (c = sigma' - g^2/(2 sigma)) from N(0, 80^2), rho = 3, then
  D(., 0.002); exact E x^2 from `_sde_second_moment`. Common random numbers in the limit:
  the sampler's output is checked per sample (1e-9) against the exact coefficient vector
  applied to its own normals, so its E x^2 is the coefficient vector's squared norm with no
  Monte-Carlo error (per-sample at N = 17, g = 1 and N = 18, the fork's g); one MC point (2^17 x 8 ~ 10^6 values, N = 17) is checked on top.
  Measured weak errors of E x^2 (N = 17 / 33 / 65 / 129): 6.29e-2 / 1.22e-2 / 2.80e-3 /
  6.75e-4, orders 2.36 / 2.13 / 2.05; Euler-Maruyama at about equal NFE (2N - 1 steps) is
  worse by a factor that grows with N (first order)."""
  g, dim = 1.0, 4
  exact = _sde_second_moment(g)
  keys = _keys(16, seed=3)
  errs = []
  for N in (17, 33, 65, 129):
    coef = _unsplit_coeffs(N, g=g)
    errs.append(abs(coef @ coef - exact))
    if N > 17:
      continue  # tracker only (the per-sample identity is checked at 17 and at 18 below)
    x = _run(sde2.ito_taylor2, n=16, dim=dim, seed=3, steps=N, variant='unsplit', g=g,
             laplacian=False)
    np.testing.assert_allclose(x, np.einsum('j,njd->nd', coef[:2 * N - 1], _normals(keys, N, dim)),
                               rtol=1e-9, atol=1e-12)
  x = _run(sde2.ito_taylor2, n=16, dim=dim, seed=3, steps=18, variant='unsplit',
           laplacian=False)  # the fork's g (B.1.4's 0.577 at N = 18)
  np.testing.assert_allclose(x, np.einsum('j,njd->nd', _unsplit_coeffs(18)[:35],
                                          _normals(keys, 18, dim)), rtol=1e-9, atol=1e-12)
  orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
  print('weak errors', errs, 'orders', orders)
  assert np.all(orders >= 1.5) and orders[-1] >= 1.9, orders
  # Equal NFE: ito_taylor2 with N levels costs 2N - 1; Euler-Maruyama with 2N - 1 levels 2N - 2.
  em = [abs(_exact_unsplit(2 * N - 1, g=g, euler=True) - exact) for N in (17, 33, 65, 129)]
  em_orders = np.log2(np.array(em[:-1]) / np.array(em[1:]))
  print('Euler-Maruyama at equal NFE', em, 'orders', em_orders)
  assert np.all(em_orders < 1.2) and abs(em_orders[-1] - 1) < 0.15, em_orders
  assert np.all(np.array(errs) < np.array(em)) and em[-1] > 10 * errs[-1], (errs, em)
  # Monte Carlo, ~10^6 values, N = 17: E x^2 within 4 standard errors of the exact value.
  x = _run(sde2.ito_taylor2, n=2**17, dim=8, steps=17, variant='unsplit', g=g, laplacian=False)
  m2, v2 = _exact_unsplit(17, g=g), _exact_unsplit(17, g=g)
  se = v2 * math.sqrt(2 / x.size)
  assert abs((x**2).mean() - m2) < 4 * se, ((x**2).mean(), m2, se)
  assert abs(m2 - exact - errs[0]) < 1e-12 and errs[0] > 50 * se  # the bias is resolved


def test_nfe():
  """NFE: a forward pass counts 1, a jvp pass 2, a jvp-of-jvp 4 per probe (traced only)."""
  m = _gauss(1)
  def nfe(fn, **k):  # traced only, nothing compiled
    out = {}
    def f(kk):
      x, out['nfe'] = fn(m.apply, {}, m.spec, None, kk, (1,), **k)
      return x
    jax.eval_shape(f, _keys(2))
    return out['nfe']
  assert nfe(sde2.ito_taylor2, steps=9, variant='split') == 27
  assert nfe(sde2.ito_taylor2, steps=9, variant='unsplit', laplacian=False) == 17
  assert nfe(sde2.ito_taylor2, steps=9, variant='unsplit', probes=2) == 17 + 8 * 8
  assert nfe(sde2.sed_fork, steps=84) == 84
  _, B, h, sig = _grid(18, 3)
  g = h * (-B)**1.5
  n_jvp = int(np.sum(np.sqrt(sig[1:-1]**2 + h * g * g) >= 5.0))
  assert n_jvp == 10 and nfe(sde2.sed_fork, steps=18, S_max=5.0, randn_like='ddb') == 18 + n_jvp


def test_laplacian_term_value_one_step():
  """One unsplit step (steps = 2, h = 1, sigma 1 -> 0.002, rho = 3) on a 1-D mixture: the
  Laplacian term adds g^2 h^2 / 4 a''(x_0), a = c (x - D(x, 1)) / 1, c = sigma'(0) - g^2 / 2
  (Rademacher probes are exact in 1-D, so 3 probes give the same); the last map D(., 0.002) is the identity to ~1e-4 near
  the data, so on - off must equal that term (D'' by reverse-mode autodiff here)."""
  g, rho = 0.3, 3.0
  mix = gmm_oracle.oracle_model(
      gmm_oracle.GaussianMixture.create(np.array([[-1.0], [1.0]]), 0.3), 've')
  keys = _keys(64, seed=5)
  run = lambda lap, probes=1: np.asarray(jax.jit(lambda kk: sde2.ito_taylor2(
      mix.apply, {}, mix.spec, None, kk, (1,), steps=2, variant='unsplit', rho=rho,
      sigma_min=0.002, sigma_max=1.0, g=g, laplacian=lap, probes=probes)[0])(keys))[:, 0]
  on = run(True)
  diff = on - run(False)
  np.testing.assert_allclose(run(True, 3), on, rtol=1e-12, atol=1e-14)  # mean over probes
  D = denoiser.edm_denoiser(mix.apply, {}, mix.spec)
  d1 = lambda x: D(x.reshape(1, 1), jnp.float64(1.0))[0, 0]
  d2 = jax.vmap(jax.grad(jax.grad(d1)))
  x0 = _latents(keys)
  B = 0.002**(1 / rho) - 1.0
  c = rho * B - g * g / 2
  want = 0.25 * g * g * c * -np.asarray(d2(jnp.asarray(x0)))
  assert np.max(np.abs(want)) > 1e-3
  np.testing.assert_allclose(diff, want, rtol=2e-3, atol=1e-6)


def _latents(keys):
  return np.asarray(jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (1,),
                                                         jnp.float64))(keys))[:, 0]


@pytest.mark.slow
def test_laplacian_term_over_a_whole_mixture_run():
  """The Laplacian term over a whole run where the drift is non-linear: gaussian8 (exact
  oracle), unsplit, g = 1 fixed, sigma from 80 down to 0.1, rho = 3, then x_N = D(x_{N-1},
  0.1), so the target is the law of D(x, 0.1) with x ~ p(.; 0.1) (below sigma ~ 0.1 a fixed
  g makes the explicit step stiff: c ~ -g^2 / (2 sigma); g = 0.5 diverges at sigma_min =
  0.002 for N <= 129). Statistic E|x|^2, exact to 4e-6 (2e6 exact draws); 200,000 samples
  (standard error 1.3e-5), the same keys with and without the term. Measured errors, on /
  off: N = 33: -2.8e-4 / +6.1e-4; N = 65: -2.3e-5 / +1.36e-4; N = 129: -4.4e-6 / +4.4e-5:
  dropping the term leaves a bias 6-10x larger at N = 65-129 (with the fork's g, g^2 ~ h^2,
  the term is O(h^4) per step and changes nothing measurable; see benchmarks/samplers.py)."""
  from data import toy
  mix = gmm_oracle.GaussianMixture.create(*toy.mixture('gaussian8'))
  model = gmm_oracle.oracle_model(mix)
  smin = 0.1
  rng = np.random.default_rng(1)
  x0 = mix.sample(rng, 2_000_000)[0]
  xs = x0 + smin * rng.standard_normal(x0.shape)
  D = denoiser.edm_denoiser(model.apply, {}, model.spec)
  exact = float(jnp.mean(jnp.sum(jax.jit(D)(jnp.asarray(xs), jnp.float64(smin))**2, -1)))
  keys = _keys(200_000, seed=2)
  errs = {}
  for N in (65, 129):
    for lap in (True, False):
      x = jax.jit(lambda k: sde2.ito_taylor2(model.apply, {}, model.spec, None, k, (2,), steps=N,
                                             variant='unsplit', g=1.0, laplacian=lap,
                                             sigma_min=smin)[0])(keys)
      errs[N, lap] = float(jnp.mean(jnp.sum(x**2, -1))) - exact
  print('E|x|^2 errors (N, laplacian):', errs)
  se = 1.3e-5
  for N in (65, 129):
    assert errs[N, False] > 3 * se, errs  # the bias without the term is resolved ...
    assert abs(errs[N, True]) < errs[N, False] / 4, errs  # ... and the term removes most of it
  assert errs[65, False] > 2 * errs[129, False], errs  # the bias falls with the step size
