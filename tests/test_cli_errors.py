"""User errors on the command line (DESIGN.md, "Command-line contract").

A bad flag or config value fails before any work: exit code 2, exactly one
non-empty line on stderr, starting with 'error:', naming the offending key and,
for a choice, the allowed values; nothing is written (the workdir passed is not
even created).

Each case is a subprocess and start-up (imports) dominates, so all cases run
concurrently once per module and the parametrized tests check the results.
"""
import concurrent.futures
import os

import pytest

from tests import cli

EIGHT_DEVICES = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}

# id: (arguments after --config/--workdir, extra child env, words the line must
#      contain: the offending key first, then the allowed values).
# '{config}' / '{workdir}' entries replace the defaults (for the missing-flag cases).
CASES = {
    'schedule': (['--config.diffusion.schedule=bogus'], None,
                 ['diffusion.schedule', 'bogus', 'linear', 'cosine', 'jsd']),
    'dataset': (['--config.data.name=bogus'], None,
                ['data.name', 'bogus', 'gaussian8', 'gaussian25', 'swissroll']),
    'num_steps_zero': (['--config.training.num_steps=0'], None, ['training.num_steps']),
    'num_steps_negative': (['--config.training.num_steps=-5'], None,
                           ['training.num_steps', '-5']),
    'batch_not_divisible': (['--config.training.batch_size=12'], EIGHT_DEVICES,
                            ['training.batch_size', '12', '8']),
    'mode': (['--mode=bogus'], None, ['mode', 'bogus', 'train', 'sample', 'eval']),
    'oracle_train': (['--config.model.name=gmm_oracle', '--mode=train'], None,
                     ['model.name', 'gmm_oracle', 'toy_mlp']),
    'unknown_config_key': (['--config.training.bogus=1'], None,
                           ['training.bogus', 'num_steps', 'batch_size']),
    'unknown_flag': (['--bogus_flag=1'], None, ['bogus_flag']),
    'missing_workdir': (['{workdir}'], None, ['--workdir']),
    'missing_config_flag': (['{config}'], None, ['--config']),
    'missing_config_file': (['{config}', '--config=configs/does_not_exist.py'], None,
                            ['configs/does_not_exist.py']),
    'sample_without_checkpoint': (['--mode=sample'], None, ['checkpoint']),
    'missing_dataset': (['{config}', '--config=configs/ddpm_cifar10.py',
                         '--config.data.data_dir=/nonexistent_dpmx'], None,
                        ['data.name', 'cifar10', '/nonexistent_dpmx', 'python -m data.datasets']),
    'network_outputs': (['{config}', '--config=configs/digits.py', '--config.model.kwargs.out_ch=3'],
                        None, ['model.kwargs', 'ddpm_unet', 'channels']),
    'objective_not_here': (['{config}', '--config=configs/edm_cifar10.py'], None,
                           ['training.objective', 'edm', 'ddpm']),
    'convert_without_source': (['{config}', '--config=configs/convert.py:ddpm_unet',
                                '--mode=convert'], None, ['convert.source']),
    'convert_bad_kwargs': (['{config}', '--config=configs/convert.py:ddpm_unet', '--mode=convert',
                            '--config.convert.source=README.md',
                            '--config.convert.source_kwargs={bad'], None,
                           ['convert.source_kwargs', 'JSON']),
}


def _argv(case, workdir):
  args, _, _ = CASES[case]
  argv = [] if '{config}' in args else ['--config=configs/toy.py']
  argv += [] if '{workdir}' in args else [f'--workdir={workdir}']
  return argv + [a for a in args if a not in ('{config}', '{workdir}')]


@pytest.fixture(scope='module')
def results(tmp_path_factory):
  """case -> (CompletedProcess, the case's own folder, the workdir passed)."""
  base = tmp_path_factory.mktemp('cli_errors')

  def one(case):
    folder = base / case
    folder.mkdir()
    workdir = folder / 'work'
    return cli.run(*_argv(case, workdir), env=CASES[case][1], timeout=240), folder, workdir

  with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
    futures = {case: pool.submit(one, case) for case in CASES}
    return {case: f.result() for case, f in futures.items()}


@pytest.mark.parametrize('case', list(CASES))
def test_user_error(results, case):
  proc, folder, workdir = results[case]
  report = (f'argv: {" ".join(_argv(case, workdir))}\nexit code {proc.returncode}\n'
            f'--- stderr ---\n{cli.tail(proc.stderr)}\n--- stdout ---\n{cli.tail(proc.stdout)}')
  assert proc.returncode == 2, report
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1, f'expected exactly one non-empty stderr line\n{report}'
  line = lines[0]
  assert line.startswith('error:'), report
  for word in CASES[case][2]:
    assert word in line, f'{word!r} missing from the error line {line!r}'
  assert not workdir.exists(), f'{workdir} was created\n{report}'
  assert os.listdir(folder) == [], f'files left in {folder}: {os.listdir(folder)}'
