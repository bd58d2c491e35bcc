"""Toy data sets and the stateless data source."""
import numpy as np
import pytest

from data import source
from data import toy


@pytest.mark.parametrize('name', toy.DATASETS)
def test_toy_sets_are_reproducible_and_standardised(name):
  a, b = toy.make(name, 50_000, [7, 0]), toy.make(name, 50_000, [7, 0])
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.float32 and a.shape == (50_000, 2)
  assert not np.array_equal(a, toy.make(name, 50_000, [7, 1]))
  # Divided by the reference's closed-form population std: unit variance per axis
  # (swissroll's constants leave its z column at 1.04).
  np.testing.assert_allclose(a.std(0), 1.0, atol=0.03 if name != 'swissroll' else 0.06)


def test_mixtures_match_the_generated_data():
  for name, k in (('gaussian8', 8), ('gaussian25', 25)):
    means, std, weights = toy.mixture(name)
    x = toy.make(name, 100_000, 0).astype(np.float64)
    d = np.linalg.norm(x[:, None] - means[None], axis=-1)
    j = d.argmin(1)
    np.testing.assert_allclose(np.bincount(j, minlength=k) / len(x), weights, atol=0.005)
    np.testing.assert_allclose(np.std(x - means[j]), std, rtol=0.02)
  # gaussian25 cycles through its modes in i-major order (reference B.4.1).
  x = toy.make('gaussian25', 50, 0)
  means, _, _ = toy.mixture('gaussian25')
  assert np.linalg.norm(x[26] - means[1]) < 0.1 and means[1][0] < 0 and means[1][1] < means[2][1]


def test_source_is_stateless_and_covers_each_epoch():
  n, b = 100, 32  # b does not divide n: batches straddle epochs
  src = source.ArraySource({'x': np.arange(n)}, b, seed=3)
  steps = [src.batch(s)['x'] for s in range(25)]  # 8 epochs
  # Same (seed, step) -> same batch, whatever was read before (a restore at step k is exact).
  fresh = source.ArraySource({'x': np.arange(n)}, b, seed=3)
  np.testing.assert_array_equal(fresh.batch(17)['x'], steps[17])
  flat = np.concatenate(steps)
  for e in range(8):
    np.testing.assert_array_equal(np.sort(flat[e * n:(e + 1) * n]), np.arange(n))
  assert not np.array_equal(flat[:n], flat[n:2 * n])  # a new permutation each epoch
  other = source.ArraySource({'x': np.arange(n)}, b, seed=4)
  assert not np.array_equal(other.batch(0)['x'], steps[0])


def test_processes_split_the_global_batch():
  n, b = 1000, 64
  whole = source.ArraySource({'x': np.arange(n), 'y': -np.arange(n)}, b, seed=0)
  parts = source.ArraySource({'x': np.arange(n), 'y': -np.arange(n)}, b, seed=0, num_processes=4)
  for step in (0, 15, 16):
    got = [parts.batch(step, p) for p in range(4)]
    np.testing.assert_array_equal(np.concatenate([g['x'] for g in got]), whole.batch(step)['x'])
    np.testing.assert_array_equal(got[1]['y'], -got[1]['x'])
  with pytest.raises(ValueError, match='divisible'):
    source.ArraySource({'x': np.arange(n)}, 10, seed=0, num_processes=4)
