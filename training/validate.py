"""Every user-fixable config error, found before any work is done.

`check(config, mode, num_devices)` raises ConfigError with one line naming the
key and the allowed values; main.py prints it and exits with code 2.
"""
import os

from data import datasets
from diffusion import ddim
from diffusion import ddpm
from diffusion import psld as psld_lib
from diffusion import schedules
from diffusion import timesteps
from models import adapter
from models import registry
from sampling import edm
from sampling import psld as sampling_psld
from sampling import sde2
from training import build
from training import evaluate
from training import sample

MODES = ('train', 'sample', 'eval', 'convert')


class ConfigError(ValueError):
  pass


def _one_of(key, value, allowed):
  if value not in allowed:
    raise ConfigError(f'config.{key}={value!r} is not one of: {", ".join(map(str, allowed))}')


def _positive(key, value):
  if not value > 0:
    raise ConfigError(f'config.{key}={value!r} must be > 0')


def _divisible(key, value, num_devices):
  _positive(key, value)
  if value % num_devices:
    raise ConfigError(f'config.{key}={value} is not divisible by the {num_devices} devices')


def check_convert(config):
  from training import convert  # pylint: disable=g-import-not-at-top
  c = config.convert
  _one_of('model.name', config.model.name, tuple(convert.CONVERTERS))
  if not c.source:
    raise ConfigError('config.convert.source is empty: give the PyTorch checkpoint to convert')
  for key in ('source', 'verify_io'):
    if c[key] and not os.path.isfile(c[key]):
      raise ConfigError(f'config.convert.{key}={c[key]!r}: no such file')
  if c.verify_tol < 0 or c.verify_rtol < 0:
    raise ConfigError('config.convert.verify_tol and verify_rtol must be >= 0')
  try:
    convert.source_kwargs(config)
  except convert.ConvertError as e:
    raise ConfigError(str(e)) from None


def check_network(config):
  """An image family's kwargs, time input and dtype build a network with the right outputs."""
  m = config.model
  _one_of('model.dtype', m.dtype, tuple(registry.DTYPES))
  _one_of('model.head', m.head, ('', 'eps2', 'eps_res'))
  if m.time_input:
    _one_of('model.time_input', m.time_input, adapter.TIME_INPUTS)
  if not m.kwargs:
    raise ConfigError(f'config.model.kwargs is empty: {m.name} needs its constructor kwargs '
                      '(see the public configs in configs/)')
  try:
    registry.check_channels(m.name, build.model_kwargs(config))
  except (ValueError, TypeError) as e:
    raise ConfigError(f'config.model.kwargs: {" ".join(str(e).split())}') from None


def check(config, mode, num_devices):
  _one_of('mode (--mode)', mode, MODES)
  if mode == 'convert':
    check_convert(config)
  _one_of('data.name', config.data.name, datasets.DATASETS)
  _positive('data.size', config.data.size)
  _one_of('model.name', config.model.name, build.MODELS)
  _one_of('model.prediction', config.model.prediction, ddpm.PREDICTIONS)
  d = config.diffusion
  _one_of('diffusion.schedule', d.schedule, schedules.SCHEDULES)
  if d.num_steps < 2:
    raise ConfigError(f'config.diffusion.num_steps={d.num_steps!r} must be >= 2')
  try:
    build.schedule(build.schedule_kwargs(config))
  except ValueError as e:
    raise ConfigError(f'config.diffusion.beta_start/beta_end: {e}') from None
  _one_of('diffusion.var_type', d.var_type, ddpm.VAR_TYPES)
  if d.schedule == 'jsd' and config.model.prediction == 'eps':
    raise ConfigError("config.diffusion.schedule='jsd' has alphabar_N = 0, where an eps "
                      'prediction cannot give x0: use config.model.prediction=x0 or mean')
  _one_of('diffusion.psld.mode', d.psld.mode, psld_lib.MODES)
  try:
    psld_lib.PhaseSpaceProcess(**build.psld_kwargs(config))
  except ValueError as e:
    raise ConfigError(f'config.diffusion.psld: {e}') from None
  if config.model.name in build.ORACLES:
    if not config.model.oracle.means and config.data.name not in ('gaussian8', 'gaussian25'):
      raise ConfigError(f'config.model.oracle.means is empty and config.data.name='
                        f'{config.data.name!r} is not a mixture: give the mixture or use '
                        'gaussian8, gaussian25')
  if config.model.name == 'psld_oracle' and mode == 'eval':
    raise ConfigError("config.model.name='psld_oracle': --mode=eval has no PSLD likelihood yet; "
                      'use --mode=sample with psld_em, psld_splitting or psld_ode')
  if config.model.name == 'gmm_oracle':
    _one_of('model.oracle.process', config.model.oracle.process, ('vp', 've'))
    if config.model.oracle.process != 'vp':
      raise ConfigError("config.model.oracle.process='ve' cannot run the ddpm sampler or vlb, "
                        'which are variance preserving: use vp')
  if mode == 'train':
    if config.model.name in build.ORACLES:
      raise ConfigError(f'config.model.name={config.model.name!r} is exact and has nothing to '
                        'train: use --mode=sample or --mode=eval, or one of: toy_mlp')
    _one_of('training.objective', config.training.objective, ('ddpm',))
    try:
      datasets.check(config)
    except datasets.DataError as e:
      raise ConfigError(str(e)) from None
    if config.model.name in registry.FAMILIES:
      check_network(config)
    if config.model.head:
      raise ConfigError(f'config.model.head={config.model.head!r}: SN-DPM / NPR-DPM heads are '
                        'trained on a frozen trunk by the head objectives, which --mode=train '
                        'does not have yet; convert a released head checkpoint instead '
                        '(--mode=convert), or leave model.head empty')
    t = config.training
    _one_of('training.loss', t.loss, ddpm.LOSSES)
    if t.loss == 'mse' and d.var_type == 'learned':
      raise ConfigError("config.training.loss='mse' does not train a learned variance: "
                        'use kl or hybrid, or diffusion.var_type fixed-small / fixed-large')
    for key in ('num_steps', 'log_every', 'checkpoint_every', 'keep_checkpoints'):
      _positive(f'training.{key}', t[key])
    _divisible('training.batch_size', t.batch_size, num_devices)
    if not 0.0 <= t.label_dropout < 1.0:
      raise ConfigError(f'config.training.label_dropout={t.label_dropout!r} must be in [0, 1)')
    if not 0.0 <= t.ema_decay < 1.0:
      raise ConfigError(f'config.training.ema_decay={t.ema_decay!r} must be in [0, 1)')
    _positive('optimizer.lr', config.optimizer.lr)
    if config.optimizer.warmup_steps < 0 or config.optimizer.grad_clip < 0:
      raise ConfigError('config.optimizer.warmup_steps and grad_clip must be >= 0')
  if mode == 'sample':
    s = config.sampling
    _one_of('sampling.method', s.method, tuple(sample.SAMPLERS))
    try:
      timesteps.check_kind(s.trajectory)
    except ValueError:
      raise ConfigError(f'config.sampling.trajectory={s.trajectory!r} is not one of: '
                        f'{", ".join(timesteps.TRAJECTORIES)}') from None
    if s.method == 'sed_fork':
      _one_of('sampling.sed_fork.randn_like', s.sed_fork.randn_like, sde2.RANDN_LIKE)
      _one_of('sampling.sed_fork.last_noise', s.sed_fork.last_noise, sde2.LAST_NOISE)
      _positive('sampling.sed_fork.rho', s.sed_fork.rho)
      if s.sed_fork.randn_like == 'db' and s.sed_fork.S_max != float('inf'):
        raise ConfigError("config.sampling.sed_fork.randn_like='db' cannot take the jvp branch "
                          '(the fork crashes there): use ddb or S_max=inf')
    if s.method == 'ito_taylor2':
      _one_of('sampling.ito_taylor2.variant', s.ito_taylor2.variant, sde2.VARIANTS)
      _positive('sampling.ito_taylor2.rho', s.ito_taylor2.rho)
      _positive('sampling.ito_taylor2.probes', s.ito_taylor2.probes)
      if s.ito_taylor2.g < 0:
        raise ConfigError('config.sampling.ito_taylor2.g must be >= 0 (0 = the fork\'s g)')
    if (s.method in sample.PSLD_METHODS) != build.is_psld(config):
      raise ConfigError(f'config.sampling.method={s.method!r} ' + (
          'needs a PSLD model (model.name=psld_oracle or model.time_input=psld_t)'
          if s.method in sample.PSLD_METHODS else
          f'cannot run a PSLD model; use one of: {", ".join(sample.PSLD_METHODS)}'))
    if s.method in sample.PSLD_METHODS:
      k = s.psld
      _one_of('sampling.psld.stride_type', k.stride_type, sampling_psld.STRIDE_TYPES)
      if not 0 < k.eval_eps < 1:
        raise ConfigError(f'config.sampling.psld.eval_eps={k.eval_eps!r} must lie in (0, 1)')
      low = 2 if k.denoise else 1
      if s.method != 'psld_ode' and (s.steps < 0 or 0 < s.steps < low):
        raise ConfigError(f'config.sampling.steps={s.steps!r} must be >= {low} (0 = 50; '
                          'with denoise the last step is the denoising step)')
      if s.method == 'psld_ode':
        _positive('sampling.psld.rtol', k.rtol)
        _positive('sampling.psld.atol', k.atol)
      _one_of('sampling.psld.clf_time', k.clf_time, sampling_psld.CLF_TIMES)
      if k.clf_temp < 0:
        raise ConfigError(f'config.sampling.psld.clf_temp={k.clf_temp!r} must be >= 0 (0 = off)')
      if k.clf_temp and config.model.name != 'psld_oracle':
        raise ConfigError(
            f'config.sampling.psld.clf_temp={k.clf_temp!r} needs a time-conditioned classifier: '
            "dpmx has the PSLD oracle's exact one (model.name=psld_oracle); PSLD's NCSN++ "
            'classifier network is not in dpmx (use 0)')
    elif sample.var_type(config) is None:  # EDM and the second-order SDE samplers
      _one_of('sampling.discretization', s.discretization, edm.DISCRETIZATIONS)
      _one_of('sampling.noise_schedule', s.noise_schedule, edm.NOISE_SCHEDULES)
      _one_of('sampling.scaling', s.scaling, edm.SCALINGS)
      if s.steps < 0:
        raise ConfigError(f'config.sampling.steps={s.steps!r} must be >= 1 (0 = 18)')
      for key in ('rho', 'S_noise'):
        _positive(f'sampling.{key}', s[key])
      if min(s.S_churn, s.S_min, s.sigma_min, s.sigma_max) < 0 or s.S_max < s.S_min:
        raise ConfigError('config.sampling.S_churn, S_min, sigma_min, sigma_max must be >= 0 '
                          'and S_max >= S_min')
    elif not 0 <= s.steps <= d.num_steps:
      raise ConfigError(f'config.sampling.steps={s.steps!r} must be in 1..{d.num_steps} (0 = all)')
    else:
      _one_of('sampling.ddim_mean', s.ddim_mean, ddim.DDIM_MEANS)
      if s.eta < 0 or s.clip_sigma_idx < 0 or s.clip_pixel <= 0:
        raise ConfigError('config.sampling.eta and clip_sigma_idx must be >= 0, clip_pixel > 0')
      if sample.needs_ms_eps(config):
        _positive('sampling.ms_eps_samples', s.ms_eps_samples)
        if s.ms_eps_path and not os.path.isfile(s.ms_eps_path):
          raise ConfigError(f'config.sampling.ms_eps_path={s.ms_eps_path!r}: no such file')
    if s.ms_eps_path and (sample.var_type(config) is None or not sample.needs_ms_eps(config)):
      raise ConfigError(f'config.sampling.ms_eps_path is read only by analytic_ddpm, '
                        f'analytic_ddim and trajectory dp_seg, not by {s.method!r} with '
                        f'trajectory {s.trajectory!r} (leave it empty)')
    if s.avg_cov and sample.var_type(config) not in ('sn', 'npr'):
      raise ConfigError(f'config.sampling.avg_cov averages the elementwise covariance of '
                        f'sn_* / npr_* methods; {s.method!r} has none (leave it False)')
    _positive('sampling.num_samples', s.num_samples)
    _divisible('sampling.batch_size', s.batch_size, num_devices)
    if s.guidance < 0:
      raise ConfigError(f'config.sampling.guidance={s.guidance!r} must be >= 0 (0 = no guidance)')
  if mode == 'eval':
    e = config.eval
    _one_of('eval.method', e.method, evaluate.METHODS)
    _one_of('eval.metrics', e.metrics, ('bpd',))
    for key in ('samples', 'reference', 'inception_weights'):
      if e[key]:
        raise ConfigError(f'config.eval.{key} is for sample-quality metrics; '
                          "config.eval.method='vlb' reads none (leave it empty)")
    _positive('eval.num_examples', e.num_examples)
    _divisible('eval.batch_size', e.batch_size, num_devices)
    if not 0 <= e.steps <= d.num_steps:
      raise ConfigError(f'config.eval.steps={e.steps!r} must be in 1..{d.num_steps} (0 = all)')
