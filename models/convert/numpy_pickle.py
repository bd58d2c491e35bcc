"""Reading a numpy array pickled by `torch.save` (or `pickle.dump`) with a numpy-only allow-list.

Extended Analytic-DPM ships its Gamma_n files (ms_eps, reference A.5) as `torch.save` of a
float32 numpy array: a pickled ndarray, not tensors, which `torch.load(weights_only=True)`
refuses and a plain unpickle would execute. Here an `Unpickler` whose `find_class` grants
exactly the reconstructors an ndarray pickle calls,

  numpy.core.multiarray._reconstruct / numpy._core.multiarray._reconstruct
      (subtype must be numpy.ndarray itself),
  numpy.ndarray, numpy.dtype (numeric kinds only),
  _codecs.encode (only str -> latin-1 bytes, how protocol 2 stores the raw data),

refuses every other global and every persistent id, and the result must be a numeric
ndarray. A `torch.*` global or a persistent id means a file of tensors (`HoldsTensors`),
which checkpoint_io reads with torch.load(weights_only=True) instead. Three containers are
read: the zip `torch.save` format (`*/data.pkl`), the legacy one (magic number, protocol
1001, sys_info, the object, an empty storage-key list) and a bare pickle. torch is not
needed.
"""
import codecs
import io
import pickle
import zipfile

import numpy as np

from models.convert.checkpoint_io import CheckpointError

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # torch.save's legacy stream header
LEGACY_PROTOCOL = 1001
NUMERIC_KINDS = 'biuf'


class UnsafePickle(CheckpointError):
  """A pickle that asks for more than a numeric numpy array needs."""


class HoldsTensors(UnsafePickle):
  """A torch.save file of tensors (persistent ids): for torch.load(weights_only=True)."""


def _reconstruct(subtype, shape, dtype):
  if subtype is not np.ndarray:
    raise UnsafePickle(f'_reconstruct of {subtype!r}: only numpy.ndarray is allowed')
  return np._core.multiarray._reconstruct(np.ndarray, shape, dtype)


def _dtype(spec, align=False, copy=False):
  dt = np.dtype(spec, align, copy)
  if dt.kind not in NUMERIC_KINDS:
    raise UnsafePickle(f'dtype {dt} is not numeric')
  return dt


def _encode(text, encoding='utf-8'):
  if not isinstance(text, str) or encoding != 'latin1':
    raise UnsafePickle('_codecs.encode is allowed only for str -> latin1 (array data)')
  return codecs.encode(text, encoding)


ALLOWED = {('numpy.core.multiarray', '_reconstruct'): _reconstruct,
           ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
           ('numpy', 'ndarray'): np.ndarray,
           ('numpy', 'dtype'): _dtype,
           ('_codecs', 'encode'): _encode}


class _Unpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if module == 'torch' or module.startswith('torch.'):
      raise HoldsTensors(f'the file holds torch objects ({module}.{name}), not a numpy array')
    if (module, name) not in ALLOWED:
      raise UnsafePickle(f'refused global {module}.{name}: not on the numpy-array allow-list '
                         '(nothing was executed)')
    return ALLOWED[(module, name)]

  def persistent_load(self, pid):
    raise HoldsTensors('the file holds torch tensors, not a pickled numpy array')


def _load(f):
  return _Unpickler(f).load()


def _legacy(f):
  """The object of a legacy torch.save stream whose first pickle was the magic number."""
  if _load(f) != LEGACY_PROTOCOL or not isinstance(_load(f), dict):
    raise UnsafePickle('not a legacy torch.save stream (protocol / sys_info)')
  obj = _load(f)
  if _load(f) != [] or f.read(1):
    raise UnsafePickle('the legacy torch.save stream holds storages or trailing bytes')
  return obj


def loads(data):
  """The numeric ndarray that `data` (the bytes of a file) holds."""
  try:
    if zipfile.is_zipfile(io.BytesIO(data)):
      with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = [n for n in z.namelist() if n.endswith('/data.pkl') or n == 'data.pkl']
        if len(names) != 1:
          raise UnsafePickle('a zip without exactly one data.pkl is not a torch.save file')
        obj = _load(io.BytesIO(z.read(names[0])))
    else:
      f = io.BytesIO(data)
      obj = _load(f)
      if isinstance(obj, int) and obj == LEGACY_MAGIC:
        obj = _legacy(f)
      elif f.read(1):
        raise UnsafePickle('trailing bytes after the pickle')
  except CheckpointError:
    raise
  except Exception as e:  # malformed opcodes, truncation, bad reconstructor arguments
    raise UnsafePickle(f'not a pickled numpy array: {type(e).__name__}: {e}') from None
  if type(obj) is not np.ndarray or obj.dtype.kind not in NUMERIC_KINDS:
    raise UnsafePickle(f'holds {type(obj).__name__}, not a numeric numpy array')
  return obj
