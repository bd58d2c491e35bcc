"""Data parallelism: the same training on a mesh of 1 and of 8 devices, in one process."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from configs import toy as toy_config
from training import build
from training import mesh as mesh_lib
from training import rng
from training import train


def run_steps(config, devices, steps):
  mesh = mesh_lib.make_mesh(devices)
  run = train.setup(config, mesh)
  state, source, key = run.state, run.source, run.key
  loss_fn = build.loss_fn(config, run.model, run.schedule)
  grad_fn = jax.jit(jax.grad(lambda p, b, k: jnp.mean(loss_fn(p, b, k)['loss'])))
  losses, grads = [], []
  for step in range(steps):
    batch = mesh_lib.shard_batch(mesh, source.batch(step))
    x = batch['x']
    assert x.sharding.spec == P('data')
    assert len(x.addressable_shards) == len(devices)
    assert {s.data.shape[0] for s in x.addressable_shards} == {x.shape[0] // len(devices)}
    grads.append(jax.device_get(grad_fn(state.params, batch, jax.random.fold_in(key, step))))
    state, metrics = run.update(state, batch, key)
    losses.append(float(metrics['loss']))
  return losses, grads, jax.device_get(state.params), jax.device_get(state.ema_params)


def test_one_and_eight_devices_agree():
  config = toy_config.get_config()
  config.data.size = 1024
  config.training.batch_size = 64
  config.training.ema_decay = 0.9
  config.optimizer.eps = 1e-2  # Adam's first steps are ~lr*sign(g); a larger eps keeps them smooth
  devices = jax.devices()
  assert len(devices) == 8
  l1, g1, p1, e1 = run_steps(config, devices[:1], 4)
  l8, g8, p8, e8 = run_steps(config, devices, 4)
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  # float32 sums over the batch in another order (8 shards of 8 against one of 64): an
  # element that nearly cancels can differ by a few float32 ulps of its leaf's scale (seen on
  # this machine, also at the commit before: 2.2e-7 on an entry of 0.0073, 3e-5 relative, in a
  # leaf with entries of 0.49), so the tolerance is 1e-5 relative to each leaf's largest entry
  # as well as to the element.
  close = lambda u, v: np.testing.assert_allclose(v, u, rtol=1e-5,
                                                  atol=1e-5 * float(np.abs(u).max()))
  for a, b in zip(g1, g8):
    jax.tree.map(close, a, b)
  jax.tree.map(close, p1, p8)
  jax.tree.map(close, e1, e8)
  # The step really moved the parameters (the comparison is not between two initial states).
  init = jax.device_get(build.model('toy_mlp', build.model_kwargs(config),
                                    build.schedule(build.schedule_kwargs(config))).init(
                                        rng.stream(config.seed, 'init')))
  moved = jax.tree.map(lambda u, v: float(np.abs(u - v).max()), p1, init)
  assert max(jax.tree.leaves(moved)) > 1e-4
  assert all(np.all(np.asarray(v).dtype == np.float32) for v in jax.tree.leaves(p8))
