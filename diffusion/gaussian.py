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
