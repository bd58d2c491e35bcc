"""score_sde's NCSN++ network (`models/ncsnpp.py` NCSNpp) as DDPM++ and as PSLD's NCSN++.

One implementation for the two public uses:
  * score_sde DDPM++ (continuous VP), the CIFAR-10 (VP SDE) model of Extended-Analytic-DPM
    (analytic_dpm_and_ddpm.md A.10.4): positional embedding of 999 t, BigGAN residual
    blocks, skip_rescale, no FIR, no progressive paths; 61,804,419 parameters. With
    `head=True` it is `NCSNpp4Pretrained` (A.3.2), the SN-DPM / NPR-DPM model: the last
    trunk feature h (before the output GroupNorm) also feeds `conv_out2(act(gn_out2(h)))`
    and the output is [eps | head] (2 * num_channels channels).
  * PSLD's NCSN++ (idode_vdm_psld.md B.4) on z = [x, m] (in_ch = out_ch = 6): the released
    CIFAR-10 models use the Fourier embedding of log t, FIR [1, 3, 3, 1] resampling and the
    `residual` input pyramid; the yaml defaults use the positional embedding of t itself.

Kwargs: one flat dict, the original config's `model` section (score_sde) or
`model.score_fn` section (PSLD), plus the few data/training keys the constructor reads:
`image_size`, `num_channels`, `centered` (data) and `continuous` (training).
`flat_kwargs(config)` builds it from a nested original config. score_sde names the
channels `num_channels` (in = out) and the conditioning switch `conditional`; PSLD
names them `in_ch` / `out_ch` and `noise_cond`; both spellings are accepted. Keys the
network never reads (INERT) are accepted and dropped. Supported topology: resblock_type
'biggan', progressive 'none', progressive_input 'none' | 'residual', a noise-conditional
network without scale_by_sigma (every public score_sde VP and PSLD model); other values
raise ValueError.

Call: `net.apply(params, x, t)`, x NHWC, t [B] as the original's `time_cond`: 999 t for
the score_sde VP model (positional embedding of that number), t itself for PSLD (the
Fourier embedding takes log t inside, as the original does). The output is the raw
network output (eps; PSLD's 6 channels [eps_x | eps_m]), never divided by sigma.
Parameters: `all_modules_<i>` is the original's `all_modules.<i>` (construction order).
"""
import dataclasses
import itertools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from models import embeddings
from models import ncsnpp_layers as L

# Config keys the network never reads (sigmas and SDE constants, EMA rate, names, and
# switches whose only readers are topologies not supported here).
INERT = frozenset({
    'name', 'sigma_min', 'sigma_max', 'num_scales', 'beta_min', 'beta_max', 'ema_rate',
    'normalization', 'attention_type', 'conv_size', 'resamp_with_conv', 'progressive_combine'})


class NCSNpp(nn.Module):
  """NCSN++ / DDPM++ (score_sde NCSNpp; PSLD's vendored copy), see the module docstring."""
  nf: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 4
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  nonlinearity: str = 'swish'
  embedding_type: str = 'positional'  # positional (of t as fed) | fourier (of log t)
  fourier_scale: float = 16.0
  fir: bool = False
  fir_kernel: Sequence[int] = (1, 3, 3, 1)
  skip_rescale: bool = True
  resblock_type: str = 'biggan'
  progressive: str = 'none'
  progressive_input: str = 'none'  # none | residual (PSLD's input pyramid)
  init_scale: float = 0.0
  conditional: bool = True  # score_sde's name
  noise_cond: bool = True  # PSLD's name
  scale_by_sigma: bool = False
  image_size: int = 32
  num_channels: int = 3  # score_sde: input and output channels
  in_ch: Optional[int] = None  # PSLD: input channels (default num_channels)
  out_ch: Optional[int] = None  # PSLD: output channels (default num_channels)
  centered: bool = True  # data in [-1, 1]; False: the network maps x -> 2x - 1 first
  continuous: bool = True
  head: bool = False  # NCSNpp4Pretrained: also output conv_out2(act(gn_out2(h)))
  dtype: Any = jnp.float32

  def check(self):
    """ValueError for settings outside the supported topology."""
    allowed = dict(resblock_type=('biggan',), progressive=('none',),
                   progressive_input=('none', 'residual'), embedding_type=('positional', 'fourier'),
                   nonlinearity=tuple(L.ACTIVATIONS))
    for key, values in allowed.items():
      if str(getattr(self, key)).lower() not in values:
        raise ValueError(f'ncsnpp: {key}={getattr(self, key)!r} is not supported; allowed: '
                         f'{", ".join(values)}')
    for key, value in (('conditional', True), ('noise_cond', True), ('scale_by_sigma', False)):
      if bool(getattr(self, key)) != value:
        raise ValueError(f'ncsnpp: {key}={getattr(self, key)!r} is not supported; allowed: {value}')
    if self.embedding_type.lower() == 'fourier' and not self.continuous:
      raise ValueError('ncsnpp: embedding_type=fourier needs continuous=True (as the original)')

  @nn.compact
  def __call__(self, x, t, y=None, train=False):
    del y  # unconditional
    self.check()
    in_ch, out_ch = self.in_ch or self.num_channels, self.out_ch or self.num_channels
    if x.shape[1:] != (self.image_size, self.image_size, in_ch):
      raise ValueError(f'ncsnpp: input of shape {x.shape[1:]}, built for '
                       f'{(self.image_size, self.image_size, in_ch)}')
    act = L.ACTIVATIONS[self.nonlinearity.lower()]
    counter = itertools.count()
    nxt = lambda: f'all_modules_{next(counter)}'
    dt = self.dtype
    nf, num_resolutions = self.nf, len(self.ch_mult)
    resolutions = [self.image_size // 2 ** i for i in range(num_resolutions)]
    block = lambda **kw: L.ResnetBlockBigGANpp(
        act=act, dropout=self.dropout, fir=self.fir, fir_kernel=tuple(self.fir_kernel),
        skip_rescale=self.skip_rescale, init_scale=self.init_scale, dtype=dt, name=nxt(), **kw)
    attn = lambda: L.AttnBlockpp(skip_rescale=self.skip_rescale, init_scale=self.init_scale,
                                 dtype=dt, name=nxt())
    combine = lambda a, b: (a + b) / L.SQRT2 if self.skip_rescale else a + b

    # Time embedding: temb = Dense(act(Dense(e))).
    if self.embedding_type.lower() == 'fourier':
      temb = L.GaussianFourierProjection(nf, self.fourier_scale, name=nxt())(
          jnp.log(jnp.asarray(t, jnp.float32)))
    else:
      temb = embeddings.sinusoidal(t, nf)  # layers.get_timestep_embedding: the defaults
    temb = L.dense(nf * 4, dt, nxt())(temb)
    temb = L.dense(nf * 4, dt, nxt())(act(temb))

    x = jnp.asarray(x, jnp.float32)
    if not self.centered:
      x = 2 * x - 1.0
    pyramid = x if self.progressive_input.lower() == 'residual' else None

    # Downsampling path; every block output (and each downsampled h) is a skip.
    hs = [L.conv(nf, 3, dt, nxt())(x)]
    for i_level in range(num_resolutions):
      for _ in range(self.num_res_blocks):
        h = block(out_ch=nf * self.ch_mult[i_level])(hs[-1], temb, train)
        if resolutions[i_level] in self.attn_resolutions:
          h = attn()(h)
        hs.append(h)
      if i_level != num_resolutions - 1:
        h = block(down=True)(hs[-1], temb, train)
        if pyramid is not None:  # residual input pyramid: p = (Down(p) + h) / sqrt 2; h = p
          pyramid = L.Downsample(h.shape[-1], fir=self.fir, fir_kernel=tuple(self.fir_kernel),
                                 dtype=dt, name=nxt())(pyramid)
          h = pyramid = combine(pyramid, h)
        hs.append(h)

    h = hs[-1]
    h = block()(h, temb, train)
    h = attn()(h)
    h = block()(h, temb, train)

    # Upsampling path: num_res_blocks + 1 blocks on [h, skip] per level, attention once.
    for i_level in reversed(range(num_resolutions)):
      for _ in range(self.num_res_blocks + 1):
        h = block(out_ch=nf * self.ch_mult[i_level])(jnp.concatenate([h, hs.pop()], -1), temb,
                                                     train)
      if resolutions[i_level] in self.attn_resolutions:
        h = attn()(h)
      if i_level != 0:
        h = block(up=True)(h, temb, train)

    c = h.shape[-1]
    out = act(L.group_norm(c, dt, nxt())(h))
    out = L.conv(out_ch, 3, dt, nxt(), init_scale=self.init_scale)(out)
    if self.head:
      extra = act(L.group_norm(c, dt, 'gn_out2')(h))
      extra = L.conv(out_ch, 3, dt, 'conv_out2', init_scale=0.0)(extra)
      out = jnp.concatenate([out, extra], axis=-1)
    return out.astype(jnp.float32)


FIELDS = frozenset(f.name for f in dataclasses.fields(NCSNpp)) - {'parent', 'name', 'dtype'}


def create(kwargs):
  """NCSNpp from the flat kwargs (module docstring); lists stand for tuples."""
  kwargs = dict(kwargs)
  unknown = sorted(set(kwargs) - FIELDS - INERT)
  if unknown:
    raise ValueError(f'ncsnpp: unknown kwargs {", ".join(unknown)}; allowed: '
                     f'{", ".join(sorted(FIELDS | INERT))}')
  net = NCSNpp(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()
                  if k in FIELDS})
  net.check()
  return net


def flat_kwargs(config, head=False):
  """The flat kwargs of a nested original config.

  score_sde: {'model': {...}, 'data': {image_size, num_channels, centered, ...},
  'training': {continuous, ...}}; PSLD: {'model': {'score_fn': {...}, ...}, 'data':
  {image_size, ...}, 'training': {continuous, ...}} (its network reads no other data key).
  """
  model = config['model']
  psld = 'score_fn' in model
  flat = dict(model['score_fn'] if psld else model)
  data = config.get('data', {})
  for key in ('image_size',) if psld else ('image_size', 'num_channels', 'centered'):
    if key in data:
      flat[key] = data[key]
  if 'continuous' in config.get('training', {}):
    flat['continuous'] = config['training']['continuous']
  if head:
    flat['head'] = True
  return flat
