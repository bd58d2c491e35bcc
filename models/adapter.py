"""The model adapter: every network is called the same way by samplers and losses.

  model.apply(params, x_t, lam, y=None, *, train=False, rngs=None) -> dict

`x_t` is float32 NHWC images or [N, D] vectors in the schedule's native scaling,
`lam` the log-SNR per example (the canonical noise coordinate, float64 allowed),
`y` int32 labels (-1 = null label) or None. The dict uses a fixed vocabulary:
eps, x0, v, score, denoised, mean, eps2 (E[eps^2 | x], SN-DPM), eps_res
(E[(eps - eps_hat)^2 | x], NPR-DPM), var_values (Improved-DDPM learned
variance), log_prob (oracles only). The ModelSpec says what the model predicts
and how its noise input is formed; samplers apply its `round` rule.
"""
import dataclasses
from typing import Any, Callable, Optional

import jax.numpy as jnp

TIME_INPUTS = ('n', 'n-1', 'lam')
ROUNDS = ('none', 'index')


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  family: str                  # 'toy_mlp', 'gmm_oracle', ...
  prediction: str              # the main output: 'eps', 'x0', 'mean', 'v', ...
  outputs: tuple               # every key the apply dict holds
  time_input: str              # how lam becomes the network's input (TIME_INPUTS)
  round: str                   # 'none' or 'index' (discrete models: nearest grid index)
  N: Optional[int]             # grid size of a discrete model, None if continuous
  data_shape: tuple            # one example's shape
  num_classes: int = 0         # 0: unconditional
  data_range: Optional[tuple] = None  # (lo, hi) for clipping x0; None for vector data
  process: str = 'vp'          # 'vp' (x_t = alpha x0 + sigma eps) or 've' (alpha = 1)

  def to_json(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, d):
    d = dict(d)
    for k in ('outputs', 'data_shape', 'data_range'):
      if d.get(k) is not None:
        d[k] = tuple(d[k])
    return cls(**d)


@dataclasses.dataclass(frozen=True)
class Model:
  spec: ModelSpec
  init: Callable[[Any], Any]   # key -> params (float32 pytree)
  apply: Callable[..., dict]


def time_input(kind, lam, schedule=None):
  """The network's time input from the log-SNR: grid index n, n - 1, or lam itself."""
  if kind == 'lam':
    return lam
  if schedule is None:
    raise ValueError(f'time input {kind!r} needs the discrete schedule the model was trained on')
  n = schedule.n_from_lam(lam)
  if kind == 'n':
    return n
  if kind == 'n-1':
    return n - 1
  raise ValueError(f'unknown time input {kind!r}; allowed: {", ".join(TIME_INPUTS)}')


def split_outputs(out, spec):
  """Split a network's channel-stacked output into the spec's named outputs.

  The last axis holds the outputs in spec.outputs order, each with as many
  channels as the data (Improved-DDPM's [eps | var_values], SN-DPM's [eps | eps2]).
  """
  c = spec.data_shape[-1]
  return {k: out[..., i * c:(i + 1) * c] for i, k in enumerate(spec.outputs)}


def to_float32(x):
  return jnp.asarray(x, jnp.float32)
