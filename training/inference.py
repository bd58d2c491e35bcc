"""Model, parameters and schedule for --mode=sample / eval.

A trained or converted model is rebuilt from its checkpoint's `meta` (family,
resolved kwargs, schedule), so sampling needs no repetition of the training
settings; its `ema_params` are restored replicated on the mesh. The oracle
needs no checkpoint.
"""
import jax

from diffusion import psld as psld_lib
from training import build
from training import checkpoint
from training import mesh as mesh_lib


class InferenceError(ValueError):
  """A user-fixable problem: no checkpoint, or one that does not fit."""


def load(config, workdir, checkpoint_path, mesh):
  """(model, params, schedule, step) with params replicated on `mesh`."""
  if config.model.name in build.ORACLES:
    sched = (psld_lib.PhaseSpaceProcess(**build.psld_kwargs(config)) if build.is_psld(config)
             else build.schedule(build.schedule_kwargs(config)))
    return build.model(config.model.name, build.model_kwargs(config), sched), {}, sched, 0
  path = checkpoint_path or checkpoint.directory(workdir)
  step, meta = checkpoint.read_meta(path)
  if step is None:
    raise InferenceError(f'no checkpoint in {path}: train first (--mode=train) or pass --checkpoint=PATH')
  sched = build.schedule(meta['schedule'])
  model = build.model(meta['family'], meta['kwargs'], sched)
  if 'psld' in meta:  # a PSLD network: its samplers run on the phase-space process
    sched = psld_lib.PhaseSpaceProcess(**meta['psld'])
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  repl = mesh_lib.replicated(mesh)
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl), abstract)
  params = checkpoint.restore(checkpoint.manager(path, create=False), step,
                              {'ema_params': target})['ema_params']
  return model, params, sched, step
