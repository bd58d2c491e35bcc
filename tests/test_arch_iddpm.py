"""The improved-diffusion UNet and EAD's SN/NPR heads against the PyTorch fixtures, and the
public configurations' sizes (reference A.10.1, A.10.2, A.3.2)."""
import functools
import os
import re

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar10_cs, cifar10_ls, imagenet64
from models import iddpm_unet
from models.convert import checkpoint_io, layout
from models.convert import iddpm_unet as convert_iddpm
from tests import fixtures

FIXTURES = ('eadpm_iddpm_unet/base_out3', 'eadpm_iddpm_unet/head_simple_out3',
            'eadpm_iddpm_unet/base_learned_sigma', 'eadpm_iddpm_unet/head_complex_learned_sigma')
SIMPLE = dict(head_out_channels=3, mode='simple')
COMPLEX = dict(head_out_channels=3, mode='complex')


@functools.lru_cache(maxsize=None)
def _fixture(fixture_id):
  e = fixtures.entry('torch', fixture_id)
  root = fixtures.root('torch')
  sd = checkpoint_io.walk(checkpoint_io.load(os.path.join(root, e['checkpoint']['file'])),
                          e['checkpoint']['state_dict_path'])
  return e, sd, dict(np.load(os.path.join(root, e['io']['file'])))


def _nhwc(a):
  return jnp.asarray(np.transpose(a, (0, 2, 3, 1)), jnp.float32)


@pytest.mark.parametrize('fixture_id', FIXTURES)
def test_fixture_reproduced(fixture_id):
  e, sd, io = _fixture(fixture_id)
  kwargs = e['constructor']['kwargs']
  params = convert_iddpm.convert(sd, kwargs)
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(params))
  net = iddpm_unet.create(kwargs)
  out = np.asarray(jax.jit(net.apply)(params, _nhwc(io['x']), jnp.asarray(io['t'], jnp.float32)))
  assert out.dtype == np.float32
  out = np.transpose(out, (0, 3, 1, 2))
  tol = e['tolerance']['suggested']
  np.testing.assert_allclose(out, io['out'], atol=tol['atol'], rtol=tol['rtol'])
  assert np.abs(out - io["out"]).max() < tol["atol"] / 5  # a correct port lands well inside


# (config, head kwargs) -> (tensors, parameters); reference A.10.1, A.10.2, A.3.2
PUBLIC = [
    (cifar10_ls, {}, 446, 52_542_979),
    (cifar10_cs, {}, 446, 52_542_979),
    (cifar10_ls, SIMPLE, 450, 52_542_979 + 3_715),
    (cifar10_ls, COMPLEX, 460, 52_542_979 + 430_723),
    (imagenet64, {}, 450, 121_063_942),
    (imagenet64, SIMPLE, 454, 121_063_942 + 3_715),
    (imagenet64, COMPLEX, 464, 121_063_942 + 430_723),
]


@pytest.mark.parametrize('config,head,tensors,count', PUBLIC,
                         ids=[f'{c.__name__.split(".")[-1]}-{h.get("mode", "base")}'
                              for c, h, _, _ in PUBLIC])
def test_public_sizes(config, head, tensors, count):
  c = config.get_config()
  kwargs = dict(c.model.kwargs, **head)
  net = iddpm_unet.create(kwargs)
  shapes = iddpm_unet.param_shapes(net)
  leaves = jax.tree.leaves(shapes)
  assert len(leaves) == tensors
  assert sum(int(np.prod(a.shape)) for a in leaves) == count
  assert all(a.dtype == jnp.float32 for a in leaves)
  size = 32 if c.data.name == 'cifar10' else 64
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  t = jax.ShapeDtypeStruct((2,), jnp.float32)
  out = jax.eval_shape(net.apply, shapes, x, t)
  # learned sigma: [eps | var_values]; a head drops the variance values: [eps | head]
  assert out.shape == (2, size, size, 6 if head or kwargs['out_channels'] == 6 else 3)
  assert out.dtype == jnp.float32


def test_public_kwargs_match_manifest():
  hp = fixtures.entry('torch', FIXTURES[0])['public_model_hyperparameters']
  for config, key in ((cifar10_ls, 'CIFAR10 (LS)/(CS), Analytic-DPM'),
                      (cifar10_cs, 'CIFAR10 (LS)/(CS), Analytic-DPM'),
                      (imagenet64, 'ImageNet 64x64 (improved-diffusion, learned sigma)')):
    want = dict(hp[key], num_classes=0)  # the configs write the original's None as 0
    got = {k: list(v) if isinstance(v, tuple) else v for k, v in config.get_config().model.kwargs.items()}
    assert got == want


def test_wrong_architecture_raises_mismatch():
  _, base_sd, _ = _fixture('eadpm_iddpm_unet/base_out3')
  e, head_sd, _ = _fixture('eadpm_iddpm_unet/head_simple_out3')
  base_kwargs = {k: v for k, v in e['constructor']['kwargs'].items() if k not in SIMPLE}
  with pytest.raises(layout.Mismatch) as err:  # a trunk-only file for the head model
    convert_iddpm.convert(base_sd, dict(base_kwargs, **SIMPLE))
  assert sorted(err.value.missing) == ['out2.0.bias', 'out2.0.weight', 'out2.2.bias',
                                       'out2.2.weight']
  with pytest.raises(layout.Mismatch) as err:  # a head file for the trunk
    convert_iddpm.convert(head_sd, base_kwargs)
  assert err.value.unexpected == ['out2.0.bias', 'out2.0.weight', 'out2.2.bias',
                                  'out2.2.weight']
  with pytest.raises(layout.Mismatch) as err:  # the complex head reads a ResBlock at out2.0
    convert_iddpm.convert(head_sd, dict(base_kwargs, **COMPLEX))
  assert 'out2.0.in_layers.2.weight' in err.value.missing
  assert 'out2.2.weight' in err.value.unexpected
  e, ls_sd, _ = _fixture('eadpm_iddpm_unet/base_learned_sigma')
  with pytest.raises(layout.Mismatch) as err:  # learned-sigma file for an eps-only network
    convert_iddpm.convert(ls_sd, dict(e['constructor']['kwargs'], out_channels=3))
  assert [k for k, _, _ in err.value.misshaped] == ['params/out_2/bias', 'params/out_2/kernel']
  assert not err.value.missing and not err.value.unexpected
  assert 'params/out_2/kernel (3, 3, 32, 6) (expected (3, 3, 32, 3))' in str(err.value)


def _to_torch(params):
  """The inverse layout: a Flax tree -> a flat torch-style state dict (for round trips)."""
  sd = {}
  for path, a in jax.tree_util.tree_flatten_with_path(params['params'])[0]:
    names = [p.key for p in path]
    module = re.sub(r'_(\d+)', r'.\1', '.'.join(names[:-1]))
    a = np.asarray(a)
    if names[-1] == 'kernel':
      a = np.transpose(a, (3, 2, 0, 1)) if a.ndim == 4 else a.T
    sd[f'{module}.{"bias" if names[-1] == "bias" else "weight"}'] = a
  return sd


def _random_params(net, seed):
  """Random float32 parameters for `net` (numpy draws: no per-shape compilation)."""
  shapes = iddpm_unet.param_shapes(net, image_size=8)
  rng = np.random.RandomState(seed)
  return jax.tree.map(lambda s: (0.2 * rng.standard_normal(s.shape)).astype(np.float32), shapes)


TINY = dict(in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
            attention_resolutions=[2], dropout=0.2, channel_mult=[1, 2], num_classes=10,
            num_heads=2, use_scale_shift_norm=True)


def test_class_conditional_tiny_forward_bf16_dropout_and_round_trip():
  net = iddpm_unet.create(TINY)
  params = _random_params(net, 0)
  assert params['params']['label_emb']['embedding'].shape == (10, 128)
  back = convert_iddpm.convert(_to_torch(params), TINY)  # label_emb.weight and all the rest
  jax.tree.map(np.testing.assert_array_equal, back, params)

  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3), jnp.float32)
  t = jnp.asarray([1.0, 600.0], jnp.float32)
  y = jnp.asarray([3, 7], jnp.int32)
  run = jax.jit(lambda p, y, k: (net.apply(p, x, t, y),
                                 net.apply(p, x, t, y, train=True, rngs={'dropout': k})))
  out, out_train = run(params, y, jax.random.key(2))
  out_y, _ = run(params, jnp.asarray([4, 7], jnp.int32), jax.random.key(2))
  assert out.shape == (2, 8, 8, 6) and out.dtype == jnp.float32
  assert np.abs(out_y - out)[0].max() > 1e-3  # the label embedding changes example 0 ...
  assert np.abs(out_y - out)[1].max() == 0.0  # ... and only example 0
  assert np.abs(out_train - out).max() > 1e-3  # dropout is active in training
  with pytest.raises(ValueError, match='class-conditional'):
    net.apply(params, x, t)

  out_bf16 = jax.jit(net.clone(dtype=jnp.bfloat16).apply)(params, x, t, y)
  assert out_bf16.dtype == jnp.float32 and np.isfinite(np.asarray(out_bf16)).all()
  assert np.abs(out_bf16 - out).max() < 0.1 * np.abs(out).max()

  # use_checkpoint (nn.remat) keeps the parameter tree and differentiates in training mode
  remat = iddpm_unet.create(dict(TINY, use_checkpoint=True))
  loss = lambda p: remat.apply(p, x, t, y, train=True, rngs={'dropout': jax.random.key(2)}).sum()
  grads = jax.eval_shape(jax.grad(loss), params)
  assert jax.tree.structure(grads) == jax.tree.structure(params)


def test_unconditional_head_without_conv_resample():
  kwargs = dict(TINY, num_classes=0, conv_resample=False, **COMPLEX)
  net = iddpm_unet.create(kwargs)
  params = _random_params(net, 3)
  names = {k for path in traverse_util.flatten_dict(params['params']) for k in path}
  assert not names & {'op', 'conv'}  # average pooling and plain nearest upsampling
  back = convert_iddpm.convert(_to_torch(params), kwargs)
  jax.tree.map(np.testing.assert_array_equal, back, params)
  x = jnp.zeros((1, 8, 8, 3), jnp.float32)
  shape = jax.eval_shape(net.apply, params, x, jnp.ones((1,), jnp.float32)).shape
  assert shape == (1, 8, 8, 6)  # the 6-channel trunk keeps eps, then the 3-channel head


def test_create_rejects_bad_kwargs():
  with pytest.raises(ValueError, match='learn_sigma'):
    iddpm_unet.create(dict(TINY, learn_sigma=True))
  with pytest.raises(ValueError, match='complex2'):
    iddpm_unet.create(dict(TINY, mode='complex2'))
  with pytest.raises(ValueError, match='dims=3'):
    iddpm_unet.create(dict(TINY, dims=3))
  assert isinstance(iddpm_unet.create(dict(TINY, **SIMPLE)), iddpm_unet.UNetModel4Pretrained)
  assert iddpm_unet.create(dict(TINY, num_classes=0)).num_classes is None
