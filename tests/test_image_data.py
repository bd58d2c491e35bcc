"""Image data: offline tfds builds, the stateless image source, real-set code paths.

Real sets run through `tfds.testing.mock_data` with their genuine metadata
(policy USE_FILES: the builder's own DatasetInfo written to a temporary
data_dir), and cifar10 once more through the genuine tfds builder, prepared as
array_record files from synthetic downloaded batches, so the real reading and
decoding code runs on real files. EDM's sets run on small zips and folders of
PNGs written here in dataset_tool.py's layout.
"""
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking

from configs import base
from data import datasets
from data import images
from data import offline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = [n for n, s in datasets.IMAGES.items() if not s.offline and not s.folder]  # tfds sets
FOLDERS = [n for n, s in datasets.IMAGES.items() if s.folder]  # EDM's sets


def cfg(name, data_dir, **data):
  c = base.get_base_config()
  c.data.name, c.data.data_dir = name, str(data_dir)
  c.data.update(data)
  return c


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """One data_dir with both offline sets prepared (a few seconds, once)."""
  d = tmp_path_factory.mktemp('tfds')
  for name in ('digits', 'mnist5k'):
    offline.prepare(name, str(d))
  return d


def _concat(batches):
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


@pytest.mark.parametrize('name', ['digits', 'mnist5k'])
def test_offline_sets(data_dir, name):
  train = datasets.load(cfg(name, data_dir), 'train', 64)
  held = datasets.load(cfg(name, data_dir), 'eval', 64, uint8=True)
  assert (train.size, held.size) == {'digits': (1497, 300), 'mnist5k': (4500, 500)}[name]
  b, e = train.batch(5), held.batch(0)
  side = datasets.data_shape(name)[0]
  assert b['x'].shape == (64, side, side, 1) == e['x'].shape and side == {'digits': 8, 'mnist5k': 32}[name]
  assert b['x'].dtype == np.float32 and b['y'].dtype == np.int32 and e['x_uint8'].dtype == np.uint8
  assert b['x'].min() >= -1 and b['x'].max() <= 1 and set(np.unique(b['y'])) <= set(range(10))
  np.testing.assert_array_equal(e['x'], e['x_uint8'].astype(np.float32) / np.float32(127.5) - 1)
  assert 'x_uint8' not in b and datasets.num_classes(name) == 10
  if name == 'digits':  # 17 grey levels round(v * 255 / 16)
    assert set(np.unique(e['x_uint8'])) <= set(np.round(np.arange(17) * 255 / 16).astype(int))
  else:  # 2 px of black padding around the 28x28 digits
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (e['x'][:, border] == -1).all() and (e['x'][:, ~border] > -1).any()
  # The held-out split is fixed and disjoint from training: all of each split once.
  raw_x, raw_y = (offline.digits_arrays if name == 'digits' else offline.mnist5k_arrays)()
  test_idx = offline._split(raw_y, offline.HELD_OUT[name])[1]
  stored = held.read(np.arange(held.size))
  pad = (side - raw_x.shape[1]) // 2
  np.testing.assert_array_equal(stored[0][:, pad:side - pad, pad:side - pad], raw_x[test_idx])
  np.testing.assert_array_equal(stored[1], raw_y[test_idx])
  assert np.bincount(stored[1]).tolist() == [offline.HELD_OUT[name]] * 10


def test_deterministic_and_resume_exact(data_dir):
  c = cfg('mnist5k', data_dir, random_flip=True)
  src = datasets.load(c, 'train', 100)
  steps = [src.batch(s) for s in range(50)]  # 50 x 100 > 4500: crosses an epoch
  again = datasets.load(c, 'train', 100)  # a re-created source (a restored run)
  for s in (0, 44, 45, 49, 17):
    for k in ('x', 'y'):
      np.testing.assert_array_equal(again.batch(s)[k], steps[s][k])
  idx = np.concatenate([src.indices(s) for s in range(45)])
  np.testing.assert_array_equal(np.sort(idx), np.arange(4500))  # one epoch = every example once
  assert not np.array_equal(src.indices(45), src.indices(0))
  other = datasets.load(cfg('mnist5k', data_dir, random_flip=True, seed=7), 'train', 100)
  assert not np.array_equal(other.batch(0)['x'], steps[0]['x'])


@pytest.mark.parametrize('flip', [False, True])
def test_processes_split_the_global_batch(data_dir, flip):
  c = cfg('digits', data_dir, random_flip=flip)
  whole = datasets.load(c, 'train', 96).batch(21)
  for p in (2, 4):
    src = datasets.load(c, 'train', 96, num_processes=p)
    parts = _concat([src.batch(21, i) for i in range(p)])
    for k in whole:
      np.testing.assert_array_equal(parts[k], whole[k])
  with pytest.raises(ValueError, match='divisible'):
    datasets.load(c, 'train', 96, num_processes=5)


def test_flip_is_stateless_and_train_only(data_dir):
  plain = datasets.load(cfg('digits', data_dir), 'train', 256, uint8=True)
  flip = datasets.load(cfg('digits', data_dir, random_flip=True), 'train', 256, uint8=True)
  a, b = plain.batch(3), flip.batch(3)
  mirrored = flip.flips(3)
  np.testing.assert_array_equal(b['x_uint8'][~mirrored], a['x_uint8'][~mirrored])
  np.testing.assert_array_equal(b['x_uint8'][mirrored], a['x_uint8'][mirrored, :, ::-1])
  np.testing.assert_array_equal(b['y'], a['y'])
  assert 0.35 < mirrored.mean() < 0.65 and not np.array_equal(flip.flips(4), mirrored)
  # Keyed by (seed, step, position) only: reading other steps first changes nothing.
  fresh = datasets.load(cfg('digits', data_dir, random_flip=True), 'train', 256)
  fresh.batch(9)
  np.testing.assert_array_equal(fresh.batch(3)['x'], b['x'])
  # The eval split is never flipped.
  ev = datasets.load(cfg('digits', data_dir, random_flip=True), 'eval', 300)
  np.testing.assert_array_equal(ev.batch(0)['x'], datasets.load(cfg('digits', data_dir), 'eval',
                                                                300).batch(0)['x'])
  assert not ev.flips(0).any()


def test_random_access_reader_matches_memory(data_dir):
  """images.Records over the real array_record files (threads, prefetch) = the in-memory set."""
  c = cfg('digits', data_dir, random_flip=True, image_size=16)
  memory = datasets.load(c, 'train', 64)
  records = tfds.data_source('dpmx_digits', split='train', data_dir=str(data_dir), download=False)
  fit = lambda im: images.fit(im, 16, 'pad')
  ra = images.ImageSource(images.Records(records, fit, threads=2), len(records), 64, c.data.seed,
                          flip=True, labels=True, prefetch=True)
  for s in (0, 1, 2, 30, 3):  # sequential (prefetched) and out of order
    got, want = ra.batch(s), memory.batch(s)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])
  assert want['x'].shape == (64, 16, 16, 1) and (want['x'][:, :4] == -1).all()


def test_image_keys(data_dir):
  assert datasets.data_shape('digits', cfg('digits', data_dir, image_size=16)) == (16, 16, 1)
  assert datasets.data_shape('celeb_a') == (64, 64, 3)
  assert datasets.data_shape('cifar10', cfg('cifar10', '', image_size=16)) == (16, 16, 3)
  assert datasets.data_shape('gaussian8') == (2,) and not datasets.is_image('gaussian8')
  assert datasets.is_image('lsun_bedroom') and datasets.num_classes('imagenet32_new') == 0
  for name, data, match in [
      ('digits', dict(image_size=9), 'image_size=9 cannot pad'),
      ('mnist5k', dict(image_size=24), 'image_size=24 cannot pad'),
      ('digits', dict(crop='ead128'), 'is for celeb_a'),
      ('celeb_a', dict(crop='center'), "crop='center' is not one of"),
      ('gaussian8', dict(random_flip=True), 'are for images'),
      ('cifar100', {}, "name='cifar100' is not one of"),
  ]:
    with pytest.raises(datasets.DataError, match=match):
      datasets.check(cfg(name, data_dir, **data))


def test_fit_crops_and_resizes():
  rng = np.random.default_rng(0)
  face = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
  np.testing.assert_array_equal(images.fit(face, 128, crop='ead128'), face[57:185, 25:153])
  np.testing.assert_array_equal(images.fit(face, 148, crop='tq148'), face[40:188, 15:163])
  for crop in images.CROPS:
    assert images.fit(face, 64, crop=crop).shape == (64, 64, 3)
  flat = np.full((300, 400, 3), 77, np.uint8)  # LSUN: shorter side 256, centre crop
  flat[:, :30] = 0  # 25.6 px after the resize, inside the 42 px cut
  out = images.fit(flat, 256, 'shorter')
  assert out.shape == (256, 256, 3) and (out == 77).all()
  grey = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
  assert images.fit(grey, 32).shape == (32, 32, 1)
  np.testing.assert_array_equal(images.fit(grey, 32, 'pad')[2:30, 2:30], grey)


def _write_metadata(root, name, splits, file_format='array_record'):
  """The genuine builder's DatasetInfo, with split sizes, as prepared metadata."""
  b = tfds.builder(datasets.IMAGES[name].tfds_name, data_dir=str(root), file_format=file_format)
  template = lambda s: tfds.core.ShardedFileTemplate(data_dir=b.data_path, dataset_name=b.name,
                                                     split=s, filetype_suffix=file_format)
  b.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(
      name=s, shard_lengths=[n], num_bytes=0, filename_template=template(s)) for s, n in splits.items()]))
  os.makedirs(b.data_dir, exist_ok=True)
  b.info.write_to_directory(b.data_dir)


def _fixed_getitems(record_keys, generator, serialized=False):
  del serialized
  return [generator[k] for k in record_keys]


@contextlib.contextmanager
def mock_data(root, num_examples):
  """tfds.testing.mock_data on the metadata in `root` (USE_FILES).

  tensorflow-datasets 4.9.10 binds its mocked `__getitems__` wrongly (the
  partial takes the keys as `self`; its own tests only call `__getitem__`), so
  that one function is replaced by a correct one.
  """
  with mock.patch.object(mocking, '_getitems', _fixed_getitems), tfds.testing.mock_data(
      num_examples=num_examples, data_dir=str(root), policy=tfds.testing.MockPolicy.USE_FILES):
    yield


@pytest.mark.parametrize('name, data, shape', [
    ('cifar10', {}, (32, 32, 3)),
    ('cifar10', dict(random_flip=True, image_size=16), (16, 16, 3)),
    ('mnist', {}, (28, 28, 1)),
    ('mnist', dict(image_size=32), (32, 32, 1)),  # the DDPM reimplementation resizes MNIST to 32
])
def test_mocked_real_sets(tmp_path, name, data, shape):
  _write_metadata(tmp_path, name, {'train': 50, 'test': 20})
  c = cfg(name, tmp_path, **data)
  with mock_data(tmp_path, 300):
    datasets.check(c)
    src = datasets.load(c, 'train', 32, num_processes=2)
    b = src.batch(4, 1)
    assert src.size == 300 and b['x'].shape == (16,) + shape and datasets.data_shape(name, c) == shape
    assert b['x'].dtype == np.float32 and b['y'].dtype == np.int32
    assert -1 <= b['x'].min() and b['x'].max() <= 1 and 0 <= b['y'].min() and b['y'].max() < 10
    again = datasets.load(c, 'train', 32, num_processes=2)
    for s in (5, 4):  # prefetched and not
      np.testing.assert_array_equal(again.batch(s, 1)['x'], src.batch(s, 1)['x'])
    whole = _concat([datasets.load(c, 'train', 32).batch(4)])
    np.testing.assert_array_equal(whole['x'][16:], b['x'])
    ev = datasets.load(c, 'eval', 10, uint8=True).batch(0)
    assert ev['x_uint8'].shape == (10,) + shape


@pytest.mark.parametrize('crop', ['none', 'ead128', 'tq148'])
def test_mocked_celeb_a_crops(tmp_path, crop):
  _write_metadata(tmp_path, 'celeb_a', {'train': 50, 'test': 20})
  with mock_data(tmp_path, 40):
    for size, side in ((0, 64), (32, 32)):
      c = cfg('celeb_a', tmp_path, crop=crop, image_size=size, random_flip=True)
      b = datasets.load(c, 'train', 8).batch(0)
      assert b['x'].shape == (8, side, side, 3) and 'y' not in b


def _fake_cifar_download(root, n_train, n_test, rng):
  """cifar-10-batches-bin as the tfds builder expects it; returns the pixels and labels."""
  d = os.path.join(root, 'cifar-10-batches-bin')
  os.makedirs(d)
  out = {}
  for split, files, n in (('train', [f'data_batch_{i}.bin' for i in range(1, 6)], n_train),
                          ('test', ['test_batch.bin'], n_test)):
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    rec = np.concatenate([labels[:, None], chw.reshape(n, -1)], 1)
    for f, part in zip(files, np.array_split(rec, len(files))):
      with open(os.path.join(d, f), 'wb') as fh:
        fh.write(part.tobytes())
    out[split] = chw.transpose(0, 2, 3, 1), labels
  with open(os.path.join(d, 'batches.meta.txt'), 'w') as f:
    f.write('\n'.join(f'class{i}' for i in range(10)) + '\n')
  return out


def test_cifar10_from_real_array_record_files(tmp_path):
  """The genuine cifar10 builder (download faked) -> array_record -> our reader, pixel-exact."""
  truth = _fake_cifar_download(tmp_path / 'dl', 40, 12, np.random.default_rng(1))
  builder = tfds.builder('cifar10', data_dir=str(tmp_path), file_format='array_record')
  with mock.patch.object(tfds.download.DownloadManager, 'download_and_extract',
                         lambda self, url: str(tmp_path / 'dl')):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False))
  c = cfg('cifar10', tmp_path)
  datasets.check(c)
  ev = datasets.load(c, 'eval', 12, uint8=True).batch(0)  # stored order: tfds's own shuffle
  x, y = truth['test']
  order = [int(np.flatnonzero((x == im).all(axis=(1, 2, 3)))[0]) for im in ev['x_uint8']]
  assert sorted(order) == list(range(12))
  np.testing.assert_array_equal(ev['y'], y[order])
  src = datasets.load(cfg('cifar10', tmp_path, random_flip=True), 'train', 16, uint8=True)
  seen = np.concatenate([src.batch(s)['x_uint8'] for s in range(5)])[:40]
  xt = truth['train'][0]
  for im in seen:  # every image is a training image, maybe mirrored
    assert ((xt == im).all(axis=(1, 2, 3)) | (xt[:, :, ::-1] == im).all(axis=(1, 2, 3))).any()


def test_missing_data_fails_at_once(tmp_path):
  datasets.check(cfg('digits', tmp_path))  # offline sets need nothing prepared
  t = time.time()
  for name in REAL:
    c = cfg(name, tmp_path / 'empty')
    for call in (lambda: datasets.check(c), lambda: datasets.load(c, 'train', 8)):
      with pytest.raises(datasets.DataError) as e:
        call()
      msg = str(e.value)
      assert f"config.data.name={name!r}: no prepared tfds" in msg and '\n' not in msg
      assert f'python -m data.datasets {name} --data_dir={tmp_path / "empty"}' in msg
      assert ('--manual_dir' in msg) == bool(datasets.IMAGES[name].manual)
  assert time.time() - t < 5
  # Prepared in the wrong format (tfds's default tfrecord): said so, with the fix.
  _write_metadata(tmp_path, 'cifar10', {'train': 5, 'test': 5}, file_format='tfrecord')
  with pytest.raises(datasets.DataError, match='holds tfrecord files, but random access needs '
                     'array_record; rebuild it'):
    datasets.check(cfg('cifar10', tmp_path))


def test_concurrent_first_use(tmp_path, data_dir):
  """Two processes building the same offline set at once both succeed, with one result."""
  code = (f'from data import offline; b = offline.prepare("digits", {str(tmp_path)!r}); '
          'print(b.info.splits["train"].num_examples)')
  env = dict(os.environ, PYTHONPATH=ROOT)
  procs = [subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for _ in range(2)]
  outs = [p.communicate(timeout=120) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs
  assert [o[0].split()[-1] for o in outs] == ['1497', '1497']
  a = datasets.load(cfg('digits', tmp_path), 'train', 1497).batch(0)
  b = datasets.load(cfg('digits', data_dir), 'train', 1497).batch(0)
  np.testing.assert_array_equal(a['x'], b['x'])
  assert not [p for p in os.listdir(tmp_path / 'dpmx_digits') if p.startswith('incomplete')]


@pytest.mark.parametrize('name', ['imagenet32', 'imagenet32_new', 'imagenet64', 'lsun_bedroom'])
def test_mocked_other_real_sets(tmp_path, name):
  spec = datasets.IMAGES[name]
  _write_metadata(tmp_path, name, {'train': 50, spec.eval_split: 20})
  with mock_data(tmp_path, 30):
    for split in ('train', 'eval'):
      c = cfg(name, tmp_path, random_flip=True)
      b = datasets.load(c, split, 4).batch(0)
      assert b['x'].shape == (4,) + datasets.data_shape(name, c) and 'y' not in b


def test_prepare_command(data_dir, capsys):
  datasets.main(['mnist5k', f'--data_dir={data_dir}'])
  assert capsys.readouterr().out.strip() == f'mnist5k: prepared in {data_dir}/dpmx_mnist5k/1.0.0'


def test_cifar10_aug_mocked(tmp_path):
  """i-DODE's augmentation: flips, quarter turns, the 0/1 flag as 'y'; stateless; eval untouched."""
  _write_metadata(tmp_path, 'cifar10_aug', {'train': 50, 'test': 20})
  c = cfg('cifar10_aug', tmp_path)
  assert datasets.num_classes('cifar10_aug') == 2
  assert datasets.data_shape('cifar10_aug') == (32, 32, 3)
  with mock_data(tmp_path, 300):
    datasets.check(c)
    src = datasets.load(c, 'train', 256, uint8=True)
    plain = datasets.load(cfg('cifar10', tmp_path), 'train', 256, uint8=True)  # same order
    for step in (0, 3):
      b, a = src.batch(step), plain.batch(step)
      mirrored, turns, flag = src.transforms(step)
      # The documented draws, recomputed: keyed by (data.seed, step, position in the batch).
      u = np.random.default_rng([c.data.seed, images.AUG_STREAM, step]).random((256, 3))
      np.testing.assert_array_equal(mirrored, u[:, 0] < 0.5)
      np.testing.assert_array_equal(turns, np.where(u[:, 1] < 0.5, np.ceil(3 * u[:, 2]), 0))
      np.testing.assert_array_equal(b['y'], flag.astype(np.int32))
      assert b['y'].dtype == np.int32 and set(np.unique(b['y'])) == {0, 1}
      assert 0.65 < b['y'].mean() < 0.85 and set(np.unique(turns)) == {0, 1, 2, 3}
      for j in range(256):
        want = a['x_uint8'][j, :, ::-1] if mirrored[j] else a['x_uint8'][j]
        want = np.rot90(want, turns[j])  # tf.image.rot90: counter-clockwise
        np.testing.assert_array_equal(b['x_uint8'][j], want)
      assert (b['x_uint8'][b['y'] == 0] == a['x_uint8'][b['y'] == 0]).all()
      np.testing.assert_array_equal(b['x'], b['x_uint8'].astype(np.float32) / np.float32(127.5) - 1)
    # A quarter turn (k = 1) of an example is its transpose flipped upside down.
    j = int(np.flatnonzero((turns == 1) & ~mirrored)[0])
    np.testing.assert_array_equal(b['x_uint8'][j], a['x_uint8'][j].transpose(1, 0, 2)[::-1])
    # Stateless: a re-created source, other steps read first, the global batch split over processes.
    again = datasets.load(c, 'train', 256, num_processes=4)
    again.batch(9)
    parts = _concat([again.batch(3, p) for p in range(4)])
    np.testing.assert_array_equal(parts['x'], b['x'])
    np.testing.assert_array_equal(parts['y'], b['y'])
    # The eval split: never augmented, 'y' = 0, exactly cifar10's test images; its size caps eval.
    ev = datasets.load(c, 'eval', 64).batch(1)
    ref = datasets.load(cfg('cifar10', tmp_path), 'eval', 64).batch(1)
    np.testing.assert_array_equal(ev['x'], ref['x'])
    assert (ev['y'] == 0).all() and ev['y'].dtype == np.int32
    assert datasets.load(c, 'eval', 64).size == 300
  with pytest.raises(datasets.DataError, match='flips as part of its own augmentation'):
    datasets.check(cfg('cifar10_aug', tmp_path, random_flip=True))


def test_imagenet64_cond_labels(tmp_path):
  """imagenet_resized/64x64 with its labels re-indexed to the sorted-WordNet-id class order."""
  _write_metadata(tmp_path, 'imagenet64_cond', {'train': 50, 'validation': 20})
  names = tfds.builder('imagenet_resized/64x64').info.features['label'].names
  assert names[0] == 'n02119789' and sorted(names)[0] == 'n01440764'
  with mock_data(tmp_path, 200):
    for split, tfds_split in (('train', 'train'), ('eval', 'validation')):
      src = datasets.load(cfg('imagenet64_cond', tmp_path, random_flip=True), split, 100)
      b = src.batch(1)
      assert b['x'].shape == (100, 64, 64, 3) and b['y'].dtype == np.int32 and src.size == 200
      raw = tfds.data_source('imagenet_resized/64x64', split=tfds_split, data_dir=str(tmp_path),
                             download=False).__getitems__([int(i) for i in src.indices(1)])
      stored = np.array([ex['label'] for ex in raw])
      np.testing.assert_array_equal(b['y'], [sorted(names).index(names[l]) for l in stored])
      assert not np.array_equal(b['y'], stored)
  assert datasets.num_classes('imagenet64_cond') == 1000 and datasets.num_classes('imagenet64') == 0


def _png(image):
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, 'PNG',
                                                                         compress_level=0)
  return buf.getvalue()


def _write_edm(path, pixels, labels=None, as_zip=True):
  """EDM dataset_tool.py output: {idx//1000:05d}/img{idx:08d}.png (+ dataset.json), stored."""
  names = [f'{i // 1000:05d}/img{i:08d}.png' for i in range(len(pixels))]
  meta = json.dumps({'labels': None if labels is None else
                     [[n, int(l)] for n, l in zip(names, labels)]})
  files = dict(zip(names, map(_png, pixels)), **{'dataset.json': meta.encode(),
                                                 'notes.txt': b'not an image'})
  if as_zip:
    with zipfile.ZipFile(str(path) + '.zip', 'w', compression=zipfile.ZIP_STORED) as z:
      for n in reversed(list(files)):  # archive order is not the example order: sorted paths are
        z.writestr(n, files[n])
  else:
    for n, data in files.items():
      os.makedirs(os.path.dirname(os.path.join(path, n)), exist_ok=True)
      with open(os.path.join(path, n), 'wb') as f:
        f.write(data)


@pytest.mark.parametrize('name, as_zip', [('ffhq64', True), ('afhqv2_64', False)])
def test_edm_folder_sets(tmp_path, name, as_zip):
  pixels = np.random.default_rng(2).integers(0, 256, (1003, 64, 64, 3), dtype=np.uint8)
  _write_edm(tmp_path / datasets.IMAGES[name].folder, pixels,
             labels=np.arange(1003) % 3 if name == 'afhqv2_64' else None, as_zip=as_zip)
  c = cfg(name, tmp_path, random_flip=True)
  datasets.check(c)
  assert datasets.data_shape(name, c) == (64, 64, 3) and datasets.num_classes(name) == 0
  ev_src = datasets.load(c, 'eval', 200, uint8=True)
  ev = _concat([ev_src.batch(s) for s in range(6)])  # 1200 > 1003: wraps around to the start
  assert ev_src.size == 1003 and 'y' not in ev and ev['x'].dtype == np.float32
  np.testing.assert_array_equal(ev['x_uint8'][:1003], pixels)  # sorted paths, no flips
  np.testing.assert_array_equal(ev['x_uint8'][1003:], pixels[:197])
  src = datasets.load(c, 'train', 64, num_processes=2, uint8=True)
  whole = datasets.load(c, 'train', 64, uint8=True)
  for step in (0, 15, 16, 2):  # 16 x 64 > 1003: crosses an epoch; prefetched and out of order
    b = _concat([src.batch(step, p) for p in range(2)])
    idx, flips = whole.indices(step), whole.flips(step)
    want = np.where(flips[:, None, None, None], pixels[idx][:, :, ::-1], pixels[idx])
    np.testing.assert_array_equal(b['x_uint8'], want)
    np.testing.assert_array_equal(whole.batch(step)['x'], b['x'])
  assert 0 < flips.mean() < 1
  small = datasets.load(cfg(name, tmp_path, image_size=32), 'train', 8).batch(0)
  assert small['x'].shape == (8, 32, 32, 3)


def test_edm_labelled_and_broken_sets(tmp_path):
  pixels = np.random.default_rng(3).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
  labels = np.random.default_rng(4).integers(0, 1000, 20)
  _write_edm(tmp_path / 'imagenet-64x64', pixels, labels)
  c = cfg('imagenet64_edm', tmp_path)
  b = datasets.load(c, 'eval', 20).batch(0)
  np.testing.assert_array_equal(b['y'], labels)
  assert b['y'].dtype == np.int32 and datasets.num_classes('imagenet64_edm') == 1000
  tr = datasets.load(c, 'train', 10)
  np.testing.assert_array_equal(tr.batch(1)['y'], labels[tr.indices(1)])
  # Unlabelled where labels are needed; labels out of range; a file that is not a zip; empty.
  for name, write, match in [
      ('nolabels', lambda p: _write_edm(p, pixels[:3]), r'has no labels \(dataset.json\)'),
      ('range', lambda p: _write_edm(p, pixels[:3], [0, 1, 1000]), 'has labels 0..1000'),
      ('notzip', lambda p: open(str(p) + '.zip', 'w').write('x'), 'is not a zip file'),
      ('empty', lambda p: os.makedirs(p), 'holds no images'),
  ]:
    d = tmp_path / name
    os.makedirs(d)
    write(d / 'imagenet-64x64')
    with pytest.raises(datasets.DataError, match=match) as e:
      datasets.load(cfg('imagenet64_edm', d), 'train', 2)
    assert 'dataset_tool.py' in str(e.value) and '\n' not in str(e.value)


def test_edm_sets_missing(tmp_path, capsys):
  urls = {'ffhq64': 'https://github.com/NVlabs/ffhq-dataset',
          'afhqv2_64': 'https://github.com/clovaai/stargan-v2/blob/master/README.md'
                       '#animal-faces-hq-dataset-afhq',
          'imagenet64_edm': 'https://www.kaggle.com/competitions/'
                            'imagenet-object-localization-challenge/data'}
  for name in FOLDERS:
    stem = os.path.join(str(tmp_path), datasets.IMAGES[name].folder)
    for call in (lambda: datasets.check(cfg(name, tmp_path)),
                 lambda: datasets.load(cfg(name, tmp_path), 'train', 8)):
      with pytest.raises(datasets.DataError) as e:
        call()
      msg = str(e.value)
      assert msg.startswith(f'config.data.name={name!r}: neither {stem}.zip nor a folder {stem} '
                            'exists; prepare it with EDM') and '\n' not in msg
      assert 'download the ' in msg and urls[name] in msg
      assert 'python dataset_tool.py --source=downloads/' in msg and f'--dest={stem}.zip' in msg
    with pytest.raises(SystemExit) as e:
      datasets.main([name, f'--data_dir={tmp_path}'])
    assert e.value.code == 2 and f'--dest={stem}.zip' in capsys.readouterr().err
  with pytest.raises(datasets.DataError) as e:
    datasets.check(cfg('imagenet64_edm', tmp_path))
  msg = str(e.value)
  assert msg.endswith('--dest=' + os.path.join(str(tmp_path), 'imagenet-64x64.zip') +
                      ' --resolution=64x64 --transform=center-crop, or point config.data.data_dir '
                      'at the folder holding imagenet-64x64.zip')
  with mock.patch.dict(os.environ, {'TFDS_DATA_DIR': str(tmp_path / 'tfds_default')}):
    with pytest.raises(datasets.DataError, match=str(tmp_path / 'tfds_default' / 'ffhq-64x64')):
      datasets.check(cfg('ffhq64', ''))
