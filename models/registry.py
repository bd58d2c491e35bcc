"""Image network families: config name -> Flax module, ModelSpec and model adapter.

Each family's module file offers `create(kwargs) -> nn.Module` with the original
constructor's keyword arguments and `__call__(x NHWC, t, y=None, train=False)`,
`t` in the network's own time convention. This file wraps it once into the
adapter contract of models/adapter.py: the log-SNR becomes the family's time
input, channel-stacked outputs become named outputs. EDM networks are
preconditioned denoisers D(x; sigma) of unscaled x; they are wrapped as VP
models predicting x0 (x = x_t / alpha, sigma = exp(-lam / 2)), so every VP
sampler and objective can drive them through the same noise-coordinate map.
"""
import importlib

import jax
import jax.numpy as jnp

from models import adapter

# family -> (module, default time input, kwarg holding the number of classes)
FAMILIES = {
    'ddpm_unet': ('models.ddpm_unet', 'n-1', None),
    'ddpm_torch_unet': ('models.ddpm_torch_unet', 'n-1', None),
    'iddpm_unet': ('models.iddpm_unet', 'n', 'num_classes'),
    'ncsnpp': ('models.ncsnpp', '999t', None),
    'vdm_unet': ('models.vdm_unet', 'vdm_gamma', None),
    'edm': ('models.edm_precond', 'sigma', 'label_dim'),
}
# Time inputs of networks trained on a grid: samplers snap noise levels to it.
DISCRETE = ('n', 'n-1', 'iddpm_rescaled')
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def network(family, kwargs, dtype='float32'):
  """The Flax module of `family` built from the original constructor kwargs."""
  module = importlib.import_module(FAMILIES[family][0])
  return module.create(dict(kwargs)).clone(dtype=DTYPES[dtype])


def num_classes(family, kwargs):
  key = FAMILIES[family][2]
  return int(kwargs.get(key) or 0) if key else 0


def outputs(prediction, learned_var, head):
  """The named outputs, in channel order: the prediction, then var_values or the head."""
  return (prediction,) + (('var_values',) if learned_var and not head else ()) + \
      ((head,) if head else ())


def model(family, kw, sched):
  """The adapter of an image family from its resolved kwargs (training.build.model_kwargs)."""
  net = network(family, kw['kwargs'], kw.get('dtype', 'float32'))
  shape = tuple(kw['data_shape'])
  classes = num_classes(family, kw['kwargs'])
  is_edm = family == 'edm'
  prediction = 'x0' if is_edm else kw['prediction']
  spec = adapter.ModelSpec(
      family=family, prediction=prediction,
      outputs=outputs(prediction, kw.get('learned_var', False), kw.get('head', '')),
      time_input=kw['time_input'], round='index' if kw['time_input'] in DISCRETE else 'none',
      N=sched.N, data_shape=shape, num_classes=classes,
      data_range=(-1.0, 1.0))

  conditioning = kw.get('conditioning', False)

  def labels(y, batch):
    if not classes and not conditioning:
      return None
    return jnp.zeros((batch,), jnp.int32) if y is None else jnp.asarray(y, jnp.int32)

  def init(key):  # labels / conditioning of 0 at init; samplers pass none (classes: their own)
    x = jnp.zeros((1,) + shape, jnp.float32)
    t = jnp.ones((1,), jnp.float32)
    return net.init({'params': key}, x, t, labels(None, 1))

  def apply(params, x_t, lam, y=None, *, train=False, rngs=None):
    lam = jnp.broadcast_to(lam, x_t.shape[:1])
    x = adapter.to_float32(x_t)
    if is_edm:  # VP coordinates -> the denoiser's unscaled x and sigma
      alpha = jnp.sqrt(jax.nn.sigmoid(lam)).astype(jnp.float32)
      x = x / alpha.reshape((-1,) + (1,) * (x.ndim - 1))
    t = adapter.time_input(spec.time_input, lam, sched)
    out = net.apply(params, x, adapter.to_float32(t), labels(y, x.shape[0]), train=train,
                    rngs=rngs)
    return {k: v.astype(x_t.dtype) for k, v in adapter.split_outputs(out, spec).items()}

  return adapter.Model(spec=spec, init=init, apply=apply)


def check_channels(family, kw):
  """A ValueError unless the network emits one data-shaped block per named output."""
  net = network(family, kw['kwargs'])
  shape = tuple(kw['data_shape'])
  classes = num_classes(family, kw['kwargs'])
  x = jax.ShapeDtypeStruct((1,) + shape, jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.float32)
  y = jax.ShapeDtypeStruct((1,), jnp.int32) if classes else None
  params = jax.eval_shape(lambda k, x, t, y: net.init({'params': k}, x, t, y), jax.random.key(0),
                          x, t, y)
  out = jax.eval_shape(lambda p, x, t, y: net.apply(p, x, t, y), params, x, t, y)
  names = outputs('x0' if family == 'edm' else kw['prediction'], kw.get('learned_var', False),
                  kw.get('head', ''))
  if out.shape[1:-1] != shape[:-1] or out.shape[-1] != len(names) * shape[-1]:
    raise ValueError(f'the {family} network maps {shape} to {out.shape[1:]}, but the outputs '
                     f'{", ".join(names)} need {len(names) * shape[-1]} channels at '
                     f'{shape[0]}x{shape[1]}')
