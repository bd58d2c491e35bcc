"""tqch/ddpm-torch's UNet on CIFAR-10 (reference B.5.2, `configs/cifar10.json`): the public setting.

  python main.py --config=configs/ddpm_torch_cifar10.py --workdir=runs/ddpm_torch_cifar10 \\
      --mode=train
Network of the released `cifar10_2040.pt`: 128 channels, multipliers (1, 2, 2, 2), 2 res blocks,
attention on level 1 (16x16), dropout 0.1; 35,746,307 parameters in 304 tensors. Training as
ddpm-torch: batch 128, Adam 2e-4 after 5000 warm-up steps, global-norm clip 1, EMA 0.9999,
random flips, linear betas 1e-4 -> 0.02 over 1000 steps, eps / mse, fixed-large variance;
2040 epochs of 390 steps = 795,600 steps (FID 3.188 reported, B.8). The network is fed
ddpm-torch's 0-based step t = n - 1. ddpm-torch's EMA ramps its decay as
min(0.9999, (1 + k) / (10 + k)); here the decay is constant.
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'cifar10'
  c.data.image_size = 32
  c.data.random_flip = True
  c.model.name = 'ddpm_torch_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      in_channels=3, hid_channels=128, out_channels=3, ch_multipliers=(1, 2, 2, 2),
      num_res_blocks=2, apply_attn=(False, True, False, False), drop_rate=0.1,
      resample_with_conv=True))
  c.model.time_input = 'n-1'
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.beta_start = 1e-4
  c.diffusion.beta_end = 0.02
  c.diffusion.var_type = 'fixed-large'
  c.training.loss = 'mse'
  c.training.batch_size = 128
  c.training.num_steps = 795_600
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 2e-4
  c.optimizer.warmup_steps = 5000
  c.optimizer.grad_clip = 1.0
  c.sampling.batch_size = 256
  c.eval.batch_size = 256
  return c
