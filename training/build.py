"""Config -> schedule, model adapter, loss; and the `meta` record a checkpoint carries."""
import jax
import jax.numpy as jnp
import numpy as np

from data import datasets
from data import toy
from diffusion import ddpm
from diffusion import psld as psld_lib
from diffusion.schedules import DiscreteSchedule
from models import adapter
from models import gmm_oracle
from models import psld_oracle
from models import registry
from models import toy_mlp

DROPOUT = 0x0D0  # the dropout key is fold_in(step key, DROPOUT); the noise keeps the step key
LABEL_DROPOUT = 0x1AB  # ... and the label-dropout draws fold_in(step key, LABEL_DROPOUT)
MODELS = ('toy_mlp', 'gmm_oracle', 'psld_oracle') + tuple(registry.FAMILIES)
ORACLES = ('gmm_oracle', 'psld_oracle')


def schedule_kwargs(config):
  d = config.diffusion
  return dict(name=d.schedule, num_steps=d.num_steps, beta_start=d.beta_start, beta_end=d.beta_end)


def schedule(kwargs):
  return DiscreteSchedule.named(**kwargs)


def conditioning(config):
  """Whether the batch's 'y' is a per-example conditioning flag the network takes (cifar10_aug's
  augmentation flag for VDM's ScoreUNet; 0 when sampling), rather than class labels."""
  image = datasets.IMAGES.get(config.data.name)
  return bool(image is not None and image.augment and config.model.name == 'vdm_unet')


def model_kwargs(config):
  """The resolved constructor arguments of config.model (stored in `meta`)."""
  m = config.model
  shape = datasets.data_shape(config.data.name, config)
  if m.name == 'toy_mlp':
    return dict(features=m.features, num_layers=m.num_layers, prediction=m.prediction,
                learned_var=config.diffusion.var_type == 'learned', data_shape=list(shape))
  if m.name in ORACLES:
    o = m.oracle
    if o.means:
      means, stds = np.asarray(o.means, np.float64), np.asarray(o.stds, np.float64)
      weights = np.asarray(o.weights, np.float64) if o.weights else None
    else:
      means, stds, weights = toy.mixture(config.data.name)
    return dict(means=np.asarray(means).tolist(), stds=np.asarray(stds).tolist(),
                weights=None if weights is None else np.asarray(weights).tolist(),
                process=o.process if m.name == 'gmm_oracle' else psld_kwargs(config),
                eps_scale=o.eps_scale, discrete=o.discrete)
  if m.name in registry.FAMILIES:
    if (m.time_input or registry.FAMILIES[m.name][1]) == 'psld_t':
      shape = shape[:-1] + (2 * shape[-1],)  # PSLD's phase space z = [x, m]
    return dict(kwargs=m.kwargs.to_dict(), time_input=m.time_input or registry.FAMILIES[m.name][1],
                prediction=m.prediction, learned_var=config.diffusion.var_type == 'learned',
                head=m.head, dtype=m.dtype, data_shape=list(shape),
                conditioning=conditioning(config))
  raise ValueError(f'unknown model {m.name!r}; allowed: {", ".join(MODELS)}')


def psld_kwargs(config):
  return config.diffusion.psld.to_dict()


def is_psld(config):
  """Whether config.model runs on PSLD's phase-space process (the PSLD oracle or a psld_t net)."""
  m = config.model
  return m.name == 'psld_oracle' or (m.name in registry.FAMILIES and
                                     (m.time_input or registry.FAMILIES[m.name][1]) == 'psld_t')


def model(family, kwargs, sched):
  """The adapter of a model family built from its resolved kwargs."""
  if family == 'psld_oracle':
    mix = gmm_oracle.GaussianMixture.create(kwargs['means'], kwargs['stds'], kwargs['weights'])
    return psld_oracle.oracle_model(mix, psld_lib.PhaseSpaceProcess(**kwargs['process']))
  if family == 'gmm_oracle':
    mix = gmm_oracle.GaussianMixture.create(kwargs['means'], kwargs['stds'], kwargs['weights'])
    return gmm_oracle.oracle_model(mix, process=kwargs['process'], eps_scale=kwargs['eps_scale'],
                                   N=sched.N if kwargs['discrete'] else None)
  if family == 'toy_mlp':
    d = kwargs['data_shape'][-1]
    outputs = (kwargs['prediction'],) + (('var_values',) if kwargs['learned_var'] else ())
    net = toy_mlp.ToyMLP(features=kwargs['features'], num_layers=kwargs['num_layers'],
                         out_dim=d * len(outputs))
    spec = adapter.ModelSpec(family=family, prediction=kwargs['prediction'], outputs=outputs,
                             time_input='n-1', round='index', N=sched.N,
                             data_shape=tuple(kwargs['data_shape']))

    def init(key):
      return net.init(key, jnp.zeros((1, d), jnp.float32), jnp.zeros((1,), jnp.float32))

    def apply(params, x_t, lam, y=None, *, train=False, rngs=None):
      t = adapter.time_input(spec.time_input, lam, sched)
      out = net.apply(params, adapter.to_float32(x_t), adapter.to_float32(t))
      return {k: v.astype(x_t.dtype) for k, v in adapter.split_outputs(out, spec).items()}

    return adapter.Model(spec=spec, init=init, apply=apply)
  if family in registry.FAMILIES:
    return registry.model(family, kwargs, sched)
  raise ValueError(f'unknown model {family!r}; allowed: {", ".join(MODELS)}')


def meta(config, mdl):
  return dict(family=config.model.name, kwargs=model_kwargs(config),
              schedule=schedule_kwargs(config), spec=mdl.spec.to_json(),
              **({'psld': psld_kwargs(config)} if is_psld(config) else {}))


def loss_fn(config, mdl, sched):
  """loss_fn(params, batch, key) -> per-example terms (dict), from config.training."""
  t = config.training

  def fn(params, batch, key):
    rngs = {'dropout': jax.random.fold_in(key, DROPOUT)}
    y = batch.get('y')
    if y is not None and mdl.spec.num_classes and t.label_dropout > 0:
      drop = jax.random.bernoulli(jax.random.fold_in(key, LABEL_DROPOUT), t.label_dropout, y.shape)
      y = jnp.where(drop, -1, y)
    net = lambda x_t, n: mdl.apply(params, x_t, sched.lam_at(n), y, train=True, rngs=rngs)
    return ddpm.loss(net, sched, batch['x'], key, prediction=mdl.spec.prediction,
                     loss_type=t.loss, var_type=config.diffusion.var_type,
                     vlb_weight=t.vlb_weight, data_range=mdl.spec.data_range)

  return fn
