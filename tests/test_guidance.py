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
