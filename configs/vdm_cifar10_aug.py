"""VDM ScoreUNet (i-DODE) on CIFAR-10 with augmentation (reference idode A.5, A.6).

  python main.py --config=configs/vdm_cifar10_aug.py --workdir=runs/vdm_cifar10_aug --mode=train
Training images are flipped and/or turned by quarter turns; the network's conditioning y is 1
for an augmented example, 0 otherwise and at test time. Network of thu-ml/i-DODE
`configs/cifar10_aug.py`: 256 channels, 32 down + 2 middle + 33 up ResnetBlocks at 32x32, an
attention block after every down/up block, dropout 0.05; 139,276,803 parameters.
Batch 1024, 10M steps, Adam(0.9, 0.99, eps 1e-8) at 2e-4 after a 100-step warm-up, EMA 0.9999, as
i-DODE trains it; i-DODE reports 2.42 bits/dim on the test set after 1.95M steps (reference A.8).
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'cifar10_aug'
  c.model.name = 'vdm_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      sm_n_embd=256, sm_n_layer=32, sm_pdrop=0.05, with_attention=True,
      with_fourier_features=True, gamma_min=-13.3, gamma_max=5.0))
  c.model.time_input = 'vdm_gamma'  # the network gets gamma = -log-SNR
  c.training.objective = 'idode'  # velocity loss, likelihood weighting, importance-sampled t (A.2)
  c.model.prediction = 'v'  # i-DODE's VP velocity (eps - sigma z) / alpha = alpha eps - sigma x
  c.training.batch_size = 1024
  c.training.num_steps = 10_000_000
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.99
  c.optimizer.eps = 1e-8
  c.optimizer.warmup_steps = 100
  c.eval.batch_size = 128
  c.sampling.batch_size = 128
  return c
