"""NCSN++ / DDPM++ (models/ncsnpp.py) against the original score_sde (EAD) and PSLD outputs.

Fixtures: ../shared/fixtures/torch/eadpm_score_sde_ddpmpp/{base,head} (fed 999 t as
`time_cond`) and ../shared/fixtures/psld/psld-ncsnpp-{sota,yamldefault} (fed t; EMA and
online networks of one Lightning checkpoint). Public sizes through jax.eval_shape only.
"""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar10_vpsde
from configs import psld_cifar10
from models import ncsnpp
from models import ncsnpp_layers
from models.convert import checkpoint_io
from models.convert import layout
from models.convert import ncsnpp as convert
from tests import fixtures

EAD = ('eadpm_score_sde_ddpmpp/base', 'eadpm_score_sde_ddpmpp/head')
PSLD = ('psld-ncsnpp-sota', 'psld-ncsnpp-yamldefault')


@functools.lru_cache(maxsize=None)
def _forward(kwargs_json, dtype='float32'):
  """One jitted forward per architecture; params are an argument (EMA and online share it)."""
  net = ncsnpp.create(json.loads(kwargs_json)).clone(dtype=jnp.dtype(dtype))
  return jax.jit(lambda p, x, t: net.apply(p, x, t))


def _run(kwargs, params, x_nchw, t, dtype='float32'):
  f = _forward(json.dumps(kwargs, sort_keys=True), dtype)
  x = jnp.asarray(np.transpose(x_nchw, (0, 2, 3, 1)), jnp.float32)
  out = f(params, x, jnp.asarray(t, jnp.float32))
  return np.transpose(np.asarray(out), (0, 3, 1, 2))


def _count(params):
  leaves = jax.tree_util.tree_leaves(params)
  return sum(int(np.prod(leaf.shape)) for leaf in leaves), len(leaves)


@functools.lru_cache(maxsize=None)
def _ead(fixture_id):
  e = fixtures.entry('torch', fixture_id)
  root = fixtures.root('torch')
  kwargs = ncsnpp.flat_kwargs(e['constructor']['config'], head=fixture_id.endswith('head'))
  sd = checkpoint_io.load(os.path.join(root, e['checkpoint']['file']))
  return e, kwargs, sd, dict(np.load(os.path.join(root, e['io']['file'])))


@functools.lru_cache(maxsize=None)
def _psld(name):
  e = fixtures.entry('psld', name)
  root = fixtures.root('psld')
  ckpt = checkpoint_io.load(os.path.join(root, e['files']['checkpoint']))
  return e, ncsnpp.flat_kwargs(e['config']['diffusion']), ckpt, dict(
      np.load(os.path.join(root, e['files']['io'])))


# Fixtures ---------------------------------------------------------------------------
@pytest.mark.parametrize('fixture_id', EAD)
def test_score_sde_fixture(fixture_id):
  e, kwargs, sd, io = _ead(fixture_id)
  params = convert.convert(sd, kwargs)
  n, tensors = _count(params)
  assert tensors + len(convert.BUFFERS) == e['checkpoint']['num_keys']
  assert n + sd['sigmas'].size == e['checkpoint']['num_scalars_unique']
  assert sd['sigmas'].dtype == np.float64
  out = _run(kwargs, params, io['x'], io['time_cond'])
  tol = e['tolerance']['suggested']
  np.testing.assert_allclose(out, io['out'], atol=tol['atol'], rtol=tol['rtol'])
  assert np.abs(out - io['out']).max() < 1e-4  # well inside: the port rounds like the original
  if kwargs.get('head'):
    np.testing.assert_allclose(out[:, 3:], io['head'], atol=tol['atol'], rtol=tol['rtol'])
    base = _ead(EAD[0])[3]['out']  # the head model's trunk is the base model
    np.testing.assert_allclose(out[:, :3], base, atol=tol['atol'], rtol=tol['rtol'])


@pytest.mark.parametrize('name', PSLD)
def test_psld_fixture_ema_and_online(name):
  e, kwargs, ckpt, io = _psld(name)
  assert kwargs == dict(e['score_fn_kwargs'], image_size=16, continuous=True)
  tol = e['suggested_tolerance']['eps_max_abs']
  ema_sd = convert.psld_state_dict(ckpt)  # the default is the EMA network
  assert len(ema_sd) == e['checkpoint']['state_dict_entries_per_network']
  ema = convert.convert(ema_sd, kwargs)
  assert _count(ema)[0] == e['num_parameters_per_network']
  out = _run(kwargs, ema, io['u'], io['t'])
  assert np.abs(out - io['eps_ema']).max() <= tol
  online = convert.convert(convert.psld_state_dict(ckpt, network='score_fn'), kwargs)
  out_online = _run(kwargs, online, io['u'], io['t'])
  assert np.abs(out_online - io['eps_online']).max() <= tol
  assert np.abs(out - io['eps_online']).max() > 100 * tol  # the two networks are told apart


def test_psld_state_dict_choices():
  _, _, ckpt, _ = _psld(PSLD[0])
  with pytest.raises(ValueError, match='network=.online.'):
    convert.psld_state_dict(ckpt, network='online')
  with pytest.raises(checkpoint_io.CheckpointError, match='no ema_score_fn'):
    convert.psld_state_dict({'state_dict': {'model.w': np.zeros(1)}})
  ema, online = convert.psld_state_dict(ckpt), convert.psld_state_dict(ckpt, 'score_fn')
  assert set(ema) == set(online) and not any(k.startswith(('score_fn', 'ema_')) for k in ema)


# Wrong architectures ------------------------------------------------------------------
def test_mismatch_lists_missing_unexpected_and_misshaped_keys():
  _, base_kw, base_sd, _ = _ead(EAD[0])
  _, head_kw, head_sd, _ = _ead(EAD[1])
  with pytest.raises(layout.Mismatch) as err:  # a plain DPM file for the head model
    convert.convert(base_sd, head_kw)
  assert sorted(err.value.missing) == ['conv_out2.bias', 'conv_out2.weight', 'gn_out2.bias',
                                       'gn_out2.weight']
  assert not err.value.unexpected
  with pytest.raises(layout.Mismatch) as err:  # a head file for the plain model
    convert.convert(head_sd, base_kw)
  assert sorted(err.value.unexpected) == ['conv_out2.bias', 'conv_out2.weight', 'gn_out2.bias',
                                          'gn_out2.weight']
  with pytest.raises(layout.Mismatch) as err:  # 6 channels for a 3-channel file
    convert.convert(base_sd, dict(base_kw, num_channels=6))
  last = max(int(k.split('.')[1]) for k in base_sd if k.startswith('all_modules.'))
  assert {k for k, _, _ in err.value.misshaped} == {  # the input and the output convs
      'all_modules.2.weight', f'all_modules.{last}.weight', f'all_modules.{last}.bias'}
  _, sota_kw, ckpt, _ = _psld(PSLD[0])
  _, yaml_kw, _, _ = _psld(PSLD[1])
  with pytest.raises(layout.Mismatch) as err:  # the FIR / Fourier / pyramid file, yaml config
    convert.convert(convert.psld_state_dict(ckpt), yaml_kw)
  assert err.value.unexpected and err.value.misshaped and 'unexpected keys' in str(err.value)
  with pytest.raises(layout.Mismatch) as err:  # the whole Lightning state dict, not narrowed
    convert.convert(ckpt['state_dict'], sota_kw)
  assert 'all_modules.0.W' in err.value.missing
  assert 'ema_score_fn.all_modules.0.W' in err.value.unexpected


# Public models (eval_shape only) ---------------------------------------------------------
PUBLIC = {  # config -> (parameters, tensors, output channels)
    'cifar10_vpsde': (cifar10_vpsde.get_config(), 61_804_419, 564, 3),
    'cifar10_vpsde:eps2': (cifar10_vpsde.get_config('eps2'), 61_804_419 + 3_715, 568, 6),
    'psld_cifar10': (psld_cifar10.get_config(), 97_627_910, 749, 6),
    'psld_cifar10:yamldefault': (psld_cifar10.get_config('yamldefault'), 61_811_334, 564, 6),
}


@pytest.mark.parametrize('name', PUBLIC)
def test_public_sizes_and_output_shapes(name):
  config, n_params, n_tensors, out_ch = PUBLIC[name]
  kwargs = config.model.kwargs.to_dict()
  params = convert.expected_params(kwargs)
  assert _count(params) == (n_params, n_tensors)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(params))
  net = ncsnpp.create(kwargs)
  x = jax.ShapeDtypeStruct((2, 32, 32, net.in_ch or net.num_channels), jnp.float32)
  t = jax.ShapeDtypeStruct((2,), jnp.float32)
  out = jax.eval_shape(lambda p, x, t: net.apply(p, x, t), params, x, t)
  assert out.shape == (2, 32, 32, out_ch) and out.dtype == jnp.float32


def test_public_configs_match_the_references():
  # EAD's CIFAR10 (VP SDE) file: the manifest's get_nscnpp_model() config; 565 = 564 + sigmas.
  e = fixtures.entry('torch', EAD[0])
  public = ncsnpp.flat_kwargs(next(iter(e['public_model_hyperparameters'].values())))
  mine = cifar10_vpsde.get_config().model.kwargs.to_dict()
  fields = lambda kw: {f: getattr(ncsnpp.create(kw), f) for f in ncsnpp.FIELDS}
  assert fields(public) == fields(mine)
  assert PUBLIC['cifar10_vpsde'][2] + len(convert.BUFFERS) == 565
  # PSLD: the fixture's options at full size (B.4: ~97.6 M parameters).
  sota = psld_cifar10.get_config().model.kwargs.to_dict()
  tiny = fixtures.entry('psld', PSLD[0])['score_fn_kwargs']
  for key in ('embedding_type', 'fir', 'progressive_input', 'in_ch', 'out_ch', 'fourier_scale',
              'skip_rescale', 'resblock_type'):
    assert sota[key] == tiny[key]
  assert round(PUBLIC['psld_cifar10'][1] / 1e5) == 976


# Construction, precision, dropout ------------------------------------------------------------
TINY = dict(nf=8, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4], dropout=0.5,
            embedding_type='fourier', fir=True, progressive_input='residual', image_size=8,
            in_ch=6, out_ch=6)


def test_create_rejects_unknown_and_unsupported_kwargs():
  with pytest.raises(ValueError, match='unknown kwargs bogus, nf_typo'):
    ncsnpp.create(dict(TINY, bogus=1, nf_typo=2))
  for key, value in (('progressive', 'output_skip'), ('resblock_type', 'ddpm'),
                     ('progressive_input', 'input_skip'), ('scale_by_sigma', True),
                     ('conditional', False), ('embedding_type', 'learned')):
    with pytest.raises(ValueError, match=f'{key}='):
      ncsnpp.create(dict(TINY, **{key: value}))
  with pytest.raises(ValueError, match='continuous'):
    ncsnpp.create(dict(TINY, continuous=False))
  ncsnpp.create(dict(TINY, sigma_min=0.01, ema_rate=0.999, name='ncsnpp'))  # inert keys pass


def _random_params(shapes, seed):
  """Random float32 values on a params tree of ShapeDtypeStructs (no init compile)."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32), shapes)


def test_bfloat16_forward():
  net = ncsnpp.create(TINY)
  params = _random_params(convert.expected_params(TINY), 0)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 8, 8, 6)), jnp.float32)
  t = jnp.asarray([0.01, 0.7], jnp.float32)
  ref = np.asarray(jax.jit(net.apply)(params, x, t))
  out = jax.jit(net.clone(dtype=jnp.bfloat16).apply)(params, x, t)
  assert out.dtype == jnp.float32 and out.shape == (2, 8, 8, 6)
  assert np.isfinite(np.asarray(out)).all()
  assert np.abs(np.asarray(out) - ref).max() < 0.1 * np.abs(ref).max()


def test_dropout_uses_the_dropout_stream_in_training_only():
  block = ncsnpp_layers.ResnetBlockBigGANpp(dropout=0.5, down=True, fir=True)
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 8, 8, 8)), jnp.float32)
  temb = jnp.ones((2, 32), jnp.float32)
  params = _random_params(jax.eval_shape(block.init, jax.random.key(0), x, temb), 3)
  run = jax.jit(lambda p, k: block.apply(p, x, temb, train=True, rngs={'dropout': k}))
  a, b, c = (np.asarray(run(params, jax.random.key(k))) for k in (3, 3, 4))
  ref = np.asarray(jax.jit(block.apply)(params, x, temb))
  assert a.shape == (2, 4, 4, 8)
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 0 and np.abs(a - ref).max() > 0
