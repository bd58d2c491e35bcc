"""EDM samplers and the EDM noise-coordinate map against exact answers.

References: edm_and_second_order_sde.md A.1.1-A.1.3 (grids, Algorithm 2, ablation
sampler) and B.1.4 (the analytic Gaussian test). For Gaussian data N(0, s_d^2) the
exact denoiser D(x, sigma) = s_d^2 / (s_d^2 + sigma^2) x is linear, so every
deterministic sample is c z for the latent z and the reference's algorithm gives c
(and, with churn, the variance of the injected noise) by a scalar recursion:
`_scalar_ablation` below is A.1.3 written out independently of sampling/edm.py, with
the reference's hand-written sigma' and s' (the sampler uses jax.jvp).
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data import toy
from diffusion import predictions
from diffusion.schedules import DiscreteSchedule
from models import gmm_oracle
from models.adapter import Model
from sampling import denoiser, edm
from training import mesh as mesh_lib

G8 = gmm_oracle.GaussianMixture.create(*toy.mixture('gaussian8'))
LINEAR = DiscreteSchedule.named('linear', 1000)  # DDPM's, sigma_1 = 0.0100005
INF = float('inf')

# A.1.1 check values, N = 18, rho = 7, sigma in [0.002, 80].
RHO7_18 = [80, 57.58598, 40.78557, 28.37458, 19.35245, 12.91008, 8.400935, 5.315195,
           3.256822, 1.923340, 1.088171, 0.5853481, 0.2964423, 0.1395165, 0.05994731,
           0.02293452, 0.007528020, 0.002]


def _keys(n, seed=0):
  return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n))


def _latents(keys, shape):
  """The sampler's z: N(0, I) from fold_in(keys[i], 0) (same convention as sampling/ddpm.py)."""
  return np.asarray(jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), shape,
                                                         jnp.float64))(keys))


def _run(model, keys, shape, schedule=None, **kw):
  fn = jax.jit(lambda k: edm.sample(model.apply, {}, model.spec, schedule, k, shape, **kw)[0])
  return np.asarray(fn(keys))


def _gauss(dim, s_d=0.5):
  return gmm_oracle.oracle_model(gmm_oracle.GaussianMixture.create(np.zeros((1, dim)), s_d), 've')


def _scalar_ablation(N, solver='heun', disc='edm', sched='linear', scaling='none', sigma_min=0.002,
                     sigma_max=80.0, rho=7.0, S_churn=0.0, S_min=0.0, S_max=INF, S_noise=1.0,
                     s_d=0.5, grid=None, last=True):
  """A.1.3 (alpha = 1) for D(x, sigma) = g(sigma) x: x_N = c z + noise of variance v -> (c, v).

  grid: a discrete model's sigma levels (increasing): the range is clamped to its ends and
  round_sigma picks the nearest level in sigma. last=False stops before the last step and
  returns (c, sigma_{N-1}, s(t_{N-1}), sigma(t_0))."""
  rnd = lambda s: s
  if grid is not None:
    sigma_min, sigma_max = max(sigma_min, grid[0]), min(sigma_max, grid[-1])
    rnd = lambda s: float(grid[np.abs(grid - s).argmin()])
  eps_s = 1e-3
  b_d = 2 * (math.log(sigma_min**2 + 1) / eps_s - math.log(sigma_max**2 + 1)) / (eps_s - 1)
  b_min = math.log(sigma_max**2 + 1) - 0.5 * b_d
  vp = lambda t: math.sqrt(math.exp(0.5 * b_d * t * t + b_min * t) - 1)
  if sched == 'vp':
    sig, dsig = vp, lambda t: 0.5 * (b_min + b_d * t) * (vp(t) + 1 / vp(t))
    inv = lambda s: (math.sqrt(b_min**2 + 2 * b_d * math.log(s * s + 1)) - b_min) / b_d
  elif sched == 've':
    sig, dsig, inv = math.sqrt, lambda t: 0.5 / math.sqrt(t), lambda s: s * s
  else:
    sig, dsig, inv = (lambda t: t), (lambda t: 1.0), (lambda s: s)
  if scaling == 'vp':
    sc = lambda t: 1 / math.sqrt(1 + sig(t)**2)
    dsc = lambda t: -sig(t) * dsig(t) * sc(t)**3
  else:
    sc, dsc = (lambda t: 1.0), (lambda t: 0.0)
  g = lambda s: s_d**2 / (s_d**2 + s * s)
  # d = (sigma'/sigma + s'/s) x - sigma' s / sigma D(x / s, sigma) = k(t) x
  k = lambda t: dsig(t) / sig(t) * (1 - g(sig(t))) + dsc(t) / sc(t)
  i = np.arange(N)
  if disc == 'edm':
    lo, hi = sigma_min**(1 / rho), sigma_max**(1 / rho)
    sigmas = (hi + i / (N - 1) * (lo - hi))**rho
  elif disc == 've':
    sigmas = np.sqrt(sigma_max**2 * (sigma_min**2 / sigma_max**2)**(i / (N - 1)))
  elif disc == 'vp':
    sigmas = [vp(1 + j / (N - 1) * (eps_s - 1)) for j in i]
  else:
    u = edm.iddpm_u()
    u = u[(u >= sigma_min) & (u <= sigma_max)]
    sigmas = u[np.round((len(u) - 1) / (N - 1) * i).astype(int)]
  t = [inv(rnd(float(s))) for s in sigmas] + [0.0]
  c, v = sig(t[0]) * sc(t[0]), 0.0
  for j in range(N):
    if j == N - 1 and not last:
      return c, sig(t[j]), sc(t[j]), sig(t[0])
    gamma = min(S_churn / N, math.sqrt(2) - 1) if S_min <= sig(t[j]) <= S_max else 0.0
    t_hat = inv(rnd(sig(t[j]) + gamma * sig(t[j]))) if gamma > 0 else t[j]
    a = sc(t_hat) / sc(t[j])
    b = math.sqrt(max(sig(t_hat)**2 - sig(t[j])**2, 0)) * sc(t_hat) * S_noise
    h = t[j + 1] - t_hat
    if solver == 'euler' or j == N - 1:
      f = 1 + h * k(t_hat)
    else:
      f = 1 + h * (0.5 * k(t_hat) + 0.5 * k(t_hat + h) * (1 + h * k(t_hat)))
    c, v = f * a * c, f * f * (a * a * v + b * b)
  return c, v


# ----------------------------------------------------------------------------- grids

def test_rho_grid_check_values_and_closed_form():
  sig = edm.edm_sigmas(18, 0.002, 80.0, 7.0)
  assert sig.dtype == np.float64 and sig.shape == (19,) and sig[-1] == 0.0
  np.testing.assert_allclose(sig[:-1], RHO7_18, rtol=1e-6)
  # sigma^(1/rho) is linear in i, from sigma_max^(1/rho) to sigma_min^(1/rho).
  r = sig[:-1]**(1 / 7)
  np.testing.assert_allclose(np.diff(r), (0.002**(1 / 7) - 80**(1 / 7)) / 17, rtol=1e-12)
  # B.1.3's rho = 3, N = 84 examples: sigma_81 = 0.01166, sigma_82 = 0.00549.
  sig3 = edm.edm_sigmas(84, 0.002, 80.0, 3.0)
  np.testing.assert_allclose(sig3[[81, 82]], [0.01166, 0.00549], rtol=1e-3)
  with pytest.raises(ValueError, match='discretization'):
    edm.edm_sigmas(18, 0.002, 80.0, 7.0, 'cosine')


def test_ablation_discretizations():
  """A.1.3's vp / ve / iddpm grids and EDM's default noise ranges."""
  np.testing.assert_allclose(edm.default_range('vp'), (0.010486, 152.17), rtol=1e-4)
  vp = edm.edm_sigmas(10, 0.01, 100.0, discretization='vp')
  np.testing.assert_allclose(vp[[0, -2]], [100.0, 0.01], rtol=1e-12)  # refitted betas hit both ends
  b_d, b_min = edm.vp_betas(0.01, 100.0)
  t = 1 + np.arange(10) / 9 * (1e-3 - 1)
  np.testing.assert_allclose(vp[:-1]**2, np.exp(0.5 * b_d * t**2 + b_min * t) - 1, rtol=1e-12)
  ve = edm.edm_sigmas(10, 0.02, 100.0, discretization='ve')
  np.testing.assert_allclose(ve[[0, -2]], [100.0, 0.02], rtol=1e-12)
  np.testing.assert_allclose(ve[1:-1] / ve[:-2], (0.02 / 100)**(1 / 9), rtol=1e-12)  # geometric
  # iDDPM's u: values from EDM's own code (torch 2.13; the abar ratio in float32; the
  # reference's u[M-1] = 0.006425 is the all-float64 value, i.e. diffusion's cosine schedule).
  u = edm.iddpm_u()
  np.testing.assert_allclose(u[[0, 998, 999, 1000]], [20291.162389, 0.0093480555, 0.0064224696, 0],
                             rtol=2e-5)
  cos = np.exp(-0.5 * DiscreteSchedule.named('cosine', 1000).lam)  # sigma_n, n = 0..1000
  np.testing.assert_allclose(u[:-1], cos[1:][::-1], rtol=5e-4)     # float32 ratio only
  np.testing.assert_allclose(cos[1], 0.006425, rtol=1e-4)
  # Filtered to [0.002, 80] (991 levels), N = 5: indices round(990 i / 4) = 0, 248, 495, 742
  # (742.5 rounds half to even), 990.
  f = u[(u >= 0.002) & (u <= 80.0)]
  idd = edm.edm_sigmas(5, 0.002, 80.0, discretization='iddpm')
  np.testing.assert_array_equal(idd, np.concatenate([f[[0, 248, 495, 742, 990]], [0.0]]))


# ----------------------------------------------------------------------------- sampler

def test_nfe_counts_model_calls():
  """NFE = 2N - 1 for Heun (no correction on the last step to sigma = 0), N for Euler,
  and it is the number of model evaluations that actually run."""
  base = _gauss(1)
  calls = []

  def apply(params, x, lam, y=None, **kw):
    jax.debug.callback(lambda: calls.append(1))
    return base.apply(params, x, lam, y)

  model = Model(base.spec, base.init, apply)
  for solver, want in (('heun', 2 * 7 - 1), ('euler', 7)):
    calls.clear()
    x, nfe = edm.sample(model.apply, {}, model.spec, None, _keys(2), (1,), steps=7, solver=solver,
                        sigma_min=0.002, sigma_max=80.0)
    jax.block_until_ready(x)
    jax.effects_barrier()
    assert nfe == want and len(calls) == want, (solver, nfe, len(calls))


@pytest.mark.parametrize('steps,want', [(18, 0.528), (40, 0.505), (84, 0.501)])
def test_b14_gaussian_heun(steps, want):
  """B.1.4: data N(0, 0.5^2), deterministic EDM Heun, rho 7, sigma in [0.002, 80].

  The sample is exactly c z; c from the scalar recursion rounds to the reference's
  value, and the Monte-Carlo std of 10^6 values (standard error 0.5 / sqrt(2 10^6) =
  3.5e-4) agrees with it. Measured: c = 0.52762 / 0.50488 / 0.50103; MC std 0.52793 /
  0.50517 / 0.50132 (the same latents for all three, hence the common +3e-4)."""
  keys, dim = _keys(125_000), 8
  x = _run(_gauss(dim), keys, (dim,), steps=steps, sigma_min=0.002, sigma_max=80.0, rho=7.0)
  c, _ = _scalar_ablation(steps)
  assert abs(c - want) <= 5e-4, c
  np.testing.assert_allclose(x, c * _latents(keys, (dim,)), rtol=1e-10)
  se = 0.5 / math.sqrt(2 * x.size)
  assert abs(x.std() - want) < 5e-4 + 4 * se, (x.std(), want)


GRID = np.exp(-0.5 * LINEAR.lam[1:])  # the discrete model's sigma_n, n = 1..1000
# Churn with S_noise = 0 moves the level (gamma, the S_min/S_max window, the rounded t_hat)
# but adds no noise, so the sample stays exactly c z.
CHURN0 = dict(S_churn=40.0, S_min=0.05, S_max=50.0, S_noise=0.0)


@pytest.mark.parametrize('solver,disc,sched,scaling,model,churn', [
    ('heun', 'edm', 'linear', 'none', 've', False), ('heun', 'edm', 'linear', 'vp', 've', False),
    ('heun', 'edm', 'vp', 'none', 've', False), ('heun', 'edm', 'vp', 'vp', 've', False),
    ('heun', 'edm', 've', 'none', 've', False), ('heun', 'edm', 've', 'vp', 've', False),
    ('heun', 'vp', 'linear', 'none', 've', False), ('heun', 've', 'linear', 'none', 've', False),
    ('heun', 'iddpm', 'linear', 'none', 've', False), ('euler', 'vp', 'vp', 'vp', 've', False),
    ('heun', 'edm', 'linear', 'none', 've', True),
    ('heun', 'edm', 'linear', 'none', 'vp1000', True), ('heun', 've', 'vp', 'vp', 'vp1000', True)])
def test_ablation_sampler_is_exact(solver, disc, sched, scaling, model, churn):
  """The generalised sampler computes A.1.3 exactly (to rounding): x = c z with c from the
  independent scalar recursion, per sample, for every noise schedule and scaling, for a VE
  model and for a discrete VP model (clamped range, rounded levels; round='index')."""
  keys, kw = _keys(4), (CHURN0 if churn else {})
  if model == 've':
    m, sched_obj, grid = _gauss(1), None, None
  else:
    mix = gmm_oracle.GaussianMixture.create(np.zeros((1, 1)), 0.5)
    m, sched_obj, grid = gmm_oracle.oracle_model(mix, 'vp', N=LINEAR.N), LINEAR, GRID
  x = _run(m, keys, (1,), sched_obj, steps=12, solver=solver, discretization=disc,
           noise_schedule=sched, scaling=scaling, sigma_min=0.002, sigma_max=80.0, **kw)
  c, _ = _scalar_ablation(12, solver, disc, sched, scaling, grid=grid, **kw)
  np.testing.assert_allclose(x, c * _latents(keys, (1,)), rtol=1e-9)
  # Each ingredient matters at this tolerance: a sampler that ignored it would fail.
  if churn:
    assert abs(c / _scalar_ablation(12, solver, disc, sched, scaling, grid=grid)[0] - 1) > 1e-4
  if grid is not None:
    assert abs(c / _scalar_ablation(12, solver, disc, sched, scaling, **kw)[0] - 1) > 1e-4


def test_ablation_recursion_converges_for_every_option():
  """Every (discretization, schedule, scaling) solves the same probability-flow ODE: before
  the last step (a fixed Euler step from sigma_min to 0) x / s is the exact flow of the VE
  coordinate, x_0 sqrt(s_d^2 + sigma^2) / sqrt(s_d^2 + sigma_0^2), up to an error falling at
  second order for Heun (ratio ~4 per doubling, > 2.5 asserted) and first order for Euler (~2)."""
  for disc in edm.DISCRETIZATIONS:
    for sched in edm.NOISE_SCHEDULES:
      for scaling in edm.SCALINGS:
        for solver, lo, hi in (('heun', 2.5, 8.0), ('euler', 1.6, 2.5)):
          err = []
          for n in (64, 128, 256):
            c, sig, sc, sig0 = _scalar_ablation(n, solver, disc, sched, scaling, last=False)
            err.append(abs(c - sc * sig0 * math.sqrt(0.25 + sig**2) / math.sqrt(0.25 + sig0**2)))
          ratios = err[0] / err[1], err[1] / err[2]
          assert all(lo < r < hi for r in ratios), (disc, sched, scaling, solver, err)


@pytest.mark.parametrize('sched,scaling', [('linear', 'none'), ('vp', 'vp')])
def test_churn_matches_the_exact_variance(sched, scaling):
  """Stochastic sampling (ImageNet-64's S_churn 40, S_min 0.05, S_max 50, S_noise 1.003) on
  the Gaussian test: the std of 10^6 values is the exact sqrt(c^2 + v) of A.1.2/A.1.3
  within 4 standard errors, and that differs from the deterministic one by far more."""
  keys, dim, steps = _keys(125_000, 1), 8, 16
  churn = dict(S_churn=40.0, S_min=0.05, S_max=50.0, S_noise=1.003)
  x = _run(_gauss(dim), keys, (dim,), steps=steps, noise_schedule=sched, scaling=scaling,
           sigma_min=0.002, sigma_max=80.0, **churn)
  c, v = _scalar_ablation(steps, sched=sched, scaling=scaling, **churn)
  c0, _ = _scalar_ablation(steps, sched=sched, scaling=scaling)
  want, se = math.sqrt(c * c + v), math.sqrt(c * c + v) / math.sqrt(2 * x.size)
  assert abs(x.std() - want) < 4 * se, (x.std(), want, se)
  assert abs(want - abs(c0)) > 20 * se, (want, c0)
  # Regression on z recovers the deterministic gain c (the churn noise is independent of z).
  z = _latents(keys, (dim,))
  assert abs(np.mean(x * z) / np.mean(z * z) - c) < 4 * math.sqrt(v / x.size)


# ----------------------------------------------------------------------------- gaussian8

def _pooled_error(x, s_exact):
  """(max |mode weight - 1/8|, pooled within-mode std / s_exact - 1), nearest-mode assignment."""
  k = np.linalg.norm(x[:, None] - G8.means[None], axis=-1).argmin(1)
  w = np.bincount(k, minlength=8) / len(x)
  per_mode = np.array([np.sqrt(np.mean((x[k == j] - G8.means[j])**2)) for j in range(8)])
  return np.abs(w - 1 / 8).max(), np.sqrt(np.mean((x - G8.means[k])**2)) / s_exact - 1, per_mode


# The exact law of the ODE sampler's output: its last step is Euler to sigma = 0, i.e.
# D(x, sigma_min) with x ~ p(x; sigma_min), whose within-mode std is s^2 / sqrt(s^2 + sigma_min^2)
# (0.990 s for sigma_min = 0.002, s = 0.01414; the modes are 1.08 apart).
S_G8 = G8.stds[0, 0]
S_EXACT = S_G8**2 / math.sqrt(S_G8**2 + 0.002**2)
N_G8 = 100_000


def _g8(solver, steps):
  model = gmm_oracle.oracle_model(G8, 've')
  return _pooled_error(_run(model, _keys(N_G8, 3), (2,), steps=steps, solver=solver,
                            sigma_min=0.002, sigma_max=80.0), S_EXACT)


def test_gaussian8_heun_beats_euler_and_reaches_the_exact_law():
  """Error = |pooled within-mode std / exact - 1| (10^5 samples: noise floor 1 / sqrt(4 10^5)
  = 0.16%, one standard error; one test so the runs are shared).

  Heun vs Euler. Measured: Heun 31/63/127 NFE -> 9.2% / 3.3% / 1.1%, Euler 32/64/128 NFE
  -> 12.4% / 4.6% / 2.0%. Heun reaches 4% with 63 NFE, Euler not with 64 (margins 4
  standard errors), and at matched NFE Heun is the more accurate.

  Convergence. Heun's error falls at about second order (ratio 2.8-2.9 per doubling, > 2.2
  asserted); at N = 64 (127 NFE) the pooled std is within 2% of the exact law (measured
  1.1%), each mode's std within 3.5% (measured <= 2.5%; per-mode standard error 0.45%), and
  each weight within 1/8 +- 0.005 (4 standard errors of a weight). (Measured further: N = 128
  gives 0.44%, the expected quarter of N = 64's error plus noise.)"""
  heun = {2 * n - 1: _g8('heun', n) for n in (16, 32, 64)}
  euler = {n: abs(_g8('euler', n)[1]) for n in (32, 64)}
  errs = [abs(heun[nfe][1]) for nfe in (31, 63, 127)]
  assert errs[1] < 0.04 < euler[64], (errs, euler)
  assert errs[0] < euler[32] and errs[1] < euler[64], (errs, euler)
  assert errs[0] > 2.2 * errs[1] and errs[1] > 2.2 * errs[2], errs
  w_err, pooled, per_mode = heun[127]
  assert w_err < 0.005
  assert abs(pooled) < 0.02, pooled
  np.testing.assert_allclose(per_mode, S_EXACT, rtol=0.035)


# ----------------------------------------------------------------------------- VP models

def test_vp_discrete_model_through_the_denoiser_map():
  """A discrete VP model (oracle, DDPM's 1000-step linear schedule, round='index') seen in
  the EDM coordinate is the VE denoiser at the nearest grid sigma (nearest in sigma, as
  iDDPMPrecond.round_sigma), and the model is called with exactly lam_n."""
  vp = gmm_oracle.oracle_model(G8, 'vp', N=LINEAR.N)
  ve = gmm_oracle.oracle_model(G8, 've')
  seen = []

  def apply(params, x, lam, y=None):
    seen.append(np.asarray(lam))
    return vp.apply(params, x, lam, y)

  D_vp = denoiser.edm_denoiser(apply, {}, vp.spec, LINEAR)
  D_ve = denoiser.edm_denoiser(ve.apply, {}, ve.spec)
  grid = np.exp(-0.5 * LINEAR.lam[1:])
  # Between grid levels a < b the sigma-midpoint (a + b)/2 lies above the log-midpoint
  # sqrt(ab): a sigma in between is nearer a in sigma and nearer b in log-sigma.
  a, b = grid[[0, 9, 499]], grid[[1, 10, 500]]
  sigmas = np.concatenate([(0.5 * (a + b) + np.sqrt(a * b)) / 2, [0.003, 0.05, 1.0, 80.0, 400.0]])
  n = np.abs(sigmas[:, None] - grid).argmin(1)
  assert list(n[:3]) == [0, 9, 499]
  x = jax.random.normal(jax.random.key(0), (len(sigmas), 2), jnp.float64) * (1 + sigmas[:, None])
  got = np.asarray(D_vp(x, jnp.asarray(sigmas)))
  np.testing.assert_array_equal(seen[-1], LINEAR.lam[1:][n])
  np.testing.assert_allclose(denoiser.round_sigma(vp.spec, LINEAR, sigmas), grid[n], rtol=0)
  np.testing.assert_allclose(got, np.asarray(D_ve(x, jnp.asarray(grid[n]))), rtol=1e-9, atol=1e-12)
  # The rounding matters: at the unrounded sigma the answer differs.
  assert np.abs(got - np.asarray(D_ve(x, jnp.asarray(sigmas)))).max() > 1e-3
  assert denoiser.sigma_range(vp.spec, LINEAR) == (grid[0], grid[-1])
  with pytest.raises(ValueError, match='schedule'):
    denoiser.edm_denoiser(vp.apply, {}, vp.spec)


def test_vp_discrete_model_sampler_reaches_gaussian8():
  """Heun with the VP oracle: sigma_min is clamped to the grid's sigma_1 = 0.0100005 (EDM's
  max(sigma_min, net.sigma_min)) and every level is rounded to the grid. The same run with
  a VE oracle rounded to the same grid gives the same samples; the law is the exact law of
  D(x, sigma_1), x ~ p(x; sigma_1): within-mode std s^2 / sqrt(s^2 + sigma_1^2) = 0.816 s."""
  vp = gmm_oracle.oracle_model(G8, 'vp', N=LINEAR.N)
  ve_grid = gmm_oracle.oracle_model(G8, 've', N=LINEAR.N)
  keys = _keys(20_000, 5)
  kw = dict(steps=32, sigma_min=0.002, sigma_max=80.0)
  x = _run(vp, keys, (2,), LINEAR, **kw)
  np.testing.assert_allclose(x, _run(ve_grid, keys, (2,), LINEAR, **kw), rtol=1e-9, atol=1e-12)
  sigma_1 = math.exp(-0.5 * LINEAR.lam[1])
  s_exact = S_G8**2 / math.sqrt(S_G8**2 + sigma_1**2)
  w_err, pooled, _ = _pooled_error(x, s_exact)
  assert w_err < 0.01 and abs(pooled) < 0.03, (w_err, pooled)  # noise floor 0.35%
  assert abs(_pooled_error(x, S_G8)[1]) > 0.15  # the data law itself is not the target


@pytest.mark.parametrize('kind', ['x0', 'v', 'score'])
@pytest.mark.parametrize('process', ['vp', 've'])
def test_every_prediction_kind_gives_the_same_denoiser(kind, process):
  base = gmm_oracle.oracle_model(G8, process)
  alpha_sigma = {'vp': lambda lam: (jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))),
                 've': lambda lam: (jnp.ones_like(lam), jnp.exp(-0.5 * lam))}[process]

  def apply(params, x, lam, y=None):
    out = base.apply(params, x, lam, y)
    a, s = (v[:, None] for v in alpha_sigma(lam))
    return {kind: predictions.from_x0(kind, out['x0'], x, a, s)}

  spec = dataclasses.replace(base.spec, prediction=kind)
  x = jax.random.normal(jax.random.key(1), (5, 2), jnp.float64)
  sigma = jnp.array([0.01, 0.1, 1.0, 10.0, 80.0])
  want = denoiser.edm_denoiser(base.apply, {}, base.spec)(x, sigma)
  np.testing.assert_allclose(denoiser.edm_denoiser(apply, {}, spec)(x, sigma), want, rtol=1e-8,
                             atol=1e-10)
  with pytest.raises(ValueError, match='mean'):
    denoiser.edm_denoiser(apply, {}, dataclasses.replace(spec, prediction='mean'))


# ----------------------------------------------------------------------------- devices

def test_same_samples_on_1_and_8_devices_and_any_batch_size():
  assert len(jax.devices()) >= 8
  model = gmm_oracle.oracle_model(G8, 've')
  keys = _keys(64, 7)
  fn = lambda k: edm.sample(model.apply, {}, model.spec, None, k, (2,), steps=6, S_churn=10.0,
                            sigma_min=0.002, sigma_max=80.0)[0]
  outs = []
  for devices in (jax.devices()[:1], jax.devices()[:8]):
    sharding = mesh_lib.data_sharding(mesh_lib.make_mesh(devices))
    out = jax.jit(fn, in_shardings=sharding, out_shardings=sharding)(jax.device_put(keys, sharding))
    assert len(out.sharding.device_set) == len(devices)
    outs.append(np.asarray(out))
  np.testing.assert_allclose(outs[1], outs[0], rtol=0, atol=1e-12)
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(keys[:8])), outs[0][:8], rtol=0, atol=1e-12)
