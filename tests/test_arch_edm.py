"""EDM networks (family 'edm'): fixtures, public sizes, conversion errors, layers, precision.

The fixtures (../shared/fixtures/edm) are EDM network pickles with the reference's inputs
and outputs; D is checked per sample by the MANIFEST's rule |dD| <= tol_F |c_out| + 1e-5
max|x|, which isolates the network's error from the preconditioner's scaling.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import edm_afhqv2, edm_cifar10, edm_ffhq, edm_imagenet64
from models import edm_layers, edm_precond
from models.convert import edm, edm_pickle, layout
from tests import fixtures

NETWORKS = ('edm-ddpmpp-cond', 'edm-ncsnpp-uncond', 'edm-adm-cond', 'baseline-ddpmpp-uncond-vp',
            'baseline-ncsnpp-uncond-ve', 'baseline-adm-cond-iddpm')
nhwc = lambda a: jnp.asarray(np.transpose(a, (0, 2, 3, 1)), jnp.float32)
nchw = lambda a: np.transpose(np.asarray(a), (0, 3, 1, 2))


@functools.lru_cache(maxsize=None)
def _fixture(name):
  """(manifest entry, kwargs, module, converted params, io arrays) of a network fixture."""
  root = fixtures.root('edm')
  e = fixtures.entry('edm', name)
  sd, kwargs = edm.from_pickle(edm_pickle.load(f'{root}/{e["files"]["checkpoint"]}'))
  module = edm_precond.create(kwargs)
  params = edm.convert(sd, kwargs)
  io = dict(np.load(f'{root}/{e["files"]["io"]}'))
  return e, kwargs, module, params, io


def _labels(io):
  return np.argmax(io['class_labels'], 1).astype(np.int32) if 'class_labels' in io else None


@pytest.mark.parametrize('name', NETWORKS)
def test_fixture_reproduces_the_reference(name):
  e, kwargs, module, params, io = _fixture(name)
  assert kwargs == {'class_name': e['wrapper']['cls'], **e['init_kwargs']}
  x, sigma, y = nhwc(io['x']), jnp.asarray(io['sigma']), _labels(io)
  want, n = [io['D_x']], len(io['sigma'])
  if 'augment_labels' in io:  # one compiled call: zero augment labels add exactly nothing
    x, sigma = jnp.concatenate([x, x]), jnp.concatenate([sigma, sigma])
    y = None if y is None else np.concatenate([y, y])
    aug = np.concatenate([np.zeros_like(io['augment_labels']), io['augment_labels']])
    want.append(io['D_x_augment'])
  else:
    aug = None
  fn = jax.jit(lambda p, x, s, y, a: module.apply(p, x, s, y, augment_labels=a))
  got = nchw(fn(params, x, sigma, y, aug))
  assert got.dtype == np.float32
  tol = e['suggested_tolerance']['F_x_max_abs']
  bound = tol * np.abs(io['c_out']) + 1e-5 * np.abs(io['x']).max()
  for i, ref in enumerate(want):
    err = np.abs(got[i * n:(i + 1) * n] - ref).reshape(n, -1).max(1)
    assert np.all(err <= bound), (name, i, err, bound)


@pytest.mark.parametrize('name', NETWORKS)
def test_fixture_preconditioning(name):
  e, _, module, params, io = _fixture(name)
  sigma = jnp.asarray(io['sigma']).reshape(-1, 1, 1, 1)
  c_skip, c_out, c_in, c_noise = module.apply(params, sigma, method=lambda m, s: m.coefficients(s))
  for got, key in ((c_skip, 'c_skip'), (c_out, 'c_out'), (c_in, 'c_in')):
    np.testing.assert_allclose(np.broadcast_to(np.reshape(got, -1), (4,)), io[key], rtol=1e-6)
  np.testing.assert_allclose(np.reshape(c_noise, -1), io['c_noise'], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(nchw(c_in * nhwc(io['x'])), io['model_input'], rtol=1e-6)
  resolved = e['wrapper']['resolved_kwargs']
  if e['wrapper']['cls'] == 'VPPrecond':
    assert (module.sigma_min, module.sigma_max) == (resolved['sigma_min'], resolved['sigma_max'])
  if e['wrapper']['cls'] == 'iDDPMPrecond':
    np.testing.assert_array_equal(params['params']['u'], io['u'])  # the checkpoint's own table
    np.testing.assert_allclose(edm_precond.iddpm_u()[:-1], io['u'][:-1], rtol=2e-5)
    index = module.apply(params, io['sigma'], method=lambda m, s: m.sigma_index(s))
    np.testing.assert_array_equal(index, io['sigma_index'])
    rounded = module.apply(params, io['sigma'] * 1.0001, method='round_sigma')
    np.testing.assert_array_equal(rounded, io['u'][io['sigma_index']])
    assert float(io['u'][999]) == resolved['sigma_min']
    assert float(io['u'][0]) == resolved['sigma_max']


def test_component_multihead_attention_block():
  root = fixtures.root('edm')
  e = fixtures.entry('edm', 'component-adm-attnblock-2heads')
  block = edm_pickle.load(f'{root}/{e["files"]["checkpoint"]}')['block']
  kwargs = dict(block['init_kwargs'])
  kwargs['init_default'] = kwargs.pop('init')
  module = edm_layers.UNetBlock(**kwargs)
  assert module.heads == e['num_heads'] == 2
  io = np.load(f'{root}/{e["files"]["io"]}')
  x, emb = nhwc(io['x']), jnp.asarray(io['emb'])
  params = edm.convert_module(block['state_dict'], module, x, emb)
  got = nchw(jax.jit(module.apply)(params, x, emb))
  assert np.abs(got - io['y']).max() <= e['suggested_tolerance']['y_max_abs']


# Public configurations: (config module, variant, torch state_dict tensors, torch parameters)
PUBLIC = [
    (edm_cifar10, 'cond-vp', 427, 55_735_299), (edm_cifar10, 'uncond-vp', 425, 55_733_891),
    (edm_cifar10, 'cond-ve', 434, 56_400_643), (edm_cifar10, 'uncond-ve', 432, 56_397_827),
    (edm_ffhq, 'uncond-vp', 553, 61_805_571), (edm_ffhq, 'uncond-ve', 563, 62_761_091),
    (edm_afhqv2, 'uncond-vp', 553, 61_805_571), (edm_afhqv2, 'uncond-ve', 563, 62_761_091),
    (edm_imagenet64, 'cond-adm', 553, 295_899_267),
]


@pytest.mark.parametrize('config,variant,tensors,parameters', PUBLIC,
                         ids=[f'{c.__name__.split(".")[-1]}:{v}' for c, v, _, _ in PUBLIC])
def test_public_sizes(config, variant, tensors, parameters):
  """Tensors as torch's state_dict counts them (parameters + resample_filter / freqs / u
  buffers); parameters as torch counts them (the Fourier `freqs` buffer excluded)."""
  c = config.get_config(variant)
  module = edm_precond.create(c.model.kwargs.to_dict())
  r = module.img_resolution
  variables, buffers, out = edm.trace(module, *edm_precond.init_inputs(module))
  leaves = jax.tree_util.tree_leaves_with_path(variables['params'])
  assert len(leaves) + len(buffers) == tensors
  assert sum(v.size for p, v in leaves if p[-1].key != 'freqs') == parameters
  assert all(v.dtype == jnp.float32 for _, v in leaves)
  assert (out.shape, out.dtype) == ((1, r, r, 3), jnp.float32)


def test_wrong_architecture_is_a_mismatch():
  _, kwargs, _, _, _ = _fixture('edm-ddpmpp-cond')
  sd = edm_pickle.load(f'{fixtures.root("edm")}/edm-ncsnpp-uncond.pkl')['ema']['state_dict']
  with pytest.raises(layout.Mismatch) as err:
    edm.convert(sd, kwargs)
  assert 'model.map_label.weight' in err.value.missing
  assert 'model.map_noise.freqs' in err.value.unexpected
  assert 'model.enc.8x8_aux_residual.weight' in err.value.unexpected
  assert any(k == 'model.map_layer0.weight' for k, _, _ in err.value.misshaped)  # 32 vs 16 noise ch
  ddpmpp_sd = edm_pickle.load(f'{fixtures.root("edm")}/edm-ddpmpp-cond.pkl')['ema']['state_dict']
  with pytest.raises(layout.Mismatch) as err:
    edm.convert(ddpmpp_sd, dict(kwargs, model_channels=8))
  assert not err.value.missing and not err.value.unexpected and err.value.misshaped
  bad = dict(ddpmpp_sd)
  key = 'model.enc.8x8_down.conv0.resample_filter'
  bad[key] = 2 * bad[key]
  with pytest.raises(ValueError, match='resample_filter'):
    edm.convert(bad, kwargs)


def test_create_errors_and_labels():
  kw = dict(class_name='EDMPrecond', model_type='SongUNet', img_resolution=8, img_channels=3)
  with pytest.raises(ValueError, match='unknown kwargs.*bogus, in_channels'):
    edm_precond.create(dict(kw, bogus=1, in_channels=3))
  with pytest.raises(ValueError, match='unknown kwargs.*sigma_data'):
    edm_precond.create(dict(kw, class_name='VPPrecond', sigma_data=0.5))
  with pytest.raises(ValueError, match='class_name'):
    edm_precond.create(dict(kw, class_name='Precond'))
  with pytest.raises(ValueError, match='model_type'):
    edm_precond.create(dict(kw, model_type='UNet'))
  m = edm_precond.create(dict(kw, label_dim=3))
  np.testing.assert_array_equal(m.class_labels(jnp.array([-1, 2])), [[0, 0, 0], [0, 0, 1]])
  np.testing.assert_array_equal(m.class_labels(None), [[0, 0, 0]])
  assert edm_precond.create(dict(kw)).class_labels(jnp.array([1])) is None


@pytest.mark.parametrize('case', [
    dict(up=True), dict(down=True), dict(up=True, fused_resample=True),
    dict(down=True, fused_resample=True), dict(up=True, kernel=0),
    dict(down=True, kernel=0, resample_filter=(1, 1))])
def test_conv2d_resampling_matches_torch(case):
  torch = pytest.importorskip('torch')
  fn = torch.nn.functional
  kw = dict(in_channels=4, out_channels=5 if case.get('kernel', 3) else 4, kernel=3,
            resample_filter=(1, 3, 3, 1))
  kw.update(case)
  conv = edm_layers.Conv2d(**kw)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4), jnp.float32)
  params = jax.tree.map(lambda v: v + 0.1, conv.init(jax.random.key(2), x))
  got = nchw(conv.apply(params, x))

  t = torch.tensor(nchw(x))
  f = torch.tensor(edm_layers.resample_filter_2d(kw['resample_filter']))[None, None]
  k, cin, cout = kw['kernel'], kw['in_channels'], kw['out_channels']
  w_pad, f_pad = k // 2, (f.shape[-1] - 1) // 2
  w = torch.tensor(np.transpose(np.asarray(params['params']['kernel']), (3, 2, 0, 1))) if k \
      else None
  if case.get('fused_resample') and case.get('up'):
    t = fn.conv2d(fn.conv_transpose2d(t, (4 * f).tile([cin, 1, 1, 1]), groups=cin, stride=2,
                                      padding=w_pad + f_pad), w)
  elif case.get('fused_resample'):
    t = fn.conv2d(fn.conv2d(t, w, padding=w_pad + f_pad), f.tile([cout, 1, 1, 1]), groups=cout,
                  stride=2)
  else:
    if case.get('up'):
      t = fn.conv_transpose2d(t, (4 * f).tile([cin, 1, 1, 1]), groups=cin, stride=2, padding=f_pad)
    if case.get('down'):
      t = fn.conv2d(t, f.tile([cin, 1, 1, 1]), groups=cin, stride=2, padding=f_pad)
    if k:
      t = fn.conv2d(t, w, padding=w_pad)
  if k:
    t = t + torch.tensor(np.asarray(params['params']['bias'])).reshape(1, -1, 1, 1)
  np.testing.assert_allclose(got, t.numpy(), atol=1e-5)


TINY_SONG = dict(class_name='VEPrecond', model_type='SongUNet', img_resolution=8, img_channels=3,
                 label_dim=4, augment_dim=9, model_channels=8, channel_mult=[1, 2], num_blocks=1,
                 attn_resolutions=[4], embedding_type='fourier', channel_mult_noise=2,
                 encoder_type='skip', decoder_type='skip', resample_filter=[1, 3, 3, 1],
                 dropout=0.1, label_dropout=0.5)
TINY_ADM = dict(class_name='iDDPMPrecond', model_type='DhariwalUNet', img_resolution=8,
                img_channels=3, label_dim=4, augment_dim=9, model_channels=16, channel_mult=[4],
                num_blocks=1, attn_resolutions=[8], dropout=0.1, label_dropout=0.5)


def test_skip_encoder_decoder_layout():
  module = edm_precond.create(TINY_SONG)
  keys = edm.reference_keys(module, *edm_precond.init_inputs(module))
  for k in ('model.enc.4x4_aux_down.resample_filter', 'model.enc.4x4_aux_skip.weight',
            'model.dec.8x8_aux_up.resample_filter', 'model.dec.4x4_aux_norm.weight',
            'model.dec.4x4_aux_conv.weight', 'model.dec.8x8_aux_conv.weight',
            'model.map_noise.freqs', 'model.map_augment.weight', 'model.map_label.bias'):
    assert k in keys, k
  assert 'model.enc.4x4_aux_down.weight' not in keys  # kernel 0: resampling only


def _random_params(module, x, sigma):
  """Params drawn as the fixtures' (weights 0.2 N(0,1), norm scales 1 + 0.1 N(0,1)), no compile."""
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    if path[-1].key == 'u':
      return edm_precond.iddpm_u()
    v = rng.standard_normal(leaf.shape).astype(np.float32)
    return 1 + 0.1 * v if path[-1].key == 'scale' else 0.2 * v

  shapes = jax.eval_shape(module.init, jax.random.key(0), x, sigma)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(shapes))
  return jax.tree_util.tree_map_with_path(draw, shapes)


X = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype(np.float32)
SIGMA, Y = np.array([0.5, 5.0], np.float32), np.array([1, -1], np.int32)


def test_bfloat16_forward():
  module = edm_precond.create(TINY_SONG).clone(dtype=jnp.bfloat16)
  x, sigma, y = X, SIGMA, Y
  params = _random_params(module, x, sigma)
  out = jax.jit(module.apply)(params, x, sigma, y)
  assert out.shape == (2, 8, 8, 3) and out.dtype == jnp.float32 and np.all(np.isfinite(out))


def test_training_mode_and_augment_labels():
  """Dropout and label dropout draw from 'dropout'; absent augment labels act as zeros."""
  module = edm_precond.create(TINY_ADM)
  x, sigma, y = X, SIGMA, Y
  params = _random_params(module, x, sigma)

  @jax.jit
  def run(params):
    train = lambda k: module.apply(params, x, sigma, y, train=True, rngs={'dropout': k})
    keys = jnp.stack([jax.random.key(3), jax.random.key(3), jax.random.key(4)])
    return (module.apply(params, x, sigma, y),
            module.apply(params, x, sigma, y, augment_labels=jnp.zeros((2, 9), jnp.float32)),
            jax.vmap(train)(keys))

  plain, zero_aug, (t3, t3_again, t4) = run(params)
  np.testing.assert_array_equal(plain, zero_aug)
  np.testing.assert_array_equal(t3, t3_again)
  assert np.abs(t3 - t4).max() > 1e-3 and np.abs(t3 - plain).max() > 1e-3
