"""Analytic-DPM's Gamma_n = E||eps_hat(x_n, n)||^2 / d (ms_eps), estimated once and cached.

Saved as DIR/ms_eps/<ckpt_step>-<schedule>_<N>-<time_input>-n<M>-s<seed>.npz (key
`ms_eps`, float64 [N + 1], index 0 unused) and reused only when every field of the
name matches. M training examples (config.sampling.ms_eps_samples), one noise draw
each per step (reference A.5); the noise comes from the config seed's 'ms_eps' stream.

config.sampling.ms_eps_path imports a file instead (Extended Analytic-DPM's released
`torch.save`d numpy arrays, read through a numpy-only allow-list, never a plain unpickle;
or .npy / .npz): it must hold N + 1 finite values >= 0 for the model's schedule.
"""
import os
import time

import numpy as np

from data import datasets
from diffusion import analytic
from models.convert import checkpoint_io
from training import inference
from training import io
from training import rng


def path(config, workdir, model, step):
  s = config.sampling
  name = (f'{step}-{config.diffusion.schedule}_{config.diffusion.num_steps}-'
          f'{model.spec.time_input}-n{s.ms_eps_samples}-s{config.seed}.npz')
  return os.path.join(workdir, 'ms_eps', name)


def load_file(file, num_steps):
  """Gamma_n from a file (module docstring) as float64 [N + 1]."""
  arr = checkpoint_io.load_array(file, key='ms_eps')
  if arr.shape != (num_steps + 1,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
    raise inference.InferenceError(
        f'config.sampling.ms_eps_path={file!r} holds {arr.dtype} {list(arr.shape)}: Gamma_n '
        f'for this schedule is {num_steps + 1} finite values >= 0 (index 0 unused)')
  return arr.astype(np.float64)


def load_or_estimate(config, workdir, model, params, sched, step):
  """ms_eps: imported from config.sampling.ms_eps_path, or for (checkpoint step, schedule,
  time input, M, seed) cached or estimated."""
  if config.sampling.ms_eps_path:
    ms_eps = load_file(config.sampling.ms_eps_path, sched.N)
    print(f'ms_eps: imported {config.sampling.ms_eps_path} ({sched.N + 1} values)', flush=True)
    return ms_eps
  file = path(config, workdir, model, step)
  if os.path.exists(file):
    print(f'ms_eps: reusing {file}', flush=True)
    return np.load(file)['ms_eps']
  m = config.sampling.ms_eps_samples
  data = datasets.load(config, 'train', m).batch(0)['x']
  t0 = time.time()
  ms_eps = analytic.estimate_ms_eps(model.apply, params, model.spec, sched, data,
                                    rng.stream(config.seed, 'ms_eps'),
                                    batch_size=min(m, 1000))
  cost = time.time() - t0
  io.savez(file, ms_eps=np.asarray(ms_eps, np.float64))
  print(f'ms_eps: estimated on {m} examples x {sched.N} steps ({m * sched.N} NFE) '
        f'in {cost:.1f}s -> {file}', flush=True)
  return ms_eps
