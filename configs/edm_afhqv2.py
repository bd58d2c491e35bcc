"""EDM DDPM++ / NCSN++ on AFHQv2 64x64 (reference A.3.4, A.6): the public setting, config F.

  python main.py --config=configs/edm_afhqv2.py:uncond-vp --workdir=runs/edm_afhqv2 --mode=train
As configs/edm_ffhq.py (same networks: 61,805,571 / 62,761,091 parameters in 553 / 563
tensors) with dropout 0.25 = the released edm-afhqv2-64x64-uncond-{vp,ve}.pkl. Sampling:
Heun, 40 steps (NFE 79): FID 1.96 (vp), 2.16 (ve, paper).
"""
from configs import edm_ffhq


def get_config(arg='uncond-vp'):
  return edm_ffhq.config_64(arg, 'afhqv2_64', dropout=0.25, where='edm_afhqv2.py')
