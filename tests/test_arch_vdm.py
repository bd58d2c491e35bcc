"""VDM / i-DODE ScoreUNet (models/vdm_unet.py, reference idode A.6).

The public configs are checked through jax.eval_shape only (parameter and tensor counts of the
reference's table, the parameter tree key for key, output shapes). The forward pass is checked on
two tiny configs against the original thu-ml/i-DODE `ScoreUNet` (identical to google-research/vdm's),
run once in float64 with every parameter replaced by a seeded numpy draw: the fingerprints below
are that run's numbers.
"""
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import vdm
from models import vdm_unet

# configs/vdm.py variant -> (parameters, tensors); reference idode A.6 (the counts of the Flax
# model). Flax has no buffers: every tensor is a trainable parameter of `score_model`; the fixed
# gamma schedule has none.
PUBLIC = {
    'cifar10': (30_578_179, 689),
    'cifar10_aug': (139_276_803, 1339),
    'imagenet32': (122_137_603, 689),
    'imagenet32_new': (122_137_603, 689),
}
SHAPE = (2, 32, 32, 3)

TINY = dict(sm_n_embd=64, sm_n_layer=2, sm_pdrop=0.1, with_attention=True,
            with_fourier_features=True, gamma_min=-13.3, gamma_max=5.0)
TINY_PLAIN = dict(sm_n_embd=64, sm_n_layer=1, sm_pdrop=0.1, with_attention=False,
                  with_fourier_features=False, gamma_min=-10.0, gamma_max=8.0)
# 64 channels: with 32 (one channel per GroupNorm group) GroupNorm_1 would cancel cond_proj's
# per-channel shift, and with it every effect of g_t and the conditioning.
# The original ScoreUNet in float64 on z = default_rng(1).normal((2, 8, 8, 3)), g_t = [-10, 3],
# conditioning [0, 1], params = perturbed(init): d = out - z at d[0, 0, :2], d[1, 7, 6:], the
# per-example sum of d^2 and of d * default_rng(2).normal(d.shape).
FINGERPRINTS = {
    'tiny': (
        [0.3054181293, 0.8842379905, -1.385036536, 1.337860347, 0.4662359545, -1.9480700217],
        [0.160935353, 0.286125526, -0.9000245365, 1.3868136048, -0.9749085614, 0.2275189331],
        [260.7513332282, 326.970147841], [-17.2078827036, 13.3806602598]),
    'tiny_plain': (
        [-0.5585452113, 0.0284326877, 0.473842896, 0.9375147563, 2.0838907716, 0.2059093068],
        [0.4756318997, -0.4517483618, -0.396574377, -1.2119270508, 0.8371884184, -0.4688467262],
        [216.5348979456, 173.833026623], [-9.9490092031, -12.213981241]),
}
TINY_KWARGS = {'tiny': TINY, 'tiny_plain': TINY_PLAIN}


def inputs():
  z = jnp.asarray(np.random.default_rng(1).standard_normal((2, 8, 8, 3)), jnp.float32)
  return z, jnp.asarray([-10.0, 3.0], jnp.float32), jnp.asarray([0.0, 1.0], jnp.float32)


def perturbed(params, seed=0):
  """Every leaf replaced by 0.3 * standard normals, drawn in sorted key-path order."""
  rng = np.random.default_rng(seed)
  paths = sorted(jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(params))
  shapes = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(params)}
  vals = {k: jnp.asarray(rng.standard_normal(shapes[k]) * 0.3, jnp.float32) for k in paths}
  return jax.tree_util.tree_map_with_path(lambda k, _: vals[jax.tree_util.keystr(k)], params)


@functools.lru_cache(maxsize=None)
def tiny(name, dtype='float32'):
  """(module, perturbed params, jitted apply(params, z, t, y, key)) of a tiny config."""
  net = vdm_unet.create(TINY_KWARGS[name]).clone(dtype=getattr(jnp, dtype))
  z, g, c = inputs()
  params = perturbed(jax.eval_shape(net.init, jax.random.key(0), z, g, c))

  def apply(p, z, t, y, key):
    return (net.apply(p, z, t, y),
            net.apply(p, z, t, y, train=True, rngs={'dropout': key}))

  return net, params, jax.jit(apply)


@functools.lru_cache(maxsize=None)
def public(variant):
  """(kwargs, param shapes, output shape) of a configs/vdm.py variant, by jax.eval_shape."""
  kwargs = vdm.get_config(variant).model.kwargs.to_dict()
  net = vdm_unet.create(kwargs)
  x = jax.ShapeDtypeStruct(SHAPE, jnp.float32)
  t = jax.ShapeDtypeStruct(SHAPE[:1], jnp.float32)
  params = jax.eval_shape(net.init, jax.random.key(0), x, t, t)
  out = jax.eval_shape(net.apply, params, x, t, t)
  return kwargs, params, out


def reference_tree(n, layers, attention, channels=3):
  """The `score_model` tree as reference A.6 lists it, with the shapes it implies."""
  gn = lambda c: {'scale': (c,), 'bias': (c,)}
  conv = lambda i, o: {'kernel': (3, 3, i, o), 'bias': (o,)}
  dense = lambda i, o: {'kernel': (i, o), 'bias': (o,)}

  def block(c_in):
    b = {'GroupNorm_0': gn(c_in), 'conv1': conv(c_in, n), 'cond_proj': {'kernel': (4 * n, n)},
         'GroupNorm_1': gn(n), 'conv2': conv(n, n)}
    if c_in != n:
      b['nin_shortcut'] = dense(c_in, n)
    return b

  attn = {'GroupNorm_0': gn(n), 'q': dense(n, n), 'k': dense(n, n), 'v': dense(n, n),
          'proj_out': dense(n, n)}
  tree = {'dense0': dense(n + 1, 4 * n), 'dense1': dense(4 * n, 4 * n),
          'conv_in': conv(5 * channels, n), 'mid.block_1': block(n), 'mid.attn_1': attn,
          'mid.block_2': block(n), 'GroupNorm_0': gn(n), 'conv_out': conv(n, channels)}
  for i in range(layers):
    tree[f'down.block_{i}'] = block(n)
    if attention:
      tree[f'down.attn_{i}'] = attn
  for i in range(layers + 1):
    tree[f'up.block_{i}'] = block(2 * n)
    if attention:
      tree[f'up.attn_{i}'] = attn
  return tree


@pytest.mark.parametrize('variant', sorted(PUBLIC))
def test_public_config_counts_tree_and_shapes(variant):
  kwargs, params, out = public(variant)
  leaves = jax.tree.leaves(params)
  assert (sum(int(np.prod(l.shape)) for l in leaves), len(leaves)) == PUBLIC[variant]
  assert {l.dtype for l in leaves} == {jnp.dtype(jnp.float32)}
  shapes = jax.tree.map(lambda l: tuple(l.shape), params['params'])
  assert shapes == reference_tree(kwargs['sm_n_embd'], kwargs['sm_n_layer'],
                                  kwargs['with_attention'])
  assert out.shape == SHAPE and out.dtype == jnp.float32


def test_cifar10_shapes_as_listed():
  """The CIFAR-10 shapes written out in reference A.6's parameter tree."""
  p = public('cifar10')[1]['params']
  listed = {('dense0', 'kernel'): (129, 512), ('dense1', 'kernel'): (512, 512),
            ('conv_in', 'kernel'): (3, 3, 15, 128), ('down.block_0', 'conv1', 'kernel'): (3, 3, 128, 128),
            ('down.block_31', 'cond_proj', 'kernel'): (512, 128),
            ('up.block_0', 'GroupNorm_0', 'scale'): (256,),
            ('up.block_32', 'conv1', 'kernel'): (3, 3, 256, 128),
            ('up.block_32', 'nin_shortcut', 'kernel'): (256, 128),
            ('mid.attn_1', 'proj_out', 'kernel'): (128, 128), ('conv_out', 'kernel'): (3, 3, 128, 3)}
  for path, shape in listed.items():
    assert functools.reduce(lambda d, k: d[k], path, p).shape == shape, path
  assert 'bias' not in p['down.block_0']['cond_proj'] and 'nin_shortcut' not in p['down.block_0']
  assert 'down.attn_0' not in p and 'up.attn_0' not in p and 'up.block_33' not in p


@pytest.mark.parametrize('name', sorted(FINGERPRINTS))
def test_matches_original_scoreunet(name):
  """Float32 against the original's float64 run (its own float32 run differs by up to 7e-5:
  sin(2 pi 128 z) and the sinusoid of 1000 s carry float32's error at arguments ~1e3)."""
  _, params, apply = tiny(name)
  z, g, c = inputs()
  d = np.asarray(apply(params, z, g, c, jax.random.key(0))[0], np.float64) - np.asarray(z)
  head, tail, ss, proj = FINGERPRINTS[name]
  w = np.random.default_rng(2).standard_normal(d.shape)
  np.testing.assert_allclose(d[0, 0, :2].ravel(), head, atol=2e-4, rtol=0)
  np.testing.assert_allclose(d[1, 7, 6:].ravel(), tail, atol=2e-4, rtol=0)
  np.testing.assert_allclose((d ** 2).sum(axis=(1, 2, 3)), ss, rtol=1e-5)
  np.testing.assert_allclose((d * w).sum(axis=(1, 2, 3)), proj, atol=2e-3, rtol=0)


def test_fresh_network_is_identity():
  """conv2, cond_proj, proj_out and conv_out start at zero: a fresh network maps z to z."""
  net = vdm_unet.create(dict(TINY_PLAIN, sm_n_layer=0, with_attention=True))
  z, g, c = inputs()
  out = jax.jit(lambda k: net.apply(net.init(k, z, g, c), z, g, c))(jax.random.key(1))
  np.testing.assert_array_equal(out, z)


def test_conditioning_and_time_broadcast():
  """y = None is conditioning 0, y = 1 changes the output; a scalar g_t is broadcast."""
  net, params, _ = tiny('tiny')
  z, g, c = inputs()

  @jax.jit
  def variants(p, y):
    return (net.apply(p, z, g, y), net.apply(p, z, g), net.apply(p, z, g[1]),
            net.apply(p, z, jnp.full((2,), g[1])))

  out0, no_y, scalar, full = variants(params, jnp.zeros(2, jnp.float32))
  np.testing.assert_array_equal(no_y, out0)
  np.testing.assert_allclose(scalar, full, atol=1e-6, rtol=0)
  out1 = variants(params, jnp.ones(2, jnp.float32))[0]
  assert float(jnp.max(jnp.abs(out1 - out0))) > 1e-2


def test_dropout_needs_rng_and_is_keyed():
  net, params, apply = tiny('tiny')
  z, g, c = inputs()
  ev, tr_a = apply(params, z, g, c, jax.random.key(0))
  _, tr_b = apply(params, z, g, c, jax.random.key(1))
  _, tr_a2 = apply(params, z, g, c, jax.random.key(0))
  np.testing.assert_array_equal(tr_a, tr_a2)
  assert float(jnp.max(jnp.abs(tr_a - ev))) > 1e-3 and float(jnp.max(jnp.abs(tr_a - tr_b))) > 1e-3
  with pytest.raises(flax.errors.InvalidRngError, match='dropout'):
    net.apply(params, z, g, c, train=True)


def test_bfloat16_forward():
  net, params, apply = tiny('tiny', 'bfloat16')
  z, g, c = inputs()
  fresh = jax.eval_shape(net.init, jax.random.key(0), z, g, c)
  assert {l.dtype for l in jax.tree.leaves(fresh)} == {jnp.dtype(jnp.float32)}
  ev, tr = apply(params, z, g, c, jax.random.key(0))
  ref = tiny('tiny')[2](tiny('tiny')[1], z, g, c, jax.random.key(0))[0]
  assert ev.dtype == tr.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(tr)))
  rel = float(jnp.linalg.norm(ev - ref) / jnp.linalg.norm(ref - z))
  assert rel < 0.1, rel


def test_original_checkpoint_params_load_one_to_one():
  """A VDM / i-DODE ckpt-N.flax (msgpack of the TrainState dict, reference A.7) feeds
  ema_params['score_model'] to this module unchanged."""
  net, params, apply = tiny('tiny')
  tree = flax.core.unfreeze(params)['params']
  state = {'step': 7, 'params': {'score_model': tree},
           'ema_params': {'score_model': tree, 'gamma': {'w': np.float32(18.3)}}}
  restored = flax.serialization.msgpack_restore(flax.serialization.msgpack_serialize(
      jax.tree.map(np.asarray, state)))
  loaded = {'params': restored['ema_params']['score_model']}
  z, g, c = inputs()
  np.testing.assert_array_equal(apply(loaded, z, g, c, jax.random.key(0))[0],
                                apply(params, z, g, c, jax.random.key(0))[0])


def test_create_kwargs():
  """i-DODE's whole `config.model` dict constructs it; a stray kwarg is named."""
  idode_model = dict(vocab_size=256, sample_softmax=False, antithetic_time_sampling=True,
                     with_fourier_features=True, with_attention=False, gamma_type='fixed',
                     gamma_min=-13.3, gamma_max=5.0, sm_n_timesteps=0, sm_n_embd=128,
                     sm_n_layer=32, sm_pdrop=0.1, schedule='VP', second_order=False,
                     velocity=True, importance=True, dequantization='tn', num_importance=1)
  assert vdm_unet.create(idode_model) == vdm_unet.create(public('cifar10')[0])
  with pytest.raises(ValueError, match='sm_n_heads'):
    vdm_unet.create(dict(sm_n_embd=128, sm_n_heads=4))
