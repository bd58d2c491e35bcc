"""The exact Gaussian-mixture oracle: closed-form model outputs at any noise level.

Data p(x0) = sum_k w_k N(mu_k, diag(s_k^2)). Under x_t = alpha x0 + sigma eps the
diffused marginal of a Gaussian mixture is again a Gaussian mixture,

  p_t(x) = sum_k w_k N(x; alpha mu_k, diag(v_k)),   v_k = alpha^2 s_k^2 + sigma^2,

and within component k the pair (x0, x_t) is jointly Gaussian, so with the
responsibilities r_k(x) = w_k N(x; alpha mu_k, v_k) / p_t(x) (log-sum-exp: a small
within-mode std underflows otherwise) and d_k = x - alpha mu_k (all elementwise):

  score    = grad log p_t(x) = -sum_k r_k d_k / v_k
  x0       = E[x0 | x]  = sum_k r_k m_k,  m_k = mu_k + alpha s_k^2 / v_k d_k
  E[eps|x] = (x - alpha x0) / sigma = sum_k r_k e_k,  e_k = sigma d_k / v_k
             (Tweedie's formula: E[eps | x] = -sigma score)
  Var[eps | x] = (alpha / sigma)^2 Var[x0 | x]
               = sum_k r_k ((e_k - E[eps|x])^2 + alpha^2 s_k^2 / v_k)
  eps2     = E[eps^2 | x] = E[eps|x]^2 + Var[eps | x]
  eps_res  = E[(eps - eps_hat)^2 | x] = Var[eps | x] + (1 - c)^2 E[eps|x]^2
             for the imperfect mean eps_hat = c E[eps|x] (c = eps_scale), i.e.
             eps2 - 2 c E[eps|x]^2 + c^2 E[eps|x]^2 (Bao et al. 2022, "Estimating
             the optimal covariance with imperfect mean in diffusion probabilistic
             models": SN-DPM learns eps2, NPR-DPM learns eps_res).

The forms above are cancellation-free: alpha = 0 (pure noise) gives x0 = sum_k w_k mu_k
and sigma -> 0 never divides by sigma. The returned `eps` is eps_hat; x0 and score stay
exact. The toy sets' mixtures come from `data.toy.mixture`.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from diffusion import schedules
from models.adapter import Model, ModelSpec

OUTPUTS = ('eps', 'x0', 'score', 'eps2', 'eps_res', 'log_prob')


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixture:
  """sum_k weights[k] N(means[k], diag(stds[k]^2)); float64 numpy, stds [K, D]."""
  means: np.ndarray    # [K, D]
  stds: np.ndarray     # [K, D]
  weights: np.ndarray  # [K], sums to 1

  @classmethod
  def create(cls, means, stds, weights=None):
    """Stds scalar, [K] or [K, D]; weights default uniform and are normalised."""
    means = np.atleast_2d(np.asarray(means, np.float64))
    k = means.shape[0]
    stds = np.asarray(stds, np.float64)
    stds = np.broadcast_to(stds.reshape(k, 1) if stds.ndim == 1 else stds, means.shape).copy()
    weights = np.ones(k) if weights is None else np.asarray(weights, np.float64)
    return cls(means, stds, weights / weights.sum())

  @property
  def dim(self):
    return self.means.shape[1]

  def sample(self, rng, n):
    """(x0 [n, D] float64, component index [n]) drawn with a numpy Generator."""
    idx = rng.choice(len(self.weights), size=n, p=self.weights)
    return self.means[idx] + self.stds[idx] * rng.standard_normal((n, self.dim)), idx


def outputs(mix, x, alpha, sigma, eps_scale=1.0):
  """The exact outputs (module docstring) for x [B, D], alpha and sigma scalars or [B].

  Returns a dict of OUTPUTS in the dtype of x: log_prob [B], the others [B, D].
  """
  x = jnp.asarray(x)
  dt = x.dtype
  mu, s2 = jnp.asarray(mix.means, dt), jnp.asarray(mix.stds, dt)**2           # [K, D]
  a = jnp.asarray(alpha, dt)[..., None, None]                                 # [B|1, 1, 1]
  sg = jnp.asarray(sigma, dt)[..., None, None]
  v = a**2 * s2 + sg**2                                                       # [B|1, K, D]
  d = x[:, None, :] - a * mu                                                  # [B, K, D]
  log_n = -0.5 * jnp.sum(d**2 / v + jnp.log(2 * np.pi * v), -1)              # [B, K]
  log_wn = jnp.log(jnp.asarray(mix.weights, dt)) + log_n
  log_prob = jax.nn.logsumexp(log_wn, -1)
  r = jnp.exp(log_wn - log_prob[:, None])[..., None]                          # [B, K, 1]
  e_k = sg * d / v
  e = jnp.sum(r * e_k, 1)
  var_eps = jnp.sum(r * ((e_k - e[:, None]) ** 2 + a**2 * s2 / v), 1)
  return {'eps': eps_scale * e,
          'x0': jnp.sum(r * (mu + a * s2 / v * d), 1),
          'score': -jnp.sum(r * d / v, 1),
          'eps2': e**2 + var_eps,
          'eps_res': var_eps + (1 - eps_scale)**2 * e**2,
          'log_prob': log_prob}


def oracle_model(mix, process='vp', eps_scale=1.0, N=None):
  """The oracle behind the model adapter: apply(params, x_t, lam) -> outputs(...).

  lam [B] is mapped to (alpha, sigma) by `schedules.PROCESSES[process]` (vp:
  alpha^2 = sigmoid(lam), sigma^2 = sigmoid(-lam); ve: alpha = 1, sigma =
  exp(-lam / 2)); everything is computed in the dtype of x_t. No parameters.
  """
  if process not in schedules.PROCESSES:
    raise ValueError(f'unknown process {process!r}; allowed: {", ".join(schedules.PROCESSES)}')
  spec = ModelSpec(family='gmm_oracle', prediction='eps', outputs=OUTPUTS, time_input='lam',
                   round='none' if N is None else 'index', N=N, data_shape=(mix.dim,),
                   num_classes=0, data_range=None, process=process)

  def apply(params, x_t, lam, y=None, *, train=False, rngs=None):
    del params, y, train, rngs
    alpha, sigma = schedules.PROCESSES[process](jnp.asarray(lam))
    return outputs(mix, x_t, alpha, sigma, eps_scale)

  return Model(spec=spec, init=lambda key: {}, apply=apply)
