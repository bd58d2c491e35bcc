"""tqch/ddpm-torch's UNet on CelebA 64x64 (reference B.5.2, `configs/celeba.json`): the public
setting.

  python main.py --config=configs/ddpm_torch_celeba.py --workdir=runs/ddpm_torch_celeba --mode=train
Network of the released `celeba_600.pt`: 128 channels, multipliers (1, 2, 2, 2), 2 res blocks,
attention on level 2 (16x16), no dropout; 35,746,307 parameters in 304 tensors. Data: crop
148 px at (top 40, left 15), resize to 64, random flips. Training as ddpm-torch: batch 128,
Adam 2e-5 after 5000 warm-up steps, global-norm clip 1, EMA 0.9999, linear betas
1e-4 -> 0.02 over 1000 steps, eps / mse, fixed-small variance; 600 epochs of 1,582 steps =
949,200 steps (FID 2.995 reported, B.8). ddpm-torch trains on the `all` split (202,599
images); data.name celeb_a serves its training split. The network is fed t = n - 1.
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'celeb_a'
  c.data.image_size = 64
  c.data.crop = 'tq148'
  c.data.random_flip = True
  c.model.name = 'ddpm_torch_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      in_channels=3, hid_channels=128, out_channels=3, ch_multipliers=(1, 2, 2, 2),
      num_res_blocks=2, apply_attn=(False, False, True, False), drop_rate=0.0,
      resample_with_conv=True))
  c.model.time_input = 'n-1'
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.beta_start = 1e-4
  c.diffusion.beta_end = 0.02
  c.diffusion.var_type = 'fixed-small'
  c.training.loss = 'mse'
  c.training.batch_size = 128
  c.training.num_steps = 949_200
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 2e-5
  c.optimizer.warmup_steps = 5000
  c.optimizer.grad_clip = 1.0
  c.sampling.batch_size = 128
  c.eval.batch_size = 128
  return c
