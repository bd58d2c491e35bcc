"""Improved-DDPM UNet on CIFAR-10 with the linear schedule (LS) (reference A.10.1, A.3.1): the
Analytic-DPM authors' public setting, whose converted checkpoint EAD releases as "CIFAR10 (LS)".

  python main.py --config=configs/cifar10_ls.py --workdir=runs/cifar10_ls --mode=train

The network (52,542,979 parameters, 446 tensors) predicts eps from the integer step
n in 1..N (time input 'n'). Trained with AdamW (weight decay 0) lr 1e-4, batch 128, EMA 0.9999,
L_simple, 500k iterations with a checkpoint every 10k (the authors picked 400k for LS), no flip
(ADPM:cifar_imagenet_codes/profiles/ddpm/cifar10/{base,train}.py). `num_classes=0` stands
for the original's None (unconditional). The reference's loss is the per-example sum of
squares; 'mse' here is its mean, the same optimum (Adam is nearly invariant to the scale).
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'cifar10'
  c.data.random_flip = False
  c.model.name = 'iddpm_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      in_channels=3, model_channels=128, out_channels=3, num_res_blocks=3,
      attention_resolutions=(2, 4), dropout=0.3, channel_mult=(1, 2, 2, 2), conv_resample=True,
      dims=2, num_classes=0, use_checkpoint=False, num_heads=4, num_heads_upsample=-1,
      use_scale_shift_norm=True))
  c.model.time_input = 'n'  # n in 1..1000 (EAD DTWrapper, shift1=False)
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.beta_start = 1e-4
  c.diffusion.beta_end = 0.02
  c.diffusion.var_type = 'fixed-small'  # the DDPM baseline of A.11 (sigma^2 = beta~)
  c.training.loss = 'mse'
  c.training.num_steps = 500_000
  c.training.batch_size = 128
  c.training.ema_decay = 0.9999
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 1e-4
  c.optimizer.warmup_steps = 0
  c.optimizer.grad_clip = 0.0
  c.sampling.num_samples = 50_000
  c.sampling.batch_size = 500
  return c
