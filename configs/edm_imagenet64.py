"""EDM ADM (DhariwalUNet) on class-conditional ImageNet 64x64 (reference A.3.3-A.3.4, A.6).

  python main.py --config=configs/edm_imagenet64.py --workdir=runs/edm_imagenet64 --mode=train
The released edm-imagenet-64x64-cond-adm.pkl: EDMPrecond with `train.py --arch=adm --cond=1
--augment=0 --fp16=1` kwargs (model_channels 192, channel_mult [1, 2, 3, 4], 3 blocks,
attention at 32/16/8 with 64 channels per head, 1000 classes, no augment_dim);
295,899,267 parameters in 553 tensors. use_fp16=True is stored as the pickle has it and
ignored (the original casts to float16 on CUDA only); `--config.model.dtype=bfloat16` is our
mixed-precision analogue. The network is fed sigma. Training: batch 4096, Adam 1e-4 ramped up
over 10 Mimg, EMA half-life 50 Mimg, 2500 Mimg, dropout 0.10, loss scaling 100 (a no-op for
Adam in float32). Sampling: EDM's stochastic sampler, 256 steps, S_churn 40, S_min 0.05,
S_max 50, S_noise 1.003 (NFE 511): FID 1.36.
"""
import ml_collections

from configs import base
from configs import edm_cifar10


def get_config(arg='cond-adm'):
  if arg != 'cond-adm':
    raise ValueError(f'configs/edm_imagenet64.py:{arg}: unknown variant; one of: cond-adm')
  c = base.get_base_config()
  c.data.name = 'imagenet64_edm'  # EDM's dataset_tool.py zip with its 1000 labels
  c.data.image_size = 64
  c.data.random_flip = False  # --xflip=0
  c.model.kwargs = ml_collections.ConfigDict(dict(
      class_name='EDMPrecond', model_type='DhariwalUNet', model_channels=192,
      channel_mult=[1, 2, 3, 4], dropout=0.10, use_fp16=True, img_resolution=64, img_channels=3,
      label_dim=1000))
  edm_cifar10.edm_training(c, batch_size=4096, lr=1e-4, ema_halflife_mimg=50, duration_mimg=2500)
  c.training.checkpoint_every = 2000
  c.sampling.steps = 256
  c.sampling.S_churn = 40.0
  c.sampling.S_min = 0.05
  c.sampling.S_max = 50.0
  c.sampling.S_noise = 1.003
  return c
