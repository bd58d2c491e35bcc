"""The DDPM UNet on CelebA 64x64 (reference A.10.3, A.3.2): Extended-Analytic-DPM's pretrained DPM
and its SN-DPM / NPR-DPM heads.

  python main.py --config=configs/celeba64.py --workdir=runs/celeba64 --mode=train
  python main.py --config=configs/celeba64.py:sn --workdir=runs/celeba64_sn --mode=convert \\
      --config.convert.source=celeba64_sn.pth    (npr likewise; '' = the plain eps model)
Network (DDIM's CelebA model, pytorch_diffusion layout): ch 128, ch_mult (1, 2, 2, 2, 4), 2 res
blocks, attention at 16x16, dropout 0.1; 78,700,803 parameters in 390 tensors (+3,715 in 4 for
the simple head). Data as EAD: rows 57-184, cols 25-152, bilinear to 64, random flips. Linear
betas 1e-4 -> 0.02 over 1000 steps; the network is fed n - 1.
Training of the trunk: the reference does not record it; these are DDIM's `configs/celeba.yml`
values (batch 128, Adam 2e-4, no warm-up, clip 1, EMA 0.9999), with 500k steps. With a head
(`sn`: eps2, `npr`: eps_res, mode simple): EAD's head training (A.3.3: Adam 1e-4, batch 128,
500k steps, EMA 0.9999, no warm-up or clipping) and its README sampling options
(clip_sigma_idx 1, clip_pixel 2).
"""
import ml_collections

from configs import base

HEADS = {'': '', 'sn': 'eps2', 'npr': 'eps_res'}


def get_config(head=''):
  if head not in HEADS:
    raise ValueError(f'configs/celeba64.py:{head} is not one of: {", ".join(HEADS)}')
  c = base.get_base_config()
  c.data.name = 'celeb_a'
  c.data.image_size = 64
  c.data.crop = 'ead128'
  c.data.random_flip = True
  c.model.name = 'ddpm_unet'
  kwargs = dict(ch=128, out_ch=3, ch_mult=(1, 2, 2, 2, 4), num_res_blocks=2,
                attn_resolutions=(16,), dropout=0.1, resamp_with_conv=True, in_channels=3,
                resolution=64)
  if head:
    kwargs.update(head_out_ch=3, mode='simple')
  c.model.kwargs = ml_collections.ConfigDict(kwargs)
  c.model.head = HEADS[head]
  c.model.time_input = 'n-1'
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.beta_start = 1e-4
  c.diffusion.beta_end = 0.02
  c.diffusion.var_type = 'fixed-small'
  c.training.loss = 'mse'
  c.training.batch_size = 128
  c.training.num_steps = 500_000
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 1e-4 if head else 2e-4
  c.optimizer.warmup_steps = 0
  c.optimizer.grad_clip = 0.0 if head else 1.0
  c.sampling.method = {'': 'ddpm', 'sn': 'sn_ddpm', 'npr': 'npr_ddpm'}[head]
  c.sampling.clip_sigma_idx = 1
  c.sampling.clip_pixel = 2
  c.sampling.batch_size = 128
  c.eval.batch_size = 128
  return c
