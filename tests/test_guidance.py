"""Classifier-free guidance: the guided output is (1 + w) out(x, y) - w out(x, null) on the
main prediction, the other outputs are the conditional pass's, w = 0 is the conditional model."""
import jax.numpy as jnp
import numpy as np

from training import sample


def stub(params, x, lam, y):
  """A model whose eps depends on the label (null = -1) and whose var_values do too."""
  yv = y.astype(jnp.float32)[:, None]
  return {'eps': params['a'] * x + yv + lam[:, None], 'var_values': 0.1 * yv + 0.0 * x}


def test_guided_output_is_the_affine_combination():
  x = jnp.arange(8.0).reshape(4, 2)
  lam = jnp.array([0.5, -1.0, 2.0, 0.0])
  y = jnp.array([0, 3, 1, 2], jnp.int32)
  p = {'net': {'a': 2.0}, 'y': y}
  cond = stub(p['net'], x, lam, y)
  null = stub(p['net'], x, lam, jnp.full_like(y, -1))
  for w in (0.0, 0.5, 3.0):
    out = sample.guided(stub, 'eps', w)(p, x, lam)
    np.testing.assert_allclose(out['eps'], (1 + w) * cond['eps'] - w * null['eps'], rtol=1e-6)
    np.testing.assert_allclose(out['var_values'], cond['var_values'], rtol=1e-6)


def test_iddpm_null_label_drops_the_label_embedding():
  import jax
  from models import iddpm_unet
  net = iddpm_unet.create(dict(in_channels=1, model_channels=64, out_channels=1,
                               num_res_blocks=1, attention_resolutions=[], dropout=0.0,
                               channel_mult=[1], num_classes=3, num_heads=1))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1), jnp.float32)
  t = jnp.array([3.0, 500.0], jnp.float32)
  params = net.init(jax.random.key(1), x, t, jnp.array([0, 1], jnp.int32))
  leaves, tree = jax.tree.flatten(params)  # perturbed: improved-diffusion zero-inits the output
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = jax.tree.unflatten(tree, [v + 0.1 * jax.random.normal(k, v.shape, v.dtype)
                                     for v, k in zip(leaves, keys)])
  null = net.apply(params, x, t, jnp.array([-1, -1], jnp.int32))
  zeroed = jax.tree_util.tree_map_with_path(
      lambda path, v: jnp.zeros_like(v) if 'label_emb' in jax.tree_util.keystr(path) else v,
      params)
  np.testing.assert_allclose(null, net.apply(zeroed, x, t, jnp.array([2, 0], jnp.int32)),
                             rtol=1e-6, atol=1e-6)
  assert not np.allclose(null, net.apply(params, x, t, jnp.array([2, 0], jnp.int32)))
