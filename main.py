"""dpmx command line: python main.py --config=configs/X.py --workdir=DIR --mode=MODE.

Every user error (bad flag, bad config value, missing checkpoint) prints one
line and exits with code 2 before any file is written.
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import jax  # noqa: E402
from ml_collections import config_flags  # noqa: E402

jax.config.update('jax_enable_x64', True)  # before any array exists

config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, samples, logs.')
flags.DEFINE_string('mode', 'train', 'train | sample | eval.')
flags.DEFINE_string('checkpoint', None, 'Checkpoint directory for sample/eval (default DIR/checkpoints).')
flags.DEFINE_string('coordinator', None, 'host:port of process 0 for multi-host runs.')
flags.DEFINE_integer('num_processes', None, 'Number of processes (multi-host).')
flags.DEFINE_integer('process_id', None, 'This process (multi-host).')
flags.DEFINE_integer('cpu_devices', None, 'Simulate this many CPU devices (jax_num_cpu_devices).')
FLAGS = flags.FLAGS


def fail(message):
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def parse_flags(argv):
  try:
    rest = FLAGS(argv)
    config = FLAGS.config
  except (flags.Error, KeyError, ValueError, TypeError, AttributeError, OSError) as e:
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
  from training import evaluate
  from training import inference
  from training import sample
  from training import train
  from training import validate

  if FLAGS.coordinator:
    jax.distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id,
                               initialization_timeout=120)
  # orbax logs every save at INFO; keep the console for progress and metrics.
  logging.get_absl_handler().addFilter(lambda r: '/orbax/' not in r.pathname)
  config, mode = FLAGS.config, FLAGS.mode
  try:
    validate.check(config, mode, jax.device_count())
  except validate.ConfigError as e:
    fail(str(e))
  logging.info('config:\n%s', config)
  try:
    if mode == 'train':
      train.train(config, FLAGS.workdir)
    elif mode == 'sample':
      sample.sample(config, FLAGS.workdir, FLAGS.checkpoint)
    else:
      evaluate.evaluate(config, FLAGS.workdir, FLAGS.checkpoint)
  except inference.InferenceError as e:
    fail(str(e))


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
