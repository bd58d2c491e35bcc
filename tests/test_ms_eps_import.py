"""Importing Analytic-DPM's Gamma_n (ms_eps) files: Extended Analytic-DPM ships them as
`torch.save` of a float32 numpy array (reference A.5), read here through a numpy-only
allow-list (models/convert/numpy_pickle.py), never a plain unpickle."""
import os
import pickle
import pickletools

import numpy as np
import pytest

from configs import toy as toy_config
from models.convert import checkpoint_io
from models.convert import numpy_pickle
from training import inference
from training import sample
from training import validate

torch = pytest.importorskip('torch')

GAMMA = np.concatenate([[0.0], np.linspace(0.99, 0.02, 100)]).astype(np.float32)


def _numpy1_pickle(arr):
  """The bytes numpy 1.x writes for `arr` (protocol 2): its reconstructor lives in
  numpy.core.multiarray, which numpy 2 renamed numpy._core.multiarray."""
  data = pickle.dumps(arr, protocol=2)
  assert b'numpy._core.multiarray' in data
  return data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')


def test_every_container_of_a_numpy_array(tmp_path):
  files = {'zip.pth': lambda p: torch.save(GAMMA, p),
           'legacy.pth': lambda p: torch.save(GAMMA, p, _use_new_zipfile_serialization=False),
           'bare.pkl': lambda p: p.write_bytes(_numpy1_pickle(GAMMA)),
           'tensor.pt': lambda p: torch.save(torch.from_numpy(GAMMA), p),
           'a.npy': lambda p: np.save(p, GAMMA),
           'a.npz': lambda p: np.savez(p, ms_eps=GAMMA, other=np.zeros(3))}
  for name, write in files.items():
    write(tmp_path / name)
    got = checkpoint_io.load_array(str(tmp_path / name), key='ms_eps')
    assert got.dtype == np.float32, name
    np.testing.assert_array_equal(got, GAMMA, err_msg=name)
  with pytest.raises(checkpoint_io.CheckpointError, match='holds ms_eps, other'):
    checkpoint_io.load_array(str(tmp_path / 'a.npz'))  # no key: ambiguous


class _Payload:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, 'w'))


def _refused(tmp_path, name, data, match):
  path = tmp_path / name
  path.write_bytes(data)
  with pytest.raises(checkpoint_io.CheckpointError, match=match):
    checkpoint_io.load_array(str(path))


def test_nothing_but_numeric_arrays_is_built(tmp_path):
  marker = tmp_path / 'pwned'
  # The payload works under a plain unpickle (it creates the marker file) ...
  pickle.loads(pickle.dumps(_Payload(str(marker))))
  assert marker.exists()
  marker.unlink()
  # ... and is refused here, in every container, with nothing executed.
  _refused(tmp_path, 'p.pkl', pickle.dumps(_Payload(str(marker))), 'refused global')
  torch.save(_Payload(str(marker)), tmp_path / 'p.pth')
  with pytest.raises(checkpoint_io.CheckpointError, match='refused global'):
    checkpoint_io.load_array(str(tmp_path / 'p.pth'))
  torch.save(_Payload(str(marker)), tmp_path / 'q.pth', _use_new_zipfile_serialization=False)
  with pytest.raises(checkpoint_io.CheckpointError, match='refused global'):
    checkpoint_io.load_array(str(tmp_path / 'q.pth'))
  assert not marker.exists()
  # An object array, a subclass of ndarray, a non-latin1 _codecs call, a dict, a truncated
  # stream, and trailing bytes.
  obj = pickle.dumps(np.array([1, 'a'], dtype=object), protocol=2)
  _refused(tmp_path, 'o.pkl', obj, 'not numeric')
  _refused(tmp_path, 'm.pkl', pickle.dumps(np.ma.masked_array([1.0, 2.0]), protocol=2),
           'refused global numpy.ma.core')
  rec = pickle.dumps(np.arange(3.0).view(np.recarray), protocol=2)
  _refused(tmp_path, 'r.pkl', rec, 'refused global')
  utf = pickle.dumps(GAMMA, protocol=2).replace(b'latin1', b'utf_8_')
  _refused(tmp_path, 'u.pkl', utf, 'latin1')
  torch.save({'ms_eps': GAMMA}, tmp_path / 'd.pth')
  with pytest.raises(checkpoint_io.CheckpointError, match='holds dict'):
    checkpoint_io.load_array(str(tmp_path / 'd.pth'))
  good = pickle.dumps(GAMMA, protocol=2)
  _refused(tmp_path, 't.pkl', good[:len(good) // 2], 'not a pickled numpy array')
  _refused(tmp_path, 'x.pkl', good + b'\x00', 'trailing bytes')
  # The allow-list is no wider than what an ndarray pickle names.
  names = {tuple(arg.split(' ')) for op, arg, _ in pickletools.genops(_numpy1_pickle(GAMMA))
           if op.name == 'GLOBAL'}
  assert names <= set(numpy_pickle.ALLOWED), names


def _config(tmp_path, method, **sampling):
  c = toy_config.get_config()
  c.model.name = 'gmm_oracle'
  c.sampling.method = method
  c.sampling.num_samples = 504
  c.sampling.batch_size = 504
  c.sampling.steps = 10
  c.sampling.ms_eps_samples = 1000
  for k, v in sampling.items():
    c.sampling[k] = v
  validate.check(c, 'sample', 8)
  return c


def test_imported_ms_eps_drives_analytic_dpm(tmp_path, capsys):
  """Our own estimate, re-saved as EAD ships it (torch.save of a float32 array), samples
  exactly as the estimate rounded to float32 itself (as a .npy)."""
  est = tmp_path / 'est'
  sample.sample(_config(tmp_path, 'analytic_ddim', eta=1.0), str(est))
  cached = np.load(next((est / 'ms_eps').iterdir()))['ms_eps']
  torch.save(cached.astype(np.float32), tmp_path / 'ead.pth')
  np.save(tmp_path / 'f32.npy', cached.astype(np.float32))
  capsys.readouterr()
  a, _ = sample.sample(_config(tmp_path, 'analytic_ddim', eta=1.0,
                               ms_eps_path=str(tmp_path / 'ead.pth')), str(tmp_path / 'a'))
  assert 'ms_eps: imported' in capsys.readouterr().out
  assert not os.path.exists(tmp_path / 'a' / 'ms_eps')  # nothing estimated, nothing cached
  b, _ = sample.sample(_config(tmp_path, 'analytic_ddim', eta=1.0,
                               ms_eps_path=str(tmp_path / 'f32.npy')), str(tmp_path / 'b'))
  np.testing.assert_array_equal(a, b)
  # A file for another schedule (N = 1000, the model's is 100) fails before sampling.
  torch.save(np.zeros(1001, np.float32), tmp_path / 'wrong.pth')
  with pytest.raises(inference.InferenceError, match='101 finite values'):
    sample.sample(_config(tmp_path, 'analytic_ddpm', ms_eps_path=str(tmp_path / 'wrong.pth')),
                  str(tmp_path / 'c'))


def test_ms_eps_path_and_avg_cov_config_errors(tmp_path):
  with pytest.raises(validate.ConfigError, match='ms_eps_path=.*no such file'):
    _config(tmp_path, 'analytic_ddpm', ms_eps_path=str(tmp_path / 'missing.pth'))
  (tmp_path / 'g.npy').write_bytes(b'')
  with pytest.raises(validate.ConfigError, match='read only by analytic_ddpm'):
    _config(tmp_path, 'sn_ddim', ms_eps_path=str(tmp_path / 'g.npy'))
  with pytest.raises(validate.ConfigError, match='avg_cov'):
    _config(tmp_path, 'analytic_ddpm', avg_cov=True)
  _config(tmp_path, 'npr_ddpm', avg_cov=True)
  _config(tmp_path, 'ddim', trajectory='dp_seg', ms_eps_path=str(tmp_path / 'g.npy'))
