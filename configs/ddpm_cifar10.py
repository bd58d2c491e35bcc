"""The DDPM CIFAR-10 model (Ho et al. 2020) in pytorch_diffusion layout (reference A.10.3): the
public setting.

  python main.py --config=configs/ddpm_cifar10.py --workdir=runs/ddpm_cifar10 --mode=train
Network `unet2d16b2` of hojonathanho/diffusion `scripts/run_cifar.py` (= pesser/pytorch_diffusion's
`diffusion_cifar10_model`): ch 128, ch_mult (1, 2, 2, 2), 2 res blocks, attention at 16x16,
dropout 0.1; 35,746,307 parameters in 328 tensors. Training as run_cifar.py: batch 128, Adam
2e-4 after a 5000-step linear warm-up, global-norm clip 1, EMA 0.9999, random flips, linear
betas 1e-4 -> 0.02 over 1000 steps, eps prediction with mse, fixed-large variance; 800k steps
(the paper's, FID 3.17). The network is fed the step index n - 1 = 0..999.
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'cifar10'
  c.data.image_size = 32
  c.data.random_flip = True
  c.model.name = 'ddpm_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      ch=128, out_ch=3, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
      dropout=0.1, resamp_with_conv=True, in_channels=3, resolution=32))
  c.model.time_input = 'n-1'
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.beta_start = 1e-4
  c.diffusion.beta_end = 0.02
  c.diffusion.var_type = 'fixed-large'
  c.training.loss = 'mse'
  c.training.batch_size = 128
  c.training.num_steps = 800_000
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 2e-4
  c.optimizer.warmup_steps = 5000
  c.optimizer.grad_clip = 1.0
  c.sampling.batch_size = 256
  c.eval.batch_size = 256
  return c
