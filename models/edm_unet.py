"""EDM's U-Nets (`EDM:training/networks.py`, reference A.3.2-A.3.3): SongUNet and DhariwalUNet.

Both are called as the original's `forward(x, noise_labels, class_labels, augment_labels)`:
x NHWC (already c_in-scaled by the preconditioner), noise_labels [B] (c_noise), class_labels
float [B or 1, label_dim] (one-hot, zeros = no label) or None when label_dim = 0,
augment_labels [B, augment_dim] or None (then `map_augment` is skipped, as in the original;
it is created at init all the same, so released weights load). The output is float32 NHWC.
Submodule names are the original's; the encoder/decoder ModuleDict entries appear as
`enc_<name>` / `dec_<name>` (torch `enc.<name>` / `dec.<name>`). Label dropout (training
only, for classifier-free guidance) draws from the 'dropout' stream.

SongUNet (DDPM++ / NCSN++, Song et al. reimplemented by EDM): mapping
  e = swap_halves(map_noise(c_noise))      positional (endpoint) or Fourier, [cos|sin] -> [sin|cos]
  e += map_label(labels * sqrt(label_dim)); e += map_augment(augment_labels)
  e = silu(map_layer1(silu(map_layer0(e))))
blocks with one attention head, skip_scale sqrt(1/2), GroupNorm eps 1e-6, resample_proj,
no adaptive scale; encoder `standard | skip | residual` (aux image path: `_aux_down` +
`_aux_skip`, or a fused-down `_aux_residual` with x = aux = (x + aux_residual(aux)) / sqrt 2),
decoder `standard | skip` (`_aux_norm`, `_aux_conv` [+ `_aux_up`] accumulate the output image);
attention at every encoder block of an attention resolution but only the last decoder block
there, and at the lowest resolution's `_in0`. Init xavier_uniform (zero-ish 1e-5 for conv1,
proj, aux_conv; sqrt(0.2) for qkv).

DhariwalUNet (ADM, Dhariwal & Nichol reimplemented by EDM): mapping
  e = silu(map_layer1(silu(map_layer0(pos(c_noise) + map_augment(aug)))) + map_label(labels))
(positional without endpoint and without the half swap; map_label has no bias and unscaled
labels), adaptive-scale blocks with channels_per_head 64 (a listed resolution with < 64
channels gets no attention), eps 1e-5, skip_scale 1, kernel-0 resampling skips; attention in
every block of an attention resolution and `_in0`; output out_conv(silu(out_norm(x))).
Init kaiming_uniform x sqrt(1/3), zeros for conv1, proj, out_conv and map_augment.
"""
import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.edm_layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding
from models.edm_layers import UNetBlock


def _drop_labels(module, labels, batch, train):
  """Training-time label dropout: zero a sample's labels with probability label_dropout."""
  if train and module.label_dropout:
    keep = jax.random.uniform(module.make_rng('dropout'), (batch, 1)) >= module.label_dropout
    labels = labels * keep.astype(labels.dtype)
  return labels


def _augment(module, augment_labels):
  """map_augment(augment_labels), or None to skip it (created at init all the same)."""
  if module.map_augment is None or (augment_labels is None and not module.is_initializing()):
    return None
  if augment_labels is None:
    augment_labels = jnp.zeros((1, module.augment_dim), jnp.float32)
  return module.map_augment(jnp.asarray(augment_labels, jnp.float32))


def _call(block, x, emb, train):
  return block(x, emb, train) if isinstance(block, UNetBlock) else block(x)


class SongUNet(nn.Module):
  img_resolution: int
  in_channels: int
  out_channels: int
  label_dim: int = 0  # number of class labels, 0 = unconditional
  augment_dim: int = 0  # augmentation label dimensionality, 0 = no augmentation
  model_channels: int = 128  # base multiplier for the number of channels
  channel_mult: Sequence[int] = (1, 2, 2, 2)  # per-resolution multipliers
  channel_mult_emb: int = 4  # embedding width = model_channels * channel_mult_emb
  num_blocks: int = 4  # residual blocks per resolution
  attn_resolutions: Sequence[int] = (16,)  # resolutions with self-attention
  dropout: float = 0.10  # dropout of intermediate activations
  label_dropout: float = 0  # class-label dropout for classifier-free guidance
  embedding_type: str = 'positional'  # 'positional' (DDPM++) | 'fourier' (NCSN++)
  channel_mult_noise: int = 1  # noise embedding width multiplier: 1 DDPM++, 2 NCSN++
  encoder_type: str = 'standard'  # 'standard' (DDPM++) | 'skip' | 'residual' (NCSN++)
  decoder_type: str = 'standard'  # 'standard' | 'skip'
  resample_filter: Sequence[int] = (1, 1)  # [1,1] DDPM++, [1,3,3,1] NCSN++
  dtype: Any = jnp.float32

  def setup(self):
    for key, allowed in (('embedding_type', ('fourier', 'positional')),
                         ('encoder_type', ('standard', 'skip', 'residual')),
                         ('decoder_type', ('standard', 'skip'))):
      value = getattr(self, key)
      if value not in allowed:
        raise ValueError(f'SongUNet {key}={value!r} is not one of: {", ".join(allowed)}')
    dt = self.dtype
    emb_channels = self.model_channels * self.channel_mult_emb
    noise_channels = self.model_channels * self.channel_mult_noise
    init = dict(init_mode='xavier_uniform')
    init_zero = dict(init_mode='xavier_uniform', init_weight=1e-5)
    init_attn = dict(init_mode='xavier_uniform', init_weight=math.sqrt(0.2))
    block = functools.partial(
        UNetBlock, emb_channels=emb_channels, num_heads=1, dropout=self.dropout,
        skip_scale=math.sqrt(0.5), eps=1e-6, resample_filter=self.resample_filter,
        resample_proj=True, adaptive_scale=False, init_default=init, init_zero=init_zero,
        init_attn=init_attn, dtype=dt)

    # Mapping.
    if self.embedding_type == 'positional':
      self.map_noise = PositionalEmbedding(noise_channels, endpoint=True)
    else:
      self.map_noise = FourierEmbedding(noise_channels)
    self.map_label = (Linear(self.label_dim, noise_channels, dtype=dt, **init)
                      if self.label_dim else None)
    self.map_augment = (Linear(self.augment_dim, noise_channels, bias=False, dtype=dt, **init)
                        if self.augment_dim else None)
    self.map_layer0 = Linear(noise_channels, emb_channels, dtype=dt, **init)
    self.map_layer1 = Linear(emb_channels, emb_channels, dtype=dt, **init)

    # Encoder.
    enc = {}
    cout = caux = self.in_channels
    for level, mult in enumerate(self.channel_mult):
      res = self.img_resolution >> level
      if level == 0:
        cin, cout = cout, self.model_channels
        enc[f'{res}x{res}_conv'] = Conv2d(cin, cout, 3, dtype=dt, **init)
      else:
        enc[f'{res}x{res}_down'] = block(cout, cout, down=True)
        if self.encoder_type == 'skip':
          enc[f'{res}x{res}_aux_down'] = Conv2d(caux, caux, 0, down=True,
                                                resample_filter=self.resample_filter, dtype=dt)
          enc[f'{res}x{res}_aux_skip'] = Conv2d(caux, cout, 1, dtype=dt, **init)
        if self.encoder_type == 'residual':
          enc[f'{res}x{res}_aux_residual'] = Conv2d(
              caux, cout, 3, down=True, resample_filter=self.resample_filter,
              fused_resample=True, dtype=dt, **init)
          caux = cout
      for idx in range(self.num_blocks):
        cin, cout = cout, self.model_channels * mult
        enc[f'{res}x{res}_block{idx}'] = block(cin, cout, attention=res in self.attn_resolutions)
    skips = [b.out_channels for name, b in enc.items() if 'aux' not in name]

    # Decoder.
    dec = {}
    for level, mult in reversed(list(enumerate(self.channel_mult))):
      res = self.img_resolution >> level
      if level == len(self.channel_mult) - 1:
        dec[f'{res}x{res}_in0'] = block(cout, cout, attention=True)
        dec[f'{res}x{res}_in1'] = block(cout, cout)
      else:
        dec[f'{res}x{res}_up'] = block(cout, cout, up=True)
      for idx in range(self.num_blocks + 1):
        cin, cout = cout + skips.pop(), self.model_channels * mult
        dec[f'{res}x{res}_block{idx}'] = block(
            cin, cout, attention=idx == self.num_blocks and res in self.attn_resolutions)
      if self.decoder_type == 'skip' or level == 0:
        if self.decoder_type == 'skip' and level < len(self.channel_mult) - 1:
          dec[f'{res}x{res}_aux_up'] = Conv2d(self.out_channels, self.out_channels, 0, up=True,
                                              resample_filter=self.resample_filter, dtype=dt)
        dec[f'{res}x{res}_aux_norm'] = GroupNorm(cout, eps=1e-6, dtype=dt)
        dec[f'{res}x{res}_aux_conv'] = Conv2d(cout, self.out_channels, 3, dtype=dt, **init_zero)
    self.enc, self.dec = enc, dec

  def __call__(self, x, noise_labels, class_labels=None, augment_labels=None, train=False):
    # Mapping.
    emb = self.map_noise(noise_labels)
    half = emb.shape[1] // 2
    emb = jnp.concatenate([emb[:, half:], emb[:, :half]], axis=1)  # swap cos|sin -> sin|cos
    if self.map_label is not None:
      labels = _drop_labels(self, jnp.asarray(class_labels, jnp.float32), x.shape[0], train)
      emb = emb + self.map_label(labels * math.sqrt(self.label_dim))
    aug = _augment(self, augment_labels)
    if aug is not None:
      emb = emb + aug
    emb = nn.silu(self.map_layer0(emb))
    emb = nn.silu(self.map_layer1(emb))

    # Encoder.
    skips = []
    aux = x
    for name, block in self.enc.items():
      if 'aux_down' in name:
        aux = block(aux)
      elif 'aux_skip' in name:
        x = skips[-1] = x + block(aux)
      elif 'aux_residual' in name:
        x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
      else:
        x = _call(block, x, emb, train)
        skips.append(x)

    # Decoder.
    aux = tmp = None
    for name, block in self.dec.items():
      if 'aux_up' in name:
        aux = block(aux)
      elif 'aux_norm' in name:
        tmp = block(x)
      elif 'aux_conv' in name:
        tmp = block(nn.silu(tmp))
        aux = tmp if aux is None else tmp + aux
      else:
        if x.shape[-1] != block.in_channels:
          x = jnp.concatenate([x, skips.pop()], axis=-1)
        x = block(x, emb, train)
    return aux.astype(jnp.float32)


class DhariwalUNet(nn.Module):
  img_resolution: int
  in_channels: int
  out_channels: int
  label_dim: int = 0  # number of class labels, 0 = unconditional
  augment_dim: int = 0  # augmentation label dimensionality, 0 = no augmentation
  model_channels: int = 192  # base multiplier for the number of channels
  channel_mult: Sequence[int] = (1, 2, 3, 4)  # per-resolution multipliers
  channel_mult_emb: int = 4  # embedding width = model_channels * channel_mult_emb
  num_blocks: int = 3  # residual blocks per resolution
  attn_resolutions: Sequence[int] = (32, 16, 8)  # resolutions with self-attention
  dropout: float = 0.10  # dropout of intermediate activations
  label_dropout: float = 0  # class-label dropout for classifier-free guidance
  dtype: Any = jnp.float32

  def setup(self):
    dt = self.dtype
    emb_channels = self.model_channels * self.channel_mult_emb
    init = dict(init_mode='kaiming_uniform', init_weight=math.sqrt(1 / 3),
                init_bias=math.sqrt(1 / 3))
    init_zero = dict(init_mode='kaiming_uniform', init_weight=0, init_bias=0)
    block = functools.partial(UNetBlock, emb_channels=emb_channels, channels_per_head=64,
                              dropout=self.dropout, init_default=init, init_zero=init_zero,
                              dtype=dt)

    # Mapping.
    self.map_noise = PositionalEmbedding(self.model_channels)
    self.map_augment = (Linear(self.augment_dim, self.model_channels, bias=False, dtype=dt,
                               **init_zero) if self.augment_dim else None)
    self.map_layer0 = Linear(self.model_channels, emb_channels, dtype=dt, **init)
    self.map_layer1 = Linear(emb_channels, emb_channels, dtype=dt, **init)
    self.map_label = (Linear(self.label_dim, emb_channels, bias=False, init_mode='kaiming_normal',
                             init_weight=math.sqrt(self.label_dim), dtype=dt)
                      if self.label_dim else None)

    # Encoder.
    enc = {}
    cout = self.in_channels
    for level, mult in enumerate(self.channel_mult):
      res = self.img_resolution >> level
      if level == 0:
        cin, cout = cout, self.model_channels * mult
        enc[f'{res}x{res}_conv'] = Conv2d(cin, cout, 3, dtype=dt, **init)
      else:
        enc[f'{res}x{res}_down'] = block(cout, cout, down=True)
      for idx in range(self.num_blocks):
        cin, cout = cout, self.model_channels * mult
        enc[f'{res}x{res}_block{idx}'] = block(cin, cout, attention=res in self.attn_resolutions)
    skips = [b.out_channels for b in enc.values()]

    # Decoder.
    dec = {}
    for level, mult in reversed(list(enumerate(self.channel_mult))):
      res = self.img_resolution >> level
      if level == len(self.channel_mult) - 1:
        dec[f'{res}x{res}_in0'] = block(cout, cout, attention=True)
        dec[f'{res}x{res}_in1'] = block(cout, cout)
      else:
        dec[f'{res}x{res}_up'] = block(cout, cout, up=True)
      for idx in range(self.num_blocks + 1):
        cin, cout = cout + skips.pop(), self.model_channels * mult
        dec[f'{res}x{res}_block{idx}'] = block(cin, cout, attention=res in self.attn_resolutions)
    self.enc, self.dec = enc, dec
    self.out_norm = GroupNorm(cout, dtype=dt)
    self.out_conv = Conv2d(cout, self.out_channels, 3, dtype=dt, **init_zero)

  def __call__(self, x, noise_labels, class_labels=None, augment_labels=None, train=False):
    # Mapping.
    emb = self.map_noise(noise_labels)
    aug = _augment(self, augment_labels)
    if aug is not None:
      emb = emb + aug
    emb = nn.silu(self.map_layer0(emb))
    emb = self.map_layer1(emb)
    if self.map_label is not None:
      labels = _drop_labels(self, jnp.asarray(class_labels, jnp.float32), x.shape[0], train)
      emb = emb + self.map_label(labels)
    emb = nn.silu(emb)

    # Encoder.
    skips = []
    for block in self.enc.values():
      x = _call(block, x, emb, train)
      skips.append(x)

    # Decoder.
    for block in self.dec.values():
      if x.shape[-1] != block.in_channels:
        x = jnp.concatenate([x, skips.pop()], axis=-1)
      x = block(x, emb, train)
    return self.out_conv(nn.silu(self.out_norm(x))).astype(jnp.float32)


NETWORKS = {'SongUNet': SongUNet, 'DhariwalUNet': DhariwalUNet}
