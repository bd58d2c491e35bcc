"""Per-sample Gaussian draws: sample i's noise for step j comes from fold_in(keys[i], j).

Every sampler draws this way, so samples do not depend on the batch size, the devices
or the number of hosts (DESIGN.md, "Randomness").
"""
import jax


def normal(keys, j, shape, dtype):
  """N(0, I) of `shape` per key [B] -> [B, *shape], drawn with fold_in(key, j)."""
  return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, j), shape, dtype))(keys)
