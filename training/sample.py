"""--mode=sample: draw config.sampling.num_samples samples, write .npz and a plot."""
import functools
import math
import os

import jax
from jax.experimental import multihost_utils
import numpy as np
import tqdm

from diffusion import ddpm as ddpm_math
from sampling import ddpm
from training import inference
from training import io
from training import mesh as mesh_lib
from training import rng

# method -> the reverse variance it uses (None: config.diffusion.var_type).
SAMPLERS = {'ddpm': None, 'sn_ddpm': 'sn', 'npr_ddpm': 'npr'}


def var_type(config):
  return SAMPLERS[config.sampling.method] or config.diffusion.var_type


def sampler_fn(config, model, sched):
  """A jitted (params, keys) -> x for config.sampling, and its NFE."""
  s = config.sampling
  steps = s.steps or sched.N
  fn = functools.partial(ddpm.sample, model.apply, spec=model.spec, schedule=sched,
                         shape=model.spec.data_shape, steps=steps,
                         var_type=var_type(config), trajectory=s.trajectory)
  return jax.jit(lambda params, keys: fn(params, keys=keys)[0]), steps


def scatter_plot(x, path, title):
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.scatter(x[:, 0], x[:, 1], s=0.5, alpha=0.4)
  ax.set_aspect('equal')
  ax.set_title(title)
  io.save_figure(fig, path)
  plt.close(fig)


def sample(config, workdir, checkpoint_path=None):
  s = config.sampling
  mesh = mesh_lib.make_mesh()
  model, params, sched, step = inference.load(config, workdir, checkpoint_path, mesh)
  needs = {'learned': ('var_values',), **ddpm_math.COVARIANCE_OUTPUTS}.get(var_type(config), ())
  missing = [k for k in needs if k not in model.spec.outputs]
  if missing:
    raise inference.InferenceError(
        f'config.sampling.method={s.method!r} with variance {var_type(config)!r} needs the '
        f'model outputs {", ".join(missing)}, which {model.spec.family} does not have')
  fn, nfe = sampler_fn(config, model, sched)
  bs = s.batch_size
  keys_fn = rng.example_keys_fn(lambda: jax.random.key(s.seed), bs, mesh_lib.data_sharding(mesh))
  num_batches = math.ceil(s.num_samples / bs)
  out = []
  for b in tqdm.trange(num_batches, desc=f'{s.method} sampling', unit='batch',
                       disable=jax.process_index() > 0):
    x = fn(params, keys_fn(b * bs))
    out.append(np.asarray(multihost_utils.process_allgather(x, tiled=True)))
  x = np.concatenate(out)[:s.num_samples].astype(np.float32)
  steps = s.steps or sched.N
  path = os.path.join(workdir, 'samples', f'{s.method}_{steps}_{s.seed}.npz')
  if jax.process_index() == 0:
    io.savez(path, arr_0=x, nfe=np.int64(nfe))
    scatter_plot(x, path[:-4] + '.png', f'{model.spec.family} {s.method} K={steps} (step {step})')
  print(f'wrote {len(x)} samples to {path}; NFE {nfe} per sample', flush=True)
  return x, nfe
