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

# What a network is fed for the log-SNR lam (see `time_input`).
TIME_INPUTS = ('n', 'n-1', 'iddpm_rescaled', '999t', 'lam', 'vdm_gamma', 'sigma', 'psld_t')
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
  """The network's time input for log-SNR `lam` (reference A.3.1, A.9; idode A.6; EDM A.2).

    n               grid index 1..N (EAD's CIFAR-10 LS/CS improved-diffusion models)
    n-1             0..N-1 (pytorch_diffusion / DDPM, ddpm-torch, the toy MLP)
    iddpm_rescaled  (n - 1) * 1000 / N (improved-diffusion's rescale_timesteps, ImageNet64)
    999t            999 * t with t = n / N (score_sde continuous VP models on the grid, CT2DT)
    lam             the log-SNR itself
    vdm_gamma       gamma = -lam (VDM's ScoreUNet rescales it internally)
    sigma           exp(-lam / 2), EDM's noise level of x / alpha (the preconditioner's input)
    psld_t          PSLD's forward time t of the phase-space process (not a Schedule): the PSLD
                    samplers pass t itself where the others pass lam
  Off-grid lam (continuous samplers) gives fractional n by piecewise-linear log alphabar.
  """
  if kind == 'lam':
    return lam
  if kind == 'vdm_gamma':
    return -lam
  if kind == 'sigma':
    return jnp.exp(-0.5 * lam)
  if kind == 'psld_t':
    return lam  # PSLD samplers (sampling/psld.py) pass the forward time t itself in the lam slot
  if kind not in TIME_INPUTS:
    raise ValueError(f'unknown time input {kind!r}; allowed: {", ".join(TIME_INPUTS)}')
  if schedule is None:
    raise ValueError(f'time input {kind!r} needs the discrete schedule the model was trained on')
  n = schedule.n_from_lam(lam)
  if kind == 'n':
    return n
  if kind == 'n-1':
    return n - 1
  if kind == 'iddpm_rescaled':
    return (n - 1) * (1000.0 / schedule.N)
  return 999.0 * n / schedule.N


def split_outputs(out, spec):
  """Split a network's channel-stacked output into the spec's named outputs.

  The last axis holds the outputs in spec.outputs order, each with as many
  channels as the data (Improved-DDPM's [eps | var_values], SN-DPM's [eps | eps2]).
  """
  c = spec.data_shape[-1]
  return {k: out[..., i * c:(i + 1) * c] for i, k in enumerate(spec.outputs)}


def to_float32(x):
  return jnp.asarray(x, jnp.float32)
