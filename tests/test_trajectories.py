"""Timestep subsequences: the references' example values (A.6, B.3) and their properties."""
import itertools

import numpy as np
import pytest

from diffusion import timesteps
from diffusion.schedules import DiscreteSchedule


def test_linear_is_unchanged():
  np.testing.assert_array_equal(timesteps.trajectory(1000, 10),
                                [0, 1, 112, 223, 334, 445, 556, 667, 778, 889, 1000])
  np.testing.assert_array_equal(timesteps.trajectory(1000, 10, 'linear'),
                                timesteps.trajectory(1000, 10))
  assert timesteps.trajectory(1000, 25)[13] == 500


def test_quad_ddim_reference_example():
  # Reference A.6: N = 1000, K = 10 -> [1, 10, 40, 89, 159, 247, 356, 484, 633, 801].
  np.testing.assert_array_equal(timesteps.trajectory(1000, 10, 'quad_ddim'),
                                [0, 1, 10, 40, 89, 159, 247, 356, 484, 633, 801])
  tau = timesteps.trajectory(4000, 50, 'quad_ddim')
  assert len(tau) == 51 and tau[1] == 1 and tau[-1] == int(0.8 * 4000) + 1
  assert np.all(np.diff(tau[1:]) > 0)


def test_power_values_and_properties():
  # Hand-computed: power1 on N = 8, K = 5: 1, 2.75, 4.5, 6.25, 8 -> 4.5 rounds half to even.
  np.testing.assert_array_equal(timesteps.trajectory(8, 5, 'power1'), [0, 1, 3, 4, 6, 8])
  # power2, N = 10, K = 6: 9 (1 - sqrt(y)) + 1 = 1, 1.95, 3.03, 4.31, 5.98, 10.
  np.testing.assert_array_equal(timesteps.trajectory(10, 6, 'power2'), [0, 1, 2, 3, 4, 6, 10])
  # power3, N = 10, K = 8: rounds to 1, 1, 2, 3, 3, 4, 5, 10; made strictly increasing.
  np.testing.assert_array_equal(timesteps.trajectory(10, 8, 'power3'),
                                [0, 1, 2, 3, 4, 5, 6, 7, 10])
  for p, N, K in [(2, 1000, 10), (2, 1000, 100), (3, 4000, 50), (4, 100, 100), (2, 50, 2)]:
    tau = timesteps.trajectory(N, K, f'power{p}')
    assert len(tau) == K + 1 and tau[1] == 1 and tau[-1] == N and np.all(np.diff(tau) > 0)
    y = np.arange(K)[::-1] / (K - 1)
    raw = np.round((N - 1) * (1 - y**(1 / p)) + 1)
    assert np.all(tau[1:] >= raw)  # entries only ever move up
  # Dense near n = 1: the first jump of power2 is smaller than linear's.
  assert np.diff(timesteps.trajectory(1000, 10, 'power2'))[1] < 111
  # power1 is the linear formula without the accumulated stride: equal up to rounding.
  d = timesteps.trajectory(1000, 25, 'power1') - timesteps.trajectory(1000, 25)
  assert np.abs(d).max() <= 1


def test_tq_linear_and_quadratic_reference_examples():
  # Reference B.3: 0-based indices S, mapped to our grid as n = S + 1.
  tau = timesteps.trajectory(1000, 50, 'tq_linear')
  np.testing.assert_array_equal(tau, np.concatenate([[0], np.arange(0, 1000, 20) + 1]))
  assert tau[-1] - 1 == 980  # sampling starts at tqch's index 980
  tau = timesteps.trajectory(1000, 30, 'tq_linear')
  assert len(tau) - 1 == 31  # more than K entries when N % K != 0
  tau = timesteps.trajectory(1000, 50, 'tq_quadratic')
  assert len(tau) - 1 == 50 and len(np.unique(tau[1:])) == 49
  assert tau[-1] - 1 == 800
  np.testing.assert_array_equal(tau[:6] - 1, [-1, 0, 0, 1, 3, 5])  # duplicates as tqch has them
  tau = timesteps.trajectory(1000, 100, 'tq_quadratic')
  assert len(tau) - 1 == 100 and len(np.unique(tau[1:])) == 97
  assert np.all(np.diff(tau) >= 0)


def _dp_brute_force(F, N1, K1):
  best, arg = np.inf, None
  for mid in itertools.combinations(range(2, N1), K1 - 2):
    path = (1,) + mid + (N1,)
    cost = sum(F[a, b] for a, b in zip(path[:-1], path[1:]))
    if cost < best:
      best, arg = cost, path
  return best, list(arg)


def test_dp_seg_split_and_tail():
  # Gamma_n > 1 from n* = 18 of N = 20: num_bad = 2 (20 - 18 + 1) = 6, N1 = 14,
  # K1 = ceil((1 - 0.8 * 0.3) K), K2 = K - K1, tail round(20 - k 6 / K2).
  N = 20
  gamma = np.concatenate([[0.0], np.linspace(0.05, 0.95, 17), [1.1, 1.2, 1.3]])
  assert timesteps.dp_split(gamma, N, 5) == (4, 14, 1, 6)
  assert timesteps.dp_split(gamma, N, 10) == (8, 14, 2, 6)
  sched = DiscreteSchedule.named('linear', N, 1e-3, 0.3)
  tau = timesteps.trajectory(N, 10, 'dp_seg', ms_eps=gamma, schedule=sched)
  np.testing.assert_array_equal(tau[-2:], [17, 20])  # round(20 - 3) = 17, 20
  assert tau[8] == 14 and tau[1] == 1 and len(tau) == 11
  # K1 > N1 is cut to N1 (the DP then takes 1..N1), the rest goes to the tail.
  assert timesteps.dp_split(gamma, N, 18) == (14, 14, 4, 6)
  np.testing.assert_array_equal(
      timesteps.trajectory(N, 18, 'dp_seg', ms_eps=gamma, schedule=sched)[1:15], np.arange(1, 15))
  # No bad region: everything is DP, from 1 to N.
  good = np.concatenate([[0.0], np.linspace(0.01, 0.99, N)])
  assert timesteps.dp_split(good, N, 6) == (6, 20, 0, 0)
  with pytest.raises(ValueError, match='ms_eps'):
    timesteps.trajectory(N, 5, 'dp_seg')


def test_dp_path_is_the_minimum_cost_path():
  N = 14
  sched = DiscreteSchedule.named('linear', N, 1e-2, 0.3)
  gamma = np.concatenate([[0.0], np.random.default_rng(0).uniform(0.05, 0.95, N)])
  F = timesteps.dp_cost(gamma, sched.log_alphabar, N)
  # The cost as the reference defines it: log(1 - beta_{t|s} Gamma_t / (1 - alphabar_t)).
  ab = sched.alphabar
  assert F[3, 9] == pytest.approx(np.log(1 - (1 - ab[9] / ab[3]) * gamma[9] / (1 - ab[9])), rel=1e-12)
  assert np.isinf(F[0, 5]) and np.isinf(F[5, 5]) and np.isinf(F[6, 5])
  for K1 in (3, 4, 6):
    path = timesteps.dp_path(F, N, K1)
    best, brute = _dp_brute_force(F, N, K1)
    assert sum(F[a, b] for a, b in zip(path[:-1], path[1:])) == pytest.approx(best, rel=1e-12)
    assert path == brute
  assert timesteps.dp_path(F, N, N) == list(range(1, N + 1))
  assert timesteps.dp_path(F, N, 2) == [1, N]


def test_dp_seg_on_gaussian_data_beats_linear():
  """Gamma_t = (1 - alphabar_t) / (alphabar_t s^2 + 1 - alphabar_t) for data N(0, s^2):
  the DP path's total cost is at most that of any other path, e.g. the linear one."""
  sched = DiscreteSchedule.named('linear', 200, 1e-4, 0.05)
  ab = sched.alphabar
  gamma = (1 - ab) / (ab * 0.25 + 1 - ab)
  gamma[0] = 0.0
  F = timesteps.dp_cost(gamma, sched.log_alphabar, 200)
  cost = lambda tau: sum(F[a, b] for a, b in zip(tau[1:-1], tau[2:]))
  dp = timesteps.trajectory(200, 10, 'dp_seg', ms_eps=gamma, schedule=sched)
  assert dp[1] == 1 and dp[-1] == 200 and len(dp) == 11 and np.all(np.diff(dp) > 0)
  for kind in ('linear', 'power2', 'power3'):
    assert cost(dp) <= cost(timesteps.trajectory(200, 10, kind)) + 1e-12


def test_kinds_and_errors():
  for kind in ('linear', 'power2', 'power13', 'quad_ddim', 'dp_seg', 'tq_linear', 'tq_quadratic'):
    timesteps.check_kind(kind)
  for bad in ('power', 'power0', 'power<p>', 'power2.5', 'cosine'):
    with pytest.raises(ValueError, match='allowed'):
      timesteps.check_kind(bad)
  with pytest.raises(ValueError):
    timesteps.trajectory(10, 11, 'tq_linear')
  # K = 1: the single jump N -> 0.
  for kind in ('linear', 'power2'):
    np.testing.assert_array_equal(timesteps.trajectory(7, 1, kind), [0, 7])
