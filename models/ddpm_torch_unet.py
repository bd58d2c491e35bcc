"""The image UNet of tqch/ddpm-torch (`ddpm_torch/models/unet.py`, `UNet`; reference B.5.1).

The same network as the DDPM UNet of pytorch_diffusion (models/unet_blocks.py's `trunk`),
configured by level instead of by resolution:
  apply_attn[i] (or one bool for all levels): attention after every block of level i;
  temb width time_embedding_dim (default 4 hid_channels); one fused 1x1 `project_in`
  to [q | k | v]; out = out_conv(h) = conv(swish(GroupNorm(h))), out_channels channels.
Any input size divisible by 2^(levels - 1) works (there is no `resolution` argument).

Time input: the integer step t = 0..T-1 of ddpm-torch's GaussianDiffusion (t = 0 is the
first noising step, i.e. n - 1), as a float. Public models: cifar10_2040.pt and
celeba_600.pt (35,746,307 parameters in 304 tensors), celebahq_1200.pt (113,673,219).
Flax names follow pytorch_diffusion's (models/convert/ddpm_torch.py maps ddpm-torch's keys).
"""
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from models import unet_blocks

REQUIRED = ('in_channels', 'hid_channels', 'out_channels', 'ch_multipliers', 'num_res_blocks',
            'apply_attn')


class UNet(nn.Module):
  """ddpm_torch.models.unet.UNet(**kwargs)."""
  in_channels: int
  hid_channels: int
  out_channels: int
  ch_multipliers: tuple
  num_res_blocks: int
  apply_attn: Any  # a bool per level, or one bool for every level
  time_embedding_dim: Optional[int] = None  # None: 4 hid_channels
  drop_rate: float = 0.0
  resample_with_conv: bool = True
  dtype: Any = jnp.float32

  def attn_levels(self):
    if isinstance(self.apply_attn, bool):
      return (self.apply_attn,) * len(self.ch_multipliers)
    if len(self.apply_attn) != len(self.ch_multipliers):
      raise ValueError(f'apply_attn has {len(self.apply_attn)} entries for '
                       f'{len(self.ch_multipliers)} levels')
    return tuple(bool(a) for a in self.apply_attn)

  @nn.compact
  def __call__(self, x, t, y=None, train=False):
    if y is not None:
      raise ValueError('the ddpm-torch UNet is unconditional: y must be None')
    if x.shape[-1] != self.in_channels:
      raise ValueError(f'the ddpm-torch UNet takes {self.in_channels} channels, got {x.shape}')
    h, _ = unet_blocks.trunk(
        x, t, ch=self.hid_channels, ch_mult=self.ch_multipliers,
        num_res_blocks=self.num_res_blocks, attn=self.attn_levels(), dropout=self.drop_rate,
        resamp_with_conv=self.resample_with_conv,
        temb_ch=self.time_embedding_dim or 4 * self.hid_channels, fused_qkv=True, train=train,
        dtype=self.dtype)
    out = unet_blocks.out_layers(h, self.out_channels, self.dtype, 'norm_out', 'conv_out')
    return out.astype(jnp.float32)


def create(kwargs: dict) -> nn.Module:
  """UNet from the original constructor's kwargs (JSON lists stand for tuples)."""
  return UNet(**unet_blocks.check_kwargs('ddpm_torch_unet', UNet, kwargs, REQUIRED))
