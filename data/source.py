"""A stateless data source over random-access examples.

`batch(step, process_index)` returns this process's rows of global batch `step`.
Global position g = step * B + i (i < B) reads example perm_e[g mod M] with
epoch e = g div M and perm_e a permutation that depends only on (seed, e).
No iterator state exists, so a run restored at step k reads exactly the batches
an uninterrupted run reads from step k on.
"""
import functools

import numpy as np


class ArraySource:
  """In-memory examples (toy sets, digits, mnist5k) behind the stateless interface."""

  def __init__(self, arrays, batch_size, seed, num_processes=1, shuffle=True):
    self.arrays = arrays  # dict name -> np.ndarray, equal first dimension
    self.size = len(next(iter(arrays.values())))
    if batch_size % num_processes:
      raise ValueError(f'batch size {batch_size} is not divisible by {num_processes} processes')
    self.batch_size, self.seed = batch_size, seed
    self.num_processes, self.shuffle = num_processes, shuffle

  @functools.lru_cache(maxsize=2)
  def _permutation(self, epoch):
    if not self.shuffle:
      return np.arange(self.size)
    return np.random.default_rng([self.seed, epoch]).permutation(self.size)

  def indices(self, step, process_index=0):
    local = self.batch_size // self.num_processes
    g = step * self.batch_size + process_index * local + np.arange(local, dtype=np.int64)
    epochs, within = np.divmod(g, self.size)
    out = np.empty_like(g)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self._permutation(int(e))[within[sel]]
    return out

  def batch(self, step, process_index=0):
    idx = self.indices(step, process_index)
    return {k: v[idx] for k, v in self.arrays.items()}
