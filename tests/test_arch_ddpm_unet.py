"""DDPM UNet (pytorch_diffusion / EAD layout, with SN/NPR heads), ddpm-torch's UNet and toy MLP.

Fixtures (../shared/fixtures/torch): every stored output is reproduced from the converted
checkpoint within the MANIFEST's suggested tolerance; the public configs have the reference's
parameter and tensor counts (jax.eval_shape only); wrong-architecture conversions report
missing / unexpected / mis-shaped keys.
"""
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import ddpm_torch_unet
from models import ddpm_unet
from models import registry
from models.convert import checkpoint_io
from models.convert import ddpm_torch
from models.convert import ddpm_unet as convert_ddpm_unet
from models.convert import layout
from tests import fixtures

# fixture id -> (network builder, converter)
FAMILIES = {
    'eadpm_ddpm_unet': (ddpm_unet.create, convert_ddpm_unet.convert),
    'ddpm_torch_unet': (ddpm_torch_unet.create, ddpm_torch.convert),
    'ddpm_torch_toy': (ddpm_torch.toy_network, ddpm_torch.convert),
}
# (fixture id, state_dict_path, output array, tolerance key)
CASES = [
    ('eadpm_ddpm_unet/base', [], 'out', None),
    ('eadpm_ddpm_unet/head_simple', [], 'out', None),
    ('eadpm_ddpm_unet/head_complex', [], 'out', None),
    ('ddpm_torch_unet/release_ema', [], 'out', None),
    ('ddpm_torch_unet/trainer_7', ['ema', 'shadow'], 'out_ema', 'ema'),
    ('ddpm_torch_unet/trainer_7', ['model'], 'out_model', 'model'),
    ('ddpm_torch_toy/ddpm_gaussian8', ['model'], 'out', None),
]

# config (file, argument) -> (parameters, tensors, output channels); reference A.10.3, B.5.2, B.7
# give 78,700,803 / 390 (CelebA), 113,673,219 / 450 (LSUN), 35,746,307 / 304 (ddpm-torch).
PUBLIC = {
    ('celeba64', ''): (78_700_803, 390, 3),
    ('celeba64', 'sn'): (78_704_518, 394, 6),
    ('celeba64', 'npr'): (78_704_518, 394, 6),
    ('lsun_bedroom', ''): (113_673_219, 450, 3),
    ('lsun_bedroom', 'sn'): (114_038_278, 464, 6),
    ('lsun_bedroom', 'npr'): (113_676_934, 454, 6),
    ('ddpm_cifar10', None): (35_746_307, 328, 3),
    ('ddpm_torch', 'cifar10'): (35_746_307, 304, 3),
    ('ddpm_torch', 'celeba'): (35_746_307, 304, 3),
}


@functools.lru_cache(maxsize=None)
def _checkpoint(fixture_id):
  e = fixtures.entry('torch', fixture_id)
  root = fixtures.root('torch')
  ck = checkpoint_io.load(f'{root}/{e["checkpoint"]["file"]}')
  io = dict(np.load(f'{root}/{e["io"]["file"]}'))
  return e, ck, io


def _state_dict(fixture_id, path):
  _, ck, _ = _checkpoint(fixture_id)
  return checkpoint_io.strip_prefix(checkpoint_io.walk(ck, path), 'module.')


@functools.lru_cache(maxsize=None)
def _forward(fixture_id, dtype='float32'):
  """A jitted f(params, x NHWC, t) of the fixture's architecture (compiled once per id)."""
  e, _, _ = _checkpoint(fixture_id)
  net = FAMILIES[fixture_id.split('/')[0]][0](e['constructor']['kwargs'])
  if dtype != 'float32':
    net = net.clone(dtype=registry.DTYPES[dtype])
  return jax.jit(lambda p, x, t: net.apply(p, x, t))


def _inputs(io):
  x = io['x'].astype(np.float32)
  if x.ndim == 4:
    x = np.transpose(x, (0, 2, 3, 1))
  return jnp.asarray(x, jnp.float32), jnp.asarray(io['t'], jnp.float32)


def _run(fixture_id, path, dtype='float32'):
  e, _, io = _checkpoint(fixture_id)
  params = FAMILIES[fixture_id.split('/')[0]][1](_state_dict(fixture_id, path),
                                                 e['constructor']['kwargs'])
  out = np.asarray(_forward(fixture_id, dtype)(params, *_inputs(io)))
  return np.transpose(out, (0, 3, 1, 2)) if out.ndim == 4 else out, params


@pytest.mark.parametrize('fixture_id,path,key,tol_key', CASES,
                         ids=[f'{c[0]}:{c[2]}' for c in CASES])
def test_fixture_reproduces_reference(fixture_id, path, key, tol_key):
  e, _, io = _checkpoint(fixture_id)
  out, params = _run(fixture_id, path)
  tol = (e['tolerance'][tol_key] if tol_key else e['tolerance'])['suggested']
  assert out.dtype == np.float32
  assert all(np.asarray(p).dtype == np.float32 for p in jax.tree.leaves(params))
  np.testing.assert_allclose(out, io[key], atol=tol['atol'], rtol=tol['rtol'])
  if 'eps' in io:  # heads: [eps || head] along channels
    np.testing.assert_allclose(out[:, :3], io['eps'], atol=tol['atol'], rtol=tol['rtol'])
    np.testing.assert_allclose(out[:, 3:], io['head'], atol=tol['atol'], rtol=tol['rtol'])


def test_bfloat16_forward_runs():
  _, _, io = _checkpoint('eadpm_ddpm_unet/head_complex')
  out32, _ = _run('eadpm_ddpm_unet/head_complex', [])
  out16, _ = _run('eadpm_ddpm_unet/head_complex', [], dtype='bfloat16')
  assert out16.dtype == np.float32 and out16.shape == io['out'].shape
  assert np.all(np.isfinite(out16))
  assert np.abs(out16 - out32).max() < 0.1 * np.abs(out32).max()


def test_dropout_draws_from_the_dropout_stream():
  net = ddpm_unet.create(dict(ch=32, out_ch=3, ch_mult=[1], num_res_blocks=1, attn_resolutions=[],
                              dropout=0.5, in_channels=3, resolution=8))
  x = jnp.ones((2, 8, 8, 3), jnp.float32)
  t = jnp.asarray([3.0, 500.0], jnp.float32)
  shapes = jax.eval_shape(lambda k: net.init(k, x, t), jax.random.key(0))
  rng = np.random.default_rng(0)  # random weights: a fresh network's output conv is zero
  params = jax.tree.map(lambda l: (0.3 * rng.standard_normal(l.shape)).astype(np.float32), shapes)
  f = jax.jit(lambda p, k, train: net.apply(p, x, t, train=train, rngs={'dropout': k}),
              static_argnums=2)
  a, b = f(params, jax.random.key(1), True), f(params, jax.random.key(2), True)
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(f(params, jax.random.key(1), True), a)
  np.testing.assert_array_equal(f(params, jax.random.key(1), False),
                                f(params, jax.random.key(2), False))


def _config(name, arg):
  module = importlib.import_module(f'configs.{name}')
  return module.get_config() if arg is None else module.get_config(arg)


@pytest.mark.parametrize('name,arg', list(PUBLIC), ids=[f'{n}:{a}' for n, a in PUBLIC])
def test_public_config_counts(name, arg):
  c = _config(name, arg)
  net = registry.network(c.model.name, c.model.kwargs.to_dict())
  s = c.data.image_size
  x = jax.ShapeDtypeStruct((2, s, s, 3), jnp.float32)
  t = jax.ShapeDtypeStruct((2,), jnp.float32)
  params = jax.eval_shape(lambda k, x, t: net.init(k, x, t), jax.random.key(0), x, t)
  out = jax.eval_shape(lambda p, x, t: net.apply(p, x, t), params, x, t)
  leaves = jax.tree.leaves(params)
  want_params, want_tensors, channels = PUBLIC[(name, arg)]
  assert (sum(int(np.prod(l.shape)) for l in leaves), len(leaves)) == (want_params, want_tensors)
  assert {l.dtype for l in leaves} == {jnp.dtype(jnp.float32)}
  assert out.shape == (2, s, s, channels) and out.dtype == jnp.float32
  assert channels == 3 * len(registry.outputs(c.model.prediction, False, c.model.head))
  assert c.model.time_input == 'n-1'


def _mismatch(fn):
  with pytest.raises(layout.Mismatch) as info:
    fn()
  return info.value


def test_head_checkpoint_into_plain_model_lists_unexpected_keys():
  kw = fixtures.entry('torch', 'eadpm_ddpm_unet/base')['constructor']['kwargs']
  err = _mismatch(lambda: convert_ddpm_unet.convert(
      _state_dict('eadpm_ddpm_unet/head_simple', []), kw))
  assert err.unexpected == ['conv_out2.bias', 'conv_out2.weight', 'norm_out2.bias',
                            'norm_out2.weight']
  assert not err.missing and not err.misshaped
  assert 'unexpected keys (4): conv_out2.bias' in str(err)


def test_plain_checkpoint_into_complex_head_lists_missing_keys():
  kw = fixtures.entry('torch', 'eadpm_ddpm_unet/head_complex')['constructor']['kwargs']
  err = _mismatch(lambda: convert_ddpm_unet.convert(_state_dict('eadpm_ddpm_unet/base', []), kw))
  assert len(err.missing) == 14 and not err.unexpected and not err.misshaped
  assert 'before_out.temb_proj.weight' in err.missing and 'conv_out2.weight' in err.missing


def test_wrong_width_lists_misshaped_keys():
  kw = dict(fixtures.entry('torch', 'eadpm_ddpm_unet/base')['constructor']['kwargs'],
            ch_mult=[2, 1, 2])
  err = _mismatch(lambda: convert_ddpm_unet.convert(_state_dict('eadpm_ddpm_unet/base', []), kw))
  names = [k for k, _, _ in err.misshaped]
  assert 'down.2.block.0.conv1.weight' in names and 'mid.attn_1.q.weight' in names
  assert 'down.2.block.0.nin_shortcut.weight' in err.missing


def test_ddpm_torch_wrong_attention_levels():
  kw = dict(fixtures.entry('torch', 'ddpm_torch_unet/release_ema')['constructor']['kwargs'],
            apply_attn=[True, False, False])
  err = _mismatch(lambda: ddpm_torch.convert(_state_dict('ddpm_torch_unet/release_ema', []), kw))
  assert 'downsamples.level_0.0.1.project_in.weight' in err.missing
  assert 'downsamples.level_1.0.1.project_in.weight' in err.unexpected
  assert 'downsamples.level_1.0.0.conv1.weight' in err.unexpected  # the block now sits at .0
  assert 'downsamples.level_1.0.conv1.weight' in err.missing


def test_ddpm_torch_checkpoint_is_not_a_ddpm_unet():
  kw = fixtures.entry('torch', 'eadpm_ddpm_unet/base')['constructor']['kwargs']
  err = _mismatch(lambda: convert_ddpm_unet.convert(
      _state_dict('ddpm_torch_unet/release_ema', []), kw))
  assert 'temb.dense.0.weight' in err.missing and 'embed.0.weight' in err.unexpected


def test_toy_checkpoint_needs_tied_layers():
  kw = fixtures.entry('torch', 'ddpm_torch_toy/ddpm_gaussian8')['constructor']['kwargs']
  sd = dict(_state_dict('ddpm_torch_toy/ddpm_gaussian8', ['model']))
  assert np.array_equal(sd['temp_fc.2.fc1.weight'], sd['temp_fc.0.fc1.weight'])
  sd['temp_fc.2.fc1.weight'] = sd['temp_fc.2.fc1.weight'] + 1
  with pytest.raises(ddpm_torch.UntiedLayers, match='temp_fc.2.fc1.weight'):
    ddpm_torch.convert(sd, kw)
  assert ddpm_torch.toy_config(kw) == dict(features=64, num_layers=3)
  err = _mismatch(lambda: ddpm_torch.convert(_state_dict('ddpm_torch_toy/ddpm_gaussian8',
                                                         ['model']),
                                             dict(kw, num_temporal_layers=4)))
  assert err.missing == [f'temp_fc.3.{k}' for k in ddpm_torch.TOY_LAYER_KEYS]


def test_create_rejects_unknown_and_missing_kwargs():
  kw = fixtures.entry('torch', 'ddpm_torch_unet/release_ema')['constructor']['kwargs']
  with pytest.raises(ValueError, match='unknown ddpm_torch_unet kwargs: dropout'):
    ddpm_torch_unet.create(dict(kw, dropout=0.1))
  base = fixtures.entry('torch', 'eadpm_ddpm_unet/base')['constructor']['kwargs']
  with pytest.raises(ValueError, match='lack resolution'):
    ddpm_unet.create({k: v for k, v in base.items() if k != 'resolution'})
  with pytest.raises(ValueError, match='mode'):
    ddpm_unet.create(dict(base, head_out_ch=3, mode='fancy'))
