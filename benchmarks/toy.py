"""Toy benchmarks: training throughput on 1 and 8 simulated CPU devices, DDPM sampling.

  python benchmarks/toy.py                # default run (~2-3 min on 2 CPU cores)
  python benchmarks/toy.py --quick        # fewer steps and repeats (< 1 min)
  python benchmarks/toy.py --steps 400    # timed training steps per measurement

Every measurement runs in its own subprocess (this file with --child=...), so each
has its own device count and its own peak RSS. The parent imports no jax.

Training (configs/toy.py defaults, gaussian8, global batch 512): the real
`training.train.make_update` step, fed per step by the real data source and
`mesh_lib.shard_batch` (so the host input pipeline is included), on a mesh of 1
and of 8 CPU devices. The first call (trace + compile + one step) less one median
step is the compile time; after a few more warm-up steps, interleaved timed windows of
(a) pipeline + update, (b) the update alone on one fixed pre-sharded batch and
(c) the input pipeline alone give medians over windows. At most 2 steps are in
flight (step k-1 is awaited once step k is dispatched; see `_bound_in_flight`).

Sampling: the full DDPM chain (T = N = 100 ancestral steps, `sampling.ddpm.sample`
jitted through `training.sample.sampler_fn`, float32) at batch 10,000 on 1 device,
for the toy MLP with randomly initialised parameters (throughput does not depend
on the parameter values) and for the exact gmm_oracle of gaussian8.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_TAG = 'BENCHMARK_RESULT '

TRAIN_BATCH = 512
SAMPLE_BATCH = 10_000


# ----------------------------------------------------------------------------- child side


def _peak_rss_mib():
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _child_setup(devices):
  """Import jax with x64 on (as main.py) and check the device count the parent asked for."""
  sys.path.insert(0, ROOT)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import jax
  jax.config.update('jax_enable_x64', True)
  jax.config.update('jax_platforms', 'cpu')
  if jax.device_count() != devices:
    raise SystemExit(f'child expected {devices} devices, got {jax.device_count()} '
                     f'(XLA_FLAGS={os.environ.get("XLA_FLAGS")!r})')
  return jax


def _bound_in_flight(jax, prev_metrics):
  """Wait for step k-1 once step k is dispatched: at most 2 steps are queued.

  The input pipeline of step k+1 still overlaps step k. Without a bound, the
  8-device CPU run on 2 cores deadlocks in XLA's all-reduce rendezvous once tens
  of steps are queued (abort after 40 s: "Expected 8 threads to join the
  rendezvous, but only 6 of them arrived on time").
  """
  if prev_metrics is not None:
    jax.block_until_ready(prev_metrics)


def _rate(run_window, steps):
  """steps/s of one call of run_window(steps), which blocks until its work is done."""
  t0 = time.perf_counter()
  run_window(steps)
  return steps / (time.perf_counter() - t0)


def child_train(devices, steps, windows, warmup):
  jax = _child_setup(devices)
  import numpy as np
  from configs import toy as toy_config
  from training import mesh as mesh_lib
  from training import train

  base_rss = _peak_rss_mib()
  config = toy_config.get_config()  # gaussian8, toy MLP defaults
  config.training.batch_size = TRAIN_BATCH
  mesh = mesh_lib.make_mesh()
  assert mesh.devices.size == devices
  run = train.setup(config, mesh)
  source, state, update, key = run.source, run.state, run.update, run.key
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))
  jax.block_until_ready(state)

  step = 0
  metrics = None

  def full(n):  # host pipeline + update, as in train.train's loop
    nonlocal state, step, metrics
    with jax.transfer_guard('disallow'):
      for _ in range(n):
        batch = mesh_lib.shard_batch(mesh, source.batch(step, jax.process_index()))
        prev, (state, metrics) = metrics, update(state, batch, key)
        _bound_in_flight(jax, prev)
        step += 1
    jax.block_until_ready((state, metrics))

  t0 = time.perf_counter()
  full(1)  # trace + compile + one step
  first_call_s = time.perf_counter() - t0
  full(warmup)

  fixed = mesh_lib.shard_batch(mesh, source.batch(0, jax.process_index()))
  assert fixed['x'].sharding == mesh_lib.data_sharding(mesh)

  def update_only(n):
    nonlocal state, metrics
    with jax.transfer_guard('disallow'):
      for _ in range(n):
        prev, (state, metrics) = metrics, update(state, fixed, key)
        _bound_in_flight(jax, prev)
    jax.block_until_ready((state, metrics))

  pipe_step = [10_000]

  def pipeline_only(n):
    out = None
    for _ in range(n):
      out = mesh_lib.shard_batch(mesh, source.batch(pipe_step[0], jax.process_index()))
      pipe_step[0] += 1
    jax.block_until_ready(out)

  update_only(max(warmup // 2, 1))
  per_window = max(steps // windows, 1)
  full_rates, upd_rates, pipe_rates = [], [], []
  for _ in range(windows):  # interleaved, so drift on a shared machine hits all three alike
    full_rates.append(_rate(full, per_window))
    upd_rates.append(_rate(update_only, per_window))
    pipe_rates.append(_rate(pipeline_only, per_window))
  loss = float(jax.device_get(metrics['loss']))
  if not np.isfinite(loss):
    raise SystemExit(f'non-finite loss {loss}')
  return dict(kind='train', devices=devices, batch=TRAIN_BATCH, num_params=num_params,
              first_call_s=first_call_s, warmup_steps=warmup + 1, windows=windows,
              steps_per_window=per_window, full_rates=full_rates, update_rates=upd_rates,
              pipeline_rates=pipe_rates, final_loss=loss, base_rss_mib=base_rss,
              peak_rss_mib=_peak_rss_mib(), steps_done=int(jax.device_get(state.step)))


def child_sample(model_name, repeats):
  jax = _child_setup(1)
  import numpy as np
  from configs import toy as toy_config
  from training import build
  from training import rng
  from training import sample as sample_lib

  base_rss = _peak_rss_mib()
  config = toy_config.get_config()
  config.model.name = model_name
  sched = build.schedule(build.schedule_kwargs(config))
  model = build.model(model_name, build.model_kwargs(config), sched)
  params = jax.jit(model.init)(rng.stream(config.seed, 'init'))  # random init; {} for the oracle
  fn, nfe = sample_lib.sampler_fn(config, model, sched)
  keys = rng.per_example_keys(jax.random.key(config.sampling.seed), 0, SAMPLE_BATCH)
  jax.block_until_ready((params, keys))

  t0 = time.perf_counter()
  x = jax.block_until_ready(fn(params, keys))  # trace + compile + one chain
  first_call_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    x = jax.block_until_ready(fn(params, keys))
    times.append(time.perf_counter() - t0)
  x = np.asarray(x)
  if x.shape != (SAMPLE_BATCH, 2) or x.dtype != np.float32 or not np.all(np.isfinite(x)):
    raise SystemExit(f'bad samples: shape {x.shape}, dtype {x.dtype}')
  return dict(kind='sample', model=model_name, devices=1, batch=SAMPLE_BATCH, nfe=int(nfe),
              first_call_s=first_call_s, times=times, sample_std=float(x.std()),
              base_rss_mib=base_rss, peak_rss_mib=_peak_rss_mib())


def run_child(spec):
  kind, _, arg = spec.partition(':')
  opts = json.loads(arg) if arg else {}
  if kind == 'train':
    return child_train(**opts)
  if kind == 'sample':
    return child_sample(**opts)
  raise SystemExit(f'unknown child {spec!r}')


# ----------------------------------------------------------------------------- parent side


def _child_env(devices):
  env = dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  env['XLA_FLAGS'] = ' '.join(flags + [f'--xla_force_host_platform_device_count={devices}'])
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
  return env


def _busy_cpu_s():
  """CPU seconds all processes on the machine have used (Linux /proc/stat), or None."""
  try:
    with open('/proc/stat') as f:
      v = [int(x) for x in f.readline().split()[1:]]
  except (OSError, ValueError):
    return None
  user, nice, system, _, _, irq, softirq = v[:7]  # idle, iowait left out
  return (user + nice + system + irq + softirq) / os.sysconf('SC_CLK_TCK')


def _children_cpu_s():
  import resource
  r = resource.getrusage(resource.RUSAGE_CHILDREN)
  return r.ru_utime + r.ru_stime


def spawn(kind, num_devices, timeout, **opts):
  """Run one measurement in a fresh process; its result dict, plus `background_cpu`:
  the mean number of cores other processes used meanwhile (contention check)."""
  spec = f'{kind}:{json.dumps(opts, separators=(",", ":"))}'
  cmd = [sys.executable, os.path.abspath(__file__), f'--child={spec}']
  busy0, own0 = _busy_cpu_s(), _children_cpu_s()
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, env=_child_env(num_devices), cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout)
  wall = time.perf_counter() - t0
  busy1, own1 = _busy_cpu_s(), _children_cpu_s()
  lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_TAG)]
  if proc.returncode or not lines:
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    raise SystemExit(f'child {spec} failed (exit {proc.returncode})')
  result = json.loads(lines[-1][len(RESULT_TAG):])
  result['process_wall_s'] = wall
  result['child_cpu_s'] = own1 - own0
  result['background_cpu'] = (None if busy0 is None else
                              max(busy1 - busy0 - (own1 - own0), 0.0) / wall)
  return result


def format_table(header, rows, markdown=False):
  cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
  if markdown:
    out = ['| ' + ' | '.join(c for c in cells[0]) + ' |',
           '|' + '|'.join('---' if i == 0 else '---:' for i in range(len(header))) + '|']
    out += ['| ' + ' | '.join(r) + ' |' for r in cells[1:]]
    return '\n'.join(out)
  fmt = lambda r: '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths)))
  return '\n'.join([fmt(cells[0]), '  '.join('-' * w for w in widths)] + [fmt(r) for r in cells[1:]])


def _load(r):
  b = r.get('background_cpu')
  return 'n/a' if b is None else f'{b:.2f}'


def train_rows(results):
  header = ['train', 'devices', 'global batch', 'compile s', 'steps/s', 'range', 'examples/s',
            'update-only steps/s', 'update-only examples/s', 'input ms/step',
            'import RSS MiB', 'peak RSS MiB', 'other load']
  rows = []
  for r in results:
    full, upd, pipe = (statistics.median(r[k]) for k in ('full_rates', 'update_rates',
                                                          'pipeline_rates'))
    compile_s = max(r['first_call_s'] - 1.0 / full, 0.0)
    rows.append(['toy MLP, gaussian8', r['devices'], r['batch'], f'{compile_s:.2f}',
                 f'{full:.1f}', f'{min(r["full_rates"]):.0f}-{max(r["full_rates"]):.0f}',
                 f'{full * r["batch"]:,.0f}', f'{upd:.1f}', f'{upd * r["batch"]:,.0f}',
                 f'{1e3 / pipe:.2f}', f'{r["base_rss_mib"]:.0f}', f'{r["peak_rss_mib"]:.0f}',
                 _load(r)])
  return header, rows


def sample_rows(results):
  header = ['sample (DDPM, float32)', 'devices', 'batch', 'NFE', 'compile s', 's/chain',
            'samples/s', 'net evals/s', 'import RSS MiB', 'peak RSS MiB', 'other load']
  rows = []
  for r in results:
    t = statistics.median(r['times'])
    compile_s = max(r['first_call_s'] - t, 0.0)
    name = 'toy MLP (random init)' if r['model'] == 'toy_mlp' else r['model']
    rows.append([name, r['devices'], f'{r["batch"]:,}', r['nfe'], f'{compile_s:.2f}',
                 f'{t:.2f}', f'{r["batch"] / t:,.0f}', f'{r["batch"] * r["nfe"] / t:,.0f}',
                 f'{r["base_rss_mib"]:.0f}', f'{r["peak_rss_mib"]:.0f}', _load(r)])
  return header, rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--steps', type=int, default=None,
                 help='timed training steps per measurement, split over the windows '
                      '(default 600, --quick 60)')
  p.add_argument('--quick', action='store_true', help='fewer steps and repeats (< 1 min)')
  p.add_argument('--json', default='', help='also write the raw results to this file')
  p.add_argument('--child', default='', help=argparse.SUPPRESS)
  args = p.parse_args(argv)

  if args.child:
    result = run_child(args.child)
    print(RESULT_TAG + json.dumps(result), flush=True)
    return

  if args.steps is not None and args.steps < 1:
    p.error('--steps must be positive')
  quick = args.quick
  steps = args.steps or (60 if quick else 600)
  windows = 3 if quick else 5
  warmup = 5 if quick else 20
  repeats = 1 if quick else 5
  timeout = 600

  load_before = os.getloadavg()[0]
  t_start = time.perf_counter()
  train_results, sample_results = [], []
  for devices in (1, 8):
    print(f'[train] {devices} device(s), {steps} timed steps ...', file=sys.stderr, flush=True)
    train_results.append(spawn('train', devices, timeout, devices=devices, steps=steps,
                               windows=windows, warmup=warmup))
  for model in ('toy_mlp', 'gmm_oracle'):
    print(f'[sample] {model}, batch {SAMPLE_BATCH}, {repeats} timed chains ...',
          file=sys.stderr, flush=True)
    sample_results.append(spawn('sample', 1, timeout, model_name=model, repeats=repeats))
  total = time.perf_counter() - t_start

  r0 = train_results[0]
  th, tr = train_rows(train_results)
  sh, sr = sample_rows(sample_results)
  cpus = os.cpu_count()
  print(f'\ndpmx toy benchmark ({"--quick" if quick else "default"}; {cpus} CPU cores visible; '
        f'CPU backend; x64 enabled)')
  print(f'training: {r0["num_params"]:,} params, median over {r0["windows"]} windows of '
        f'{r0["steps_per_window"]} steps after {r0["warmup_steps"]} warm-up steps\n')
  print(format_table(th, tr))
  print(f'\nsampling: full chain T = {sample_results[0]["nfe"]}, median over {repeats} chain(s) '
        f'after the compile call; toy MLP params are a random init\n')
  print(format_table(sh, sr))
  print('\ncompile s = first call - one median call; import RSS = peak RSS after the imports '
        '(TensorFlow is imported only by train.train, for its writer), peak RSS = at exit;\n'
        'other load = mean cores busy with other processes during the measurement '
        '(> ~0.1 means the numbers are disturbed)')
  print('\nmarkdown:\n')
  print(format_table(th, tr, markdown=True))
  print()
  print(format_table(sh, sr, markdown=True))
  busy = [f'{r.get("model", "train")}/{r["devices"]}dev: {r["background_cpu"]:.2f}'
          for r in train_results + sample_results if (r.get('background_cpu') or 0) > 0.1]
  if busy:
    print(f'\nWARNING: other processes kept CPU cores busy during some measurements '
          f'({", ".join(busy)} cores); on 2 cores this slows them a lot: rerun on a quiet machine.')
  print(f'\ntotal wall time {total:.0f} s')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'train': train_results, 'sample': sample_results, 'quick': quick,
                 'total_s': total, 'load_before': load_before}, f, indent=1)


if __name__ == '__main__':
  main()
