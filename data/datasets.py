"""Dataset registry: config.data.name -> a stateless source for a split.

Toy sets (data/toy.py) give float32 [B, 2] points. Image sets give
{'x': float32 NHWC in [-1, 1], 'y': int32 labels where num_classes(name) > 0,
'x_uint8': uint8 NHWC when load(..., uint8=True)} through data/images.py.

| name | tfds dataset (array_record) | native H=W, C | classes | train / eval split | fitted by |
| --- | --- | --- | --- | --- | --- |
| digits | dpmx_digits (built here, data/offline.py) | 8, 1 | 10 | 1497 / 300 | zero padding |
| mnist5k | dpmx_mnist5k (built here) | 32 (28 + 2 px pad), 1 | 10 | 4500 / 500 | zero padding |
| mnist | mnist | 28, 1 | 10 | train / test | bilinear resize |
| cifar10 | cifar10 | 32, 3 | 10 | train / test | bilinear resize |
| cifar10_aug | cifar10 (i-DODE's augmentation; 'y' = the 0/1 flag) | 32, 3 | 2 | train / test | bilinear resize |
| celeb_a | celeb_a | 64, 3 | 0 | train / test | data.crop, bilinear resize (none: the whole 178x218 image, as PSLD) |
| imagenet32 | downsampled_imagenet/32x32 (old, VDM/ScoreSDE) | 32, 3 | 0 | train / validation | bilinear resize |
| imagenet32_new | imagenet_resized/32x32 (anti-aliased, i-DODE "new") | 32, 3 | 0 | train / validation | bilinear resize |
| imagenet64 | downsampled_imagenet/64x64 (Improved-DDPM / EAD) | 64, 3 | 0 | train / validation | bilinear resize |
| imagenet64_cond | imagenet_resized/64x64 (box-resized, labelled) | 64, 3 | 1000 | train / validation | bilinear resize |
| lsun_bedroom | lsun/bedroom | 256, 3 | 0 | train / validation | shorter side + centre crop |
| ffhq64 | EDM's ffhq-64x64.zip (dataset_tool.py) | 64, 3 | 0 | all / all | bilinear resize |
| afhqv2_64 | EDM's afhqv2-64x64.zip | 64, 3 | 0 | all / all | bilinear resize |
| imagenet64_edm | EDM's imagenet-64x64.zip (centre crop, LANCZOS) | 64, 3 | 1000 | all / all | bilinear resize |

config.data.image_size (0 = native) sets the output side; the padded sets take
sizes >= their stored side (8, 28) with an even difference (zeros: black, -1
after scaling). config.data.size applies to toy sets only. `num_classes` is 0
for sets that are unlabelled or used unconditionally (imagenet32_new has labels;
the i-DODE models ignore them).

cifar10_aug reads the same tfds cifar10 files as cifar10. Its training split is
augmented as i-DODE does (thu-ml/i-DODE `_preprocess_cifar10_augment`, reference
idode A.5; the draws in data/images.py): mirrored with probability 1/2, then,
independently with probability 1/2, turned by 1-3 quarter turns; 'y' is the
conditioning the VDM ScoreUNet takes, 1 for an augmented example, else 0 (so
num_classes is 2). Its eval split is never augmented ('y' = 0). The CIFAR-10
class labels are not yielded for this set; data.random_flip must stay False.

Labels of imagenet64_cond and imagenet64_edm follow the standard ImageNet class
index: class i is the i-th WordNet id in sorted order (the ILSVRC folder order
that ADM and EDM's dataset_tool.py use; 0 = n01440764 tench). imagenet_resized
stores Chrabaszcz et al.'s map_clsloc order (0 = n02119789 kit fox), re-indexed
here by sorting its label names. imagenet64 (downsampled_imagenet) has no labels.

Real sets are read from config.data.data_dir (empty: tfds's default,
$TFDS_DATA_DIR or ~/tensorflow_datasets), never downloaded; offline sets are
built there on first use (empty: offline.DEFAULT_DIR). Prepare a tfds set on a
machine with internet (or with its manual files) by
`python -m data.datasets NAME --data_dir=DIR [--manual_dir=DIR]`.

EDM's sets (ffhq64, afhqv2_64, imagenet64_edm) are the output of EDM's
`dataset_tool.py` (reference edm A.5.2) under EDM's published names, in the same
data_dir: `<data_dir>/ffhq-64x64.zip`, `afhqv2-64x64.zip`, `imagenet-64x64.zip`
(uncompressed zips of PNGs with an optional dataset.json of labels), or a folder
of that name without `.zip` holding the same files (the zip wins when both
exist). Examples are the image files sorted by path, read at random. They have
no held-out split: 'eval' is the whole set in that order (EDM's FID reference
statistics cover every training image, `fid.py ref`). EDM trains them unlabelled
(afhqv2's dataset.json holds cat/dog/wild labels, unused) and optionally with
x-flips: data.random_flip. A missing set raises DataError with the
dataset_tool.py command of EDM's README.

`load(...).size` is the number of examples of the split; for 'eval' the eval
loop reads min(config.eval.num_examples, size) examples (batches past the end
wrap around to the start, i.e. repeat examples).
"""
import argparse
import dataclasses
import functools
import json
import os
import zipfile

import numpy as np

from data import images
from data import source
from data import toy


class DataError(ValueError):
  """A dataset that cannot be read as configured; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Image:
  tfds_name: str
  size: int                 # native output side
  channels: int
  num_classes: int
  eval_split: str
  fit: str = 'resize'       # images.FITS
  stored: int = 0           # 'pad' sets: the stored side
  offline: bool = False
  manual: str = ''          # the files tfds takes from --manual_dir when it cannot download
  augment: bool = False     # i-DODE's flips + quarter turns on the training split; 'y' = the flag
  sorted_labels: bool = False  # labels re-indexed so that class i is the i-th sorted label name
  folder: str = ''          # EDM sets: the dataset_tool.py output's name (.zip or a folder)
  edm_source: tuple = ()    # EDM sets: (what to download, dataset_tool.py's arguments)


IMAGES = {
    'digits': Image('dpmx_digits', 8, 1, 10, 'test', 'pad', stored=8, offline=True),
    'mnist5k': Image('dpmx_mnist5k', 32, 1, 10, 'test', 'pad', stored=28, offline=True),
    'mnist': Image('mnist', 28, 1, 10, 'test'),
    'cifar10': Image('cifar10', 32, 3, 10, 'test'),
    'cifar10_aug': Image('cifar10', 32, 3, 2, 'test', augment=True),
    'celeb_a': Image('celeb_a', 64, 3, 0, 'test', manual=(
        'img_align_celeba.zip, list_eval_partition.txt, list_attr_celeba.txt, '
        'list_landmarks_align_celeba.txt, identity_CelebA.txt (CelebA site)')),
    'imagenet32': Image('downsampled_imagenet/32x32', 32, 3, 0, 'validation', manual=(
        'train_32x32.tar, valid_32x32.tar (image-net.org/small, the old version)')),
    'imagenet32_new': Image('imagenet_resized/32x32', 32, 3, 0, 'validation', manual=(
        'Imagenet32_train_npz.zip, Imagenet32_val_npz.zip (image-net.org, login)')),
    'imagenet64': Image('downsampled_imagenet/64x64', 64, 3, 0, 'validation', manual=(
        'train_64x64.tar, valid_64x64.tar (image-net.org/small, the old version)')),
    'imagenet64_cond': Image('imagenet_resized/64x64', 64, 3, 1000, 'validation',
                             sorted_labels=True, manual=(
        'Imagenet64_train_part1_npz.zip, Imagenet64_train_part2_npz.zip, Imagenet64_val_npz.zip '
        '(image-net.org/download-images, login)')),
    'lsun_bedroom': Image('lsun/bedroom', 256, 3, 0, 'validation', 'shorter', manual=(
        'bedroom_train_lmdb.zip, bedroom_val_lmdb.zip (LSUN; tfds reads lmdb with '
        'tensorflow-io)')),
    # EDM's README, "Preparing datasets".
    'ffhq64': Image('', 64, 3, 0, '', folder='ffhq-64x64', edm_source=(
        'the Flickr-Faces-HQ dataset as 1024x1024 images (https://github.com/NVlabs/ffhq-dataset)',
        '--source=downloads/ffhq/images1024x1024 --dest={dest} --resolution=64x64')),
    'afhqv2_64': Image('', 64, 3, 0, '', folder='afhqv2-64x64', edm_source=(
        'the updated Animal Faces-HQ dataset, afhq-v2-dataset (https://github.com/clovaai/'
        'stargan-v2/blob/master/README.md#animal-faces-hq-dataset-afhq)',
        '--source=downloads/afhqv2 --dest={dest} --resolution=64x64')),
    'imagenet64_edm': Image('', 64, 3, 1000, '', folder='imagenet-64x64', edm_source=(
        'the ImageNet Object Localization Challenge (https://www.kaggle.com/competitions/'
        'imagenet-object-localization-challenge/data)',
        '--source=downloads/imagenet/ILSVRC/Data/CLS-LOC/train --dest={dest} '
        '--resolution=64x64 --transform=center-crop')),
}
DATASETS = toy.DATASETS + tuple(IMAGES)
SPLIT_IDS = {'train': 0, 'eval': 1}
CROPS = tuple(images.CROPS)


def is_image(name):
  return name in IMAGES


def num_classes(name):
  """Classes of the labels a source yields as 'y' (0: none; cifar10_aug: 2, the 0/1 flag)."""
  return IMAGES[name].num_classes if name in IMAGES else 0


def image_size(name, config=None):
  size = config.data.image_size if config is not None else 0
  return size or IMAGES[name].size


def data_shape(name, config=None):
  """One example's shape: (2,) for toy sets, (H, W, C) for images (config.data.image_size)."""
  if name not in IMAGES:
    return (2,)
  size = image_size(name, config)
  return (size, size, IMAGES[name].channels)


def _data_dir(config):
  return os.path.expanduser(config.data.data_dir) or None


def _folder_root(data_dir):
  """Where EDM's sets live: config.data.data_dir, else tfds's default data dir."""
  return os.path.expanduser(data_dir or os.environ.get('TFDS_DATA_DIR')
                            or os.path.join('~', 'tensorflow_datasets'))


def _folder_hint(name, data_dir):
  spec = IMAGES[name]
  what, args = spec.edm_source
  dest = os.path.join(_folder_root(data_dir), spec.folder + '.zip')
  return (f"prepare it with EDM's dataset_tool.py (https://github.com/NVlabs/edm): download "
          f'{what}, then python dataset_tool.py {args.format(dest=dest)}, or point '
          f'config.data.data_dir at the folder holding {spec.folder}.zip')


def _folder_path(name, config):
  """The EDM zip (or folder) of `name`; DataError when neither exists or the zip is not one."""
  base = os.path.join(_folder_root(config.data.data_dir), IMAGES[name].folder)
  if os.path.isfile(base + '.zip'):
    if not zipfile.is_zipfile(base + '.zip'):
      raise DataError(f'config.data.name={name!r}: {base}.zip is not a zip file; '
                      + _folder_hint(name, config.data.data_dir))
    return base + '.zip'
  if os.path.isdir(base):
    return base
  raise DataError(f'config.data.name={name!r}: neither {base}.zip nor a folder {base} exists; '
                  + _folder_hint(name, config.data.data_dir))


def _prepare_hint(name, config):
  spec, where = IMAGES[name], config.data.data_dir or '~/tensorflow_datasets'
  hint = (f'prepare it on a machine with internet: python -m data.datasets {name} '
          f'--data_dir={where}')
  if spec.manual:
    hint += f' (without download access: add --manual_dir=M, M holding {spec.manual})'
  return hint + ', or point config.data.data_dir at a folder where it is prepared'


def _check_prepared(name, config):
  """Existence (and format) of a real set's prepared files; no example is read."""
  import tensorflow_datasets as tfds
  spec = IMAGES[name]
  builder = tfds.builder(spec.tfds_name, data_dir=_data_dir(config))
  info = os.path.join(builder.data_dir, 'dataset_info.json')
  if not os.path.exists(info):
    parent = os.path.dirname(builder.data_dir)
    found = sorted(os.listdir(parent)) if os.path.isdir(parent) else []
    have = f' (found versions {", ".join(found)}; this tensorflow-datasets reads ' \
           f'{builder.version})' if found else ''
    raise DataError(f'config.data.name={name!r}: no prepared tfds {spec.tfds_name!r} in '
                    f'{builder.data_dir}{have}; {_prepare_hint(name, config)}')
  with open(info) as f:
    file_format = json.load(f).get('fileFormat', 'tfrecord')
  if file_format != 'array_record':
    raise DataError(f'config.data.name={name!r}: {builder.data_dir} holds {file_format} files, '
                    'but random access needs array_record; '
                    + _prepare_hint(name, config).replace('prepare it', 'rebuild it', 1))


def check(config):
  """Raise DataError (one line) for a dataset config that cannot be read; cheap.

  Checks the image keys and, for real sets, that the prepared files exist in
  array_record format (EDM's sets: the zip or folder; no download, no example
  read). Offline sets need nothing: they are built on first use.
  """
  name, d = config.data.name, config.data
  if name not in DATASETS:
    raise DataError(f'config.data.name={name!r} is not one of: {", ".join(DATASETS)}')
  if d.crop not in CROPS:
    raise DataError(f'config.data.crop={d.crop!r} is not one of: {", ".join(CROPS)}')
  if name not in IMAGES:
    if d.image_size or d.crop != 'none' or d.random_flip:
      raise DataError(f'config.data.image_size, crop and random_flip are for images; '
                      f'{name!r} is a 2-D toy set (leave them at 0, none, False)')
    return
  spec = IMAGES[name]
  if spec.augment and d.random_flip:
    raise DataError(f'config.data.random_flip=True: {name!r} flips as part of its own '
                    'augmentation (leave it False)')
  if d.crop != 'none' and name != 'celeb_a':
    raise DataError(f'config.data.crop={d.crop!r} is for celeb_a; {name!r} takes none')
  if not isinstance(d.image_size, int) or d.image_size < 0:
    raise DataError(f'config.data.image_size={d.image_size!r} must be an integer >= 0 '
                    '(0 = the native size)')
  if spec.fit == 'pad' and d.image_size and (
      d.image_size < spec.stored or (d.image_size - spec.stored) % 2):
    raise DataError(f'config.data.image_size={d.image_size} cannot pad {name!r} '
                    f'({spec.stored}x{spec.stored}): use 0 or {spec.stored} + an even number')
  if spec.folder:
    _folder_path(name, config)
  elif not spec.offline:
    _check_prepared(name, config)


@functools.lru_cache(maxsize=8)
def _offline_split(name, data_dir, split):
  """(uint8 images, labels) of an offline set's split, read once per process."""
  from data import offline
  records = offline.prepare(name, data_dir).as_data_source(split=split)
  examples = records.__getitems__(list(range(len(records))))
  return (np.stack([ex['image'] for ex in examples]),
          np.array([ex['label'] for ex in examples], np.int64))


def load(config, split, batch_size, num_processes=1, uint8=False):
  """The source of `split` ('train' or 'eval'); 'eval' is a held-out set (EDM's sets: all).

  Image sources are stateless: batch(step, process_index) depends only on
  (data.seed, step, process_index). The training split is shuffled per epoch and
  flipped when data.random_flip (cifar10_aug: augmented); the eval split is read
  in stored order, unflipped. `source.size` is the split's number of examples
  (toy eval: config.eval.num_examples). uint8=True adds 'x_uint8' (images only).
  Raises DataError as `check` does.
  """
  check(config)
  name = config.data.name
  if name not in IMAGES:
    size = config.data.size if split == 'train' else config.eval.num_examples
    x = toy.make(name, size, [config.data.seed, SPLIT_IDS[split]])
    return source.ArraySource({'x': x}, batch_size, seed=config.data.seed,
                              num_processes=num_processes, shuffle=(split == 'train'))
  spec, train = IMAGES[name], split == 'train'
  fit = functools.partial(images.fit, size=image_size(name, config), how=spec.fit,
                          crop=config.data.crop)
  kwargs = dict(batch_size=batch_size, seed=config.data.seed, num_processes=num_processes,
                shuffle=train, flip=train and bool(config.data.random_flip),
                augment=train and spec.augment, conditioning=spec.augment,
                labels=spec.num_classes > 0 and not spec.augment, uint8=uint8)
  if spec.folder:
    read = _folder_read(name, config, fit)
    return images.ImageSource(read, len(read), prefetch=True, **kwargs)
  import tensorflow_datasets as tfds  # imported only for tfds sets: toy runs stay light
  tfds_split = 'train' if train else spec.eval_split
  if spec.offline:
    read, size = images.in_memory(*_offline_split(name, config.data.data_dir, tfds_split), fit)
    return images.ImageSource(read, size, **kwargs)
  records = tfds.data_source(spec.tfds_name, split=tfds_split, data_dir=_data_dir(config),
                             download=False)
  label_map = None
  if spec.sorted_labels:
    names = np.array(records.dataset_info.features['label'].names)
    label_map = np.empty(len(names), np.int64)
    label_map[np.argsort(names)] = np.arange(len(names))
  return images.ImageSource(images.Records(records, fit, label_map=label_map), len(records),
                            prefetch=True, **kwargs)


def _folder_read(name, config, fit):
  """images.Files over an EDM set, checked: it holds images (and labels where it has classes)."""
  path, spec = _folder_path(name, config), IMAGES[name]
  try:
    read = images.Files(path, fit)
  except ValueError as e:
    raise DataError(f'config.data.name={name!r}: {e}') from None
  if not len(read):
    raise DataError(f'config.data.name={name!r}: {path} holds no images; '
                    + _folder_hint(name, config.data.data_dir))
  if spec.num_classes and (read.labels is None or read.labels.min() < 0
                           or read.labels.max() >= spec.num_classes):
    have = 'no labels (dataset.json)' if read.labels is None else \
        f'labels {read.labels.min()}..{read.labels.max()}'
    raise DataError(f'config.data.name={name!r}: {path} has {have}, but {name} needs labels '
                    f'0..{spec.num_classes - 1}; ' + _folder_hint(name, config.data.data_dir))
  return read


def main(argv=None):
  """Prepare a real set as tfds array_record files (downloads; run where there is internet).

  EDM's sets are made by EDM's dataset_tool.py instead; naming one prints how (exit code 2).
  """
  p = argparse.ArgumentParser(description=main.__doc__)
  p.add_argument('name', choices=tuple(IMAGES))
  p.add_argument('--data_dir', default='', help='tfds data dir (default: tfds default)')
  p.add_argument('--manual_dir', default='', help='folder with manually downloaded files')
  args = p.parse_args(argv)
  spec = IMAGES[args.name]
  if spec.folder:
    p.error(f'{args.name} is not a tfds set: {_folder_hint(args.name, args.data_dir)}')
  import tensorflow_datasets as tfds
  from data import offline
  if spec.offline:
    builder = offline.prepare(args.name, args.data_dir)
  else:
    builder = tfds.builder(spec.tfds_name, data_dir=os.path.expanduser(args.data_dir) or None,
                           file_format='array_record')
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.expanduser(args.manual_dir) or None))
  print(f'{args.name}: prepared in {builder.data_dir}')


if __name__ == '__main__':
  main()
