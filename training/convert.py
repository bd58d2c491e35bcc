"""--mode=convert: a public PyTorch checkpoint -> an orbax checkpoint `sample`/`eval` use.

The architecture is config.model (its kwargs as the original constructor names
them, or config.convert.source_kwargs as JSON; EDM pickles carry their own). The
file is read without executing anything (models/convert/checkpoint_io.py), its
weights located (flat state dict, ddpm-torch trainer dict, PSLD Lightning EMA
network, EDM pickle's `ema`), mapped onto the Flax tree with every missing,
unexpected or mis-shaped key reported, and written as step 0 with
params = ema_params, no optimiser state, and `meta` (family, resolved kwargs,
schedule, ModelSpec, the source's sha256). With config.convert.verify_io the
converted network is run on the stored inputs and compared with the original's
outputs (np.allclose semantics: |a - b| <= atol + rtol |b|).
"""
import hashlib
import importlib
import json
import types

import jax
import jax.numpy as jnp
import numpy as np

from models import ncsnpp
from models import registry
from models import toy_mlp
from models.convert import checkpoint_io
from models.convert import layout
from models.convert import ncsnpp as ncsnpp_convert
from training import build
from training import checkpoint
from training import mesh as mesh_lib

# config.model.name -> converter module (`convert(state_dict, kwargs)`)
CONVERTERS = {
    'ddpm_unet': 'models.convert.ddpm_unet',
    'ddpm_torch_unet': 'models.convert.ddpm_torch',
    'iddpm_unet': 'models.convert.iddpm_unet',
    'ncsnpp': 'models.convert.ncsnpp',
    'edm': 'models.convert.edm',
    'toy_mlp': 'models.convert.ddpm_torch',
}


class ConvertError(ValueError):
  """A user-fixable conversion problem (file, kwargs, architecture mismatch)."""


class VerifyError(ConvertError):
  """The converted network's outputs differ from the original's beyond the tolerance (exit 1)."""


def sha256(path):
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def source_kwargs(config):
  """config.convert.source_kwargs (a JSON object) or {} when empty."""
  text = config.convert.source_kwargs
  if not text:
    return {}
  try:
    kwargs = json.loads(text)
  except json.JSONDecodeError as e:
    raise ConvertError(f'config.convert.source_kwargs is not valid JSON: {e}') from None
  if not isinstance(kwargs, dict):
    raise ConvertError('config.convert.source_kwargs must be a JSON object of constructor kwargs')
  return kwargs


def state_dict(obj):
  """The weights a loaded checkpoint holds, as a flat {torch key: array} dict.

  Flat state dicts are taken as they are; a ddpm-torch training dict gives its EMA
  shadow (`ema/shadow`, the weights sampling uses); a PSLD Lightning checkpoint its
  `ema_score_fn.` network; a dict with only `model` (the toy trainer dict) that;
  DistributedDataParallel's `module.` prefix is dropped.
  """
  if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
    return ncsnpp_convert.psld_state_dict(obj)
  if isinstance(obj, dict) and isinstance(obj.get('ema'), dict) and 'shadow' in obj['ema']:
    return checkpoint_io.strip_prefix(obj['ema']['shadow'], 'module.')
  if isinstance(obj, dict) and isinstance(obj.get('model'), dict):
    return checkpoint_io.strip_prefix(obj['model'], 'module.')
  if isinstance(obj, dict) and all(isinstance(v, np.ndarray) for v in obj.values()):
    return checkpoint_io.strip_prefix(obj, 'module.')
  raise checkpoint_io.CheckpointError(
      'no state dict found: expected a flat state dict, a ddpm-torch trainer dict (ema/shadow), '
      'a PSLD Lightning checkpoint (state_dict/ema_score_fn.*) or an EDM pickle (ema)')


def network_fn(family, kwargs):
  """The raw network (original I/O convention, NHWC) as f(params, x, t, y)."""
  if family == 'toy_mlp':  # kwargs: build.model_kwargs of the toy
    net = toy_mlp.ToyMLP(features=kwargs['features'], num_layers=kwargs['num_layers'],
                         out_dim=kwargs['data_shape'][-1] * (2 if kwargs['learned_var'] else 1))
    return lambda p, x, t, y: net.apply(p, x, t)
  net = registry.network(family, kwargs)
  return lambda p, x, t, y: net.apply(p, x, t, y)


def labels(y):
  """Class labels from ints or one-hot rows (an all-zero row is the null label -1)."""
  y = np.asarray(y)
  if y.ndim == 2:
    return np.where(y.max(axis=1) > 0, y.argmax(axis=1), -1).astype(np.int32)
  return y.astype(np.int32)


def verify(config, family, net_kwargs, params):
  """Run the converted network on verify_io's inputs; (max abs err, max rel err, ok)."""
  c = config.convert
  try:
    io = np.load(c.verify_io)
  except OSError as e:
    raise ConvertError(f'config.convert.verify_io={c.verify_io!r} cannot be read: {e}') from None
  missing = [k for k in ('x', 't', 'out') if k not in io.files]
  if missing:
    raise ConvertError(f'config.convert.verify_io={c.verify_io!r} lacks {", ".join(missing)} '
                       f'(has {", ".join(io.files)}; needs x, t, out and optionally y)')
  x, t, ref = (np.asarray(io[k]) for k in ('x', 't', 'out'))
  image = x.ndim == 4
  x_in = np.transpose(x, (0, 2, 3, 1)) if image else x
  y = labels(io['y']) if 'y' in io.files else None
  fn = jax.jit(network_fn(family, net_kwargs))
  out = np.asarray(fn(params, jnp.asarray(x_in, jnp.float32), jnp.asarray(t, jnp.float32),
                      None if y is None else jnp.asarray(y)), np.float64)
  if image:
    out = np.transpose(out, (0, 3, 1, 2))
  if out.shape != ref.shape:
    raise ConvertError(f'verify_io: the converted network gives shape {out.shape}, '
                       f'the stored output is {ref.shape}')
  err = np.abs(out - ref)
  rel = err / np.maximum(np.abs(ref), 1e-12)
  ok = bool(np.all(err <= c.verify_tol + c.verify_rtol * np.abs(ref)))
  return float(err.max()), float(rel.max()), ok


def convert(config, workdir):
  """Convert config.convert.source into DIR/checkpoints (step 0); returns the params."""
  family, path = config.model.name, config.convert.source
  module = importlib.import_module(CONVERTERS[family])
  obj = checkpoint_io.load(path)
  if family == 'edm':
    sd, net_kwargs = module.from_pickle(obj)
  else:
    sd = state_dict(obj)
    net_kwargs = source_kwargs(config) or config.model.kwargs.to_dict()
    if family == 'ncsnpp' and 'model' in net_kwargs:  # a whole score_sde / PSLD config
      net_kwargs = ncsnpp.flat_kwargs(net_kwargs, head='gn_out2.weight' in sd)
  with config.unlocked():
    if family == 'toy_mlp':
      for key, value in module.toy_config(net_kwargs).items():
        config.model[key] = value
    else:
      config.model.kwargs = net_kwargs
  kw = build.model_kwargs(config)
  sched = build.schedule(build.schedule_kwargs(config))
  mdl = build.model(family, kw, sched)
  try:
    params = module.convert(sd, net_kwargs)
    layout.Reader({}).finish(params, jax.eval_shape(mdl.init, jax.random.key(0)))
  except layout.Mismatch as e:
    raise ConvertError(f'{path} does not fit config.model ({family}): {e}') from None
  print(f'converted {path}: {len(sd)} tensors, '
        f'{sum(np.size(v) for v in jax.tree.leaves(params)):,} parameters', flush=True)
  if config.convert.verify_io:
    err, rel, ok = verify(config, family, kw if family == 'toy_mlp' else net_kwargs, params)
    print(f'verify_io: max abs error {err:.3g}, max rel error {rel:.3g} '
          f'(atol {config.convert.verify_tol:g}, rtol {config.convert.verify_rtol:g})', flush=True)
    if not ok:
      raise VerifyError(f'verify_io: outputs differ beyond atol {config.convert.verify_tol:g} '
                         f'+ rtol {config.convert.verify_rtol:g}')
  meta = build.meta(config, mdl)
  meta['source'] = dict(path=path, sha256=sha256(path))
  mesh = mesh_lib.make_mesh()
  params = jax.device_put(jax.tree.map(jnp.asarray, params), mesh_lib.replicated(mesh))
  state = types.SimpleNamespace(step=0, params=params, ema_params=params, opt_state=None)
  mgr = checkpoint.manager(checkpoint.directory(workdir), keep=None)
  checkpoint.save(mgr, state, meta)
  mgr.wait_until_finished()
  mgr.close()
  print(f'wrote {checkpoint.directory(workdir)}/0 ({family})', flush=True)
  return params
