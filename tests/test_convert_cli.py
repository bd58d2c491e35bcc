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


@pytest.mark.slow
@pytest.mark.parametrize('family', sorted(CASES))
def test_command_line_convert_per_family(family, tmp_path):
  folder, fixture_id = CASES[family][-1]
  ckpt, kwargs, io_path, atol, rtol = simple_io(folder, fixture_id, tmp_path)
  args = [f'--config=configs/convert.py:{family}', f'--workdir={tmp_path / "w"}', '--mode=convert',
          f'--config.convert.source={ckpt}', f'--config.convert.verify_io={io_path}',
          f'--config.convert.verify_tol={atol}', f'--config.convert.verify_rtol={rtol}']
  if kwargs:
    args.append(f'--config.convert.source_kwargs={kwargs}')
  if family != 'ddpm_torch_toy':
    args.append('--config.data.image_size=16')
  r = cli.run(*args, timeout=300)
  assert r.returncode == 0, cli.tail(r.stderr)
  assert 'verify_io: max abs error' in r.stdout
  assert cli.committed_steps(str(tmp_path / 'w')) == [0]


def test_verification_failure_and_mismatch_exit_codes(tmp_path):
  """Outputs beyond the tolerance exit 1; a file for another architecture exits 2 with the
  missing / unexpected keys, before anything is written."""
  ckpt, kwargs, io_path, atol, rtol = simple_io('torch', 'eadpm_ddpm_unet/base', tmp_path)
  io = dict(np.load(io_path))
  io['out'] = io['out'] + 10 * atol
  np.savez(io_path, **io)
  base = ['--config=configs/convert.py:ddpm_unet', '--mode=convert', '--config.data.image_size=16',
          f'--config.convert.source={ckpt}']
  r = cli.run(*base, f'--workdir={tmp_path / "a"}', f'--config.convert.source_kwargs={kwargs}',
              f'--config.convert.verify_io={io_path}', f'--config.convert.verify_tol={atol}')
  assert r.returncode == 1, cli.tail(r.stderr)
  assert 'outputs differ' in r.stderr and 'verify_io: max abs error' in r.stdout
  head = json.dumps(dict(json.loads(kwargs), head_out_ch=3, mode='complex'))
  r = cli.run(*base, f'--workdir={tmp_path / "b"}', f'--config.convert.source_kwargs={head}')
  assert r.returncode == 2
  line = r.stderr.strip().splitlines()[-1]
  assert line.startswith('error: ') and 'missing keys' in line and 'before_out.' in line
  assert not os.path.exists(tmp_path / 'b' / 'checkpoints' / '0')


@pytest.mark.slow
def test_convert_then_sample_from_the_checkpoint_alone(tmp_path):
  ckpt, kwargs, io_path, atol, rtol = simple_io('torch', 'eadpm_iddpm_unet/base_out3', tmp_path)
  w = str(tmp_path / 'w')
  r = cli.run('--config=configs/convert.py:iddpm_unet', f'--workdir={w}', '--mode=convert',
              f'--config.convert.source={ckpt}', f'--config.convert.source_kwargs={kwargs}',
              '--config.data.image_size=16')
  assert r.returncode == 0, cli.tail(r.stderr)
  r = cli.run('--config=configs/convert.py:iddpm_unet', f'--workdir={w}', '--mode=sample',
              '--config.sampling.method=ddim', '--config.sampling.steps=5',
              '--config.sampling.num_samples=6', '--config.sampling.batch_size=6', timeout=300)
  assert r.returncode == 0, cli.tail(r.stderr)
  out = np.load(os.path.join(w, 'samples', 'ddim_5_0.npz'))
  assert out['arr_0'].shape == (6, 16, 16, 3) and out['arr_0'].dtype == np.uint8
  assert int(out['nfe']) == 5 and os.path.exists(os.path.join(w, 'samples', 'ddim_5_0.png'))


SAFETENSORS = [('ddpm_unet', 'torch', 'eadpm_ddpm_unet/head_complex'),
               ('iddpm_unet', 'torch', 'eadpm_iddpm_unet/base_learned_sigma'),
               ('score_sde_ddpmpp', 'torch', 'eadpm_score_sde_ddpmpp/head'),
               ('ddpm_torch_unet', 'torch', 'ddpm_torch_unet/release_ema'),
               ('psld_ncsnpp', 'psld', 'psld-ncsnpp-sota')]


@pytest.mark.parametrize('family,folder,fixture_id', SAFETENSORS)
def test_safetensors_give_the_same_parameters(family, folder, fixture_id, tmp_path):
  from safetensors.numpy import save_file
  from models.convert import checkpoint_io
  ckpt, kwargs, _, _, _ = simple_io(folder, fixture_id, tmp_path)
  sd = convert.state_dict(checkpoint_io.load(ckpt))
  path = str(tmp_path / 'weights.safetensors')
  save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, path)
  again = convert.state_dict(checkpoint_io.load(path))
  assert sorted(again) == sorted(sd)
  c = convert_config.get_config(family)
  c.data.image_size = 16
  params = []
  for source in (ckpt, path):
    c.convert.source, c.convert.source_kwargs, c.convert.verify_io = source, kwargs, ''
    params.append(convert.convert(c, str(tmp_path / f'w{len(params)}')))
  import jax
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), *params)


@pytest.mark.slow
def test_conditional_edm_samples_with_guidance(tmp_path):
  """A converted class-conditional EDM network samples with classifier-free guidance: labels in
  arr_1, twice the network evaluations of the unguided Heun sampler (2N - 1 per sample)."""
  ckpt, _, _, _, _ = simple_io('edm', 'edm-ddpmpp-cond', tmp_path)
  w = str(tmp_path / 'w')
  r = cli.run('--config=configs/convert.py:edm', f'--workdir={w}', '--mode=convert',
              f'--config.convert.source={ckpt}', '--config.data.image_size=16')
  assert r.returncode == 0, cli.tail(r.stderr)
  r = cli.run('--config=configs/convert.py:edm', f'--workdir={w}', '--mode=sample',
              '--config.sampling.method=edm_heun', '--config.sampling.steps=4',
              '--config.sampling.guidance=1.5', '--config.sampling.num_samples=8',
              '--config.sampling.batch_size=8', timeout=300)
  assert r.returncode == 0, cli.tail(r.stderr)
  out = np.load(os.path.join(w, 'samples', 'edm_heun_4_0.npz'))
  assert out['arr_0'].shape == (8, 16, 16, 3) and out['arr_0'].dtype == np.uint8
  assert out['arr_1'].dtype == np.int32 and set(out['arr_1']) <= set(range(5))
  assert int(out['nfe']) == 2 * (2 * 4 - 1)
