"""--mode=eval: the discrete VLB (nats and bits/dim) on the held-out split."""
import functools
import math
import os

import jax
from jax.experimental import multihost_utils
import numpy as np
import tqdm

from data import datasets
from likelihood import vlb
from training import inference
from training import io
from training import mesh as mesh_lib
from training import rng

METHODS = ('vlb',)


def evaluate(config, workdir, checkpoint_path=None):
  e = config.eval
  mesh = mesh_lib.make_mesh()
  model, params, sched, step = inference.load(config, workdir, checkpoint_path, mesh)
  bs = e.batch_size
  source = datasets.load(config, 'eval', bs, jax.process_count())
  count = min(e.num_examples, source.size)  # never repeat held-out examples
  bound = functools.partial(vlb.vlb, model.apply, spec=model.spec, schedule=sched,
                            var_type=config.diffusion.var_type, steps=e.steps or None)
  fn = jax.jit(lambda params, x, keys: bound(params, x0=x, keys=keys)[0])
  keys_fn = rng.example_keys_fn(lambda: rng.stream(config.seed, 'eval'), bs,
                               mesh_lib.data_sharding(mesh))
  nats = []
  for b in tqdm.trange(math.ceil(count / bs), desc='vlb', unit='batch',
                       disable=jax.process_index() > 0):
    x = mesh_lib.shard_batch(mesh, source.batch(b, jax.process_index()))['x']
    nats.append(np.asarray(multihost_utils.process_allgather(fn(params, x, keys_fn(b * bs)),
                                                            tiled=True)))
  nats = np.concatenate(nats)[:count].astype(np.float64)
  dims = int(np.prod(model.spec.data_shape))
  bpd = nats / (dims * np.log(2.0))
  metrics = dict(method=e.method, nats=float(nats.mean()), bpd=float(bpd.mean()),
                 bpd_stderr=float(bpd.std(ddof=1) / np.sqrt(len(bpd))),
                 nfe=int(e.steps or sched.N), num_examples=int(len(bpd)), checkpoint_step=int(step))
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, 'eval', 'metrics.json'), metrics)
  print(' '.join(f'{k}={v}' for k, v in metrics.items()), flush=True)
  return metrics
