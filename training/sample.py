"""--mode=sample: draw config.sampling.num_samples samples, write .npz and a plot."""
import functools
import math
import os

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import numpy as np
import tqdm

from diffusion import analytic
from diffusion import timesteps
from sampling import ddim
from sampling import ddpm
from sampling import edm
from sampling import psld
from sampling import sde2
from training import images
from training import inference
from training import io
from training import ms_eps as ms_eps_lib
from training import mesh as mesh_lib
from training import rng

# method -> (sampler module, its variance / solver option; None: config.diffusion.var_type).
SAMPLERS = {
    'ddpm': (ddpm, None), 'sn_ddpm': (ddpm, 'sn'), 'npr_ddpm': (ddpm, 'npr'),
    'analytic_ddpm': (ddpm, 'analytic'),
    'ddim': (ddim, 'small'), 'sn_ddim': (ddim, 'sn'), 'npr_ddim': (ddim, 'npr'),
    'analytic_ddim': (ddim, 'analytic'),
    'edm_euler': (edm, 'euler'), 'edm_heun': (edm, 'heun'),
    'sed_fork': (sde2, 'sed_fork'), 'ito_taylor2': (sde2, 'ito_taylor2'),
    'psld_em': (psld, 'psld_em'), 'psld_splitting': (psld, 'psld_splitting'),
    'psld_ode': (psld, 'psld_ode'),
}
PSLD_METHODS = ('psld_em', 'psld_splitting', 'psld_ode')
DEFAULT_STEPS = {'edm_euler': 18, 'edm_heun': 18,  # EDM's generate.py
                 'sed_fork': 84, 'ito_taylor2': 18,  # the fork's published N; B.1.4's N
                 'psld_em': 50, 'psld_splitting': 50, 'psld_ode': 50}  # PSLD's README (ODE: unused)


def var_type(config):
  """The reverse variance of a DDPM/DDIM method (None for EDM methods)."""
  module, option = SAMPLERS[config.sampling.method]
  if module in (edm, sde2, psld):
    return None
  return option or config.diffusion.var_type


def needs_ms_eps(config):
  return var_type(config) == 'analytic' or config.sampling.trajectory in timesteps.NEEDS_MS_EPS


def steps(config, sched):
  """`steps` as each reference means it: K of the trajectory (0 = N), or the number of
  noise levels N of the continuous samplers (0 = the reference's default)."""
  if config.sampling.method in DEFAULT_STEPS:
    return config.sampling.steps or DEFAULT_STEPS[config.sampling.method]
  return config.sampling.steps or sched.N


def sampler_fn(config, model, sched, ms_eps=None):
  """A jitted (params, keys) -> x for config.sampling; its NFE is known after the first call."""
  s = config.sampling
  module, option = SAMPLERS[s.method]
  common = dict(spec=model.spec, schedule=sched, shape=model.spec.data_shape,
                steps=steps(config, sched))
  chain = dict(trajectory=s.trajectory, ms_eps=ms_eps, avg_cov=s.avg_cov,
               clip_sigma_idx=s.clip_sigma_idx, clip_pixel=s.clip_pixel)
  impl = getattr(module, option) if module in (sde2, psld) else module.sample
  if module is ddpm:
    options = dict(var_type=var_type(config), **chain)
  elif module is ddim:
    options = dict(eta=s.eta, ddim_mean=s.ddim_mean, var_type=option, **chain)
  elif module is psld:
    k = s.psld
    options = dict(denoise=k.denoise, eval_eps=k.eval_eps)
    options.update(dict(rtol=k.rtol, atol=k.atol) if option == 'psld_ode'
                   else dict(stride_type=k.stride_type))
    if k.clf_temp:
      options.update(clf_temp=k.clf_temp, clf_time=k.clf_time)
  elif module is sde2:
    k = s[option]
    ranges = dict(sigma_min=s.sigma_min or 0.002, sigma_max=s.sigma_max or 80.0, rho=k.rho)
    if option == 'sed_fork':
      options = dict(S_max=k.S_max, randn_like=k.randn_like, last_noise=k.last_noise, **ranges)
    else:
      options = dict(variant=k.variant, laplacian=k.laplacian, probes=k.probes,
                     g=k.g or None, **ranges)
  else:
    options = dict(solver=option, sigma_min=s.sigma_min or None, sigma_max=s.sigma_max or None,
                   rho=s.rho, discretization=s.discretization, noise_schedule=s.noise_schedule,
                   scaling=s.scaling, S_churn=s.S_churn, S_min=s.S_min, S_max=s.S_max,
                   S_noise=s.S_noise)
  apply = model.apply
  if model.spec.num_classes:  # the batch's labels travel with the params argument
    apply = guided(model.apply, model.spec.prediction, s.guidance)
  fn = functools.partial(impl, apply, **common, **options)
  nfe = []

  factor = 2 if model.spec.num_classes and s.guidance else 1

  def run(params, keys, y=None):
    if module is psld and s.psld.clf_temp:  # y are the classifier's labels (the model's logits)
      x, n = fn(params, keys=keys, y=y,
                classifier=lambda z, t: model.apply(params, z, t)['logits'])
    else:
      x, n = fn(params if y is None else {'net': params, 'y': y}, keys=keys)
    if isinstance(n, int):
      nfe[:] = [n * factor]
    else:  # psld_ode: adaptive per-sample NFE [B]; the batch mean goes to the host
      jax.debug.callback(lambda v: nfe.append(float(v) * factor), jnp.mean(n.astype(jnp.float64)))
    return x

  return jax.jit(run), nfe


def guided(apply, prediction, w):
  """A conditional model's apply taking {'net': params, 'y': labels}, with classifier-free
  guidance of weight w (Ho & Salimans 2022, eq. 6):
    out_w = (1 + w) out(x, y) - w out(x, null),   null label y = -1,
  on the main prediction (eps, x0, v, ... are affine in the score at fixed x_t); the other
  outputs (variances, heads) come from the conditional pass. w = 0 is the plain conditional
  model; both passes run as one batch of 2B (2 NFE per evaluation)."""

  def fn(p, x, lam, y=None, **kw):
    if not w:
      return apply(p['net'], x, lam, p['y'], **kw)
    b = x.shape[0]
    both = apply(p['net'], jnp.concatenate([x, x]), jnp.concatenate([lam, lam]),
                 jnp.concatenate([p['y'], jnp.full_like(p['y'], -1)]), **kw)
    out = {k: v[:b] for k, v in both.items()}
    out[prediction] = (1.0 + w) * out[prediction] - w * both[prediction][b:]
    return out

  return fn


def classifier_classes(config, model, params):
  """The number of classes K behind PSLD classifier guidance (0 = none): the model's `logits`
  output is the time-conditioned classifier (the PSLD oracle's exact p_t(y | z))."""
  s = config.sampling
  if s.method not in PSLD_METHODS or not s.psld.clf_temp:
    return 0
  if 'logits' not in model.spec.outputs:
    raise inference.InferenceError(
        f'config.sampling.psld.clf_temp={s.psld.clf_temp!r} needs a time-conditioned '
        f'classifier (a logits output), which {model.spec.family} does not have')
  z = jax.ShapeDtypeStruct((1,) + tuple(model.spec.data_shape), jnp.float64)
  return jax.eval_shape(lambda p, z: model.apply(p, z, jnp.ones(1))['logits'], params,
                        z).shape[-1]


LABELS = 0xFFFFFFFF  # fold_in(key(seed), LABELS) is the label stream (sample indices stay below)


def labels_fn(seed, num_classes, count, sharding):
  """A jitted start -> labels of samples start..start+count-1, uniform over the classes."""
  keys = rng.example_keys_fn(lambda: jax.random.fold_in(jax.random.key(seed), LABELS), count,
                             sharding)
  draw = jax.jit(jax.vmap(lambda k: jax.random.randint(k, (), 0, num_classes, jnp.int32)),
                 out_shardings=sharding)
  return lambda start: draw(keys(start))


def scatter_plot(x, path, title):
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.scatter(x[:, 0], x[:, 1], s=0.5, alpha=0.4)
  ax.set_aspect('equal')
  ax.set_title(title)
  io.save_figure(fig, path)
  plt.close(fig)


def sample(config, workdir, checkpoint_path=None):
  s = config.sampling
  mesh = mesh_lib.make_mesh()
  model, params, sched, step = inference.load(config, workdir, checkpoint_path, mesh)
  outputs = {'learned': ('var_values',), 'sn': analytic.COV_OUTPUTS['sn'],
             'npr': analytic.COV_OUTPUTS['npr']}
  needs = outputs.get(var_type(config), ())
  missing = [k for k in needs if k not in model.spec.outputs]
  if missing:
    raise inference.InferenceError(
        f'config.sampling.method={s.method!r} with variance {var_type(config)!r} needs the '
        f'model outputs {", ".join(missing)}, which {model.spec.family} does not have')
  if s.guidance and not model.spec.num_classes:
    raise inference.InferenceError(
        f'config.sampling.guidance={s.guidance!r} needs a class-conditional model; '
        f'{model.spec.family} is unconditional (use 0)')
  ms_eps = None
  if needs_ms_eps(config):
    ms_eps = ms_eps_lib.load_or_estimate(config, workdir, model, params, sched, step)
  fn, nfe = sampler_fn(config, model, sched, ms_eps)
  bs = s.batch_size
  keys_fn = rng.example_keys_fn(lambda: jax.random.key(s.seed), bs, mesh_lib.data_sharding(mesh))
  classes = model.spec.num_classes or classifier_classes(config, model, params)
  if classes:
    y_fn = labels_fn(s.seed, classes, bs, mesh_lib.data_sharding(mesh))
  num_batches = math.ceil(s.num_samples / bs)
  out, ys = [], []
  for b in tqdm.trange(num_batches, desc=f'{s.method} sampling', unit='batch',
                       disable=jax.process_index() > 0):
    y = y_fn(b * bs) if classes else None
    x = fn(params, keys_fn(b * bs), y)
    out.append(np.asarray(multihost_utils.process_allgather(x, tiled=True)))
    if classes:
      ys.append(np.asarray(multihost_utils.process_allgather(y, tiled=True)))
  x = np.concatenate(out)[:s.num_samples].astype(np.float32)
  jax.effects_barrier()
  nfe = nfe[0] if isinstance(nfe[0], int) else round(float(np.mean(nfe)), 2)
  path = os.path.join(workdir, 'samples', f'{s.method}_{steps(config, sched)}_{s.seed}.npz')
  if jax.process_index() == 0:
    title = f'{model.spec.family} {s.method} steps={steps(config, sched)} NFE={nfe} (step {step})'
    arrays = dict(nfe=np.asarray(nfe))
    if classes:  # the model's class labels, or those of PSLD classifier guidance
      arrays['arr_1'] = np.concatenate(ys)[:s.num_samples].astype(np.int32)
    if len(model.spec.data_shape) == 3:
      arrays['arr_0'] = images.quantize(x)
      io.savez(path, **arrays)
      images.save_grid(arrays['arr_0'][:100], path[:-4] + '.png')
    else:
      io.savez(path, arr_0=x, **arrays)
      scatter_plot(x, path[:-4] + '.png', title)
  print(f'wrote {len(x)} samples to {path}; NFE {nfe} per sample', flush=True)
  return x, nfe
