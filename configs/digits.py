"""The embedded image default: a small DDPM UNet on scikit-learn's 8x8 digits (no download).

  python main.py --config=configs/digits.py --workdir=runs/digits --mode=train
  python main.py --config=configs/digits.py --workdir=runs/digits --mode=sample
pytorch_diffusion's UNet (the DDPM architecture) cut down to the data: 64 channels at
8x8, 128 at 4x4 with attention, one residual block per level (channels stay at least
twice GroupNorm's 32 groups, so the time embedding is not normalised away). Linear
betas 1e-4 -> 0.02 over 1000 steps, eps prediction, mse, fixed-large variance, Adam
1e-3 with EMA 0.999; 1,497 training digits, horizontal flips off (digits are not
mirror-symmetric). Trains in minutes on 2 CPU cores; a grid of EMA samples is written
to DIR/samples/train_<step>.png every 1000 steps and to TensorBoard.
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'digits'
  c.model.name = 'ddpm_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      ch=64, out_ch=1, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
      resamp_with_conv=True, in_channels=1, resolution=8))
  c.model.time_input = 'n-1'
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.var_type = 'fixed-large'
  c.training.batch_size = 64
  c.training.num_steps = 2000
  c.training.ema_decay = 0.999
  c.training.log_every = 100
  c.training.checkpoint_every = 1000
  c.training.sample_every = 1000
  c.training.sample_grid = 64
  c.optimizer.lr = 1e-3
  c.optimizer.warmup_steps = 100
  c.optimizer.grad_clip = 1.0
  c.sampling.num_samples = 100
  c.sampling.batch_size = 100
  c.eval.num_examples = 300
  c.eval.batch_size = 100
  return c
