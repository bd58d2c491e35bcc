"""NVlabs/edm network pickles -> Flax params of family 'edm' (reference A.3.5, A.4).

The Flax tree mirrors the torch module tree (models/edm_layers.py, edm_unet.py,
edm_precond.py), so every leaf maps to its state_dict key by name:
  path a/b/c/leaf -> 'a.b.c.<weight|bias|freqs|u>', with `enc_<name>` / `dec_<name>` ->
  `enc.<name>` / `dec.<name>` (torch ModuleDicts); leaf kernel [kh, kw, I, O] <- weight
  [O, I, kh, kw], kernel [I, O] <- weight [O, I], scale <- weight. The qkv weights need no
  permutation: the attention reshapes its channels exactly as the original does.
Buffers: FourierEmbedding `freqs` (random) and iDDPMPrecond `u` (float32, torch-built) are
read into params; every `resample_filter` buffer (one per Conv2d that up- or downsamples,
found by tracing the model) is a constant of the configuration and is checked against it.
"""
import flax.linen as nn
import jax
import numpy as np

from models import edm_layers, edm_precond
from models.convert import checkpoint_io, layout


def _net(loaded):
  net = loaded.get('ema', loaded) if isinstance(loaded, dict) else None
  if not isinstance(net, dict) or net.get('class_name') not in edm_precond.PRECONDS:
    found = net.get('class_name') if isinstance(net, dict) else type(net).__name__
    raise checkpoint_io.CheckpointError(
        'not an EDM network pickle: expected a preconditioner '
        f'({", ".join(edm_precond.PRECONDS)}) under "ema", found {found!r}')
  return net


def kwargs_from_pickle(loaded):
  """Family kwargs {'class_name', **the wrapper's init_kwargs} of a loaded EDM pickle."""
  net = _net(loaded)
  return {'class_name': net['class_name'], **net['init_kwargs']}


def from_pickle(loaded):
  """(state_dict, kwargs) of a loaded EDM pickle (`edm_pickle.load`)."""
  return _net(loaded)['state_dict'], kwargs_from_pickle(loaded)


def torch_key(path):
  """Flax path (tuple of names below 'params') -> torch state_dict key."""
  *mods, leaf = path
  mods = [m.replace('_', '.', 1) if m.startswith(('enc_', 'dec_')) else m for m in mods]
  return '.'.join(mods + [{'kernel': 'weight', 'scale': 'weight'}.get(leaf, leaf)])


def trace(module, *args):
  """Shapes of module.init_with_output(key, *args): (variables, {buffer key: value}, output)."""
  buffers = {}

  def interceptor(fn, fn_args, fn_kwargs, context):
    m = context.module
    if isinstance(m, edm_layers.Conv2d) and context.method_name == '__call__' and (m.up or m.down):
      f = edm_layers.resample_filter_2d(m.resample_filter)
      buffers[torch_key(m.path + ('resample_filter',))] = f[None, None]
    return fn(*fn_args, **fn_kwargs)

  with nn.intercept_methods(interceptor):
    out, variables = jax.eval_shape(module.init_with_output, jax.random.key(0), *args)
  return variables, buffers, out


def reference_keys(module, *args):
  """The torch state_dict keys (parameters and persistent buffers) the module stands for."""
  variables, buffers, _ = trace(module, *args)
  leaves = jax.tree_util.tree_leaves_with_path(variables['params'])
  paths = [tuple(k.key for k in p) for p, _ in leaves]
  return sorted([torch_key(p) for p in paths] + list(buffers))


def _read(reader, tree, path=()):
  if isinstance(tree, dict):
    return {k: _read(reader, v, path + (k,)) for k, v in tree.items()}
  key, shape = torch_key(path), tuple(tree.shape)
  if path[-1] == 'kernel' and len(shape) == 4:
    return np.transpose(reader.get(key, (shape[3], shape[2], shape[0], shape[1])), (2, 3, 1, 0))
  if path[-1] == 'kernel':
    return reader.get(key, shape[::-1]).T
  return reader.get(key, shape)


def convert_module(state_dict, module, *args):
  """Params {'params': ...} of `module` (called on args at init) from a torch state_dict."""
  variables, buffers, _ = trace(module, *args)
  reader = layout.Reader(state_dict)
  params = {'params': _read(reader, variables['params'])}
  wrong = []
  for key, value in buffers.items():
    fits = reader.has(key) and np.shape(state_dict[key]) == value.shape
    got = reader.get(key, value.shape)  # records a missing or mis-shaped buffer
    if fits and not np.array_equal(got, value):
      wrong.append(key)
  reader.finish(params, expected=variables)
  if wrong:
    raise ValueError('checkpoint resample_filter buffers differ from the configured '
                     f'resample_filter: {", ".join(wrong)}')
  return params


def convert(state_dict, kwargs):
  """The family contract: Flax params of `edm_precond.create(kwargs)` from a state_dict."""
  module = edm_precond.create(kwargs)
  return convert_module(state_dict, module, *edm_precond.init_inputs(module))
