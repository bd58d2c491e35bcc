"""2-D toy data (tqch/ddpm-torch `train_toy.py` defaults, reference B.4.2).

  python main.py --config=configs/toy.py --workdir=runs/toy --mode=train
  python main.py --config=configs/toy.py --workdir=runs/toy --mode=sample
  python main.py --config=configs/toy.py --workdir=runs/toy --mode=eval
Dataset by argument (`configs/toy.py:gaussian25`) or --config.data.name.
Defaults: T = 100, linear betas 1e-3 -> 0.2, eps prediction, fixed-large
variance, mse, 128 features, 3 tied temporal layers, Adam 1e-3, batch 1000,
10,000 steps (100 epochs of 100,000 points), no warm-up, no clipping, no EMA.
"""
from configs import base


def get_config(dataset='gaussian8'):
  c = base.get_base_config()
  c.data.name = dataset
  c.model.name = 'toy_mlp'
  c.diffusion.num_steps = 100
  c.diffusion.beta_start = 1e-3
  c.diffusion.beta_end = 0.2
  c.training.batch_size = 1000
  c.training.num_steps = 10_000
  c.training.ema_decay = 0.0
  c.training.checkpoint_every = 2000
  c.optimizer.lr = 1e-3
  c.sampling.num_samples = 30_000
  c.sampling.batch_size = 10_000
  return c
