"""EDM's preconditioners (`EDM:training/networks.py`, reference A.2): the denoiser D(x; sigma).

  D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma), labels)

  class         c_skip            c_out                 c_in               c_noise
  VPPrecond     1                 -s                    1/sqrt(s^2+1)      (M-1) sigma_VP^-1(s)
  VEPrecond     1                 s                     1                  ln(s/2)
  iDDPMPrecond  1                 -s                    1/sqrt(s^2+1)      M-1-argmin_j |s - u_j|
  EDMPrecond    sd^2/(s^2+sd^2)   s sd/sqrt(s^2+sd^2)   1/sqrt(sd^2+s^2)   ln(s)/4
with s = sigma, sd = sigma_data,
sigma_VP^-1(s) = (sqrt(beta_min^2 + 2 beta_d ln(1 + s^2)) - beta_min) / beta_d,
computed in float32 in the original's operation order (x and sigma are cast to float32
first; sigma is one level per sample [B] or a scalar). `__call__(x, sigma, y=None,
train=False, augment_labels=None)`: x NHWC, y int labels [B] made one-hot inside (-1 = the
null label: all zeros, for classifier-free guidance; a float [B, label_dim] array is taken as
the class_labels themselves; None on a conditional net = all zeros, as the original), and
the result is D NHWC float32 (iDDPM: from the first img_channels of its 2*img_channels
outputs). The inner network (`model_type` built with `model_kwargs`) is the submodule
`model`. `use_fp16` is accepted and ignored: the original casts to float16 only on CUDA,
here `dtype` (float32 default, or bfloat16) sets the compute dtype.

iDDPMPrecond's `u` table (length M+1, u_M = 0, u_{j-1} = sqrt((u_j^2 + 1) /
max(abar(j-1)/abar(j), C_1) - 1), abar(j) = sin(pi j / (2 M (C_2 + 1)))^2) is held in params
as `u` behind stop_gradient: torch builds it in float32 with its own sin, which numpy cannot
reproduce bit for bit (init here is the same float32 recursion, within 2e-5 relative), so a
converted checkpoint carries the original's buffer and rounds exactly as it does.

`create(kwargs)`: kwargs = {'class_name': 'EDMPrecond' | 'VPPrecond' | 'VEPrecond' |
'iDDPMPrecond' (default EDMPrecond), the preconditioner's init kwargs exactly as an EDM
pickle stores them, with the inner network's kwargs flat beside them (model_type,
model_channels, ...)}; lists stand for tuples; the compute dtype is set with .clone(dtype=).
"""
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models.edm_unet import NETWORKS


class _Precond(nn.Module):
  """Shared by the four preconditioners: label handling, the inner network, D = ..."""

  def setup(self):
    self.model = NETWORKS[self.model_type](
        img_resolution=self.img_resolution, in_channels=self.img_channels,
        out_channels=self.img_channels * self.out_multiple, label_dim=self.label_dim,
        dtype=self.dtype, **self.model_kwargs)

  out_multiple = 1  # inner output channels per image channel

  def class_labels(self, y):
    """The original's class_labels: None (unconditional), zeros [1, L], or [B, L] float32."""
    if not self.label_dim:
      return None
    if y is None:
      return jnp.zeros((1, self.label_dim), jnp.float32)
    y = jnp.asarray(y)
    if y.ndim == 1 and jnp.issubdtype(y.dtype, jnp.integer):
      return jax.nn.one_hot(y, self.label_dim, dtype=jnp.float32)  # -1 -> all zeros
    return jnp.asarray(y, jnp.float32).reshape(-1, self.label_dim)

  def __call__(self, x, sigma, y=None, train=False, augment_labels=None):
    x = jnp.asarray(x, jnp.float32)
    sigma = jnp.asarray(sigma, jnp.float32).reshape(-1, 1, 1, 1)
    c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
    f = self.model((c_in * x).astype(self.dtype), c_noise.reshape(-1), self.class_labels(y),
                   augment_labels, train)
    return c_skip * x + c_out * f[..., :self.img_channels].astype(jnp.float32)


class VPPrecond(_Precond):
  """Variance preserving (Song et al.): sigma(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1)."""
  img_resolution: int
  img_channels: int
  label_dim: int = 0  # number of class labels, 0 = unconditional
  use_fp16: bool = False  # accepted, ignored (see the module docstring)
  beta_d: float = 19.9  # extent of the noise level schedule
  beta_min: float = 0.1  # initial slope of the noise level schedule
  M: int = 1000  # original number of timesteps of the DDPM formulation
  epsilon_t: float = 1e-5  # minimum t of training
  model_type: str = 'SongUNet'
  model_kwargs: Any = dataclasses.field(default_factory=dict)
  dtype: Any = jnp.float32

  def sigma(self, t):
    t = jnp.asarray(t, jnp.float32)
    return jnp.sqrt(jnp.exp(0.5 * self.beta_d * (t ** 2) + self.beta_min * t) - 1)

  def sigma_inv(self, sigma):
    sigma = jnp.asarray(sigma, jnp.float32)
    return (jnp.sqrt(self.beta_min ** 2 + 2 * self.beta_d * jnp.log(1 + sigma ** 2))
            - self.beta_min) / self.beta_d

  @property
  def sigma_min(self):
    """float32 sigma(epsilon_t), as the original's attribute (2^-10 at the defaults)."""
    return float(self.sigma(self.epsilon_t))

  @property
  def sigma_max(self):
    return float(self.sigma(1))

  def coefficients(self, sigma):
    return 1, -sigma, 1 / jnp.sqrt(sigma ** 2 + 1), (self.M - 1) * self.sigma_inv(sigma)


class VEPrecond(_Precond):
  """Variance exploding (Song et al.)."""
  img_resolution: int
  img_channels: int
  label_dim: int = 0
  use_fp16: bool = False
  sigma_min: float = 0.02  # minimum supported noise level
  sigma_max: float = 100  # maximum supported noise level
  model_type: str = 'SongUNet'
  model_kwargs: Any = dataclasses.field(default_factory=dict)
  dtype: Any = jnp.float32

  def coefficients(self, sigma):
    return 1, sigma, 1, jnp.log(0.5 * sigma)


def iddpm_u(M=1000, C_1=0.001, C_2=0.008):
  """iDDPMPrecond's u table in float32 (see the module docstring)."""
  f = np.float32
  abar = lambda j: np.square(np.sin(f(0.5 * np.pi) * f(j) / f(M) / f(C_2 + 1)))
  u = np.zeros(M + 1, f)
  for j in range(M, 0, -1):
    u[j - 1] = np.sqrt((u[j] * u[j] + f(1)) / np.maximum(abar(j - 1) / abar(j), f(C_1)) - f(1))
  return u


class iDDPMPrecond(_Precond):  # pylint: disable=invalid-name
  """Improved DDPM (Nichol & Dhariwal) on its discrete grid u_0 > ... > u_M = 0."""
  img_resolution: int
  img_channels: int
  label_dim: int = 0
  use_fp16: bool = False
  C_1: float = 0.001  # timestep adjustment at low noise levels
  C_2: float = 0.008  # timestep adjustment at high noise levels
  M: int = 1000  # original number of timesteps of the DDPM formulation
  model_type: str = 'DhariwalUNet'
  model_kwargs: Any = dataclasses.field(default_factory=dict)
  dtype: Any = jnp.float32

  out_multiple = 2

  def setup(self):
    super().setup()
    self.u = self.param('u', lambda key, shape: jnp.asarray(iddpm_u(self.M, self.C_1, self.C_2)),
                        (self.M + 1,))

  def sigma_index(self, sigma):
    """argmin_j |sigma - u_j| in float32 (the original's round_sigma(return_index=True)).

    The original takes the argmin of torch.cdist, which for 1001 entries forms distances as
    sqrt(s^2 + u^2 - 2 s u) through a matmul: within float32 rounding of a midpoint between
    two u_j it may pick the neighbour (about 0.07% of random sigmas on CPU; BLAS-dependent).
    Sigmas on the grid (iddpm discretization, the fixtures) round identically.
    """
    u = jax.lax.stop_gradient(self.u)
    sigma = jnp.asarray(sigma, jnp.float32)
    return jnp.argmin(jnp.abs(sigma[..., None] - u), axis=-1)

  def round_sigma(self, sigma):
    """The nearest u_j (call with `method='round_sigma'`)."""
    return jax.lax.stop_gradient(self.u)[self.sigma_index(sigma)]

  def coefficients(self, sigma):
    c_noise = self.M - 1 - self.sigma_index(sigma).astype(jnp.float32)
    return 1, -sigma, 1 / jnp.sqrt(sigma ** 2 + 1), c_noise


class EDMPrecond(_Precond):
  """EDM's own preconditioning (Karras et al. 2022, Table 1)."""
  img_resolution: int
  img_channels: int
  label_dim: int = 0
  use_fp16: bool = False
  sigma_min: float = 0  # minimum supported noise level
  sigma_max: float = float('inf')  # maximum supported noise level
  sigma_data: float = 0.5  # expected standard deviation of the training data
  model_type: str = 'DhariwalUNet'
  model_kwargs: Any = dataclasses.field(default_factory=dict)
  dtype: Any = jnp.float32

  def coefficients(self, sigma):
    sd = self.sigma_data
    c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
    c_out = sigma * sd / jnp.sqrt(sigma ** 2 + sd ** 2)
    c_in = 1 / jnp.sqrt(sd ** 2 + sigma ** 2)
    return c_skip, c_out, c_in, jnp.log(sigma) / 4


PRECONDS = {c.__name__: c for c in (VPPrecond, VEPrecond, iDDPMPrecond, EDMPrecond)}
# Inner-network kwargs the wrapper sets itself.
_DERIVED = ('img_resolution', 'in_channels', 'out_channels', 'label_dim', 'dtype')


def _tuples(v):
  if isinstance(v, (list, tuple)):
    return tuple(_tuples(x) for x in v)
  if isinstance(v, dict):
    return {k: _tuples(x) for k, x in v.items()}
  return v


def _fields(cls):
  return [f.name for f in dataclasses.fields(cls) if f.name not in ('parent', 'name')]


def create(kwargs):
  """The preconditioned network of family 'edm' (see the module docstring)."""
  kwargs = {k: _tuples(v) for k, v in dict(kwargs).items()}
  class_name = kwargs.pop('class_name', 'EDMPrecond')
  if class_name not in PRECONDS:
    raise ValueError(f'edm: class_name={class_name!r} is not one of: {", ".join(PRECONDS)}')
  cls = PRECONDS[class_name]
  own = set(_fields(cls)) - {'model_kwargs', 'dtype'}  # dtype: set with .clone(dtype=...)
  model_kwargs = {k: v for k, v in kwargs.items() if k not in own}
  model_type = kwargs.get('model_type', cls.model_type)
  if model_type not in NETWORKS:
    raise ValueError(f'edm: model_type={model_type!r} is not one of: {", ".join(NETWORKS)}')
  allowed = set(_fields(NETWORKS[model_type])) - set(_DERIVED)
  unknown = sorted(set(model_kwargs) - allowed)
  if unknown:
    raise ValueError(f'edm: unknown kwargs for {class_name} with {model_type}: '
                     f'{", ".join(unknown)}')
  for key in ('img_resolution', 'img_channels'):
    if key not in kwargs:
      raise ValueError(f'edm: {class_name} needs {key}')
  return cls(model_kwargs=model_kwargs, **{k: v for k, v in kwargs.items() if k in own})


def init_inputs(module, batch=1):
  """Example (x, sigma) for init / eval_shape: every parameter is created without labels."""
  r, c = module.img_resolution, module.img_channels
  return jnp.zeros((batch, r, r, c), jnp.float32), jnp.ones((batch,), jnp.float32)

