"""Sliced Wasserstein distance between two sample sets (Rabin et al. 2011; Bonneel et al. 2015).

  SW_p(P, Q) = ( E_theta W_p(theta^T P, theta^T Q)^p )^(1/p),   theta uniform on the sphere,

with the one-dimensional W_p of the projections computed exactly from their quantile
functions: W_p^p = int_0^1 |F^-1(u) - G^-1(u)|^p du. For two sets of equal size n that is
the mean of |sorted a - sorted b|^p; otherwise both quantile functions are evaluated at
the midpoints (i + 1/2)/m of m = max(n_a, n_b) cells. The expectation over theta is a
Monte-Carlo average over `num_projections` fixed directions drawn from `seed`, the same
directions for every pair compared, so differences between samplers are not projection
noise. numpy, float64; for the sample sizes of tests and benchmarks (<= 10^6 points).

Its noise floor at n samples is SW between two independent sets of the same law (about
c / sqrt(n) times the law's scale): compare a sampler's error with it, not with 0.
"""
import numpy as np


def directions(dim, num_projections=64, seed=0):
  """num_projections unit vectors in R^dim (float64 [L, dim]), fixed by seed."""
  v = np.random.default_rng(seed).standard_normal((num_projections, dim))
  return v / np.linalg.norm(v, axis=1, keepdims=True)


def _quantiles(proj, m):
  """Projections [n, L] -> their quantile functions at the m cell midpoints u_i = (i + 1/2)/m
  [m, L]: the sorted values at index ceil(n u_i) - 1 (the inverse of the empirical CDF)."""
  proj = np.sort(proj, axis=0)
  n = proj.shape[0]
  if n == m:
    return proj
  idx = np.ceil(n * (np.arange(m) + 0.5) / m).astype(np.int64) - 1
  return proj[np.clip(idx, 0, n - 1)]


def sliced_wasserstein(a, b, p=2, num_projections=64, seed=0):
  """SW_p between samples a [n_a, D] and b [n_b, D] (module docstring)."""
  a = np.asarray(a, np.float64).reshape(len(a), -1)
  b = np.asarray(b, np.float64).reshape(len(b), -1)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f'sample dimensions differ: {a.shape[1]} vs {b.shape[1]}')
  theta = directions(a.shape[1], num_projections, seed)
  m = max(len(a), len(b))
  qa, qb = _quantiles(a @ theta.T, m), _quantiles(b @ theta.T, m)
  return float(np.mean(np.abs(qa - qb)**p)**(1.0 / p))
