"""2-D toy data of tqch/ddpm-torch (`ddpm_torch/toy/toy_data.py`, reference B.4.1).

Each set is standardised by a closed-form population standard deviation:
  gaussian8:  modes 2 (cos(pi k/4), sin(pi k/4)), k = 0..7, noise std 0.02,
              divided by sqrt(0.02^2 + 2^2 / 2)
  gaussian25: modes 2 (i, j), i, j in -2..2 (i-major), noise std 0.05, point k
              uses mode k mod 25, divided by sqrt(0.05^2 + 2^2 * 2)
  swissroll:  scikit-learn make_swiss_roll(noise=0.25), columns x and z, divided
              per axis by sqrt(39 pi^2/8 - 4 -+ 0.25 + 0.25^2)
The reference draws gaussian8's modes from numpy's global RNG and builds the
training set with fresh randomness; here a set is a pure function of
(name, size, seed), so runs are reproducible.
"""
import numpy as np

DATASETS = ('gaussian8', 'gaussian25', 'swissroll')


def mixture(name):
  """(means [K, 2], std, weights [K]) of a standardised Gaussian-mixture toy set."""
  if name == 'gaussian8':
    k = np.arange(8)
    modes = 2.0 * np.stack([np.cos(np.pi * k / 4), np.sin(np.pi * k / 4)], axis=1)
    std, scale = 0.02, np.sqrt(0.02**2 + 2**2 * 0.5)
  elif name == 'gaussian25':
    i, j = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing='ij')
    modes = 2.0 * np.stack([i.ravel(), j.ravel()], axis=1).astype(np.float64)
    std, scale = 0.05, np.sqrt(0.05**2 + 2**2 * 2)
  else:
    raise ValueError(f'{name!r} is not a Gaussian mixture; allowed: gaussian8, gaussian25')
  return modes / scale, std / scale, np.full(len(modes), 1.0 / len(modes))


def make(name, size, seed):
  """A fixed set of `size` standardised points (float32 [size, 2]) from `seed`."""
  rng = np.random.default_rng(seed)
  if name == 'gaussian8':
    means, std, _ = mixture(name)
    comp = rng.integers(0, len(means), size)
    x = means[comp] + std * rng.standard_normal((size, 2))
  elif name == 'gaussian25':
    means, std, _ = mixture(name)
    comp = np.arange(size) % len(means)
    x = means[comp] + std * rng.standard_normal((size, 2))
  elif name == 'swissroll':
    from sklearn.datasets import make_swiss_roll
    pts, _ = make_swiss_roll(size, noise=0.25, random_state=int(rng.integers(2**31)))
    c = 39 * np.pi**2 / 8 - 4 + 0.25**2
    x = pts[:, [0, 2]] / np.sqrt([c - 0.25, c + 0.25])
  else:
    raise ValueError(f'unknown toy dataset {name!r}; allowed: {", ".join(DATASETS)}')
  return x.astype(np.float32)
