"""--mode=train: the training loop (big_vision order: logging, mesh, input,
model & optimiser, update step, checkpoint load, loop)."""
import os
import signal
import time
from typing import Any, NamedTuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import optax

from data import datasets
from training import build
from training import checkpoint
from training import images
from training import mesh as mesh_lib
from training import rng
from training import sample
from training import state as state_lib


def make_update(loss_fn, tx, ema_decay, state_sharding, replicated):
  """One jitted, donated step: (state, batch, key) -> (state, metrics).

  The step's noise comes from fold_in(key, state.step), drawn with the global
  batch shape, so the result is the same on any number of devices.
  """

  def update(state, batch, key):
    key = jax.random.fold_in(key, state.step)

    def objective(params):
      terms = loss_fn(params, batch, key)
      return jnp.mean(terms['loss']), terms

    (_, terms), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state_lib.ema_update(state.ema_params, params, state.step, ema_decay)
    metrics = {k: jnp.mean(v) for k, v in terms.items()}
    metrics.update(grad_norm=optax.global_norm(grads), param_norm=optax.global_norm(params))
    new = state.replace(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state)
    return new, metrics

  return jax.jit(update, donate_argnums=0, out_shardings=(state_sharding, replicated))


class Setup(NamedTuple):
  source: Any      # the stateless training data source
  schedule: Any
  model: Any       # the model adapter
  state: Any       # TrainState, replicated on the mesh
  update: Any      # jitted (state, batch, key) -> (state, metrics)
  key: Any         # the train stream's key, replicated
  meta: dict       # what each checkpoint records about the model


def setup(config, mesh):
  """Everything a training run needs on `mesh`, initialised from config.seed."""
  source = datasets.load(config, 'train', config.training.batch_size, jax.process_count())
  sched = build.schedule(build.schedule_kwargs(config))
  model = build.model(config.model.name, build.model_kwargs(config), sched)
  tx = state_lib.make_optimizer(config.optimizer)
  repl = mesh_lib.replicated(mesh)
  state = mesh_lib.create(lambda k: state_lib.create(model.init(k), tx), repl,
                          rng.stream(config.seed, 'init'))
  update = make_update(build.loss_fn(config, model, sched), tx, config.training.ema_decay, repl, repl)
  key = mesh_lib.create(lambda: rng.stream(config.seed, 'train'), repl)
  return Setup(source, sched, model, state, update, key, build.meta(config, model))


def grid_sampler(config, model, sched, mesh, workdir):
  """(ema_params, step, writer) -> writes DIR/samples/train_<step>.png and a TensorBoard image;
  None when config.training.sample_every is 0 or the data are not images."""
  n = config.training.sample_grid
  if not config.training.sample_every or len(model.spec.data_shape) != 3:
    return None
  n -= n % mesh.size
  fn, _ = sample.sampler_fn(config, model, sched)
  keys_fn = rng.example_keys_fn(lambda: jax.random.key(config.sampling.seed), n,
                                mesh_lib.data_sharding(mesh))
  y_fn = (sample.labels_fn(config.sampling.seed, model.spec.num_classes, n,
                           mesh_lib.data_sharding(mesh)) if model.spec.num_classes else None)

  def run(params, step, writer):
    x = fn(params, keys_fn(0), y_fn(0) if y_fn else None)
    x = images.quantize(multihost_utils.process_allgather(x, tiled=True))
    if jax.process_index() == 0:
      images.save_grid(x, os.path.join(workdir, 'samples', f'train_{step}.png'))
    writer.write_images(step, {'samples': images.grid(x)[None]})

  return run


def train(config, workdir):
  from clu import metric_writers  # imports TensorFlow: only where it is needed
  from clu import periodic_actions

  # --- Logging ---
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  num_steps = config.training.num_steps

  # --- Mesh, input pipeline, model, optimiser, update step ---
  mesh = mesh_lib.make_mesh()
  repl = mesh_lib.replicated(mesh)
  run = setup(config, mesh)
  state = run.state

  # --- Checkpoint load ---
  mgr = checkpoint.manager(checkpoint.directory(workdir), keep=config.training.keep_checkpoints)
  latest = mgr.latest_step()
  if latest is not None:
    targets = {k: checkpoint.abstract(getattr(state, k)) for k in ('params', 'ema_params', 'opt_state')}
    restored = checkpoint.restore(mgr, latest, dict(targets, step=None))
    state = state.replace(step=mesh_lib.create(jnp.int32, repl, restored['step']['step']),
                          **{k: restored[k] for k in targets})
    logging.info('restored step %d', latest)
    print(f'restored step {latest}', flush=True)
  start = int(jax.device_get(state.step))
  if start < num_steps:
    print(f'training steps {start + 1}..{num_steps}', flush=True)

  # --- Loop ---
  stop = []
  signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
  progress = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                             every_steps=config.training.log_every)
  sampler = grid_sampler(config, run.model, run.schedule, mesh, workdir)
  t0 = time.time()
  metrics = None
  with jax.transfer_guard('disallow'):
    for step in range(start, num_steps):
      batch = mesh_lib.shard_batch(mesh, run.source.batch(step, jax.process_index()))
      previous, (state, metrics) = metrics, run.update(state, batch, run.key)
      # At most two steps in flight: simulated CPU devices sharing few cores deadlock
      # in their all-reduce rendezvous when hundreds of steps are queued.
      jax.block_until_ready(previous)
      done = step + 1
      progress(done)
      if done % config.training.log_every == 0 or done == num_steps:
        writer.write_scalars(done, jax.device_get(metrics))
      if done % config.training.checkpoint_every == 0 or done == num_steps or stop:
        checkpoint.save(mgr, state, run.meta)
      if sampler is not None and (done % config.training.sample_every == 0 or done == num_steps):
        with jax.transfer_guard('allow'):
          sampler(state.ema_params, done, writer)
      if stop:
        print(f'SIGTERM: saved step {done}, exiting', flush=True)
        break
  mgr.wait_until_finished()
  mgr.close()
  writer.flush()
  ran = int(jax.device_get(state.step)) - start
  if ran:
    print(f'trained {ran} steps in {time.time() - t0:.1f}s', flush=True)
  return state
