"""The Gaussian-mixture oracle against closed forms, Monte Carlo and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from data import toy
from models import gmm_oracle
from models.gmm_oracle import GaussianMixture, outputs


def toy_mixture(name):
  return GaussianMixture.create(*toy.mixture(name))


G8 = toy_mixture('gaussian8')
Z_MAX = 5.0    # |z| bound for a correct oracle: ~100 z-scores, P(any > 5 | H0) ~ 6e-5
Z_POWER = 8.0  # a deliberately wrong oracle must be this many standard errors off


def _vp(sigma2):
  return np.sqrt(1 - sigma2), np.sqrt(sigma2)


def _np(out):
  return {k: np.asarray(v) for k, v in out.items()}


def test_toy_mixtures():
  for name, k in (('gaussian8', 8), ('gaussian25', 25)):
    mix = toy_mixture(name)
    assert mix.means.shape == (k, 2) and mix.stds.shape == (k, 2)
    np.testing.assert_allclose(mix.weights, 1 / k)
    # The reference's scale is the closed-form population std: variance 1 per coordinate.
    np.testing.assert_allclose(mix.weights @ mix.means, 0, atol=1e-15)
    np.testing.assert_allclose(mix.weights @ (mix.means**2 + mix.stds**2), 1, rtol=1e-14)
  np.testing.assert_allclose(G8.means[1] * np.sqrt(0.02**2 + 2), [2**0.5, 2**0.5])
  np.testing.assert_allclose(G8.stds, 0.02 / 1.41435, rtol=1e-5)
  g25 = toy_mixture('gaussian25')  # i-major: (i, j) = (-2, -2), (-2, -1), ...
  np.testing.assert_allclose(g25.means[:2] * np.sqrt(0.05**2 + 8), [[-4, -4], [-4, -2]])
  with pytest.raises(ValueError, match='gaussian8, gaussian25'):
    toy_mixture('swissroll')


@pytest.mark.parametrize('alpha,sigma', [_vp(0.1), _vp(0.8), _vp(1e-4), (0.0, 1.0), (1.0, 80.0),
                                         (1.0, 0.5)])
def test_one_component_equals_gaussian_closed_form(alpha, sigma):
  mu, s = np.array([0.3, -1.0, 2.0]), np.array([0.5, 0.1, 2.0])
  x = alpha * mu + np.sqrt(alpha**2 * s**2 + sigma**2) * np.random.default_rng(0).normal(size=(5, 3)) * 1.5
  # Gaussian regression of (x0, eps) on x: Cov(x0, x) = alpha s^2, Cov(eps, x) = sigma.
  v = alpha**2 * s**2 + sigma**2
  e = sigma / v * (x - alpha * mu)
  var_eps = 1 - sigma**2 / v
  ref = {'log_prob': stats.norm.logpdf(x, alpha * mu, np.sqrt(v)).sum(-1),
         'score': -(x - alpha * mu) / v,
         'x0': mu + alpha * s**2 / v * (x - alpha * mu),
         'eps2': e**2 + var_eps}
  single = GaussianMixture.create(mu[None], s[None])
  twin = GaussianMixture.create([mu, mu], [s, s], weights=[3.0, 7.0])  # same law, two components
  for mix in (single, twin):
    for c in (1.0, 0.9):
      out = _np(outputs(mix, x, alpha, sigma, eps_scale=c))
      for k, want in ref.items():
        np.testing.assert_allclose(out[k], want, rtol=1e-10, atol=1e-12, err_msg=k)
      np.testing.assert_allclose(out['eps'], c * e, rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(out['eps_res'], var_eps + (1 - c)**2 * e**2, rtol=1e-10, atol=1e-12)
  # Scalar / [K] stds broadcast to [K, D].
  iso = GaussianMixture.create(mu[None], 0.5)
  np.testing.assert_array_equal(iso.stds, np.full((1, 3), 0.5))
  np.testing.assert_allclose(outputs(iso, x, alpha, sigma)['log_prob'],
                             stats.norm.logpdf(x, alpha * mu, np.sqrt(alpha**2 * 0.25 + sigma**2)).sum(-1),
                             rtol=1e-10)


# Monte Carlo levels: VP sigma^2 = 0.01, 0.3, 0.9 and VE sigma = 2.
MC_LEVELS = [_vp(0.01), _vp(0.3), _vp(0.9), (1.0, 2.0)]
MC_N = 200_000


@pytest.fixture(scope='module')
def mc():
  """Per level: (x0, eps, x_t, outputs, outputs with eps_scale 0.9), gaussian8."""
  rng = np.random.default_rng(1)
  res = []
  for alpha, sigma in MC_LEVELS:
    x0, _ = G8.sample(rng, MC_N)
    eps = rng.standard_normal(x0.shape)
    xt = alpha * x0 + sigma * eps
    res.append((x0, eps, xt, _np(outputs(G8, xt, alpha, sigma)),
                _np(outputs(G8, xt, alpha, sigma, eps_scale=0.9))))
  return res


def _z(resid, x):
  """z-scores of E[resid * g(x)] for g in {1, x, x^2}, elementwise: [3, D]."""
  f = resid[None] * np.stack([np.ones_like(x), x, x**2])
  return f.mean(1) / (f.std(1) / np.sqrt(f.shape[1]))


def test_conditional_means_monte_carlo(mc):
  """E[(eps - eps_hat(x_t)) g(x_t)] = 0 and likewise for x0: the defining property.

  Power: the same statistic for 0.9 * eps_hat (or 0.9 * x0_hat) must be > Z_POWER
  standard errors away at every level (measured: >= 25 SE for eps, >= 16 SE for x0).
  """
  for x0, eps, xt, out, out09 in mc:
    assert np.abs(_z(eps - out['eps'], xt)).max() < Z_MAX
    assert np.abs(_z(x0 - out['x0'], xt)).max() < Z_MAX
    assert np.abs(_z(eps - out09['eps'], xt)).max() > Z_POWER
    assert np.abs(_z(x0 - 0.9 * out['x0'], xt)).max() > Z_POWER
    np.testing.assert_array_equal(out09['x0'], out['x0'])


def test_eps2_monte_carlo(mc):
  """E[(eps^2 - eps2(x_t)) g(x_t)] = 0; dropping Var[eps | x] (eps2 = eps_hat^2) fails (>= 30 SE)."""
  for _, eps, xt, out, _ in mc:
    assert np.abs(_z(eps**2 - out['eps2'], xt)).max() < Z_MAX
    assert np.abs(_z(eps**2 - out['eps']**2, xt)).max() > Z_POWER


def test_eps_res_imperfect_mean_monte_carlo(mc):
  """With eps_hat = 0.9 E[eps|x]: E[((eps - eps_hat)^2 - eps_res(x_t)) g(x_t)] = 0.

  Power: the perfect-mean residual (eps_res at scale 1, i.e. Var[eps | x]) differs by
  only 0.01 E[eps|x]^2 and must still be rejected (> Z_POWER; measured >= 9.5 SE).
  """
  for _, eps, xt, out, out09 in mc:
    sq = (eps - out09['eps'])**2
    assert np.abs(_z(sq - out09['eps_res'], xt)).max() < Z_MAX
    assert np.abs(_z(sq - out['eps_res'], xt)).max() > Z_POWER


def _chi2(mix, alpha, sigma, xt, nb=24, m=10):
  """Pearson chi-square of a 2-D histogram of xt against exp(log_prob) integrated per bin.

  Bins: nb x nb on a square covering the mixture +-5 std, each integrated by an m x m
  midpoint rule; bins expecting < 5 counts are pooled with the outside into one cell.
  """
  half = alpha * np.abs(mix.means).max() + 5 * np.sqrt(alpha**2 * mix.stds.max()**2 + sigma**2)
  edges = np.linspace(-half, half, nb + 1)
  h = (2 * half) / (nb * m)
  u = np.linspace(-half + h / 2, half - h / 2, nb * m)
  grid = np.stack(np.meshgrid(u, u, indexing='ij'), -1).reshape(-1, 2)
  p = np.exp(np.asarray(outputs(mix, grid, alpha, sigma)['log_prob'])) * h**2
  expected = len(xt) * p.reshape(nb, m, nb, m).sum((1, 3)).ravel()
  observed = np.histogram2d(xt[:, 0], xt[:, 1], bins=[edges, edges])[0].ravel()
  keep = expected >= 5
  e = np.append(expected[keep], len(xt) - expected[keep].sum())
  o = np.append(observed[keep], len(xt) - observed[keep].sum())
  return ((o - e)**2 / e).sum(), len(e) - 1


@pytest.mark.parametrize('alpha,sigma', [_vp(0.01), _vp(0.5), _vp(0.95), (1.0, 0.3), (1.0, 80.0)])
def test_histogram_matches_density(alpha, sigma):
  """Simulated x_t against the density; a 10% error in sigma must be rejected."""
  rng = np.random.default_rng(2)
  x0, _ = G8.sample(rng, 100_000)
  xt = alpha * x0 + sigma * rng.standard_normal(x0.shape)
  stat, df = _chi2(G8, alpha, sigma, xt)
  assert df > 50
  assert stat < df + 5 * np.sqrt(2 * df), (stat, df)
  wrong, df_wrong = _chi2(G8, alpha, 1.1 * sigma, xt)
  assert wrong > df_wrong + 20 * np.sqrt(2 * df_wrong), (wrong, df_wrong)


@pytest.mark.parametrize('alpha,sigma', [_vp(0.0025), _vp(0.3), _vp(0.98), (1.0, 1.0), (1.0, 80.0)])
def test_eps_is_minus_sigma_times_finite_difference_grad(alpha, sigma):
  rng = np.random.default_rng(3)
  x = np.concatenate([alpha * G8.sample(rng, 6)[0] + sigma * rng.standard_normal((6, 2)),
                      [[0.0, 0.0], [0.7, 0.7], [3.0, -2.0]]])
  h = 1e-5 * np.sqrt(alpha**2 * G8.stds.min()**2 + sigma**2)
  grad = np.stack([(np.asarray(outputs(G8, x + h * ei, alpha, sigma)['log_prob'])
                    - np.asarray(outputs(G8, x - h * ei, alpha, sigma)['log_prob'])) / (2 * h)
                   for ei in np.eye(2)], -1)
  out = _np(outputs(G8, x, alpha, sigma))
  # Measured error of the central difference: <= 3e-10 * max|eps| (eps is 0 at the origin).
  scale = np.abs(out['eps']).max()
  np.testing.assert_allclose(out['eps'], -sigma * grad, rtol=1e-7, atol=1e-8 * scale)
  np.testing.assert_allclose(out['score'], grad, rtol=1e-7, atol=1e-8 * scale / sigma)


@pytest.mark.parametrize('sigma', [1e-4, 1e-6])
def test_tiny_noise_is_finite(sigma):
  """Far from every mode the naive responsibilities are 0 / 0; log-sum-exp keeps them."""
  alpha = np.sqrt(1 - sigma**2)
  rng = np.random.default_rng(4)
  mid = (G8.means[0] + G8.means[1]) / 2
  x = np.concatenate([alpha * G8.sample(rng, 50)[0] + sigma * rng.standard_normal((50, 2)),
                      [[0.0, 0.0], mid, [5.0, 5.0], [-30.0, 2.0]]])
  for c in (1.0, 0.9):
    out = _np(outputs(G8, x, alpha, sigma, eps_scale=c))
    for k, val in out.items():
      assert np.all(np.isfinite(val)), k
    assert np.all(out['eps_res'] >= 0)
    assert np.all(out['eps2'] >= out['eps']**2 - 1e-12)
  # Far away one component dominates: log p = log w_k + log N_k of the nearest mode.
  far = np.array([5.0, 5.0])
  k = np.argmin(((G8.means * alpha - far)**2).sum(-1))
  sd = np.sqrt(alpha**2 * G8.stds[k]**2 + sigma**2)
  want = np.log(1 / 8) + stats.norm.logpdf(far, alpha * G8.means[k], sd).sum()
  np.testing.assert_allclose(out['log_prob'][-2], want, rtol=1e-12)
  # With sigma << std, the posterior mean is x_t itself to O(sigma^2 / std^2).
  np.testing.assert_allclose(out['x0'][:50], x[:50] / alpha, atol=1e-5)


@pytest.mark.parametrize('sigma', [1.0, 80.0])
def test_alpha_zero_is_pure_noise(sigma):
  x = np.random.default_rng(5).normal(size=(7, 2)) * sigma
  out = _np(outputs(G8, x, 0.0, sigma, eps_scale=0.9))
  for k, val in out.items():
    assert np.all(np.isfinite(val)), k
  np.testing.assert_allclose(out['x0'], np.broadcast_to(G8.weights @ G8.means, x.shape), atol=1e-15)
  np.testing.assert_allclose(out['eps'], 0.9 * x / sigma, rtol=1e-14)
  np.testing.assert_allclose(out['eps2'], (x / sigma)**2, rtol=1e-14)
  np.testing.assert_allclose(out['eps_res'], 0.01 * (x / sigma)**2, rtol=1e-12)
  np.testing.assert_allclose(out['log_prob'], stats.norm.logpdf(x, 0, sigma).sum(-1), rtol=1e-14)


def test_nonnegative_residuals_over_levels():
  rng = np.random.default_rng(6)
  x = 2 * rng.standard_normal((200, 2))
  for sigma2 in (1e-8, 1e-3, 0.1, 0.5, 0.999):
    for c in (1.0, 0.9, 1.2):
      out = _np(outputs(G8, x, *_vp(sigma2), eps_scale=c))
      assert np.all(out['eps_res'] >= 0)
      assert np.all(out['eps2'] >= (out['eps'] / c)**2 - 1e-12)


@pytest.mark.parametrize('process', ['vp', 've'])
def test_model_apply_matches_outputs(process):
  model = gmm_oracle.oracle_model(G8, process=process, eps_scale=0.9)
  spec = model.spec
  assert (spec.family, spec.prediction, spec.time_input, spec.round, spec.N) == (
      'gmm_oracle', 'eps', 'lam', 'none', None)
  assert set(spec.outputs) == {'eps', 'x0', 'score', 'eps2', 'eps_res', 'log_prob'}
  assert spec.data_shape == (2,) and spec.data_range is None and spec.process == process
  assert gmm_oracle.oracle_model(G8, N=1000).spec.round == 'index'
  params = model.init(jax.random.PRNGKey(0))
  assert params == {}
  lam = np.array([-8.0, -1.0, 0.0, 2.5, 9.0, 20.0] + ([-np.inf] if process == 'vp' else []))
  if process == 'vp':
    alpha, sigma = np.sqrt(special.expit(lam)), np.sqrt(special.expit(-lam))
  else:
    alpha, sigma = np.ones_like(lam), np.exp(-lam / 2)
  x = np.random.default_rng(7).normal(size=(len(lam), 2)) * np.maximum(sigma, 0.3)[:, None]
  want = _np(outputs(G8, x, alpha, sigma, eps_scale=0.9))
  for got in (model.apply(params, x, lam), jax.jit(model.apply)(params, jnp.asarray(x), lam)):
    assert set(got) == set(spec.outputs)
    for k in spec.outputs:
      assert got[k].dtype == jnp.float64, k
      np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-12, atol=1e-14, err_msg=k)
  got32 = model.apply(params, x.astype(np.float32), lam)
  assert all(v.dtype == jnp.float32 for v in got32.values())
  with pytest.raises(ValueError, match='vp, ve'):
    gmm_oracle.oracle_model(G8, process='psld')
