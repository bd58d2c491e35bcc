"""Timestep subsequences tau = [0, tau_1, ..., tau_K] of the grid 0..N."""
import numpy as np

TRAJECTORIES = ('linear',)


def trajectory(N, K, kind='linear'):
  """The K steps a sampler or bound visits, as int64 [K + 1] with tau_0 = 0.

  linear (Extended Analytic-DPM, reference A.6): c = 1, stride (N - 1)/(K - 1)
  accumulated by repeated addition, step_k = round-half-to-even(c); it starts at
  1 and ends at N (N = 1000, K = 10 gives 1, 112, ..., 1000). K = N is the
  full chain 1..N; K = 1 is the single jump N -> 0.
  """
  if kind not in TRAJECTORIES:
    raise ValueError(f'unknown trajectory {kind!r}; allowed: {", ".join(TRAJECTORIES)}')
  if not 1 <= K <= N:
    raise ValueError(f'steps must be in 1..{N}, got {K}')
  if K == 1:
    return np.array([0, N], dtype=np.int64)
  steps, c, stride = [], 1.0, (N - 1) / (K - 1)
  for _ in range(K):
    steps.append(round(c))
    c += stride
  return np.array([0] + steps, dtype=np.int64)
