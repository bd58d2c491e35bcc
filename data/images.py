"""Image sets behind the stateless interface `batch(step, process_index)`.

Order: the same as data/source.py's ArraySource (one permutation per epoch,
stateless in (data.seed, epoch); process p reads rows p*B/P .. (p+1)*B/P - 1 of
global batch `step`). Examples come from `read(indices) -> (uint8 [n, H, W, C],
labels [n])`: in-memory arrays (digits, mnist5k), a tfds `array_record` data
source (`Records`, real sets) or EDM's dataset_tool.py output (`Files`, a zip or a
folder of PNGs), whose examples are decoded and fitted to H x W by `fit`.

Random horizontal flip (training split only): row j of global batch `step` is
mirrored iff U_j < 1/2, U = default_rng([data.seed, FLIP_STREAM, step]).random(B),
so a flip depends on (seed, step, global position) only, never on the process
count or on what was read before.

i-DODE's CIFAR-10 augmentation (`augment=True`, training split only; thu-ml/i-DODE
`dataset.py` `_preprocess_cifar10_augment`, reference idode A.5), keyed the same
way: U = default_rng([data.seed, AUG_STREAM, step]).random((B, 3)); row j is
mirrored left-right iff U_j0 < 1/2, then, independently, turned iff U_j1 < 1/2 by
k = ceil(3 U_j2) quarter turns counter-clockwise (tf.image.rot90; k in {1, 2, 3});
its conditioning flag is 1 iff it was mirrored or turned (probability 3/4), else 0.

Output of `batch`: 'x' float32 NHWC = u / 127.5 - 1 in [-1, 1] of the uint8
pixels u; 'y' int32 labels (labelled sets only) or, for a source made with
conditioning=True, the 0/1 augmentation flag (all 0 without augment); 'x_uint8'
the uint8 u (after crop, resize, padding, flip and turns) when the source was
made with uint8=True, for likelihoods on the discrete pixels.
"""
import concurrent.futures
import json
import os
import threading
import zipfile

import numpy as np

from data import source

FLIP_STREAM = 0x666C6970  # 'flip': separates the flip draws from the epoch permutations
AUG_STREAM = 0x69646F64  # 'idod': i-DODE's augmentation draws
CROPS = {'none': None, 'ead128': (57, 25, 128), 'tq148': (40, 15, 148)}  # (top, left, size)
FITS = ('resize', 'pad', 'shorter')


def _resize(image, width, height):
  """PIL bilinear resize (antialiased when shrinking), as EAD and torchvision on PIL images."""
  from PIL import Image
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((width, height), Image.BILINEAR))
  return out.reshape(height, width, image.shape[-1])


def fit(image, size, how='resize', crop='none'):
  """uint8 [H, W, C] -> uint8 [size, size, C].

  crop: CROPS[crop] = (top, left, side) square cut first (CelebA: ead128 = rows
    57-184, cols 25-152, EAD A.10.5; tq148 = top 40, left 15, 148 px, B.5.2).
  how: 'resize' = bilinear resize to size x size (a no-op at that size already);
    'pad' = centred zero padding (black; -1 after scaling), for the small digit
    sets, whose pixels then stay exactly the stored grey levels;
    'shorter' = shorter side bilinearly to `size` (longer side truncated as
    torchvision's Resize(int) does) then a centred size x size crop (EAD LSUN).
  """
  if CROPS[crop] is not None:
    top, left, side = CROPS[crop]
    image = image[top:top + side, left:left + side]
  h, w = image.shape[:2]
  if how == 'pad':
    if h > size or w > size:
      raise ValueError(f'cannot pad a {h}x{w} image to {size}x{size}')
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(image, ((top, size - h - top), (left, size - w - left), (0, 0)))
  if how == 'shorter':
    if h <= w:
      image = _resize(image, int(size * w / h), size)
    else:
      image = _resize(image, size, int(size * h / w))
    h, w = image.shape[:2]
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
    return image[top:top + size, left:left + size]
  if (h, w) != (size, size):
    image = _resize(image, size, size)
  return image


class ImageSource:
  """Images (and labels) from `read` behind the stateless interface (module docstring)."""

  def __init__(self, read, size, batch_size, seed, *, num_processes=1, shuffle=True, flip=False,
               augment=False, labels=False, conditioning=False, uint8=False, prefetch=False):
    if flip and augment:
      raise ValueError('augment flips by itself: use flip=False with augment=True')
    if labels and conditioning:
      raise ValueError("'y' is either the labels or the augmentation flag, not both")
    self.read = read
    self.order = source.ArraySource({'index': np.arange(size)}, batch_size, seed,
                                    num_processes=num_processes, shuffle=shuffle)
    self.size, self.batch_size, self.seed = size, batch_size, seed
    self.num_processes, self.flip, self.augment = num_processes, flip, augment
    self.labels, self.conditioning, self.uint8 = labels, conditioning, uint8
    # One background thread computes batch (step + 1, p) while step is used.
    self._prefetch = concurrent.futures.ThreadPoolExecutor(1) if prefetch else None
    self._pending = {}

  def indices(self, step, process_index=0):
    return self.order.indices(step, process_index)

  def transforms(self, step, process_index=0):
    """(mirrored bool, quarter turns 0..3, augmented bool), each [B/P]: this process's rows."""
    local = self.batch_size // self.num_processes
    rows = slice(process_index * local, (process_index + 1) * local)
    none = np.zeros(local, bool)
    if self.augment:
      u = np.random.default_rng([self.seed, AUG_STREAM, step]).random((self.batch_size, 3))[rows]
      mirrored, turned = u[:, 0] < 0.5, u[:, 1] < 0.5
      turns = np.where(turned, np.ceil(3 * u[:, 2]), 0).astype(np.int64)
      return mirrored, turns, mirrored | turned
    if self.flip:
      u = np.random.default_rng([self.seed, FLIP_STREAM, step]).random(self.batch_size)
      return u[rows] < 0.5, np.zeros(local, np.int64), none
    return none, np.zeros(local, np.int64), none

  def flips(self, step, process_index=0):
    """bool [B/P]: which of this process's rows of batch `step` are mirrored."""
    return self.transforms(step, process_index)[0]

  def _make(self, step, process_index):
    images, labels = self.read(self.indices(step, process_index))
    mirrored, turns, augmented = self.transforms(step, process_index)
    images = np.where(mirrored[:, None, None, None], images[:, :, ::-1], images)
    for k in np.unique(turns[turns > 0]):
      images[turns == k] = np.rot90(images[turns == k], k, axes=(1, 2))
    out = {'x': images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)}
    if self.labels:
      out['y'] = np.asarray(labels, np.int32)
    if self.conditioning:
      out['y'] = augmented.astype(np.int32)
    if self.uint8:
      out['x_uint8'] = images
    return out

  def batch(self, step, process_index=0):
    if self._prefetch is None:
      return self._make(step, process_index)
    future = self._pending.pop((step, process_index), None)
    for stale in self._pending.values():
      stale.cancel()
    self._pending.clear()
    out = future.result() if future is not None else self._make(step, process_index)
    self._pending[(step + 1, process_index)] = self._prefetch.submit(
        self._make, step + 1, process_index)
    return out


def in_memory(images, labels, fit_fn):
  """`read` over arrays held in memory, fitted once (uint8 [N, h, w, C] -> [N, H, W, C])."""
  fitted = np.stack([fit_fn(im) for im in images])
  labels = np.asarray(labels)
  return (lambda idx: (fitted[idx], labels[idx])), len(fitted)


class _Chunked:
  """`read` in `threads` chunks of the indices, each gathered, decoded and fitted in a thread.

  PIL releases the GIL while decoding and resizing.
  """

  def __init__(self, fit_fn, threads=None):
    self.fit_fn = fit_fn
    self.threads = threads or min(8, os.cpu_count() or 1)
    self._pool = concurrent.futures.ThreadPoolExecutor(self.threads)

  def __call__(self, indices):
    chunks = [c for c in np.array_split(np.asarray(indices), self.threads) if len(c)]
    parts = list(self._pool.map(self._chunk, chunks))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Records(_Chunked):
  """`read` over a tfds random-access data source: batched gather, decode and fit in threads.

  A chunk is one `__getitems__` (array_record reads, tfds decodes the image with
  PIL) followed by `fit_fn` per image. label_map (optional int array) re-indexes
  the stored labels: label l is returned as label_map[l].
  """

  def __init__(self, records, fit_fn, threads=None, label_map=None):
    super().__init__(fit_fn, threads)
    self.records, self.label_map = records, label_map

  def __len__(self):
    return len(self.records)

  def _chunk(self, idx):
    examples = self.records.__getitems__([int(i) for i in idx])
    images = np.stack([self.fit_fn(np.asarray(ex['image'])) for ex in examples])
    labels = np.array([int(ex.get('label', 0)) for ex in examples], np.int64)
    return images, labels if self.label_map is None else self.label_map[labels]


def _extension(name):
  return os.path.splitext(name)[1].lower()


class Files(_Chunked):
  """`read` over EDM's dataset format (`EDM:training/dataset.py` ImageFolderDataset; edm A.5.2).

  `path` is a zip (dataset_tool.py writes it uncompressed) or a folder. Example i
  is the i-th of all files with an extension PIL knows (recursively; the zip's
  name list), sorted by path, decoded by PIL to uint8 HWC (a grey image gets
  C = 1). `labels`: int64 [N] from `dataset.json` at the top, {"labels":
  [[path, label], ...]}, or None where that file is absent or holds "labels":
  null; unlabelled reads give label 0. Each thread keeps its own open zip.
  """

  def __init__(self, path, fit_fn, threads=None):
    from PIL import Image
    super().__init__(fit_fn, threads)
    self.path, self.is_zip = path, not os.path.isdir(path)
    self._local = threading.local()
    if self.is_zip:
      names = set(self._zip().namelist())
    else:
      names = {os.path.relpath(os.path.join(root, f), path).replace(os.sep, '/')
               for root, _, files in os.walk(path) for f in files}
    Image.init()
    self.names = sorted(n for n in names if _extension(n) in Image.EXTENSION)
    self.labels = None
    if 'dataset.json' in names:
      with self._open('dataset.json') as f:
        table = json.load(f)['labels']
      if table is not None:
        table = dict(table)
        missing = [n for n in self.names if n not in table]
        if missing:
          raise ValueError(f'{path}: dataset.json has no label for {missing[0]} '
                           f'({len(missing)} of {len(self.names)} images)')
        self.labels = np.array([table[n] for n in self.names], np.int64)

  def __len__(self):
    return len(self.names)

  def _zip(self):
    if getattr(self._local, 'zip', None) is None:
      self._local.zip = zipfile.ZipFile(self.path)
    return self._local.zip

  def _open(self, name):
    return self._zip().open(name) if self.is_zip else open(os.path.join(self.path, name), 'rb')

  def _decode(self, name):
    from PIL import Image
    with self._open(name) as f:
      image = np.asarray(Image.open(f))
    return image[:, :, None] if image.ndim == 2 else image

  def _chunk(self, idx):
    images = np.stack([self.fit_fn(self._decode(self.names[i])) for i in idx])
    labels = self.labels[idx] if self.labels is not None else np.zeros(len(idx), np.int64)
    return images, labels
