"""Train state, optimiser (Adam with warm-up and clipping) and EMA."""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any


def make_optimizer(opt):
  """Adam with lr * min((k + 1) / warmup, 1) at update k (tqch/ddpm-torch's LambdaLR
  warm-up) and global-norm clipping when grad_clip > 0."""
  warmup = max(int(opt.warmup_steps), 0)
  lr = opt.lr if warmup == 0 else (lambda k: opt.lr * jnp.minimum((k + 1) / warmup, 1.0))
  adam = optax.adam(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  return optax.chain(optax.clip_by_global_norm(opt.grad_clip), adam) if opt.grad_clip > 0 else adam


def ema_update(ema, params, step, decay):
  """ema <- ema + (1 - d)(params - ema), d = min(decay, (1 + k)/(10 + k)) at update k
  (tqch/ddpm-torch `EMA`); decay 0 keeps ema = params."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: e + (1.0 - d).astype(p.dtype) * (p - e), ema, params)


def create(params, tx):
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params))
