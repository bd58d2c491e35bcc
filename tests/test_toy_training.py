"""End to end from the command line: train the toy MLP on gaussian8, sample, evaluate."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data import toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(workdir, mode, *overrides):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  cmd = [sys.executable, 'main.py', '--config=configs/toy.py', f'--workdir={workdir}',
         f'--mode={mode}', *overrides]
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.mark.slow
def test_toy_mlp_learns_gaussian8(tmp_path):
  """3,500 steps (about a minute on 2 cores) with EMA; fixed-small sampling."""
  train = ['--config.training.num_steps=3500', '--config.training.ema_decay=0.999',
           '--config.training.log_every=500', '--config.training.checkpoint_every=3500']
  out = _main(tmp_path, 'train', *train)
  assert 'trained 3500 steps' in out
  out = _main(tmp_path, 'sample', '--config.diffusion.var_type=fixed-small',
              '--config.sampling.num_samples=20000')
  assert 'NFE 100' in out
  npz = np.load(tmp_path / 'samples' / 'ddpm_100_0.npz')
  x, nfe = npz['arr_0'], int(npz['nfe'])
  assert x.shape == (20000, 2) and x.dtype == np.float32 and nfe == 100
  assert (tmp_path / 'samples' / 'ddpm_100_0.png').stat().st_size > 1000
  means, std, _ = toy.mixture('gaussian8')
  d = np.linalg.norm(x[:, None] - means[None], axis=-1)
  near = d.min(1) < 3 * std
  weights = np.bincount(d.argmin(1), minlength=8) / len(x)
  assert near.mean() >= 0.90, near.mean()
  assert np.abs(weights - 1 / 8).max() <= 0.03, weights
  _main(tmp_path, 'eval', '--config.eval.num_examples=2000')
  metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
  assert metrics['nfe'] == 100 and metrics['num_examples'] == 2000
  # A trained model's bound is far below that of N(0, I) on standardised data (2.05 bits/dim)
  # and, being a bound, above the data's entropy: (log2 8 + 2 * 1/2 log2(2 pi e s^2)) / 2
  # = -2.60 bits/dim for s = 0.02 / 1.41435 (the modes do not overlap).
  entropy = (3 + np.log2(2 * np.pi * np.e * std**2)) / 2
  assert entropy - 5 * metrics['bpd_stderr'] < metrics['bpd'] < 0.5, metrics
