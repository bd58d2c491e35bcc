"""The one checkpoint module: orbax CheckpointManager, one directory per step.

Items: params, ema_params, opt_state (StandardSave pytrees), step and meta (JSON:
model family, resolved constructor kwargs, ModelSpec, source sha256 for
converted weights). Saves are asynchronous; orbax renames a finished step
directory into place, so a process killed mid-save leaves only a temporary
directory that `latest_step` ignores and restores fall back to the previous step.
Restores take abstract targets carrying the target shardings.
"""
import os

import jax
import orbax.checkpoint as ocp

ITEMS = ('params', 'ema_params', 'opt_state', 'step', 'meta')


def directory(workdir):
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def manager(path, keep=None, create=True):
  opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create,
                                      enable_async_checkpointing=True)
  return ocp.CheckpointManager(path, options=opts, item_names=ITEMS)


def save(mgr, state, meta):
  """Start an async save of a TrainState (or a state with opt_state None) at its step."""
  step = int(jax.device_get(state.step))
  items = dict(params=ocp.args.StandardSave(state.params),
               ema_params=ocp.args.StandardSave(state.ema_params),
               step=ocp.args.JsonSave({'step': step}),
               meta=ocp.args.JsonSave(meta))
  if state.opt_state is not None:
    items['opt_state'] = ocp.args.StandardSave(state.opt_state)
  mgr.save(step, args=ocp.args.Composite(**items))


def abstract(tree):
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def restore(mgr, step, targets):
  """Restore the named items; `targets` maps item -> abstract pytree (None for JSON items)."""
  args = {k: (ocp.args.JsonRestore() if k in ('meta', 'step') else ocp.args.StandardRestore(v))
          for k, v in targets.items()}
  return mgr.restore(step, args=ocp.args.Composite(**args))


def read_meta(path, step=None):
  """(step, meta) of the latest (or given) committed checkpoint in `path`, or (None, None)."""
  if not os.path.isdir(path):
    return None, None
  mgr = manager(path, create=False)
  step = mgr.latest_step() if step is None else step
  if step is None:
    return None, None
  return step, mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
