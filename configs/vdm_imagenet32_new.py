"""VDM ScoreUNet (i-DODE) on ImageNet 32x32, new version (reference idode A.5, A.6).

  python main.py --config=configs/vdm_imagenet32_new.py --workdir=runs/vdm_imagenet32_new --mode=train
The anti-aliased Imagenet32_train.zip set (as used by Flow Matching). Network of thu-ml/i-DODE
`configs/imagenet32_new.py`: 256 channels, 32 down + 2 middle + 33 up ResnetBlocks at 32x32,
attention only in the middle, dropout 0.1; 122,137,603 parameters.
Batch 128, 2M steps, Adam(0.9, 0.99, eps 1e-8) at 2e-4 after a 100-step warm-up, EMA 0.9999, as
i-DODE trains it; i-DODE reports 3.43 bits/dim on the validation set after a further 250k-step
second-order finetune (reference A.8).
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_base_config()
  c.data.name = 'imagenet32_new'
  c.model.name = 'vdm_unet'
  c.model.kwargs = ml_collections.ConfigDict(dict(
      sm_n_embd=256, sm_n_layer=32, sm_pdrop=0.1, with_attention=False,
      with_fourier_features=True, gamma_min=-13.3, gamma_max=5.0))
  c.model.time_input = 'vdm_gamma'  # the network gets gamma = -log-SNR
  c.training.objective = 'idode'  # velocity loss, likelihood weighting, importance-sampled t (A.2)
  c.model.prediction = 'v'  # i-DODE's VP velocity (eps - sigma z) / alpha = alpha eps - sigma x
  c.training.batch_size = 128
  c.training.num_steps = 2_000_000
  c.training.ema_decay = 0.9999
  c.training.log_every = 1000
  c.training.checkpoint_every = 10_000
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.99
  c.optimizer.eps = 1e-8
  c.optimizer.warmup_steps = 100
  c.eval.batch_size = 512
  c.sampling.batch_size = 512
  return c
