"""Sample-set distances (metrics/) against closed forms."""
import numpy as np
import pytest

from metrics import mixture
from metrics import sliced_wasserstein as sw


def test_sliced_w2_of_isotropic_gaussians_is_the_closed_form():
  """Projections of N(m, s^2 I) are N(theta.m, s^2), whose W2^2 is (theta.dm)^2 + (s1 - s2)^2,
  so over the fixed directions SW2^2 = mean_theta (theta.dm)^2 + (s1 - s2)^2."""
  rng = np.random.default_rng(0)
  n, d = 200_000, 3
  m1, m2, s1, s2 = np.zeros(d), np.array([0.3, -0.2, 0.5]), 1.0, 1.4
  a = m1 + s1 * rng.standard_normal((n, d))
  b = m2 + s2 * rng.standard_normal((n, d))
  theta = sw.directions(d)
  assert theta.shape == (64, d) and np.allclose(np.linalg.norm(theta, axis=1), 1)
  want = np.sqrt(np.mean((theta @ (m2 - m1))**2) + (s1 - s2)**2)
  assert sw.sliced_wasserstein(a, b) == pytest.approx(want, rel=0.01)
  # Unequal sizes go through the quantile functions: the same value.
  assert sw.sliced_wasserstein(a[:50_000], b) == pytest.approx(want, rel=0.02)
  # p = 1 of a pure shift: mean_theta |theta.dm|.
  assert sw.sliced_wasserstein(a, a + (m2 - m1), p=1) == pytest.approx(
      np.mean(np.abs(theta @ (m2 - m1))), rel=1e-9)
  assert sw.sliced_wasserstein(a, a) == 0.0
  with pytest.raises(ValueError, match='dimensions'):
    sw.sliced_wasserstein(a, b[:, :2])


def test_mixture_errors_split_weights_from_offsets():
  rng = np.random.default_rng(1)
  means = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  std, n = 0.02, 100_000
  ref = means[rng.integers(0, 3, n)] + std * rng.standard_normal((n, 2))
  # Same law: both errors at the noise floor.
  x = means[rng.integers(0, 3, n)] + std * rng.standard_normal((n, 2))
  e = mixture.errors(x, ref, means, std)
  assert e['weights'] < 0.01 and e['offsets'] < 0.02, e
  # Wider modes (1.5 std): offsets' SW2 = 0.5 std, weights unchanged.
  e = mixture.errors(means[rng.integers(0, 3, n)] + 1.5 * std * rng.standard_normal((n, 2)), ref,
                     means, std)
  assert e['offsets'] == pytest.approx(0.5, rel=0.03) and e['weights'] < 0.01, e
  # Weights (0.5, 0.25, 0.25): weight error 1/6, offsets unchanged.
  k = rng.choice(3, n, p=[0.5, 0.25, 0.25])
  e = mixture.errors(means[k] + std * rng.standard_normal((n, 2)), ref, means, std)
  assert e['weights'] == pytest.approx(0.5 - 1 / 3, abs=0.01) and e['offsets'] < 0.02, e
  off, idx = mixture.assign(ref[:5], means)
  np.testing.assert_allclose(off + means[idx], ref[:5])
