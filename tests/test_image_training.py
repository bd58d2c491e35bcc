"""Image families through the real training path: a tiny config of each architecture
trains a few steps on 8 simulated devices as on 1 (DESIGN.md's testing section), with
dropout active, on the offline digits set."""
import jax
import ml_collections
import numpy as np
import pytest

from configs import base
from tests.test_sharding import run_steps

# family -> (tiny kwargs: channels >= 2 x norm groups, config overrides)
TINY = {
    'iddpm_unet': (dict(in_channels=1, model_channels=64, out_channels=2, num_res_blocks=1,
                        attention_resolutions=[2], dropout=0.1, channel_mult=[1, 2],
                        conv_resample=True, dims=2, num_classes=10, use_checkpoint=False,
                        num_heads=2, num_heads_upsample=-1, use_scale_shift_norm=True),
                   {'diffusion.var_type': 'learned', 'training.loss': 'hybrid'}),
    'ncsnpp': (dict(nf=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4], dropout=0.1,
                    embedding_type='positional', fir=False, progressive_input='none',
                    image_size=8, num_channels=1, centered=True, continuous=True),
               {'diffusion.schedule': 'vpsde'}),
    'ddpm_unet': (dict(ch=64, out_ch=1, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4],
                       dropout=0.1, resamp_with_conv=True, in_channels=1, resolution=8), {}),
    'ddpm_torch_unet': (dict(in_channels=1, hid_channels=64, out_channels=1, ch_multipliers=[1, 2],
                             num_res_blocks=1, apply_attn=[False, True], drop_rate=0.1,
                             resample_with_conv=True), {'model.prediction': 'x0'}),
    'edm': (dict(class_name='EDMPrecond', model_type='SongUNet', img_resolution=8, img_channels=1,
                 label_dim=10, model_channels=32, channel_mult=[1, 2], num_blocks=1,
                 attn_resolutions=[4], dropout=0.1, embedding_type='fourier',
                 encoder_type='residual', channel_mult_noise=2, resample_filter=[1, 3, 3, 1],
                 augment_dim=0), {}),
    'vdm_unet': (dict(sm_n_embd=64, sm_n_layer=1, sm_pdrop=0.1, with_attention=True,
                      with_fourier_features=True, gamma_min=-13.3, gamma_max=5.0),
                 {'model.prediction': 'v'}),
}


def tiny_config(family):
  kwargs, overrides = TINY[family]
  c = base.get_base_config()
  c.data.name = 'digits'
  c.model.name = family
  c.model.kwargs = ml_collections.ConfigDict(kwargs)
  c.training.batch_size = 16
  c.training.ema_decay = 0.9
  c.optimizer.eps = 1e-2  # Adam's first steps are ~lr*sign(g); a larger eps keeps them smooth
  for key, value in overrides.items():
    group, name = key.split('.')
    c[group][name] = value
  return c


@pytest.mark.slow
@pytest.mark.parametrize('family', sorted(TINY))
def test_tiny_family_one_and_eight_devices_agree(family):
  config = tiny_config(family)
  devices = jax.devices()
  l1, g1, p1, e1 = run_steps(config, devices[:1], 3)
  l8, g8, p8, e8 = run_steps(config, devices, 3)
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  for a, b in zip(g1, g8):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(v, u, rtol=1e-4, atol=1e-6), a, b)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(v, u, rtol=1e-4, atol=1e-6), p1, p8)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(v, u, rtol=1e-4, atol=1e-6), e1, e8)
  assert all(np.asarray(v).dtype == np.float32 for v in jax.tree.leaves(p8))
  assert np.all(np.isfinite(l1)) and l1[0] != l1[-1]


@pytest.mark.slow
def test_bfloat16_compute_trains_with_float32_params():
  from configs import digits
  from training import mesh as mesh_lib
  from training import train
  c = digits.get_config()
  c.model.dtype = 'bfloat16'
  c.training.batch_size = 16
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  run = train.setup(c, mesh)
  state = run.state
  for step in range(3):
    state, metrics = run.update(state, mesh_lib.shard_batch(mesh, run.source.batch(step)), run.key)
  assert np.isfinite(float(metrics['loss']))
  assert {str(np.asarray(v).dtype) for v in jax.tree.leaves(jax.device_get(state.params))} == {'float32'}
