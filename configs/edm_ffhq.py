"""EDM DDPM++ / NCSN++ on FFHQ 64x64 (reference A.3.4, A.6): the public setting, config F.

  python main.py --config=configs/edm_ffhq.py:uncond-vp --workdir=runs/edm_ffhq --mode=train
Variants uncond-vp (DDPM++), uncond-ve (NCSN++) = the released edm-ffhq-64x64-<variant>.pkl:
EDMPrecond, channel_mult [1, 2, 2, 2] (--cres=1,2,2,2), augment_dim 9, dropout 0.05;
61,805,571 parameters in 553 tensors (DDPM++), 62,761,091 in 563 (NCSN++, plus the 128-value
Fourier `freqs` buffer). The network is fed sigma. Training: batch 256, Adam 2e-4 ramped up
over 10 Mimg, EMA half-life 0.5 Mimg, 200 Mimg, augment p 0.15. Sampling: Heun, 40 steps
(NFE 79): FID 2.39 (vp), 2.53 (ve, paper).
"""
import ml_collections

from configs import base
from configs import edm_cifar10

VARIANTS = ('uncond-vp', 'uncond-ve')


def config_64(arg, dataset, dropout, where):
  """The FFHQ / AFHQv2 64x64 setting (they differ in data and dropout only)."""
  if arg not in VARIANTS:
    raise ValueError(f'configs/{where}:{arg}: unknown variant; one of: {", ".join(VARIANTS)}')
  c = base.get_base_config()
  c.data.name = dataset
  c.data.image_size = 64
  c.data.random_flip = False  # --xflip=0
  c.model.kwargs = ml_collections.ConfigDict(edm_cifar10.edm_kwargs(
      arg.split('-')[1], 64, 0, dropout=dropout, channel_mult=[1, 2, 2, 2]))
  edm_cifar10.edm_training(c, batch_size=256, lr=2e-4, ema_halflife_mimg=0.5, duration_mimg=200)
  c.sampling.steps = 40
  return c


def get_config(arg='uncond-vp'):
  return config_64(arg, 'ffhq64', dropout=0.05, where='edm_ffhq.py')
