"""score_sde DDPM++ (continuous VP) on CIFAR-10 (reference A.10.4, A.9): the public setting.

  python main.py --config=configs/cifar10_vpsde.py --workdir=runs/cifar10_vpsde --mode=train
  python main.py --config=configs/cifar10_vpsde.py:eps2 ...   # + the SN-DPM head (A.3.2)
  python main.py --config=configs/cifar10_vpsde.py:eps_res ... # + the NPR-DPM head
Network: score_sde `configs/vp/cifar10_ddpmpp_continuous.py`, the model behind
Extended-Analytic-DPM's "CIFAR10 (VP SDE)" file: nf 128, ch_mult (1, 2, 2, 2), 4 BigGAN
residual blocks per level, attention at 16x16, positional embedding of 999 t, no FIR, no
progressive paths, dropout 0.1; 61,804,419 parameters (565 state-dict tensors: 564
parameters and the unused `sigmas` buffer). The heads add gn_out2 + conv_out2 (3,715
parameters) on the last trunk feature; the output is [eps | head].
Training as score_sde trains it (configs/default_cifar10_configs.py): batch 128, 1.3M steps,
Adam lr 2e-4 (b1 0.9, eps 1e-8) with a 5000-step warm-up, gradient clipping at 1, EMA
0.9999, random flips; VP SDE beta 0.1 -> 20 (`vpsde`, evaluated on EAD's 1000-step grid).
With a head: EAD's head training (A.3.3): Adam lr 1e-4, 500k steps, no warm-up, no
clipping, EMA 0.9999, batch 128.
"""
import ml_collections

from configs import base

HEADS = ('', 'eps2', 'eps_res')


def get_config(head=''):
  if head not in HEADS:
    raise ValueError(f'configs/cifar10_vpsde.py:{head}: not one of: eps2, eps_res (or none)')
  c = base.get_base_config()
  c.data.name = 'cifar10'
  c.data.random_flip = True
  c.model.name = 'ncsnpp'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,), dropout=0.1,
      nonlinearity='swish', embedding_type='positional', fourier_scale=16, fir=False,
      fir_kernel=(1, 3, 3, 1), skip_rescale=True, resblock_type='biggan', progressive='none',
      progressive_input='none', progressive_combine='sum', init_scale=0.0, conditional=True,
      scale_by_sigma=False, resamp_with_conv=True, image_size=32, num_channels=3,
      centered=True, continuous=True, head=bool(head)))
  c.model.time_input = '999t'  # score_sde VP: the network is fed 999 t
  c.model.prediction = 'eps'
  c.model.head = head
  c.diffusion.schedule = 'vpsde'  # beta_min 0.1, beta_max 20 on the N = 1000 grid
  c.diffusion.num_steps = 1000
  c.training.batch_size = 128
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 50_000
  if head:
    c.training.num_steps = 500_000
    c.optimizer.lr = 1e-4
  else:
    c.training.num_steps = 1_300_000
    c.optimizer.lr = 2e-4
    c.optimizer.warmup_steps = 5000
    c.optimizer.grad_clip = 1.0
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.sampling.batch_size = 256
  c.eval.batch_size = 256
  return c
