"""Multi-host training through the real CLI (DESIGN.md, "Sharding", "Testing on CPU").

Two `python main.py --mode=train` processes on 127.0.0.1 (jax.distributed, gloo,
2 simulated CPU devices each: a 4-device 'data' mesh over 2 hosts) train the toy
config into one workdir; one process with 4 CPU devices trains the same config
into another. All three start at once (they overlap their start-up) and every
wait is bounded; on any failure every child still running is killed.

What the comparison proves. The train step draws its noise with the global batch
shape (row g of global batch k gets the same noise on any topology), so the
final params of the two runs agree only if the two hosts together fed exactly
the single host's rows, in order: process p's rows p*B/2..(p+1)*B/2-1 of every
global batch (data/source.py) on its own devices. That it really was two
processes is shown by their own stdout (both print 'training steps 1..20' and
'trained 20 steps'), by exactly one TensorBoard events file (only process 0
writes one; two processes that both believed they were process 0 would write
two, and race on the checkpoint), and by process 1's part of the orbax save.

Params agree to rtol 1e-5 (atol 1e-5 times the leaf's largest magnitude), not
bit for bit: the data-axis gradient all-reduce sums in a different order over
gloo than inside one process (float32 rounding; after 20 Adam steps the largest
difference is ~5e-7 of a leaf's scale). A larger Adam eps keeps Adam's
g/sqrt(v) from turning that rounding into ~lr*sign(g) flips on near-zero
gradients (DESIGN.md, "Testing on CPU").
"""
import glob
import os
import socket
import time

import jax
import numpy as np
import pytest
import orbax.checkpoint as ocp

from tests import cli

STEPS = 20
TRAIN = ['--mode=train', '--config=configs/toy.py', f'--config.training.num_steps={STEPS}',
         '--config.training.batch_size=64', '--config.data.size=1024',
         '--config.training.checkpoint_every=10', '--config.training.log_every=10',
         '--config.optimizer.eps=1e-3']
TIMEOUT = 240  # seconds for all three runs together (about 25 s on an idle 2-core machine)
RTOL = 1e-5



def free_port():
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def describe(name, proc, read):
  out, err = read()
  return (f'{name}: exit code {proc.returncode}\n--- stdout ---\n{cli.tail(out)}\n'
          f'--- stderr ---\n{cli.tail(err)}')


def wait_all(runs, multi, timeout):
  """Wait for every run. As soon as a multi-host process fails, kill the others:
  its peer would block in a collective or at the coordinator, and the single-host
  run is of no use any more."""
  deadline = time.monotonic() + timeout
  while any(p.poll() is None for p, _ in runs.values()):
    if any(runs[n][0].poll() not in (None, 0) for n in multi):
      for p, _ in runs.values():
        if p.poll() is None:
          p.kill()
    if time.monotonic() > deadline:
      raise TimeoutError(f'runs not finished after {timeout} s: '
                         + ', '.join(n for n, (p, _) in runs.items() if p.poll() is None))
    time.sleep(0.2)


def restore_params(workdir, step):
  """params at `step`, restored as training/checkpoint.py does, onto one local device
  (the saved 2-host sharding names devices this process does not have)."""
  path = os.path.join(workdir, 'checkpoints')
  tree = ocp.StandardCheckpointer().metadata(
      os.path.join(path, str(step), 'params')).item_metadata.tree
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one), tree)
  mgr = ocp.CheckpointManager(path)
  try:
    restored = mgr.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(target), step=ocp.args.JsonRestore()))
  finally:
    mgr.close()
  assert restored['step'] == {'step': step}, restored['step']
  return jax.device_get(restored['params'])


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
  multi_dir, single_dir = tmp_path / 'multi', tmp_path / 'single'
  coordinator = f'127.0.0.1:{free_port()}'
  argv = {
      f'process{i}': [f'--workdir={multi_dir}', *TRAIN, f'--coordinator={coordinator}',
                      '--num_processes=2', f'--process_id={i}', '--cpu_devices=2']
      for i in range(2)}
  argv['single'] = [f'--workdir={single_dir}', *TRAIN, '--cpu_devices=4']
  multi = ('process0', 'process1')
  runs = {}
  try:
    for name, args in argv.items():
      runs[name] = cli.popen(*args, log_dir=tmp_path, name=name)
    wait_all(runs, multi, TIMEOUT)
  finally:
    for proc, _ in runs.values():
      if proc.poll() is None:
        proc.kill()
      proc.wait(timeout=30)

  report = '\n'.join(describe(n, p, r) for n, (p, r) in runs.items())
  for name, (proc, _) in runs.items():
    assert proc.returncode == 0, report

  # Both processes ran the whole loop themselves.
  for name in multi:
    out = runs[name][1]()[0]
    assert f'training steps 1..{STEPS}' in out and f'trained {STEPS} steps' in out, report
  # Exactly one of them was process 0 (the only one with a TensorBoard writer) ...
  events = glob.glob(str(multi_dir / 'events.out.tfevents.*'))
  assert len(events) == 1, events
  # ... and process 1 wrote its part of the checkpoint (orbax's per-process files).
  assert glob.glob(str(multi_dir / 'checkpoints' / str(STEPS) / '*' / '*process_1*')), \
      sorted(os.listdir(multi_dir / 'checkpoints' / str(STEPS) / 'params'))
  assert cli.committed_steps(multi_dir) == cli.committed_steps(single_dir) == [10, STEPS]

  got, want = restore_params(multi_dir, STEPS), restore_params(single_dir, STEPS)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for (path, g), w in zip(jax.tree.leaves_with_path(got), jax.tree.leaves(want)):
    assert g.dtype == w.dtype == np.float32 and g.shape == w.shape, jax.tree_util.keystr(path)
    # rtol relative to the leaf's scale: a bias element at 4e-5 next to others at 1e-3
    # carries the leaf's absolute rounding (~1e-9), not its own relative one.
    np.testing.assert_allclose(g, w, rtol=RTOL, atol=RTOL * np.max(np.abs(w)),
                               err_msg=jax.tree_util.keystr(path))
