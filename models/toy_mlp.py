"""The toy 2-D network of tqch/ddpm-torch (`ddpm_torch/toy/toy_model.py`, reference B.4.3).

  t_emb = LeakyReLU_0.02(Dense(sinusoid(t)))
  h     = Dense_nobias(x)
  h    += Dense_nobias(LReLU(LN(u))) with u = Dense_nobias(LReLU(LN(h))) + Dense(t_emb),
          the same temporal layer applied `num_layers` times (weights are tied:
          the original repeats one module object; its state_dict stores copies)
  out   = Dense(LN(h))
Xavier-uniform weights, zero biases, LayerNorm eps 1e-5. 67,074 parameters at the
defaults (out_dim 2); out_dim 4 carries Improved-DDPM var_values for learned variance.
"""
import flax.linen as nn
import jax.numpy as jnp

from models import embeddings

_dense = lambda *a, **k: nn.Dense(*a, kernel_init=nn.initializers.xavier_uniform(),
                                  bias_init=nn.initializers.zeros, dtype=jnp.float32,
                                  param_dtype=jnp.float32, **k)
_norm = lambda **k: nn.LayerNorm(epsilon=1e-5, dtype=jnp.float32, param_dtype=jnp.float32, **k)
_act = lambda x: nn.leaky_relu(x, 0.02)


class TemporalLayer(nn.Module):
  features: int

  @nn.compact
  def __call__(self, h, t_emb):
    u = _dense(self.features, use_bias=False, name='fc1')(_act(_norm(name='norm1')(h)))
    u = u + _dense(self.features, name='enc')(t_emb)
    u = _dense(self.features, use_bias=False, name='fc2')(_act(_norm(name='norm2')(u)))
    return h + u


class ToyMLP(nn.Module):
  features: int = 128
  num_layers: int = 3
  out_dim: int = 2

  @nn.compact
  def __call__(self, x, t):
    t_emb = _act(_dense(self.features, name='t_proj')(embeddings.sinusoidal(t, self.features)))
    h = _dense(self.features, use_bias=False, name='in_fc')(x)
    layer = TemporalLayer(self.features, name='temp_fc')
    for _ in range(self.num_layers):
      h = layer(h, t_emb)
    return _dense(self.out_dim, name='out_fc')(_norm(name='out_norm')(h))
