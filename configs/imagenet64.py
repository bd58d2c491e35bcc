"""Improved-DDPM UNet on unconditional ImageNet 64x64 with learned sigma (reference A.10.2,
A.3.1): improved-diffusion's `imagenet64_uncond_100M_1500K.pt`, the "ImageNet 64x64" DPM of EAD.

  python main.py --config=configs/imagenet64.py --workdir=runs/imagenet64 --mode=train

The network (121,063,942 parameters, 450 tensors) emits [eps | var_values] (out_channels 6,
Improved-DDPM's log-variance interpolation) and is fed improved-diffusion's rescaled step
(n - 1) * 1000 / 4000 (time input 'iddpm_rescaled'). Trained with L_hybrid (L_simple +
0.001 L_vlb) on the cosine schedule with N = 4000, AdamW (weight decay 0) lr 1e-4, batch 128,
EMA 0.9999, 1.5M iterations, no flip (openai/improved-diffusion README). `num_classes=0`
stands for the original's None (unconditional).
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'imagenet64'
  c.data.random_flip = False
  c.model.name = 'iddpm_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      in_channels=3, model_channels=128, out_channels=6, num_res_blocks=3,
      attention_resolutions=(4, 8), dropout=0.0, channel_mult=(1, 2, 3, 4), conv_resample=True,
      dims=2, num_classes=0, use_checkpoint=False, num_heads=4, num_heads_upsample=-1,
      use_scale_shift_norm=True))
  c.model.time_input = 'iddpm_rescaled'  # (n - 1) * 1000 / 4000 (EAD DTWrapper, shift1=True)
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'cosine'
  c.diffusion.num_steps = 4000
  c.diffusion.var_type = 'learned'
  c.training.loss = 'hybrid'
  c.training.vlb_weight = 1e-3
  c.training.num_steps = 1_500_000
  c.training.batch_size = 128
  c.training.ema_decay = 0.9999
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 1e-4
  c.optimizer.warmup_steps = 0
  c.optimizer.grad_clip = 0.0
  c.sampling.num_samples = 50_000
  c.sampling.batch_size = 500
  return c
