"""Elementwise Gaussian log-densities and KL divergences (natural log)."""
import jax.numpy as jnp

LOG_2PI = 1.8378770664093453


def normal_kl(mean1, logvar1, mean2, logvar2):
  """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element:
  1/2 (-1 + logvar2 - logvar1 + e^(logvar1 - logvar2) + (mean1 - mean2)^2 e^-logvar2)."""
  return 0.5 * (-1.0 + logvar2 - logvar1 + jnp.exp(logvar1 - logvar2)
                + (mean1 - mean2)**2 * jnp.exp(-logvar2))


def normal_log_prob(x, mean, logvar):
  """log N(x; mean, e^logvar) per element."""
  return -0.5 * (LOG_2PI + logvar + (x - mean)**2 * jnp.exp(-logvar))


def approx_std_normal_cdf(z):
  """Phi~(z) = 1/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))), the CDF both DDPM references use."""
  return 0.5 * (1.0 + jnp.tanh(0.7978845608028654 * (z + 0.044715 * z**3)))


def discretized_log_prob(x, mean, logvar, data_range=(-1.0, 1.0)):
  """log P(x) of N(mean, e^logvar) discretised to the 256 levels of data_range, per element.

  In coordinates where the range is [-1, 1], with u+- = (x - mean +- 1/255) / sigma:
  log Phi~(u+) at the lowest level, log(1 - Phi~(u-)) at the highest, log(Phi~(u+) - Phi~(u-))
  between, each floored at 1e-12 (Ho et al. 2020 sec. 3.3; EAD `log_discretized_normal`,
  reference A.7).
  """
  lo, hi = data_range
  centre, half = (hi + lo) / 2.0, (hi - lo) / 2.0
  x, mean = (x - centre) / half, (mean - centre) / half
  inv = jnp.exp(-0.5 * logvar) * half
  cdf_plus = approx_std_normal_cdf(inv * (x - mean + 1.0 / 255.0))
  cdf_minus = approx_std_normal_cdf(inv * (x - mean - 1.0 / 255.0))
  p = jnp.where(x < -0.999, cdf_plus, jnp.where(x > 0.999, 1.0 - cdf_minus, cdf_plus - cdf_minus))
  return jnp.log(jnp.maximum(p, 1e-12))
