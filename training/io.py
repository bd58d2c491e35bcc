"""Atomic outputs: write to an open temporary file in the same folder, then os.replace."""
import contextlib
import json
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_file(path, mode='wb'):
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, mode) as f:
      yield f
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide outputs from other users
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def savez(path, **arrays):
  with atomic_file(path) as f:
    np.savez(f, **arrays)


def write_json(path, obj):
  with atomic_file(path, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write('\n')


def save_figure(fig, path):
  with atomic_file(path) as f:
    fig.savefig(f, format='png', dpi=100, bbox_inches='tight')
