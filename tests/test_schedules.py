"""Schedules, posterior, prediction converter and trajectories against closed forms (float64)."""
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion import predictions
from diffusion import timesteps
from diffusion.schedules import DiscreteSchedule


def test_named_betas_closed_forms():
  T = 100
  lin = DiscreteSchedule.named('linear', T, 1e-3, 0.2)
  np.testing.assert_allclose(lin.betas[1:], 1e-3 + (0.2 - 1e-3) * np.arange(T) / (T - 1), rtol=1e-14)
  quad = DiscreteSchedule.named('quad', T, 1e-4, 0.02)
  np.testing.assert_allclose(np.sqrt(quad.betas[1:]), np.linspace(0.01, np.sqrt(0.02), T), rtol=1e-14)
  w10 = DiscreteSchedule.named('warmup10', T, 1e-4, 0.02).betas[1:]
  assert np.all(w10[10:] == 0.02) and w10[9] == pytest.approx(0.02) and w10[0] == pytest.approx(1e-4)
  w50 = DiscreteSchedule.named('warmup50', T, 1e-4, 0.02).betas[1:]
  assert np.all(w50[50:] == 0.02) and w50[0] == pytest.approx(1e-4)
  jsd = DiscreteSchedule.named('jsd', T)
  np.testing.assert_allclose(jsd.betas[1:], 1.0 / (T - np.arange(T)), rtol=1e-14)
  assert jsd.alphabar[T] == 0 and np.isneginf(jsd.lam[T])
  assert np.all(np.isfinite(jsd.lam[1:T]))


def test_cosine_alphabar_is_f_ratio_except_clipped_end():
  N = 1000
  s = DiscreteSchedule.named('cosine', N)
  f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2)**2
  n = np.arange(N + 1)
  np.testing.assert_allclose(s.alphabar[:N], f(n[:N] / N) / f(0), rtol=1e-10)
  assert np.sum(s.betas == 0.999) == 1 and s.betas[N] == 0.999


def test_reference_sanity_values():
  # Extended Analytic-DPM sanity values (reference A.2).
  lin = DiscreteSchedule.named('linear', 1000)
  assert lin.betas[2] == pytest.approx(1.1992e-4, rel=1e-4)
  assert lin.alphabar[1000] == pytest.approx(4.0358e-5, rel=1e-4)
  assert float(lin.posterior(1, 2)[2]) == pytest.approx(5.4532e-5, rel=1e-4)
  cos = DiscreteSchedule.named('cosine', 1000)
  assert cos.betas[1] == pytest.approx(4.1284e-5, rel=1e-4)
  assert float(cos.posterior(1, 2)[2]) == pytest.approx(2.1789e-5, rel=1e-4)
  cos4k = DiscreteSchedule.named('cosine', 4000)
  assert cos4k.betas[1] == pytest.approx(9.8658e-6, rel=1e-4)
  assert float(cos4k.posterior(1, 2)[2]) == pytest.approx(5.0077e-6, rel=1e-4)
  vp = DiscreteSchedule.named('vpsde', 1000, 0.1, 20.0)
  assert vp.betas[1] == pytest.approx(1.0994e-4, rel=1e-4)
  assert vp.betas[1000] == pytest.approx(1.9792e-2, rel=1e-4)
  assert vp.alphabar[1000] == pytest.approx(4.3186e-5, rel=1e-4)
  assert float(vp.posterior(1, 2)[2]) == pytest.approx(5.9537e-5, rel=1e-4)


def test_tables_and_log_snr():
  s = DiscreteSchedule.named('linear', 50, 1e-3, 0.2)
  ab = np.cumprod(1 - s.betas)
  np.testing.assert_allclose(s.alphabar, ab, rtol=1e-13)
  np.testing.assert_allclose(s.sigma2[1:], 1 - ab[1:], rtol=1e-12)
  np.testing.assert_allclose(s.lam[1:], np.log(ab[1:] / (1 - ab[1:])), rtol=1e-12)
  assert s.alphabar[0] == 1 and np.isposinf(s.lam[0])
  alpha, sigma = s.alpha_sigma(jnp.arange(1, 51))
  np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=1e-14)
  # lam -> n inverts the grid, and off-grid levels interpolate log alphabar linearly.
  n = np.asarray(s.n_from_lam(jnp.asarray(s.lam[1:])))
  np.testing.assert_allclose(n, np.arange(1, 51), atol=1e-9)
  la = s.log_alphabar
  mid = 0.5 * (la[10] + la[11])
  lam_mid = mid - np.log(-np.expm1(mid))
  assert float(s.n_from_lam(jnp.asarray(lam_mid))) == pytest.approx(10.5, abs=1e-9)


def test_posterior_matches_gaussian_conditioning():
  """q(x_s | x_t, x0) from Bayes' rule on the joint Gaussian of (x_s, x_t) given x0."""
  s_ = DiscreteSchedule.named('quad', 200, 1e-4, 0.05)
  for s, t in [(0, 1), (1, 2), (3, 17), (50, 200), (0, 120)]:
    a_s, a_t = s_.alphabar[s], s_.alphabar[t]
    a_ts = a_t / a_s
    # x_s = sqrt(a_s) x0 + sqrt(1-a_s) e1; x_t = sqrt(a_ts) x_s + sqrt(1-a_ts) e2.
    var_s, var_t = 1 - a_s, 1 - a_t
    cov = np.sqrt(a_ts) * var_s
    ct = cov / var_t
    c0 = np.sqrt(a_s) - ct * np.sqrt(a_t)
    var = var_s - cov**2 / var_t
    got = [float(v) for v in s_.posterior(s, t)]
    np.testing.assert_allclose(got, [c0, ct, var], rtol=1e-9, atol=1e-15)
  # Consecutive steps: Ho et al. eq. 7.
  t = 7
  b, ab, abp = s_.betas[t], s_.alphabar[t], s_.alphabar[t - 1]
  got = [float(v) for v in s_.posterior(t - 1, t)]
  np.testing.assert_allclose(got, [b * np.sqrt(abp) / (1 - ab), np.sqrt(1 - b) * (1 - abp) / (1 - ab),
                                   b * (1 - abp) / (1 - ab)], rtol=1e-12)


@pytest.mark.parametrize('alpha,sigma', [(0.99, np.sqrt(1 - 0.99**2)), (0.3, np.sqrt(1 - 0.09)),
                                         (1.0, 80.0), (0.7, 0.3)])
def test_converter_round_trips(alpha, sigma):
  rng = np.random.default_rng(0)
  x0, eps = rng.normal(size=(2, 5, 3))
  x_t = alpha * x0 + sigma * eps
  post = (0.4, 0.55)
  for kind in ('eps', 'x0', 'score', 'v', 'mean'):
    out = predictions.from_x0(kind, x0, x_t, alpha, sigma, posterior=post)
    x0_back, eps_back = predictions.to_x0_eps(kind, out, x_t, alpha, sigma, posterior=post)
    np.testing.assert_allclose(x0_back, x0, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(eps_back, eps, rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(predictions.from_x0('score', x0, x_t, alpha, sigma), -eps / sigma, rtol=1e-12)
  np.testing.assert_allclose(predictions.from_x0('v', x0, x_t, alpha, sigma), alpha * eps - sigma * x0,
                             rtol=1e-12)
  np.testing.assert_allclose(predictions.from_x0('mean', x0, x_t, alpha, sigma, posterior=post),
                             0.4 * x0 + 0.55 * x_t, rtol=1e-12)


def test_linear_trajectory_matches_reference():
  # Reference A.6 examples: round-half-to-even of the accumulated stride.
  np.testing.assert_array_equal(timesteps.trajectory(1000, 10)[1:],
                                [1, 112, 223, 334, 445, 556, 667, 778, 889, 1000])
  tau = timesteps.trajectory(4000, 25)
  np.testing.assert_array_equal(tau[1:5], [1, 168, 334, 501])
  assert tau[-1] == 4000 and tau[0] == 0
  assert timesteps.trajectory(1000, 25)[13] == 500  # 500.5 rounds to even
  np.testing.assert_array_equal(timesteps.trajectory(7, 7), np.arange(8))
  np.testing.assert_array_equal(timesteps.trajectory(7, 1), [0, 7])
  with pytest.raises(ValueError):
    timesteps.trajectory(10, 11)
