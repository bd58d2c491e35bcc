"""Reading a PyTorch state dict onto a Flax parameter tree, with mismatch reporting.

A family's converter walks its architecture and asks a `Reader` for tensors by
their PyTorch key; the reader records which keys were used, which were asked for
but absent, and which had the wrong shape, and `finish()` raises one `Mismatch`
listing all three (the originals load with `strict=False` and hide this).

Layout rules (PyTorch -> Flax linen):
  Conv2d weight [O, I, kh, kw]  -> kernel [kh, kw, I, O]
  Conv1d weight [O, I, 1]       -> Dense kernel [I, O] (1x1 convs used as linear maps)
  Linear weight [O, I]          -> Dense kernel [I, O]
  GroupNorm/LayerNorm weight    -> scale; bias -> bias
"""
import numpy as np


class Mismatch(ValueError):
  """A checkpoint that does not fit the configured architecture."""

  def __init__(self, missing, unexpected, misshaped):
    self.missing, self.unexpected, self.misshaped = list(missing), list(unexpected), list(misshaped)
    parts = []
    if self.missing:
      parts.append(f'missing keys ({len(self.missing)}): {", ".join(self.missing)}')
    if self.unexpected:
      parts.append(f'unexpected keys ({len(self.unexpected)}): {", ".join(self.unexpected)}')
    if self.misshaped:
      parts.append('mis-shaped keys (%d): %s' % (len(self.misshaped), ', '.join(
          f'{k} {tuple(got)} (expected {tuple(want)})' for k, got, want in self.misshaped)))
    super().__init__('checkpoint does not fit the architecture: ' + '; '.join(parts))


class Reader:
  """Hands out state-dict tensors by key (as float32 numpy) and records their use."""

  def __init__(self, state_dict, prefix='', ignore=()):
    self.sd = {k: v for k, v in state_dict.items()}
    self.prefix = prefix
    self.ignore = tuple(ignore)  # key suffixes that are fixed buffers, never parameters
    self.used, self.missing, self.misshaped = set(), [], []

  def sub(self, prefix):
    """A view whose keys are relative to `prefix` (sharing the bookkeeping)."""
    view = object.__new__(Reader)
    view.__dict__ = dict(self.__dict__)
    view.prefix = self.prefix + prefix
    return view

  def has(self, key):
    return self.prefix + key in self.sd

  def get(self, key, shape=None, dtype=np.float32):
    """The tensor at prefix+key (recorded as used); zeros of `shape` if it is missing."""
    full = self.prefix + key
    if full not in self.sd:
      self.missing.append(full)
      return np.zeros(shape or (), dtype)
    self.used.add(full)
    value = np.asarray(self.sd[full])
    if shape is not None and tuple(value.shape) != tuple(shape):
      self.misshaped.append((full, value.shape, shape))
      return np.zeros(shape, dtype)
    return value.astype(dtype) if dtype is not None else value

  def mark_used(self, key):
    """Accept a key the architecture does not need (a buffer fixed by the configuration)."""
    if self.prefix + key in self.sd:
      self.used.add(self.prefix + key)

  # Layers -----------------------------------------------------------------
  def conv(self, key, bias=True, weight='weight'):
    """Conv2d `key.weight` [O, I, kh, kw] (+ bias) -> {'kernel' [kh, kw, I, O], 'bias'}."""
    w = self.get(f'{key}.{weight}')
    out = {'kernel': np.transpose(w, (2, 3, 1, 0)) if w.ndim == 4 else w}
    if bias:
      out['bias'] = self.get(f'{key}.bias')
    return out

  def dense(self, key, bias=True, weight='weight'):
    """Linear [O, I] or 1x1 Conv1d/Conv2d [O, I, 1(, 1)] -> {'kernel' [I, O], 'bias'}."""
    w = self.get(f'{key}.{weight}')
    out = {'kernel': w.reshape(w.shape[0], -1).T if w.ndim else w}
    if bias:
      out['bias'] = self.get(f'{key}.bias')
    return out

  def norm(self, key):
    """GroupNorm / LayerNorm -> {'scale', 'bias'}."""
    return {'scale': self.get(f'{key}.weight'), 'bias': self.get(f'{key}.bias')}

  def finish(self, params=None, expected=None):
    """Raise Mismatch if any key was missing, unused or mis-shaped; return `params`.

    With `expected` (e.g. jax.eval_shape of the module's init), the converted tree's
    leaf shapes are checked against it as well (paths reported Flax-style).
    """
    unexpected = sorted(k for k in self.sd if k not in self.used
                        and not any(k.endswith(s) for s in self.ignore))
    misshaped = list(self.misshaped)
    if params is not None and expected is not None:
      misshaped += tree_mismatches(params, expected)
    if self.missing or unexpected or misshaped:
      raise Mismatch(self.missing, unexpected, misshaped)
    return params


def _flatten(tree, prefix=()):
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, prefix + (str(k),)))
    return out
  return {prefix: tree}


def tree_mismatches(params, expected):
  """[(path, got_shape, expected_shape)] for leaves that differ, are absent or extra."""
  got, want = _flatten(params), _flatten(expected)
  out = []
  for path in sorted(set(got) | set(want)):
    g = tuple(np.shape(got[path])) if path in got else None
    w = tuple(want[path].shape) if path in want else None
    if g != w:
      out.append(('/'.join(path), g if g is not None else 'absent', w if w is not None else 'absent'))
  return out
