"""Dataset registry: config.data.name -> a stateless source for a split."""

from data import source
from data import toy

DATASETS = toy.DATASETS
SPLIT_IDS = {'train': 0, 'eval': 1}


def data_shape(name):
  return (2,)


def load(config, split, batch_size, num_processes=1):
  """The source of `split` ('train' or 'eval'); 'eval' is a held-out set."""
  name = config.data.name
  if name not in toy.DATASETS:
    raise ValueError(f'unknown dataset {name!r}; allowed: {", ".join(DATASETS)}')
  size = config.data.size if split == 'train' else config.eval.num_examples
  x = toy.make(name, size, [config.data.seed, SPLIT_IDS[split]])
  return source.ArraySource({'x': x}, batch_size, seed=config.data.seed,
                            num_processes=num_processes, shuffle=(split == 'train'))
