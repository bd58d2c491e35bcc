"""EDM DDPM++ / NCSN++ on CIFAR-10 32x32 (reference A.3.4, A.6): the public setting, config F.

  python main.py --config=configs/edm_cifar10.py:cond-vp --workdir=runs/edm_cifar10 --mode=train
  python main.py --config=configs/edm_cifar10.py:cond-vp --workdir=runs/edm_cifar10 \\
      --mode=convert --config.convert.source=edm-cifar10-32x32-cond-vp.pkl
Variants cond-vp, uncond-vp, cond-ve, uncond-ve = the released edm-cifar10-32x32-<variant>.pkl;
in EDM's naming vp = the DDPM++ network, ve = NCSN++, both with EDMPrecond (sigma_data 0.5).
The kwargs are exactly those `train.py --arch=ddpmpp|ncsnpp --cond=0|1` pickles:
DDPM++ 55,735,299 / 55,733,891 parameters in 427 / 425 tensors (cond / uncond), NCSN++
56,400,643 / 56,397,827 in 434 / 432 (torch's count: the NCSN++ Fourier `freqs` buffer,
128 values, is a tensor but not a parameter). The network is fed sigma itself (EDMPrecond
forms c_noise = ln(sigma) / 4). Training as `train.py` defaults: batch 512, Adam 1e-3
(0.9, 0.999, 1e-8) ramped up linearly over 10 Mimg, EMA half-life 0.5 Mimg (decay
0.5^(512/500k); EDM's EMA ramp-up of the first images is not reproduced), 200 Mimg, dropout
0.13, augment_dim 9 (the non-leaky augmentation pipe, p = 0.12, feeds augment_labels; without
it map_augment stays unused), no x-flips. Sampling: Heun, 18 steps (NFE 35): FID 1.79 (cond-vp),
1.97 (uncond-vp), 1.79 / 1.98 (cond-ve / uncond-ve, paper).
"""
import ml_collections

from configs import base

VARIANTS = ('cond-vp', 'uncond-vp', 'cond-ve', 'uncond-ve')
# train.py --arch presets, in the order train.py sets them (= the pickle's init_kwargs order).
ARCHS = {
    'vp': dict(model_type='SongUNet', embedding_type='positional', encoder_type='standard',
               decoder_type='standard', channel_mult_noise=1, resample_filter=[1, 1],
               model_channels=128, channel_mult=[2, 2, 2]),
    've': dict(model_type='SongUNet', embedding_type='fourier', encoder_type='residual',
               decoder_type='standard', channel_mult_noise=2, resample_filter=[1, 3, 3, 1],
               model_channels=128, channel_mult=[2, 2, 2]),
}


def edm_kwargs(arch, img_resolution, label_dim, dropout, channel_mult=None):
  """Family 'edm' kwargs of an EDMPrecond SongUNet as train.py builds them (augment on)."""
  kw = dict(class_name='EDMPrecond', **ARCHS[arch])
  if channel_mult is not None:
    kw['channel_mult'] = channel_mult  # --cres
  kw.update(augment_dim=9, dropout=dropout, use_fp16=False, img_resolution=img_resolution,
            img_channels=3, label_dim=label_dim)
  return kw


def edm_training(c, batch_size, lr, ema_halflife_mimg, duration_mimg):
  """EDM's training loop settings in steps of `batch_size` images (A.2)."""
  c.model.name = 'edm'
  c.model.time_input = 'sigma'
  c.model.prediction = 'x0'  # D(x; sigma) is the denoised image
  c.training.objective = 'edm'  # EDMLoss: ln sigma ~ N(-1.2, 1.2^2), weight (s^2+sd^2)/(s sd)^2
  c.training.batch_size = batch_size
  c.training.num_steps = int(duration_mimg * 1e6 // batch_size)
  c.training.ema_decay = 0.5 ** (batch_size / (ema_halflife_mimg * 1e6))
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = lr
  c.optimizer.warmup_steps = int(10e6 // batch_size)  # lr_rampup_kimg = 10000
  c.sampling.method = 'edm_heun'
  c.sampling.num_samples = 50_000
  c.sampling.batch_size = 512
  return c


def get_config(arg='cond-vp'):
  if arg not in VARIANTS:
    raise ValueError(f'configs/edm_cifar10.py:{arg}: unknown variant; one of: '
                     f'{", ".join(VARIANTS)}')
  cond, arch = arg.split('-')
  c = base.get_base_config()
  c.data.name = 'cifar10'
  c.data.image_size = 32
  c.data.random_flip = False  # --xflip=0
  c.model.kwargs = ml_collections.ConfigDict(
      edm_kwargs(arch, 32, 10 if cond == 'cond' else 0, dropout=0.13))
  edm_training(c, batch_size=512, lr=1e-3, ema_halflife_mimg=0.5, duration_mimg=200)
  c.sampling.steps = 18
  return c
