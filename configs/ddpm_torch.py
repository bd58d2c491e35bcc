"""tqch/ddpm-torch's UNet on CIFAR-10 and CelebA 64x64 (reference B.5.2, `configs/<dataset>.json`):
the public settings; and MNIST in the same style (ddpm-torch ships no MNIST config).

  python main.py --config=configs/ddpm_torch.py:cifar10 --workdir=runs/ddpm_torch_cifar10 \\
      --mode=train
  python main.py --config=configs/ddpm_torch.py:celeba --workdir=runs/ddpm_torch_celeba \\
      --mode=train
Both networks: 128 channels, multipliers (1, 2, 2, 2), 2 res blocks; 35,746,307 parameters in
304 tensors. Training as ddpm-torch: batch 128, Adam after 5000 warm-up steps, global-norm clip
1, EMA 0.9999, random flips, linear betas 1e-4 -> 0.02 over 1000 steps, eps / mse. The network
is fed ddpm-torch's 0-based step t = n - 1. ddpm-torch's EMA ramps its decay as
min(0.9999, (1 + k) / (10 + k)); here the decay is constant.
- `cifar10` (default): network of the released `cifar10_2040.pt`: attention on level 1
  (16x16), dropout 0.1. Adam 2e-4, fixed-large variance; 2040 epochs of 390 steps = 795,600
  steps (FID 3.188 reported, B.8).
- `celeba`: network of the released `celeba_600.pt`: attention on level 2 (16x16), no
  dropout. Data: crop 148 px at (top 40, left 15), resize to 64. Adam 2e-5, fixed-small
  variance; 600 epochs of 1,582 steps = 949,200 steps (FID 2.995 reported, B.8). ddpm-torch
  trains on the `all` split (202,599 images); data.name celeb_a serves its training split.
- `mnist`: our setting in the same style: tfds MNIST resized to 32x32 (as ddpm-torch's
  `datasets.py` resizes it), one channel, the CIFAR-10 network (attention at 16x16, dropout
  0.1), no flips (digits are not mirror-symmetric), Adam 2e-4, fixed-large variance, 100
  epochs of 468 steps = 46,800 steps.
"""
import ml_collections

from configs import base

# dataset -> what differs: data, attention level and dropout of the network, variance, training
# length, learning rate, sampling / eval batch.
DATASETS = {
    'cifar10': dict(name='cifar10', image_size=32, crop='none', channels=3, flip=True,
                    apply_attn=(False, True, False, False), drop_rate=0.1,
                    var_type='fixed-large', num_steps=795_600, lr=2e-4, eval_batch_size=256),
    'celeba': dict(name='celeb_a', image_size=64, crop='tq148', channels=3, flip=True,
                   apply_attn=(False, False, True, False), drop_rate=0.0,
                   var_type='fixed-small', num_steps=949_200, lr=2e-5, eval_batch_size=128),
    'mnist': dict(name='mnist', image_size=32, crop='none', channels=1, flip=False,
                  apply_attn=(False, True, False, False), drop_rate=0.1,
                  var_type='fixed-large', num_steps=46_800, lr=2e-4, eval_batch_size=256),
}


def get_config(dataset='cifar10'):
  if dataset not in DATASETS:
    raise ValueError(f'configs/ddpm_torch.py:{dataset}: unknown dataset; one of: '
                     f'{", ".join(DATASETS)}')
  d = DATASETS[dataset]
  c = base.get_base_config()
  c.data.name = d['name']
  c.data.image_size = d['image_size']
  c.data.crop = d['crop']
  c.data.random_flip = d['flip']
  c.model.name = 'ddpm_torch_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      in_channels=d['channels'], hid_channels=128, out_channels=d['channels'],
      ch_multipliers=(1, 2, 2, 2),
      num_res_blocks=2, apply_attn=d['apply_attn'], drop_rate=d['drop_rate'],
      resample_with_conv=True))
  c.model.time_input = 'n-1'
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.beta_start = 1e-4
  c.diffusion.beta_end = 0.02
  c.diffusion.var_type = d['var_type']
  c.training.loss = 'mse'
  c.training.batch_size = 128
  c.training.num_steps = d['num_steps']
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = d['lr']
  c.optimizer.warmup_steps = 5000
  c.optimizer.grad_clip = 1.0
  c.sampling.batch_size = d['eval_batch_size']
  c.eval.batch_size = d['eval_batch_size']
  return c
