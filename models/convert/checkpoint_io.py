"""Reading PyTorch checkpoint files safely into flat {key: numpy array} state dicts.

Nothing in a checkpoint is ever executed:
  * zip / legacy `torch.save` files (.pt, .pth, .ckpt) go through
    `torch.load(..., weights_only=True)`, whose unpickler admits tensors, containers
    and primitive types only; the one extension is a narrow numpy allow-list (the
    scalar and dtype reconstructors a ddpm-torch toy dict stores for its loss);
  * .safetensors files hold raw tensors and a JSON header, read by `safetensors`;
  * EDM network pickles are read by `edm_pickle`'s restricted unpickler.
torch is imported here alone (lazily), never on the JAX compute path.
"""
import os

import numpy as np


class CheckpointError(ValueError):
  """A file that cannot be read as a checkpoint (missing, unsafe, or of an unknown layout)."""


def _numpy_allowlist():
  return [np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
          np.dtypes.Int64DType]


def torch_load(path):
  """The object a `torch.save` file holds, loaded with weights_only=True (tensors stay torch)."""
  import torch  # pylint: disable=g-import-not-at-top
  try:
    with torch.serialization.safe_globals(_numpy_allowlist()):
      return torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pickle.UnpicklingError for forbidden globals, RuntimeError for bad files
    raise CheckpointError(f'{path}: refused or unreadable by torch.load(weights_only=True): '
                          f'{str(e).splitlines()[0]}') from None


def to_numpy(tree):
  """torch tensors -> numpy arrays (float64 kept), recursively through dicts and lists."""
  if isinstance(tree, dict):
    return {k: to_numpy(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return type(tree)(to_numpy(v) for v in tree)
  if hasattr(tree, 'detach') and hasattr(tree, 'numpy'):
    return tree.detach().cpu().numpy()
  return tree


def load(path):
  """The checkpoint at `path` as nested dicts of numpy arrays (and plain values)."""
  if not os.path.isfile(path):
    raise CheckpointError(f'checkpoint file {path} does not exist')
  if path.endswith('.safetensors'):
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    return dict(load_file(path))
  if path.endswith('.pkl'):
    from models.convert import edm_pickle  # pylint: disable=g-import-not-at-top
    return edm_pickle.load(path)
  return to_numpy(torch_load(path))


def load_array(path, key=None):
  """One numeric array from `path`: .npy, .npz (its `key`, or its only array), or a torch.save /
  pickle file holding a numpy array (numpy_pickle's allow-list) or one tensor (weights_only)."""
  from models.convert import numpy_pickle  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise CheckpointError(f'{path} does not exist')
  if path.endswith(('.npy', '.npz')):
    try:
      arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:  # a pickled (object) or broken .npy / .npz
      raise CheckpointError(f'{path}: unreadable without pickle: {e}') from None
    if path.endswith('.npz'):
      with arr:
        names = [key] if key in arr.files else arr.files
        if len(names) != 1:
          raise CheckpointError(f'{path} holds {", ".join(arr.files) or "nothing"}: '
                                f'expected {key or "one array"}')
        arr = arr[names[0]]
    return arr
  with open(path, 'rb') as f:
    data = f.read()
  try:
    return numpy_pickle.loads(data)
  except numpy_pickle.HoldsTensors:
    arr = to_numpy(torch_load(path))
  except CheckpointError as e:
    raise CheckpointError(f'{path}: {e}') from None
  if not isinstance(arr, np.ndarray):
    raise CheckpointError(f'{path} holds {type(arr).__name__}, not one tensor or array')
  return arr


def walk(obj, path):
  """obj[path[0]][path[1]]... (e.g. ['ema', 'shadow'] of a ddpm-torch trainer dict)."""
  for k in path:
    if not isinstance(obj, dict) or k not in obj:
      raise CheckpointError(f'checkpoint has no entry {k!r} (looked for {"/".join(path)})')
    obj = obj[k]
  return obj


def strip_prefix(sd, prefix):
  """Drop `prefix` from keys that carry it (DistributedDataParallel's 'module.')."""
  return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}
