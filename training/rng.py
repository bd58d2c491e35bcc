"""Named random streams: key(seed) -> fold_in(fold_in(key, STREAM), step).

Draws happen inside jit with global batch shapes, never keyed by device or
process, so 1, 8 or many devices draw the same numbers.
"""
import jax
import jax.numpy as jnp

STREAMS = {'init': 0, 'train': 1, 'sample': 2, 'eval': 3, 'ms_eps': 4}


def stream(seed_or_key, name):
  key = jax.random.key(seed_or_key) if isinstance(seed_or_key, int) else seed_or_key
  return jax.random.fold_in(key, STREAMS[name])


def per_example_keys(base, start, count):
  """Keys of examples start..start+count-1: fold_in(base, i), independent of batching."""
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(start + jnp.arange(count))


def example_keys_fn(base_fn, count, sharding):
  """A jitted start -> per_example_keys(base_fn(), start, count), created in `sharding`.

  Built inside jit so that every process makes its own shards of a global array
  (device_put of host data cannot reach another process's devices).
  """
  return jax.jit(lambda start: per_example_keys(base_fn(), start, count), out_shardings=sharding)
