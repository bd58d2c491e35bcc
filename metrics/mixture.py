"""Distribution error of samples of a Gaussian mixture whose modes are far apart.

For narrow, well-separated modes (the toy sets: within-mode std 0.014 / 0.018, modes 1.08 /
0.71 apart) a distance between whole sample sets is dominated by the binomial noise of the
mode weights (mass moved by a mode spacing), which hides the within-mode law where samplers
differ. The error is therefore split in two, each sample assigned to its nearest mode mean
(a misassignment of the exact law needs a > 19-std deviation here):

  weights  max_k |w_k(x) - w_k(ref)|, the fraction of samples per mode;
  offsets  SW2(x - mu_k(x), ref - mu_k(ref)) / scale: the sliced Wasserstein-2 distance of
           the pooled within-mode offsets, in units of `scale` (the modes' std); samples
           far from every mode (a diverged sampler) make it large.

Noise floors at n samples against a large reference: weights sqrt(w (1 - w) / n) (0.0033 for
8 modes at n = 10^4), offsets about 0.02 at n = 10^4 (measure it with an independent exact
set of the same size).
"""
import numpy as np

from metrics.sliced_wasserstein import sliced_wasserstein


def assign(x, means):
  """(offsets x - mu_k [n, D], nearest mode index k [n]) for x [n, D], means [K, D]."""
  x = np.asarray(x, np.float64)
  k = np.linalg.norm(x[:, None] - np.asarray(means)[None], axis=-1).argmin(1)
  return x - np.asarray(means)[k], k


def errors(x, ref, means, scale, num_projections=64, seed=0):
  """{'weights': max weight error, 'offsets': SW2 of the offsets / scale} of x against ref."""
  ox, kx = assign(x, means)
  orf, kr = assign(ref, means)
  wx = np.bincount(kx, minlength=len(means)) / len(x)
  wr = np.bincount(kr, minlength=len(means)) / len(ref)
  return {'weights': float(np.abs(wx - wr).max()),
          'offsets': sliced_wasserstein(ox, orf, num_projections=num_projections, seed=seed) / scale}
