"""dpmx command line: python main.py --config=configs/X.py --workdir=DIR --mode=MODE.

Every user error (bad flag, bad config value, missing checkpoint) prints one
line and exits with code 2 before any file is written.
"""
import os
import runpy
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # TF (tensorboard writer only): quiet start-up

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import jax  # noqa: E402
import ml_collections  # noqa: E402
from ml_collections import config_flags  # noqa: E402

jax.config.update('jax_enable_x64', True)  # before any array exists

config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, samples, logs.')
flags.DEFINE_string('mode', 'train', 'train | sample | eval | convert.')
flags.DEFINE_string('checkpoint', None, 'Checkpoint directory for sample/eval (default DIR/checkpoints).')
flags.DEFINE_string('coordinator', None, 'host:port of process 0 for multi-host runs.')
flags.DEFINE_integer('num_processes', None, 'Number of processes (multi-host).')
flags.DEFINE_integer('process_id', None, 'This process (multi-host).')
flags.DEFINE_integer('cpu_devices', None, 'Simulate this many CPU devices (jax_num_cpu_devices).')
FLAGS = flags.FLAGS


def fail(message, code=2):
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(code)


def unknown_key(argv):
  """The first --config.KEY override naming no key of the config file, explained."""
  spec = next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), None)
  if spec is None:
    return None
  path, _, arg = spec.partition(':')
  config = runpy.run_path(path)['get_config'](*([arg] if arg else []))
  for a in argv:
    if not a.startswith('--config.'):
      continue
    parts = a[len('--config.'):].split('=', 1)[0].split('.')
    node = config
    for i, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        parent = '.'.join(['config'] + parts[:i])
        keys = ', '.join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else 'no keys'
        return f'unknown config key config.{".".join(parts)}; {parent} has: {keys}'
      node = node[part]
  return None


def parse_flags(argv):
  try:
    rest = FLAGS(argv)
    config = FLAGS.config
    if config is not None:
      config.keys()  # a config file that failed to load raises here
  except (KeyError, AttributeError, TypeError) as e:
    fail(unknown_key(argv) or ' '.join(str(e).split()))
  except (flags.Error, ValueError, OSError) as e:
    fail(' '.join(str(e).split()))
  if config is None:
    fail('--config=configs/NAME.py is required')
  if not FLAGS.workdir:
    fail('--workdir=DIR is required')
  if len(rest) > 1:
    fail(f'unexpected arguments: {" ".join(rest[1:])}')
  if FLAGS.cpu_devices is not None and FLAGS.cpu_devices < 1:
    fail(f'--cpu_devices={FLAGS.cpu_devices} must be >= 1')
  return rest


def main(_):
  if FLAGS.cpu_devices is not None:  # before the backend starts: before any project import
    jax.config.update('jax_num_cpu_devices', FLAGS.cpu_devices)
  from data import datasets
  from training import evaluate
  from training import inference
  from training import sample
  from training import validate

  if FLAGS.coordinator:
    jax.distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id,
                               initialization_timeout=120)
  # orbax logs every save at INFO; keep the console for progress and metrics.
  logging.get_absl_handler().addFilter(lambda r: '/orbax/' not in r.pathname)
  config, mode = FLAGS.config, FLAGS.mode
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)  # the backend's start-up notes are not errors
  num_devices = jax.device_count()
  logging.set_verbosity(verbosity)
  try:
    validate.check(config, mode, num_devices)
  except validate.ConfigError as e:
    fail(str(e))
  try:
    if mode == 'train':
      from training import train  # imports TensorFlow (the TensorBoard writer)
      logging.info('config:\n%s', config)
      train.train(config, FLAGS.workdir)
    elif mode == 'convert':
      from training import convert  # noqa: F811
      convert.convert(config, FLAGS.workdir)
    elif mode == 'sample':
      sample.sample(config, FLAGS.workdir, FLAGS.checkpoint)
    else:
      evaluate.evaluate(config, FLAGS.workdir, FLAGS.checkpoint)
  except (inference.InferenceError, datasets.DataError) as e:
    fail(str(e))
  except ValueError as e:  # conversion: unreadable, unsafe or mismatched checkpoints
    from models.convert import checkpoint_io
    from training import convert
    if not isinstance(e, (convert.ConvertError, checkpoint_io.CheckpointError)):
      raise
    fail(str(e), code=1 if isinstance(e, convert.VerifyError) else 2)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
