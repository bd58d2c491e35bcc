"""Reading NVlabs/edm network pickles without executing anything (reference A.4).

A released `edm-*.pkl` (a `network-snapshot-*.pkl` of `EDM:training/training_loop.py`)
is a plain pickle of dict(ema=<*Precond>, loss_fn=..., augment_pipe=..., dataset_kwargs=...)
whose EDM objects are calls `torch_utils.persistence._reconstruct_persistent_obj(meta)`
with `meta = {type: 'class', version: 6, module_src: <source text>, class_name, state}`.
Unpickled normally, that call *executes* `module_src` (A.4.2). Here an `Unpickler` with a
closed allow-list (`find_class`) maps

  torch_utils.persistence._reconstruct_persistent_obj -> an inert record of class_name and
      state (meta checked; module_src is kept nowhere and never parsed or run)
  torch.nn.modules.container.ModuleDict               -> an inert record of its state
  torch._utils._rebuild_tensor_v2 / _rebuild_parameter(_with_state)
                                                      -> numpy views, bounds-checked, copied
  torch.storage._load_from_bytes                      -> a parser of the legacy `torch.save`
      stream of one storage (five pickles read by a second, storage-only unpickler, then an
      int64 element count and the raw little-endian data, read with numpy)
  collections.OrderedDict, numpy dtype / scalar (numeric kinds only), and defensively
      dnnlib.util.EasyDict, builtins.set / frozenset
and refuses every other global, every persistent id of the outer pickle, and any argument
that is not of the shape these hooks write, with `UnsafePickle` naming what was refused.
torch is not needed (nor imported).

`load(path)` returns plain data: each EDM object becomes
  {'class_name', 'init_kwargs', 'attributes' (public plain attributes, e.g. sigma_data),
   'modules' {child: the same, recursively, without state_dict},
   'state_dict' {torch state_dict key: np.ndarray} (top-level objects, torch order)},
other values stay as they are (dicts, lists, numbers, strings; numpy scalars -> Python).
"""
import collections
import io
import pickle
import struct

import ml_dtypes
import numpy as np

from models.convert.checkpoint_io import CheckpointError


class UnsafePickle(CheckpointError):
  """A pickle that asks for something the EDM allow-list does not grant."""


# Classes decorated with @persistence.persistent_class in EDM (A.4.2).
PERSISTENT_CLASSES = frozenset({
    'Linear', 'Conv2d', 'GroupNorm', 'UNetBlock', 'PositionalEmbedding', 'FourierEmbedding',
    'SongUNet', 'DhariwalUNet', 'VPPrecond', 'VEPrecond', 'iDDPMPrecond', 'EDMPrecond',
    'VPLoss', 'VELoss', 'EDMLoss', 'AugmentPipe'})

# Legacy storage classes -> numpy dtypes (the inner allow-list).
STORAGE_DTYPES = {
    'FloatStorage': np.dtype('<f4'), 'DoubleStorage': np.dtype('<f8'),
    'HalfStorage': np.dtype('<f2'), 'BFloat16Storage': np.dtype(ml_dtypes.bfloat16),
    'LongStorage': np.dtype('<i8'), 'IntStorage': np.dtype('<i4'),
    'ShortStorage': np.dtype('<i2'), 'CharStorage': np.dtype('i1'),
    'ByteStorage': np.dtype('u1'), 'BoolStorage': np.dtype('?')}

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
_META_KEYS = frozenset({'type', 'version', 'module_src', 'class_name', 'state'})


class _Persistent:
  """What `_reconstruct_persistent_obj(meta)` stands for: a class name and its state."""

  def __init__(self, class_name, state):
    self.class_name, self.state = class_name, state


class _ModuleDict:
  """Stand-in for torch.nn.ModuleDict (built by NEWOBJ, then BUILD with its __dict__)."""

  class_name = 'ModuleDict'

  def __init__(self, *args, **kwargs):
    if args or kwargs:
      raise UnsafePickle('ModuleDict created with arguments; EDM pickles create it empty')
    self.state = {}

  def __setstate__(self, state):
    if not isinstance(state, dict) or not isinstance(state.get('_modules', {}), dict):
      raise UnsafePickle('ModuleDict state is not a dict with a _modules dict')
    self.state = state


class _EasyDict(dict):
  """Stand-in for dnnlib.util.EasyDict (a dict with attribute access; data only)."""


class _Storage:
  """A storage parsed from a legacy blob: a 1-D numpy array of its elements."""

  def __init__(self, data):
    self.data = data


class _StorageRef:
  """The persistent id of a legacy storage stream, before its bytes are read."""

  def __init__(self, key, dtype, numel):
    self.key, self.dtype, self.numel = key, dtype, numel


def _refuse_global(module, name):
  raise UnsafePickle(f'refused global {module}.{name}: not on the EDM pickle allow-list '
                     '(nothing was executed)')


# Hooks the outer pickle may call ------------------------------------------------------
def _reconstruct_persistent_obj(meta):
  if not isinstance(meta, dict) or set(meta) != _META_KEYS:
    raise UnsafePickle('persistence meta is not a dict with exactly the keys '
                       f'{sorted(_META_KEYS)}')
  if meta['type'] != 'class' or meta['version'] != 6:
    raise UnsafePickle(f'persistence meta of type {meta["type"]!r} version {meta["version"]!r}; '
                       "only type 'class' version 6 is known")
  name = meta['class_name']
  if name not in PERSISTENT_CLASSES:
    raise UnsafePickle(f'persistent class {name!r} is not an EDM class '
                       f'({", ".join(sorted(PERSISTENT_CLASSES))})')
  if not isinstance(meta['module_src'], str) or not isinstance(meta['state'], dict):
    raise UnsafePickle(f'{name}: module_src must be text and state a dict')
  return _Persistent(name, meta['state'])  # module_src is dropped unread


def _is_index(v):
  return type(v) is int and v >= 0  # exactly int: a bool is refused


def _is_index_tuple(t):
  return isinstance(t, tuple) and all(_is_index(v) for v in t)


def _check_hooks(hooks, where):
  if hooks is not None and not (isinstance(hooks, dict) and not hooks):
    raise UnsafePickle(f'{where}: backward hooks must be empty')


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  if not isinstance(storage, _Storage):
    raise UnsafePickle('_rebuild_tensor_v2 called on something that is not a storage')
  if not (_is_index(storage_offset) and _is_index_tuple(size) and _is_index_tuple(stride)
          and len(size) == len(stride) and isinstance(requires_grad, bool)):
    raise UnsafePickle(f'_rebuild_tensor_v2 with bad offset/size/stride {storage_offset!r}, '
                       f'{size!r}, {stride!r}')
  _check_hooks(backward_hooks, '_rebuild_tensor_v2')
  if metadata:
    raise UnsafePickle('_rebuild_tensor_v2 with tensor metadata (not written by EDM)')
  data = storage.data
  if 0 in size:
    return np.zeros(size, data.dtype)
  last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= data.size:
    raise UnsafePickle(f'tensor of size {size} stride {stride} offset {storage_offset} reaches '
                       f'element {last} of a storage of {data.size}')
  view = np.lib.stride_tricks.as_strided(data[storage_offset:], size,
                                         tuple(s * data.itemsize for s in stride), writeable=False)
  return np.array(view)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
  if not isinstance(data, np.ndarray) or not isinstance(requires_grad, bool):
    raise UnsafePickle('_rebuild_parameter called on something that is not a tensor')
  _check_hooks(backward_hooks, '_rebuild_parameter')
  if state:
    raise UnsafePickle('_rebuild_parameter_with_state with a non-empty state')
  return data


def _numeric_dtype(dtype, where):
  if (not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.fields is not None
      or dtype.subdtype is not None or dtype.kind not in 'biufc'):
    raise UnsafePickle(f'{where}: only plain numeric dtypes are allowed, got {dtype!r}')
  return dtype


def _np_dtype(spec, align=False, copy=False):
  if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
    raise UnsafePickle(f'numpy.dtype called with {spec!r}')
  return _numeric_dtype(np.dtype(spec, align=align, copy=True), 'numpy.dtype')


def _np_scalar(dtype, data):
  dtype = _numeric_dtype(dtype, 'numpy scalar')
  if not isinstance(data, bytes) or len(data) != dtype.itemsize:
    raise UnsafePickle('numpy scalar without exactly one element of raw bytes')
  return np.frombuffer(data, dtype)[0]


def _load_from_bytes(blob):
  if not isinstance(blob, bytes):
    raise UnsafePickle('torch.storage._load_from_bytes called on something that is not bytes')
  return _Storage(_read_legacy_storage(blob))


_OUTER_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    ('torch.nn.modules.container', 'ModuleDict'): _ModuleDict,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('numpy', 'dtype'): _np_dtype,
    ('numpy.core.multiarray', 'scalar'): _np_scalar,
    ('numpy._core.multiarray', 'scalar'): _np_scalar,
    ('dnnlib.util', 'EasyDict'): _EasyDict,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
}


class _OuterUnpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) in _OUTER_GLOBALS:
      return _OUTER_GLOBALS[(module, name)]
    return _refuse_global(module, name)

  def persistent_load(self, pid):
    raise UnsafePickle(f'refused persistent id {pid!r}: EDM pickles store none at the top level')


# The legacy (non-zip) torch.save stream of one storage ---------------------------------
class _StorageUnpickler(pickle.Unpickler):
  """Reads one pickle of the legacy stream: storage classes and storage ids only."""

  def find_class(self, module, name):
    if module == 'torch' and name in STORAGE_DTYPES:
      return STORAGE_DTYPES[name]
    return _refuse_global(module, name)

  def persistent_load(self, pid):
    ok = (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == 'storage'
          and isinstance(pid[1], np.dtype) and isinstance(pid[2], str) and isinstance(pid[3], str)
          and _is_index(pid[4]) and (len(pid) == 5 or pid[5] is None))
    if not ok:
      raise UnsafePickle(f'refused persistent id {pid!r}: not a plain legacy storage reference')
    return _StorageRef(pid[2], pid[1], pid[4])


def _read_legacy_storage(blob):
  f = io.BytesIO(blob)
  load = lambda: _StorageUnpickler(f).load()
  try:
    magic, protocol, sys_info, obj, keys = load(), load(), load(), load(), load()
  except UnsafePickle:
    raise
  except Exception as e:  # a truncated or garbled stream
    raise UnsafePickle(f'storage blob is not a legacy torch.save stream: {e}') from None
  if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
    raise UnsafePickle('storage blob lacks the legacy torch.save magic number / protocol 1001')
  if not isinstance(sys_info, dict) or sys_info.get('little_endian') is not True:
    raise UnsafePickle('storage blob is not little-endian')
  if not isinstance(obj, _StorageRef) or keys != [obj.key]:
    raise UnsafePickle('storage blob does not hold exactly one storage')
  head = f.read(8)
  if len(head) != 8 or struct.unpack('<q', head)[0] != obj.numel:
    raise UnsafePickle('storage blob element count does not match its storage id')
  data = f.read(obj.numel * obj.dtype.itemsize)
  if len(data) != obj.numel * obj.dtype.itemsize or f.read(1):
    raise UnsafePickle('storage blob data is truncated or followed by extra bytes')
  return np.frombuffer(data, obj.dtype).copy()


# Plain data out ------------------------------------------------------------------------
def _plain(v):
  if isinstance(v, (_Persistent, _ModuleDict)):
    return summary(v, with_state_dict=False)
  if isinstance(v, dict):
    return {k: _plain(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return type(v)(_plain(x) for x in v)
  if isinstance(v, (set, frozenset)):
    return sorted(v, key=repr)
  if isinstance(v, np.generic):
    return v.item()
  if isinstance(v, np.dtype):
    return str(v)
  if isinstance(v, _Storage):
    return v.data
  return v


def state_dict(obj, prefix=''):
  """torch's state_dict of a module record: parameters, persistent buffers, children."""
  st = obj.state
  out = {}
  for k, p in st.get('_parameters', {}).items():
    if p is not None:
      out[prefix + k] = p
  skip = st.get('_non_persistent_buffers_set', set())
  for k, b in st.get('_buffers', {}).items():
    if b is not None and k not in skip:
      out[prefix + k] = b
  for k, m in st.get('_modules', {}).items():
    if m is not None:
      if not isinstance(m, (_Persistent, _ModuleDict)):
        raise UnsafePickle(f'{prefix + k} is not a module record')
      out.update(state_dict(m, f'{prefix}{k}.'))
  for k, v in out.items():
    if not isinstance(v, np.ndarray):
      raise UnsafePickle(f'state_dict entry {k} is not a tensor')
  return out


def summary(obj, with_state_dict=True):
  """Plain data of a module record (see the module docstring)."""
  st = obj.state
  out = {'class_name': obj.class_name,
         'init_kwargs': _plain(st.get('_init_kwargs', {})),
         'attributes': {k: _plain(v) for k, v in st.items()
                        if not k.startswith('_') and k != 'training'},
         'modules': {k: _plain(m) for k, m in st.get('_modules', {}).items() if m is not None}}
  if with_state_dict:
    out['state_dict'] = state_dict(obj)
  return out


def loads(data):
  """The plain data of an EDM pickle held in `data` (bytes)."""
  try:
    obj = _OuterUnpickler(io.BytesIO(data)).load()
    if isinstance(obj, (_Persistent, _ModuleDict)):
      return summary(obj)  # a bare network (the 2nd-SED fork's recompiled files)
    if isinstance(obj, dict):
      return {k: summary(v) if isinstance(v, (_Persistent, _ModuleDict)) else _plain(v)
              for k, v in obj.items()}
    return _plain(obj)
  except CheckpointError:
    raise
  except Exception as e:  # malformed opcodes, truncation, bad arguments, odd module states
    raise UnsafePickle(f'not a readable EDM pickle: {type(e).__name__}: {e}') from None


def load(path):
  """The plain data of the EDM pickle at `path` (see the module docstring)."""
  with open(path, 'rb') as f:
    data = f.read()
  try:
    return loads(data)
  except UnsafePickle as e:
    raise UnsafePickle(f'{path}: {e}') from None
