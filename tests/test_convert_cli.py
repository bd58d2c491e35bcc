"""--mode=convert end to end: every whole-network fixture through `training.convert` with
its MANIFEST's kwargs and `verify_io` on its inputs/outputs rewritten into the simple
format (x, t, y, out); one real `main.py` subprocess per family; then `--mode=sample`
from the converted checkpoint alone."""
import json
import os

import numpy as np
import pytest

from configs import convert as convert_config
from tests import cli
from tests import fixtures
from training import convert

# family (configs/convert.py) -> [(fixture folder, fixture id)]
CASES = {
    'ddpm_unet': [('torch', 'eadpm_ddpm_unet/base'), ('torch', 'eadpm_ddpm_unet/head_simple'),
                  ('torch', 'eadpm_ddpm_unet/head_complex')],
    'iddpm_unet': [('torch', 'eadpm_iddpm_unet/base_out3'),
                   ('torch', 'eadpm_iddpm_unet/head_simple_out3'),
                   ('torch', 'eadpm_iddpm_unet/base_learned_sigma'),
                   ('torch', 'eadpm_iddpm_unet/head_complex_learned_sigma')],
    'score_sde_ddpmpp': [('torch', 'eadpm_score_sde_ddpmpp/base'),
                         ('torch', 'eadpm_score_sde_ddpmpp/head')],
    'ddpm_torch_unet': [('torch', 'ddpm_torch_unet/release_ema'),
                        ('torch', 'ddpm_torch_unet/trainer_7')],
    'ddpm_torch_toy': [('torch', 'ddpm_torch_toy/ddpm_gaussian8')],
    'psld_ncsnpp': [('psld', 'psld-ncsnpp-sota'), ('psld', 'psld-ncsnpp-yamldefault')],
    'edm': [('edm', n) for n in ('edm-ddpmpp-cond', 'edm-ncsnpp-uncond', 'edm-adm-cond',
                                 'baseline-ddpmpp-uncond-vp', 'baseline-ncsnpp-uncond-ve',
                                 'baseline-adm-cond-iddpm')],
}


def simple_io(folder, fixture_id, tmp_path):
  """(checkpoint path, source_kwargs JSON or '', io .npz path, atol, rtol) of one fixture."""
  root = fixtures.root(folder)
  e = fixtures.entry(folder, fixture_id)
  if folder == 'torch':
    io = np.load(os.path.join(root, e['io']['file']))
    t = io['time_cond'] if 'time_cond' in io.files else io['t']
    out = io['out'] if 'out' in io.files else io['out_ema']
    arrays, ckpt = dict(x=io['x'], t=t, out=out), os.path.join(root, e['checkpoint']['file'])
    kwargs = e['constructor'].get('kwargs') or e['constructor']['config']
    tol = e['tolerance'].get('ema', e['tolerance'])['suggested']
    atol, rtol = tol['atol'], tol['rtol']
  elif folder == 'psld':
    io = np.load(os.path.join(root, f'{fixture_id}.npz'))
    arrays = dict(x=io['u'], t=io['t'], out=io['eps_ema'])
    ckpt, kwargs = os.path.join(root, f'{fixture_id}.ckpt'), e['config']['diffusion']
    atol, rtol = e['suggested_tolerance']['eps_max_abs'], 0.0
  else:
    io = np.load(os.path.join(root, f'{fixture_id}.npz'))
    arrays = dict(x=io['x'], t=io['sigma'], out=io['D_x'])
    if 'class_labels' in io.files:
      arrays['y'] = io['class_labels']
    ckpt, kwargs = os.path.join(root, f'{fixture_id}.pkl'), None
    # The MANIFEST's rule |D - D_x| <= 1e-4 |c_out| + 1e-5 max|x|, at its loosest sample.
    atol = float(1e-4 * np.abs(io['c_out']).max() + 1e-5 * np.abs(io['x']).max())
    rtol = 0.0
  path = str(tmp_path / f'{fixture_id.replace("/", "_")}_io.npz')
  np.savez(path, **arrays)
  return ckpt, json.dumps(kwargs) if kwargs else '', path, atol, rtol


def family_config(family, ckpt, kwargs, io_path, atol, rtol):
  c = convert_config.get_config(family)
  c.convert.source, c.convert.source_kwargs = ckpt, kwargs
  c.convert.verify_io, c.convert.verify_tol, c.convert.verify_rtol = io_path, atol, rtol
  if family != 'ddpm_torch_toy':
    c.data.image_size = 16  # the fixtures' resolution
  return c


@pytest.mark.slow
@pytest.mark.parametrize('family,folder,fixture_id',
                         [(f, d, i) for f, cases in CASES.items() for d, i in cases])
def test_every_fixture_converts_and_verifies(family, folder, fixture_id, tmp_path, capsys):
  ckpt, kwargs, io_path, atol, rtol = simple_io(folder, fixture_id, tmp_path)
  convert.convert(family_config(family, ckpt, kwargs, io_path, atol, rtol), str(tmp_path / 'w'))
  out = capsys.readouterr().out
  assert 'verify_io: max abs error' in out
  assert cli.committed_steps(str(tmp_path / 'w')) == [0]
