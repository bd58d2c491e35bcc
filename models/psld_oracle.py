"""The exact PSLD oracle: a Gaussian mixture pushed through the phase-space kernel.

Data p(x0) = sum_k w_k N(mu_k, diag(s_k^2)) and the initial momentum m0 ~ N(0, kappa M)
(independent of x0; the law of z_t is the same for HSM and DSM training, only the
regression target differs). The kernel is linear-Gaussian per pair (x_j, m_j)
(diffusion/psld.py), so z_t = [x_t, m_t] is again a Gaussian mixture in 2D dims whose
component k is, per coordinate pair j, independent across j:

  N((x_j, m_j); Phi(B) (mu_kj, 0), C_kj),  C_kj = kernel covariance from diag(s_kj^2, kappa M)

(numerical_eps included, as PSLD's kernel). With d = (x_j, m_j) - mean, det = cxx cmm - cxm^2
and the responsibilities r_k(z) (log-sum-exp: small within-mode stds underflow otherwise):

  log p_t(z) = logsumexp_k [log w_k - 1/2 sum_j ((cmm dx^2 - 2 cxm dx dm + cxx dm^2) / det
                                                 + log((2 pi)^2 det))]
  score      = sum_k r_k (-C_k^-1 d_k)
  eps        = E[eps | z_t] = -L^T score, L the Cholesky factor of the training kernel
               (z_t = mean(x0[, m0]) + L eps, so Tweedie gives grad log p = -L^-T E[eps | z]);
               HSM by default (process.mode), DSM's target with mode='dsm'.
  logits     = log w_k + log N_k(z): log softmax gives log p_t(y = k | z), the exact
               time-conditioned classifier of the component label (for classifier guidance).

A PSLD sampler converts eps back with the HSM factor (B.7.1), so the HSM oracle gives it
the exact score and the DSM oracle reproduces what a DSM-trained network would get.
"""
import jax
import jax.numpy as jnp
import numpy as np

from diffusion import psld
from models.adapter import Model, ModelSpec

OUTPUTS = ('eps', 'score', 'log_prob', 'logits')


def outputs(mix, process, z, t, mode=None):
  """Exact outputs for z [B, 2D] (x = z[:, :D], m = z[:, D:]), forward time t scalar or [B].

  Returns eps, score [B, 2D], log_prob [B] and logits [B, K] in the dtype of z (the
  kernel's coefficients in float64). `mix` is a models.gmm_oracle.GaussianMixture; mode
  (default process.mode) picks eps's kernel.
  """
  z = jnp.asarray(z)
  dt = z.dtype
  x, m = psld.split(z)
  mu = jnp.asarray(mix.means, dt)                                                   # [K, D]
  t = jnp.asarray(t, jnp.float64)
  col = lambda v: jnp.asarray(v, dt)[..., None, None]                              # [B|1, 1, 1]
  phi_xx, _, phi_mx, _ = (col(c) for c in process.transition(process.B(t)))
  cov = process.cov(t[..., None, None], np.asarray(mix.stds)**2, process.kappa * process.M)
  cxx, cxm, cmm, det = (jnp.asarray(c, dt) for c in cov + (cov[0] * cov[2] - cov[1]**2,))
  dx, dm = x[:, None] - phi_xx * mu, m[:, None] - phi_mx * mu                       # [B, K, D]
  quad = (cmm * dx**2 - 2 * cxm * dx * dm + cxx * dm**2) / det
  log_n = -0.5 * jnp.sum(quad + jnp.log((2 * np.pi)**2 * det), -1)                 # [B, K]
  log_wn = jnp.log(jnp.asarray(mix.weights, dt)) + log_n
  log_prob = jax.nn.logsumexp(log_wn, -1)
  r = jnp.exp(log_wn - log_prob[:, None])[..., None]                                # [B, K, 1]
  score = psld.join(-jnp.sum(r * (cmm * dx - cxm * dm) / det, 1),
                    -jnp.sum(r * (cxx * dm - cxm * dx) / det, 1))
  return {'eps': process.eps_from_score(score, t, mode).astype(dt), 'score': score.astype(dt),
          'log_prob': log_prob, 'logits': log_wn}


def sample(mix, process, rng, n, t):
  """n exact draws of z_t (float64 numpy [n, 2D]) with a numpy Generator: x0 from the
  mixture, m0 ~ N(0, kappa M), then the DSM kernel (the same law as the HSM one)."""
  x0, _ = mix.sample(rng, n)
  m0 = np.sqrt(process.kappa * process.M) * rng.standard_normal(x0.shape)
  eps = rng.standard_normal((n, 2 * mix.dim))
  return np.asarray(process.perturb(x0, t, eps, m0=m0, mode='dsm'))


def denoised_sample(mix, process, rng, n, eval_eps, probability_flow=False):
  """n exact draws (float64 numpy [n, D]) of what a PSLD sampler with `denoise` targets:
  z ~ p_{eval_eps}, then the final Euler step z + fbar(z, T - eval_eps) eval_eps with the
  exact score (the SDE's drift for EM / splitting, the probability flow's for the ODE), x
  half. Not the data law: at eval_eps = 1e-3 the kernel's own x-std is 0.009."""
  z = sample(mix, process, rng, n, eval_eps)
  score = outputs(mix, process, z, eval_eps)['score']
  step = process.reverse_drift(z, eval_eps, score, probability_flow) * eval_eps
  return np.asarray(z + step)[:, :mix.dim]


def oracle_model(mix, process, mode=None):
  """The oracle behind the model adapter: apply(params, z, t, y) -> outputs(...).

  time_input 'psld_t': the second argument (the `lam` slot of the adapter contract) is
  PSLD's forward time t, as PSLD samplers pass it. data_shape is z's, (2D,). No parameters.
  """
  spec = ModelSpec(family='psld_oracle', prediction='eps', outputs=OUTPUTS, time_input='psld_t',
                   round='none', N=None, data_shape=(2 * mix.dim,), num_classes=0,
                   data_range=None, process='psld')

  def apply(params, z, t, y=None, *, train=False, rngs=None):
    del params, y, train, rngs
    return outputs(mix, process, z, t, mode)

  return Model(spec=spec, init=lambda key: {}, apply=apply)
