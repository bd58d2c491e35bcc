"""Run `python main.py ...` in a subprocess, as a user would (tests of the CLI).

The child runs from the repository root with the test process's environment
minus XLA_FLAGS / JAX_NUM_CPU_DEVICES (the parent's simulated devices must not
leak into it), unless `env` adds them back.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CKPT_STEP = re.compile(r'^\d+$')


def child_env(extra=None):
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_NUM_CPU_DEVICES')}
  env['PYTHONUNBUFFERED'] = '1'
  env.update(extra or {})
  return env


def command(*args):
  return [sys.executable, 'main.py', *args]


def run(*args, env=None, timeout=180):
  """CompletedProcess (text stdout/stderr) of `python main.py *args`."""
  return subprocess.run(command(*args), cwd=ROOT, env=child_env(env), capture_output=True,
                        text=True, timeout=timeout)


def popen(*args, log_dir, name='run', env=None):
  """A running `python main.py *args` whose stdout/stderr go to files in `log_dir`
  (files, not pipes: a chatty child can never block on a full pipe).
  Returns (process, read) where read() -> (stdout, stderr) so far."""
  out_path = os.path.join(log_dir, f'{name}.stdout')
  err_path = os.path.join(log_dir, f'{name}.stderr')
  with open(out_path, 'w') as out, open(err_path, 'w') as err:
    proc = subprocess.Popen(command(*args), cwd=ROOT, env=child_env(env), stdout=out, stderr=err,
                            text=True)

  def read():
    with open(out_path) as o, open(err_path) as e:
      return o.read(), e.read()

  return proc, read


def committed_steps(workdir):
  """Sorted steps of the committed (plain integer-named) orbax step directories."""
  path = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(path):
    return []
  return sorted(int(n) for n in os.listdir(path)
                if CKPT_STEP.match(n) and os.path.isdir(os.path.join(path, n)))


def tail(text, n=30):
  return '\n'.join(text.splitlines()[-n:])
