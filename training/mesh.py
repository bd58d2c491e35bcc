"""The one mesh/sharding helper: a 'data' axis over all devices of all processes.

One device is a mesh of one; there is no second code path.
"""
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


def make_mesh(devices=None):
  """A 1-D mesh ('data',) with an Auto axis (jax.make_mesh defaults to Explicit)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ('data',), axis_types=(AxisType.Auto,))


def data_sharding(mesh):
  return NamedSharding(mesh, P('data'))


def replicated(mesh):
  return NamedSharding(mesh, P())


def shard_batch(mesh, local_batch):
  """Assemble global arrays, sharded on 'data', from this process's rows.

  An explicit transfer: allowed inside the training loop's transfer guard
  (with several processes jax routes it through an implicit device_put).
  """
  sharding = data_sharding(mesh)

  def put(x):
    x = np.asarray(x)
    global_shape = (x.shape[0] * jax.process_count(),) + x.shape[1:]
    return jax.make_array_from_process_local_data(sharding, x, global_shape)

  with jax.transfer_guard('allow'):
    return jax.tree.map(put, local_batch)


def create(fn, sharding, *args):
  """fn(*args) computed directly in `sharding`: the multi-process way to place
  keys and scalars (device_put cannot reach another process's devices)."""
  return jax.jit(fn, out_shardings=sharding)(*args)


def check_batch(mesh, batch_size, what='training.batch_size'):
  """Error text if a global batch cannot be split evenly over the mesh, else None."""
  n = mesh.devices.size
  if batch_size % n:
    return f'config.{what}={batch_size} is not divisible by the {n} devices'
  return None
