"""Timestep subsequences tau = [0, tau_1, ..., tau_K] of the grid 0..N.

A sampler or bound visits the consecutive pairs (s, t) = (tau_{k-1}, tau_k) from
the top down: it starts at tau_K from N(0, I) and ends at tau_0 = 0 (x0_hat).
Every kind returns 1-based grid indices n (our tables: n = 0 is data, n = N the
last noising step), int64, non-decreasing.

Extended Analytic-DPM kinds (`core/inference/utils.py` `_choice_steps`,
reference A.6), K steps in 1..N:
  linear      c = 1, stride (N - 1)/(K - 1) accumulated by repeated addition,
              step_k = round-half-to-even(c); starts at 1, ends at N.
  power<p>    (p a positive integer, e.g. 'power2') round-half-to-even of
              (N - 1)(1 - y^(1/p)) + 1 over y = 1, (K-2)/(K-1), ..., 0, then made
              strictly increasing: an entry <= its (adjusted) predecessor becomes
              predecessor + 1. Dense near n = 1; power1 is linear up to rounding.
  quad_ddim   floor(linspace(0, sqrt(0.8 N), K)^2) + 1, DDIM's quadratic
              schedule; ends at int(0.8 N) + 1, not N. Duplicates where the
              formula gives them (K large against N).
  dp_seg      Analytic-DPM's optimal trajectory, needs Gamma = ms_eps [N + 1] and
              the schedule: dynamic programming over the jump cost
              F(s, t) = log(1 - beta_{t|s} Gamma_t / (1 - alphabar_t)) on 1..N1,
              plus a uniform tail over the badly estimated end (Gamma_n > 1); see
              `dp_seg`.
tqch/ddpm-torch kinds (`ddim.py`, reference B.3) are 0-based original indices
S_i; they map onto our grid as n = S_i + 1 (its index 0 is the first noising
step, our n = 1; its ᾱ'_prev = 1 after S_0 is our n = 0):
  tq_linear     S = arange(0, N, N // K): more than K entries when N % K != 0
                (N = 1000, K = 30 gives 31), so the NFE is len(tau) - 1.
  tq_quadratic  S = round-half-to-even(linspace(0, sqrt(0.8 N), K)^2) with its
                duplicates (K = 50 on N = 1000: 49 distinct, K = 100: 97).
A duplicate (s = t) is an identity step: beta_{t|s} = 0, so the DDIM update
keeps x_t (tqch's c1' = 0, c2' = 1); the network is still evaluated there, as
tqch's loop does.

K = 1 is the single jump N -> 0 for linear, power<p> and dp_seg; the other kinds
apply their formulas as written.
"""
import math
import re

import numpy as np

TRAJECTORIES = ('linear', 'power<p>', 'quad_ddim', 'dp_seg', 'tq_linear', 'tq_quadratic')
NEEDS_MS_EPS = ('dp_seg',)
_POWER = re.compile(r'^power([1-9][0-9]*)$')


def check_kind(kind):
  """Raise ValueError (one line naming the allowed kinds) for an unknown trajectory."""
  if kind not in TRAJECTORIES or kind == 'power<p>':
    if not (isinstance(kind, str) and _POWER.match(kind)):
      raise ValueError(f'unknown trajectory {kind!r}; allowed: {", ".join(TRAJECTORIES)} '
                       '(power<p> with p a positive integer, e.g. power2)')


def trajectory(N, K, kind='linear', *, ms_eps=None, schedule=None):
  """The steps a sampler or bound visits, as int64 [len + 1] with tau_0 = 0.

  len = K for every kind except tq_linear (see the module docstring). dp_seg needs
  `ms_eps` (Gamma, [N + 1]) and `schedule` (a DiscreteSchedule with N steps).
  """
  check_kind(kind)
  if not 1 <= K <= N:
    raise ValueError(f'steps must be in 1..{N}, got {K}')
  if kind == 'tq_linear':
    steps = np.arange(0, N, N // K, dtype=np.int64) + 1
  elif kind == 'tq_quadratic':
    steps = np.round(np.linspace(0, np.sqrt(0.8 * N), K)**2).astype(np.int64) + 1
  elif kind == 'quad_ddim':
    steps = np.floor(np.linspace(0, np.sqrt(N * 0.8), K)**2).astype(np.int64) + 1
  elif K == 1:
    if kind == 'dp_seg':
      _dp_inputs(N, ms_eps, schedule)
    steps = [N]
  elif kind == 'linear':
    steps, c, stride = [], 1.0, (N - 1) / (K - 1)
    for _ in range(K):
      steps.append(round(c))
      c += stride
  elif kind == 'dp_seg':
    steps = dp_seg(N, K, *_dp_inputs(N, ms_eps, schedule))
  else:
    steps = power(N, K, int(_POWER.match(kind).group(1)))
  return np.concatenate([[0], np.asarray(steps, dtype=np.int64)])


def power(N, K, p):
  """EAD's power<p> steps (K >= 2), 1-based, strictly increasing, 1 .. N."""
  ys = [k / (K - 1) for k in range(K)][::-1]
  steps = [round((N - 1) * (1 - y**(1.0 / p)) + 1) for y in ys]
  for i in range(1, K):
    if steps[i] <= steps[i - 1]:
      steps[i] = steps[i - 1] + 1
  if steps[0] != 1 or steps[-1] != N:
    raise ValueError(f'power{p} with K={K} does not fit in 1..{N}')
  return steps


def _dp_inputs(N, ms_eps, schedule):
  if ms_eps is None or schedule is None:
    raise ValueError("trajectory 'dp_seg' needs ms_eps (Gamma, [N + 1]) and the schedule")
  ms_eps = np.asarray(ms_eps, np.float64)
  if ms_eps.shape != (N + 1,) or schedule.N != N:
    raise ValueError(f"trajectory 'dp_seg' needs ms_eps of shape ({N + 1},) and a schedule "
                     f'with N={N}; got {ms_eps.shape} and N={schedule.N}')
  return ms_eps, np.asarray(schedule.log_alphabar, np.float64)


def dp_split(ms_eps, N, K):
  """(K1, N1, K2, num_bad) of EAD's `_split` (reference A.6).

  n* = first n in 1..N with Gamma_n > 1 (N + 1 if none), num_bad = 2 (N - n* + 1),
  N1 = N - num_bad, K1 = ceil((1 - 0.8 num_bad / N) K), K2 = K - K1; then in this
  order K1 <- min(K1, N1), K2 <- min(K2, num_bad), K2 <- 1 if num_bad > 0 and
  K2 = 0, each time re-deriving the other as K minus it.
  """
  bad = np.nonzero(np.asarray(ms_eps)[1:N + 1] > 1)[0]
  n_star = int(bad[0]) + 1 if len(bad) else N + 1
  num_bad = 2 * (N - n_star + 1)
  N1 = N - num_bad
  K1 = math.ceil((1.0 - 0.8 * num_bad / N) * K)
  K2 = K - K1
  if K1 > N1:
    K1 = N1
    K2 = K - K1
  if K2 > num_bad:
    K2 = num_bad
    K1 = K - K2
  if num_bad > 0 and K2 == 0:
    K2 = 1
    K1 = K - K2
  if num_bad > N or N1 < 1 or not 1 <= K1 <= N1 or (K1 == 1 and N1 > 1) or K2 > num_bad:
    raise ValueError(f'dp_seg cannot place K={K} steps: Gamma exceeds 1 from n={n_star} '
                     f'(N1={N1}, K1={K1}, K2={K2}); check the ms_eps estimate')
  return K1, N1, K2, num_bad


def dp_cost(ms_eps, log_alphabar, N1):
  """F[s, t] = log(1 - beta_{t|s} Gamma_t / (1 - alphabar_t)) for 1 <= s < t <= N1, else inf.

  beta_{t|s} = 1 - alphabar_t / alphabar_s. Differs from log(sigma*^2 / beta~(s, t))
  (the unclamped Analytic-DDPM variance) by a term whose sum over any path from
  1 to N1 is the same, so the minimising path is the same (reference A.6).
  """
  la = np.asarray(log_alphabar, np.float64)[:N1 + 1]
  g = np.asarray(ms_eps, np.float64)[:N1 + 1]
  n = np.arange(N1 + 1)
  s, t = n[:, None], n[None, :]
  valid = (s >= 1) & (s < t)
  with np.errstate(invalid='ignore', divide='ignore', over='ignore'):
    b_ts = -np.expm1(la[None, :] - la[:, None])
    sigma2_t = -np.expm1(la)[None, :]
    f = np.log1p(-b_ts * g[None, :] / sigma2_t)
  return np.where(valid, f, np.inf)


def dp_path(F, N1, K1):
  """The K1-point increasing path 1 = p_1 < ... < p_K1 = N1 minimising sum F[p_i, p_i+1].

  EAD's `_solve_fn_dp`: K1 = N1 gives 1..N1; cost[k, n] is the best k-point path
  from 1 ending at n; ties go to the smallest predecessor (numpy argmin).
  """
  if K1 == N1:
    return list(range(1, N1 + 1))
  if K1 == 2:
    return [1, N1]
  cost = np.full(N1 + 1, np.inf)
  cost[2:N1] = F[1, 2:N1]
  back = []
  for _ in range(3, K1 + 1):
    tot = cost[:, None] + F
    back.append(np.argmin(tot, axis=0))
    cost = np.min(tot, axis=0)
  path = [N1]
  for arg in reversed(back):
    path.append(int(arg[path[-1]]))
  path.append(1)
  return path[::-1]


def dp_seg(N, K, ms_eps, log_alphabar):
  """Analytic-DPM's dp_seg steps (K >= 2): DP path on 1..N1, uniform tail on the rest.

  The tail is round-half-to-even(N - k num_bad / K2) for k = 0..K2 - 1, increasing.
  """
  K1, N1, K2, num_bad = dp_split(ms_eps, N, K)
  steps = dp_path(dp_cost(ms_eps, log_alphabar, N1), N1, K1)
  tail = [round(N - k * num_bad / K2) for k in range(K2)][::-1] if K2 > 0 else []
  steps = steps + tail
  if len(steps) != K or np.any(np.diff(steps) <= 0) or steps[0] != 1 or steps[-1] != N:
    raise ValueError(f'dp_seg gave an invalid path for N={N}, K={K}: {steps}')
  return steps
