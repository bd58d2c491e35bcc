"""The DDPM UNet on LSUN Bedroom 256x256 (reference A.10.3, A.3.2): the TF DDPM release as
pytorch_diffusion converted it (Extended-Analytic-DPM's pretrained DPM) and its heads.

  python main.py --config=configs/lsun_bedroom.py --workdir=runs/lsun_bedroom --mode=train
  python main.py --config=configs/lsun_bedroom.py:sn --workdir=runs/lsun_sn --mode=convert \\
      --config.convert.source=lsun_bedroom_sn.pth    (npr likewise; '' = the plain eps model)
Network `unet2d16b2c112244` of hojonathanho/diffusion `scripts/run_lsun.py`: ch 128, ch_mult
(1, 1, 2, 2, 4, 4), 2 res blocks, attention at 16x16, no dropout; 113,673,219 parameters in 450
tensors. Data: shorter side to 256, centre crop (EAD). Linear betas 1e-4 -> 0.02 over 1000
steps, fixed-small variance (the TF code's posterior variance); the network is fed n - 1.
Training of the trunk as run_lsun.py: batch 64, Adam 2e-5 after 5000 warm-up steps, clip 1,
EMA 0.9999, random flips; 2.4M steps (Ho et al. 2020, appendix B). With a head (EAD README:
`sn` = SN-DPM with mode complex, a ResnetBlock before the head, 365,059 more parameters in 14
tensors; `npr` = NPR-DPM with mode simple): EAD's head training (A.3.3: Adam 1e-4, batch 64,
500k steps, EMA 0.9999, no warm-up or clipping); sampling clips the last step's variance at
one grey level (clip_pixel 1, as ADPM's LSUN script; unverified for SN/NPR).
"""
import ml_collections

from configs import base

HEADS = {'': ('', None), 'sn': ('eps2', 'complex'), 'npr': ('eps_res', 'simple')}


def get_config(head=''):
  if head not in HEADS:
    raise ValueError(f'configs/lsun_bedroom.py:{head} is not one of: {", ".join(HEADS)}')
  c = base.get_base_config()
  c.data.name = 'lsun_bedroom'
  c.data.image_size = 256
  c.data.random_flip = True
  c.model.name = 'ddpm_unet'
  kwargs = dict(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                attn_resolutions=(16,), dropout=0.0, resamp_with_conv=True, in_channels=3,
                resolution=256)
  output, mode = HEADS[head]
  if head:
    kwargs.update(head_out_ch=3, mode=mode)
  c.model.kwargs = ml_collections.ConfigDict(kwargs)
  c.model.head = output
  c.model.time_input = 'n-1'
  c.model.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.diffusion.num_steps = 1000
  c.diffusion.beta_start = 1e-4
  c.diffusion.beta_end = 0.02
  c.diffusion.var_type = 'fixed-small'
  c.training.loss = 'mse'
  c.training.batch_size = 64
  c.training.num_steps = 500_000 if head else 2_400_000
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 1e-4 if head else 2e-5
  c.optimizer.warmup_steps = 0 if head else 5000
  c.optimizer.grad_clip = 0.0 if head else 1.0
  c.sampling.method = {'': 'ddpm', 'sn': 'sn_ddpm', 'npr': 'npr_ddpm'}[head]
  c.sampling.clip_sigma_idx = 1
  c.sampling.clip_pixel = 1
  c.sampling.batch_size = 16
  c.eval.batch_size = 16
  return c
