"""Interrupted training resumes exactly (DESIGN.md, "Determinism, precision and state").

A reference run trains N steps uninterrupted. The same command, interrupted
(SIGKILL, SIGTERM, or a save that never committed) and rerun, must restore the
latest committed step, train the remaining steps, and end with params,
ema_params and opt_state bit-identical to the reference.

Orbax writes a step into '<step>.orbax-checkpoint-tmp' (orbax 0.12: no suffix
after 'tmp'; older versions add '-<timestamp>') and renames it to '<step>' when
complete, so a committed step is a plain integer-named directory.
"""
import os
import re
import shutil
import signal
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests import cli

N = 500  # steps; long enough (10 saves of ~0.3 s each) that an interruption lands mid-run
EVERY = 50
TRAIN = ['--mode=train', '--config=configs/toy.py', f'--config.training.num_steps={N}',
         f'--config.training.checkpoint_every={EVERY}', '--config.training.batch_size=64',
         '--config.data.size=2048', '--config.training.log_every=50',
         '--config.training.ema_decay=0.999']  # a real EMA, so its restore matters too
TIMEOUT = 300


def train_argv(workdir):
  return [f'--workdir={workdir}', *TRAIN]


def describe(proc, read):
  out, err = read() if callable(read) else read
  return (f'exit code {proc.returncode}\n--- stdout ---\n{cli.tail(out)}\n'
          f'--- stderr ---\n{cli.tail(err)}')


def train(workdir):
  """Train (or resume) to N in a subprocess; the CompletedProcess."""
  proc = cli.run(*train_argv(workdir), timeout=TIMEOUT)
  assert proc.returncode == 0, describe(proc, (proc.stdout, proc.stderr))
  return proc


class Reference:
  """The uninterrupted run, started at once in the background (it overlaps the
  interrupted runs of the tests) and waited for when first needed."""

  def __init__(self, base):
    self.workdir = base / 'reference'
    self.proc, self.read = cli.popen(*train_argv(self.workdir), log_dir=base, name='reference')
    self.checked = False

  def wait(self):
    if not self.checked:
      try:
        self.proc.wait(timeout=TIMEOUT)
      except Exception:
        self.proc.kill()
        raise
      assert self.proc.returncode == 0, 'reference run failed\n' + describe(self.proc, self.read)
      assert cli.committed_steps(self.workdir)[-1] == N, os.listdir(self.workdir / 'checkpoints')
      self.checked = True
    return self.workdir


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  ref = Reference(tmp_path_factory.mktemp('resume_reference'))
  yield ref
  if ref.proc.poll() is None:
    ref.proc.kill()
    ref.proc.wait()


def start_until_committed(workdir, log_dir, name, after=0):
  """Start training into `workdir`; return (proc, read, step) as soon as a committed
  checkpoint with after < step < N exists. Fails (never passes vacuously) if the
  run ends first."""
  proc, read = cli.popen(*train_argv(workdir), log_dir=log_dir, name=name)
  deadline = time.monotonic() + TIMEOUT
  try:
    while True:
      steps = [s for s in cli.committed_steps(workdir) if after < s < N]
      if steps:
        return proc, read, steps[0]
      if proc.poll() is not None:
        pytest.fail(f'{name}: the run ended before a committed checkpoint in ({after}, {N}) was '
                    f'seen; make the run longer\n{describe(proc, read)}')
      if time.monotonic() > deadline:
        pytest.fail(f'{name}: no committed checkpoint after {TIMEOUT} s\n{describe(proc, read)}')
      time.sleep(0.01)
  except BaseException:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
    raise


def load(workdir, step):
  """{item: {path: np.ndarray}} of a checkpoint's params, ema_params and opt_state."""
  mgr = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  try:
    items = ('params', 'ema_params', 'opt_state')
    restored = mgr.restore(step, args=ocp.args.Composite(
        **{k: ocp.args.StandardRestore() for k in items}))
    return {k: {jax.tree_util.keystr(p): np.asarray(v)
                for p, v in jax.tree_util.tree_flatten_with_path(restored[k])[0]} for k in items}
  finally:
    mgr.close()


def assert_bit_identical(workdir, ref_workdir):
  got, want = load(workdir, N), load(ref_workdir, N)
  for item in want:
    assert got[item].keys() == want[item].keys(), item
    assert want[item], f'{item} is empty'
    for path, w in want[item].items():
      g = got[item][path]
      assert g.dtype == w.dtype and g.shape == w.shape, (item, path, g.dtype, w.dtype)
      diff = np.max(np.abs(g.astype(np.float64) - w.astype(np.float64))) if g.size else 0
      assert np.array_equal(g, w), f'{item}{path} differs from the uninterrupted run (max {diff})'


def assert_resumed(proc, step):
  """The rerun restored exactly `step` and trained step+1..N."""
  text = proc.stdout + proc.stderr
  restored = sorted({int(s) for s in re.findall(r'restored step (\d+)', text)})
  assert restored == [step], (f'expected "restored step {step}", found {restored}\n'
                              + describe(proc, (proc.stdout, proc.stderr)))
  assert f'training steps {step + 1}..{N}' in text, describe(proc, (proc.stdout, proc.stderr))


def leftovers(workdir):
  path = os.path.join(workdir, 'checkpoints')
  return sorted(n for n in os.listdir(path) if not cli.CKPT_STEP.match(n))


@pytest.mark.slow
def test_sigkill_then_resume_is_exact(tmp_path, reference):
  workdir = tmp_path / 'killed'
  proc, read, first = start_until_committed(workdir, tmp_path, 'killed')
  if proc.poll() is not None:
    pytest.fail(f'the run ended before SIGKILL could be sent\n{describe(proc, read)}')
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, describe(proc, read)
  committed = cli.committed_steps(workdir)
  assert committed and first <= committed[-1] < N, (committed, describe(proc, read))
  latest = committed[-1]
  print(f'first committed {first}; killed with {committed} committed, '
        f'{leftovers(workdir)} uncommitted')

  rerun = train(workdir)
  assert_resumed(rerun, latest)
  assert cli.committed_steps(workdir)[-1] == N
  assert_bit_identical(workdir, reference.wait())


def test_uncommitted_save_falls_back_to_previous_checkpoint(tmp_path, reference):
  # What a kill during the async save of the last step leaves: the previous
  # steps committed, the last one only as a temporary directory without its
  # commit markers.
  ckpts = tmp_path / 'work' / 'checkpoints'
  shutil.copytree(reference.wait() / 'checkpoints', ckpts)
  prev = N - EVERY
  assert cli.committed_steps(tmp_path / 'work')[-2:] == [prev, N]
  shutil.rmtree(ckpts / str(N))
  # The name this orbax writes, and the '-<timestamp>' form of other versions
  # (a step past N that must be ignored as well).
  for name in (f'{N}.orbax-checkpoint-tmp', f'{N + EVERY}.orbax-checkpoint-tmp-1795327718'):
    tmp = ckpts / name
    shutil.copytree(ckpts / str(prev), tmp)
    for root, _, files in os.walk(tmp):
      for f in files:
        if f == 'commit_success.txt':
          os.remove(os.path.join(root, f))
    meta = tmp / '_CHECKPOINT_METADATA'
    if meta.exists():
      meta.write_text(re.sub(r',?\s*"commit_timestamp_nsecs":\s*\d+', '', meta.read_text()))
      assert 'commit_timestamp_nsecs' not in meta.read_text()

  rerun = train(tmp_path / 'work')
  assert_resumed(rerun, prev)
  assert cli.committed_steps(tmp_path / 'work')[-1] == N
  assert f'{N}.orbax-checkpoint-tmp' not in leftovers(tmp_path / 'work')
  assert_bit_identical(tmp_path / 'work', reference.wait())


def terminate(proc, read, workdir, after):
  """SIGTERM a running training; check it saved and exited cleanly; the step it stopped at."""
  if proc.poll() is not None:
    pytest.fail(f'the run ended before SIGTERM could be sent\n{describe(proc, read)}')
  proc.send_signal(signal.SIGTERM)
  try:
    proc.wait(timeout=120)
  except Exception:
    proc.kill()
    proc.wait()
    pytest.fail(f'no exit within 120 s of SIGTERM\n{describe(proc, read)}')
  out, err = read()
  assert proc.returncode == 0, describe(proc, read)
  committed = cli.committed_steps(workdir)
  assert committed, describe(proc, read)
  stopped = committed[-1]
  assert stopped < N, (f'the run reached step {N} before SIGTERM took effect; make it longer\n'
                       + describe(proc, read))
  assert stopped > after, (committed, after, describe(proc, read))
  assert leftovers(workdir) == [], f'unfinished saves left behind: {leftovers(workdir)}'
  lines = [l for l in (out + err).splitlines() if 'SIGTERM' in l]
  assert lines, describe(proc, read)
  assert any(re.search(rf'\b{stopped}\b', l) for l in lines), (
      f'the SIGTERM line does not name the saved step {stopped}: {lines}')
  print(f'SIGTERM after step {after}: stopped at {stopped}: {lines}')
  return stopped


def wait_for_output(proc, read, text, timeout=TIMEOUT):
  deadline = time.monotonic() + timeout
  while text not in read()[0]:
    if proc.poll() is not None or time.monotonic() > deadline:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      pytest.fail(f'{text!r} never printed\n{describe(proc, read)}')
    time.sleep(0.01)
  return read()[0]


@pytest.mark.slow
def test_sigterm_saves_exits_cleanly_and_resumes_exactly(tmp_path, reference):
  workdir = tmp_path / 'terminated'
  # 1. SIGTERM after the first committed checkpoint.
  proc, read, first = start_until_committed(workdir, tmp_path, 'terminated')
  stopped = terminate(proc, read, workdir, after=first - 1)

  # 2. Resume, and SIGTERM again soon after the loop starts (typically during the
  # compilation of the first step): the stop step is then not one of the periodic
  # checkpoints, so only the SIGTERM path can have saved it.
  proc, read = cli.popen(*train_argv(workdir), log_dir=tmp_path, name='terminated_again')
  out = wait_for_output(proc, read, 'training steps')
  assert f'restored step {stopped}' in out + read()[1], describe(proc, read)
  assert f'training steps {stopped + 1}..{N}' in out, describe(proc, read)
  time.sleep(0.5)  # the SIGTERM handler is in place just after that line
  stopped = terminate(proc, read, workdir, after=stopped)

  # 3. Resume to the end: the same as never interrupted.
  rerun = train(workdir)
  assert_resumed(rerun, stopped)
  assert cli.committed_steps(workdir)[-1] == N
  assert_bit_identical(workdir, reference.wait())
