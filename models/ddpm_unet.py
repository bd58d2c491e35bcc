"""The DDPM UNet in pytorch_diffusion layout (Extended-Analytic-DPM `libs.ddpm.Model`) and its
SN-DPM / NPR-DPM head (`libs.ddpm.Model4Pretrained`); reference A.10.3 and A.3.2.

The network is models/unet_blocks.py's `trunk` (the shared DDPM UNet) with
  attention at every level whose resolution (resolution / 2^level) is in attn_resolutions,
  temb width 4 ch, three separate 1x1 q, k, v projections, and the output
  out = conv_out(swish(norm_out(h)))                                       out_ch channels.
With `head_out_ch` (Model4Pretrained) a second head reads the same last feature map h:
  simple:  conv_out2(swish(norm_out2(h)))
  complex: conv_out2(swish(norm_out2(before_out(h, temb)))), before_out a ResnetBlock
and the output is [eps || head] along channels (out_ch + head_out_ch). conv_out2 starts
from PyTorch's default initialisation, as in EAD (not at zero).

Time input: the original receives float(n - 1) for the diffusion step n = 1..N (EAD's
DTWrapper with shift1; pytorch_diffusion's integer steps 0..N-1 give the same embedding):
pass t as that float. Public models: CelebA 64 (DDIM's, 78,700,803 parameters in 390
tensors), LSUN Bedroom (TF DDPM's, 113,673,219 in 450), DDPM CIFAR-10 (35,746,307 in 328).
"""
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from models import unet_blocks

REQUIRED = ('ch', 'out_ch', 'num_res_blocks', 'attn_resolutions', 'in_channels', 'resolution')
MODES = ('simple', 'complex')


class Model(nn.Module):
  """libs.ddpm.Model(**kwargs), or Model4Pretrained(head_out_ch, mode, **kwargs) with a head."""
  ch: int
  out_ch: int
  num_res_blocks: int
  attn_resolutions: tuple
  in_channels: int
  resolution: int
  ch_mult: tuple = (1, 2, 4, 8)
  dropout: float = 0.0
  resamp_with_conv: bool = True
  head_out_ch: Optional[int] = None  # Model4Pretrained: channels of the extra head
  mode: str = 'simple'  # Model4Pretrained: simple | complex (a ResnetBlock before the head)
  dtype: Any = jnp.float32

  def attn_levels(self):
    return tuple(self.resolution // 2 ** i in self.attn_resolutions
                 for i in range(len(self.ch_mult)))

  @nn.compact
  def __call__(self, x, t, y=None, train=False):
    if y is not None:
      raise ValueError('the DDPM UNet is unconditional: y must be None')
    if x.shape[1:] != (self.resolution, self.resolution, self.in_channels):
      raise ValueError(f'the DDPM UNet takes [B, {self.resolution}, {self.resolution}, '
                       f'{self.in_channels}] inputs, got {x.shape}')
    dt = self.dtype
    h, temb = unet_blocks.trunk(
        x, t, ch=self.ch, ch_mult=self.ch_mult, num_res_blocks=self.num_res_blocks,
        attn=self.attn_levels(), dropout=self.dropout, resamp_with_conv=self.resamp_with_conv,
        temb_ch=4 * self.ch, fused_qkv=False, train=train, dtype=dt)
    out = unet_blocks.out_layers(h, self.out_ch, dt, 'norm_out', 'conv_out')
    if self.head_out_ch:
      if self.mode == 'complex':
        before_out = unet_blocks.ResnetBlock(h.shape[-1], self.dropout, dt, name='before_out')
        h = before_out(h, temb, train)
      head = unet_blocks.out_layers(h, self.head_out_ch, dt, 'norm_out2', 'conv_out2',
                                    init=unet_blocks.TORCH_DEFAULT)
      out = jnp.concatenate([out, head], axis=-1)
    return out.astype(jnp.float32)


def create(kwargs: dict) -> nn.Module:
  """Model from the original constructor's kwargs (JSON lists stand for tuples)."""
  kw = unet_blocks.check_kwargs('ddpm_unet', Model, kwargs, REQUIRED)
  if kw.get('mode', 'simple') not in MODES:
    raise ValueError(f'ddpm_unet kwarg mode={kw["mode"]!r} is not one of: {", ".join(MODES)}')
  return Model(**kw)
