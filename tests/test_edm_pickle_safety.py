"""The EDM pickle reader executes nothing: forbidden globals, crafted arguments to the allowed
hooks and persistent-id tricks are refused with a clear error, and no payload runs.

Malicious pickles are written opcode by opcode (protocol 3: GLOBAL, MARK ... TUPLE, REDUCE,
BINPERSID), each trying to create a marker file.
"""
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys

import numpy as np
import pytest

from models.convert import edm_pickle
from tests import fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _value(obj):
  """Opcodes pushing a plain value (a protocol-3 pickle without its header and STOP)."""
  return pickle.dumps(obj, protocol=3)[2:-1]


def _global(module, name):
  return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def _call(fn, *args):
  """fn(*args): MARK args TUPLE REDUCE."""
  return fn + b'(' + b''.join(args) + b'tR'


def _pickle(body):
  return b'\x80\x03' + body + b'.'


def _storage_blob(values, pid=None, magic=0x1950a86a20f9469cfc6c, extra=b''):
  """A legacy torch.save stream of one float32 storage (five pickles, count, raw data)."""
  values = np.asarray(values, '<f4')
  if pid is None:
    pid = (_value('storage') + _global('torch', 'FloatStorage') + _value('0') + _value('cpu')
           + _value(values.size) + b'N')
  head = b''.join(pickle.dumps(v, protocol=2) for v in (
      magic, 1001, {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {}}))
  obj = b'\x80\x02(' + pid + b'tQ.'
  return (head + obj + pickle.dumps(['0'], protocol=2) + struct.pack('<q', values.size)
          + values.tobytes() + extra)


def _storage(values, **kw):
  return _call(_global('torch.storage', '_load_from_bytes'), _value(_storage_blob(values, **kw)))


def _tensor(storage, offset=0, size=(2,), stride=(1,), hooks=b'N'):
  return _call(_global('torch._utils', '_rebuild_tensor_v2'), storage, _value(offset),
               _value(size), _value(stride), _value(False), hooks)


def _meta(**overrides):
  meta = {'type': 'class', 'version': 6, 'module_src': '', 'class_name': 'EDMPrecond',
          'state': {'_init_kwargs': {'img_resolution': 8}, '_parameters': {}, '_buffers': {},
                    '_modules': {}, 'sigma_data': 0.5}}
  meta.update(overrides)
  return _call(_global('torch_utils.persistence', '_reconstruct_persistent_obj'), _value(meta))


def _refused(data, match):
  with pytest.raises(edm_pickle.UnsafePickle, match=match):
    edm_pickle.loads(data)


class _Payload:
  def __init__(self, fn, arg):
    self.fn, self.arg = fn, arg

  def __reduce__(self):
    return self.fn, (self.arg,)


@pytest.mark.parametrize('kind', ['eval', 'exec', 'system'])
def test_forbidden_global_is_refused_and_nothing_runs(kind, tmp_path):
  marker = tmp_path / 'pwned'
  code = f'open({str(marker)!r}, "w").close()'
  fn, arg, name = {'eval': (eval, code, 'builtins.eval'), 'exec': (exec, code, 'builtins.exec'),
                   'system': (os.system, f'touch {marker}', 'system')}[kind]
  data = pickle.dumps({'ema': _Payload(fn, arg)}, protocol=4)
  if kind == 'eval':  # the payload is live: a plain unpickler runs it
    pickle.loads(data)  # noqa: S301
    assert marker.exists()
    marker.unlink()
  _refused(data, f'refused global .*{name}.*allow-list')
  assert not marker.exists()


def test_reconstruct_hook_never_runs_module_src(tmp_path):
  marker = tmp_path / 'pwned'
  src = f'open({str(marker)!r}, "w").close()\nclass EDMPrecond: pass\n'
  out = edm_pickle.loads(_pickle(_meta(module_src=src)))
  assert not marker.exists()
  assert out['class_name'] == 'EDMPrecond' and out['init_kwargs'] == {'img_resolution': 8}
  assert out['attributes'] == {'sigma_data': 0.5} and out['state_dict'] == {}
  assert 'module_src' not in repr(out) and str(marker) not in repr(out)
  _refused(_pickle(_meta(class_name='os.system')), "class 'os.system' is not an EDM class")
  _refused(_pickle(_meta(type='module')), "only type 'class' version 6")
  _refused(_pickle(_meta(version=5)), "only type 'class' version 6")
  _refused(_pickle(_meta(module='os')), 'exactly the keys')
  _refused(_pickle(_meta(state='rm -rf')), 'state a dict')
  _refused(_pickle(_call(_global('torch_utils.persistence', '_reconstruct_persistent_obj'),
                         _value(src))), 'not a dict')


def test_tensor_hooks_with_crafted_arguments():
  np.testing.assert_array_equal(edm_pickle.loads(_pickle(_tensor(_storage([1.5, -2])))), [1.5, -2])
  _refused(_pickle(_tensor(_value(b'\x00' * 64))), 'not a storage')
  _refused(_pickle(_tensor(_storage([1, 2]), size=(3,))), 'reaches element 2 of a storage of 2')
  _refused(_pickle(_tensor(_storage([1, 2]), offset=5, size=(1,))), 'reaches element')
  _refused(_pickle(_tensor(_storage([1, 2]), stride=(-1,))), 'bad offset/size/stride')
  hooks = _call(_global('collections', 'OrderedDict'), _value([('h', 'os.system')]))
  _refused(_pickle(_tensor(_storage([1, 2]), hooks=hooks)), 'hooks must be empty')
  _refused(_pickle(_call(_global('torch._utils', '_rebuild_parameter'), _value('rm -rf /'),
                         _value(False), b'N')), 'not a tensor')
  obj_dtype = _call(_global('numpy', 'dtype'), _value('O8'), _value(False), _value(True))
  _refused(_pickle(obj_dtype), 'only plain numeric dtypes')
  _refused(_pickle(_call(_global('numpy.core.multiarray', 'scalar'), _value(np.dtype('f8')),
                         _value(b'\x00' * 4))), 'exactly one element')


def test_persistent_load_tricks():
  _refused(_pickle(_value(('storage', 'x')) + b'Q'), 'refused persistent id')
  forbidden = (_value('storage') + _global('posix', 'system') + _value('0') + _value('cpu')
               + _value(2) + b'N')
  _refused(_pickle(_storage([1, 2], pid=forbidden)), 'refused global posix.system')
  not_storage = _value('module') + _value('0') + _value('0') + _value('cpu') + _value(2) + b'N'
  _refused(_pickle(_storage([1, 2], pid=not_storage)), 'not a plain legacy storage reference')
  wrong_count = (_value('storage') + _global('torch', 'FloatStorage') + _value('0')
                 + _value('cpu') + _value(3) + b'N')
  _refused(_pickle(_storage([1, 2], pid=wrong_count)), 'element count does not match')
  _refused(_pickle(_storage([1, 2], extra=b'\x00')), 'followed by extra bytes')
  _refused(_pickle(_storage([1, 2], magic=1)), 'magic number')


def test_fixtures_load_without_torch_or_edm_code():
  path = os.path.join(fixtures.root('edm'), 'edm-ddpmpp-cond.pkl')
  code = ('import sys; from models.convert import edm_pickle; '
          f'd = edm_pickle.load({path!r}); '
          "assert not {'torch', 'torch_utils', 'training'} & set(sys.modules), sys.modules.keys(); "
          "print(len(d['ema']['state_dict']))")
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       check=True)
  assert out.stdout.strip() == '283'


@pytest.mark.filterwarnings('ignore:TypedStorage is deprecated')
def test_storage_parser_matches_torch():
  torch = pytest.importorskip('torch')
  with open(os.path.join(fixtures.root('edm'), 'component-adm-attnblock-2heads.pkl'), 'rb') as f:
    blobs = [arg for op, arg, _ in pickletools.genops(f.read()) if op.name == 'BINBYTES']
  for blob in blobs[:3]:
    ours = edm_pickle.loads(_pickle(_call(_global('torch.storage', '_load_from_bytes'),
                                          _value(blob))))
    ref = torch.load(io.BytesIO(blob), weights_only=True)
    np.testing.assert_array_equal(ours, np.asarray(ref.tolist(), np.float32))
