"""VDM ScoreUNet (i-DODE) on CIFAR-10 and ImageNet 32x32 (reference idode A.5, A.6): the public
settings.

  python main.py --config=configs/vdm.py:cifar10 --workdir=runs/vdm_cifar10 --mode=train
  python main.py --config=configs/vdm.py:cifar10_aug --workdir=runs/vdm_cifar10_aug --mode=train
  python main.py --config=configs/vdm.py:imagenet32 --workdir=runs/vdm_imagenet32 --mode=train
  python main.py --config=configs/vdm.py:imagenet32_new --workdir=runs/vdm_imagenet32_new \\
      --mode=train
Variant = data set = thu-ml/i-DODE `configs/<variant>.py`. Every network has 32 down + 2 middle
+ 33 up ResnetBlocks at 32x32; every variant trains with Adam(0.9, 0.99, eps 1e-8) at 2e-4
after a 100-step warm-up, EMA 0.9999, as i-DODE trains it.
- `cifar10` (default): the public setting, no augmentation. 128 channels, attention only in the
  middle, dropout 0.1; 30,578,179 parameters. Batch 128, 6M steps; i-DODE reports 2.56
  bits/dim on the test set (ODE likelihood, truncated-normal dequantization) after a further
  200k-step second-order finetune (reference A.8).
- `cifar10_aug`: training images are flipped and/or turned by quarter turns; the network's
  conditioning y is 1 for an augmented example, 0 otherwise and at test time. 256 channels, an
  attention block after every down/up block, dropout 0.05; 139,276,803 parameters. Batch 1024,
  10M steps; i-DODE reports 2.42 bits/dim on the test set after 1.95M steps (reference A.8).
- `imagenet32`, old version: the image-net.org/small set (tfds downsampled_imagenet/32x32) of
  ScoreSDE and VDM. 256 channels, attention only in the middle, dropout 0.1; 122,137,603
  parameters. Batch 512, 2M steps; i-DODE reports 3.69 bits/dim on the validation set after a
  further 500k-step second-order finetune (reference A.8).
- `imagenet32_new`, new version: the anti-aliased Imagenet32_train.zip set (as used by Flow
  Matching). Network as `imagenet32`; 122,137,603 parameters. Batch 128, 2M steps; i-DODE
  reports 3.43 bits/dim on the validation set after a further 250k-step second-order finetune
  (reference A.8).
"""
import ml_collections

from configs import base

# variant (= data.name) -> what differs: network width, attention after every block, dropout;
# training batch, steps; eval / sampling batch.
VARIANTS = {
    'cifar10': dict(sm_n_embd=128, with_attention=False, sm_pdrop=0.1,
                    batch_size=128, num_steps=6_000_000, eval_batch_size=256),
    'cifar10_aug': dict(sm_n_embd=256, with_attention=True, sm_pdrop=0.05,
                        batch_size=1024, num_steps=10_000_000, eval_batch_size=128),
    'imagenet32': dict(sm_n_embd=256, with_attention=False, sm_pdrop=0.1,
                       batch_size=512, num_steps=2_000_000, eval_batch_size=512),
    'imagenet32_new': dict(sm_n_embd=256, with_attention=False, sm_pdrop=0.1,
                           batch_size=128, num_steps=2_000_000, eval_batch_size=512),
}


def get_config(variant='cifar10'):
  if variant not in VARIANTS:
    raise ValueError(f'configs/vdm.py:{variant}: unknown variant; one of: {", ".join(VARIANTS)}')
  v = VARIANTS[variant]
  c = base.get_base_config()
  c.data.name = variant
  c.model.name = 'vdm_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      sm_n_embd=v['sm_n_embd'], sm_n_layer=32, sm_pdrop=v['sm_pdrop'],
      with_attention=v['with_attention'], with_fourier_features=True, gamma_min=-13.3,
      gamma_max=5.0))
  c.model.time_input = 'vdm_gamma'  # the network gets gamma = -log-SNR
  c.training.objective = 'idode'  # velocity loss, likelihood weighting, importance-sampled t (A.2)
  c.model.prediction = 'v'  # i-DODE's VP velocity (eps - sigma z) / alpha = alpha eps - sigma x
  c.training.batch_size = v['batch_size']
  c.training.num_steps = v['num_steps']
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.99
  c.optimizer.eps = 1e-8
  c.optimizer.warmup_steps = 100
  c.eval.batch_size = v['eval_batch_size']
  c.sampling.batch_size = v['eval_batch_size']
  return c
