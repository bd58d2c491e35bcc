"""PSLD's NCSN++ score network on CIFAR-10 (idode_vdm_psld.md B.4, B.2): the public setting.

  python main.py --config=configs/psld_cifar10.py --workdir=runs/psld_cifar10 --mode=train
  python main.py --config=configs/psld_cifar10.py:yamldefault ...
`sota` (default): the released CIFAR-10 models (scripts_psld/sota/uncond/cifar10): NCSN++ on
z = [x, m] (6 channels in and out), nf 128, ch_mult (2, 2, 2), 8 BigGAN residual blocks per
level, attention at 16x16, Fourier embedding (scale 16) of log t, FIR [1, 3, 3, 1]
resampling, the `residual` input pyramid, dropout 0.15; 97,627,910 parameters in 749
tensors per network (the frozen Fourier W included; reference: ~97.6 M).
`yamldefault`: main/configs/dataset/cifar10/cifar10_psld.yaml as it stands: ch_mult
(1, 2, 2, 2), 4 blocks per level, positional embedding of t itself, no FIR, no pyramid,
dropout 0.1; 61,811,334 parameters in 564 tensors.
Training as PSLD trains it (B.2): Adam lr 2e-4 (0.9, 0.999, eps 1e-8), 5000-step warm-up,
gradient clipping at 1, EMA 0.9999 every step, horizontal flips; sota: batch 16 x 8 GPUs =
128 for 2500 epochs (390 steps each: 975,000 steps); yamldefault: batch 32, 5000 epochs
(1562 steps each). The SDE (nu 4.01, Gamma 0.01, kappa 0.04, beta 8, HSM, eps-MSE, t ~
U(1e-5, 1)) belongs to the PSLD process, not to this network.
"""
import ml_collections

from configs import base

VARIANTS = {
    'sota': dict(ch_mult=(2, 2, 2), num_res_blocks=8, dropout=0.15, embedding_type='fourier',
                 fir=True, progressive_input='residual'),
    'yamldefault': dict(ch_mult=(1, 2, 2, 2), num_res_blocks=4, dropout=0.1,
                        embedding_type='positional', fir=False, progressive_input='none'),
}


def get_config(variant='sota'):
  if variant not in VARIANTS:
    raise ValueError(f'configs/psld_cifar10.py:{variant}: not one of: {", ".join(VARIANTS)}')
  c = base.get_base_config()
  c.data.name = 'cifar10'
  c.data.random_flip = True
  c.model.name = 'ncsnpp'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      name='ncsnpp', in_ch=6, out_ch=6, nonlinearity='swish', nf=128, attn_resolutions=(16,),
      resamp_with_conv=True, noise_cond=True, fir_kernel=(1, 3, 3, 1), skip_rescale=True,
      resblock_type='biggan', progressive='none', progressive_combine='sum', init_scale=0.0,
      fourier_scale=16, image_size=32, continuous=True, **VARIANTS[variant]))
  c.model.time_input = 'psld_t'  # PSLD feeds forward time t (the Fourier embedding takes log t)
  c.model.prediction = 'eps'
  c.training.objective = 'psld_hsm'  # PSLD's hybrid score matching (B.2)
  sota = variant == 'sota'
  c.training.batch_size = 128 if sota else 32
  c.training.num_steps = 2500 * 390 if sota else 5000 * 1562
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 50 * 390 if sota else 10_000
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.warmup_steps = 5000
  c.optimizer.grad_clip = 1.0
  c.sampling.method = 'psld_em'  # PSLD's README: 50 uniform Euler-Maruyama steps (B.3)
  c.sampling.steps = 50
  c.sampling.batch_size = 256
  c.eval.batch_size = 256
  return c
