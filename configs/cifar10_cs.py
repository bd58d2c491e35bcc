"""Improved-DDPM UNet on CIFAR-10 with the cosine schedule (CS) (reference A.10.1, A.2, A.3.1):
the Analytic-DPM authors' public setting, whose converted checkpoint EAD releases as
"CIFAR10 (CS)".

  python main.py --config=configs/cifar10_cs.py --workdir=runs/cifar10_cs --mode=train

The same network and training as configs/cifar10_ls.py (52,542,979 parameters, time input
n in 1..1000, eps prediction, AdamW lr 1e-4, batch 128, EMA 0.9999, 500k iterations; the
authors picked the 160k checkpoint for CS), on the cosine schedule with N = 1000
(improved-diffusion's betas_for_alpha_bar, max beta 0.999). `num_classes=0` means None.
"""
from configs import cifar10_ls


def get_config():
  c = cifar10_ls.get_config()
  c.diffusion.schedule = 'cosine'
  c.diffusion.num_steps = 1000
  return c
