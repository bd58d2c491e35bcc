"""Conversion benchmark: time and peak RSS of --mode=convert on full-size CIFAR-10 checkpoints.

  python benchmarks/convert.py               # all five CIFAR-10 models (~2-4 min on 2 cores)
  python benchmarks/convert.py --only edm    # one or more config names (see MODELS)

No original code or public file is needed: each model's torch key/shape list is
recovered from its own converter. The converter is run once on an empty state dict
with `layout.Reader` patched so that every key it asks for is recorded, together with
the shape it asks for (Reader.get(key, shape)) or, for keys read without a shape
(Reader.conv / dense / norm), the shape of the Flax leaf the returned tensor lands on
in the expected tree handed to `finish`, transformed back to torch layout (conv kernel
[kh, kw, I, O] -> weight [O, I, kh, kw], dense kernel [I, O] -> [O, I]; Reader.dense
accepts [O, I] for Linear and 1x1-conv weights alike). EDM's resample_filter buffers
take their configured values (models/convert/edm.py `trace`).

Per model, two subprocesses (this file with --child=...): `make` fills the key/shape
list with float32 normal noise and writes it with torch.save (EDM: the pickle's
{'ema': {class_name, init_kwargs, state_dict}} structure, as a torch.save file, so the
restricted unpickler of .pkl files is not timed); `convert` then runs the real
`training.convert.convert(config, workdir)` (verify_io empty) on it, timing its
`checkpoint_io.load` and the family converter, and reports its peak RSS (ru_maxrss).
The parent imports no jax.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
import toy  # noqa: E402  (format_table, _busy_cpu_s, _children_cpu_s, _child_env)

RESULT_TAG = 'BENCHMARK_RESULT '

# name -> (config module, config argument)
MODELS = {
    'iddpm_unet (cifar10_ls)': ('configs.cifar10_ls', None),
    'ddpm_unet (ddpm_cifar10)': ('configs.ddpm_cifar10', None),
    'ddpm_torch_unet (ddpm_torch:cifar10)': ('configs.ddpm_torch', 'cifar10'),
    'ncsnpp (cifar10_vpsde)': ('configs.cifar10_vpsde', None),
    'edm (edm_cifar10:cond-vp)': ('configs.edm_cifar10', 'cond-vp'),
}


# ----------------------------------------------------------------------------- child side


def _setup():
  sys.path.insert(0, ROOT)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import jax
  jax.config.update('jax_enable_x64', True)
  jax.config.update('jax_platforms', 'cpu')
  return jax


def _config(name):
  import importlib
  mod, arg = MODELS[name]
  m = importlib.import_module(mod)
  return m.get_config(arg) if arg is not None else m.get_config()


def _leaves(tree, path=()):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _leaves(v, path + (str(k),))
  else:
    yield path, tree


def key_shapes(family, kwargs):
  """{torch key: shape} the family's converter reads for `kwargs`, and {key: fixed value}."""
  import importlib
  import numpy as np
  from models.convert import layout
  from training import convert as convert_lib

  module = importlib.import_module(convert_lib.CONVERTERS[family])
  asked = {}  # key -> torch shape, or None until resolved from the expected tree
  markers = {}  # id(returned placeholder) -> key
  captured = {}
  orig_get, orig_finish = layout.Reader.get, layout.Reader.finish

  def get(self, key, shape=None, dtype=np.float32):
    full = self.prefix + key
    if full in self.sd:
      return orig_get(self, key, shape, dtype)
    asked.setdefault(full, None if shape is None else tuple(shape))
    if shape is not None:
      return np.zeros(shape, dtype)
    marker = np.zeros((), dtype)
    markers[id(marker)] = full
    captured.setdefault('keep', []).append(marker)  # ids stay unique while alive
    return marker

  def finish(self, params=None, expected=None):
    captured['params'], captured['expected'] = params, expected
    return params

  layout.Reader.get, layout.Reader.finish = get, finish
  try:
    module.convert({}, kwargs)
  finally:
    layout.Reader.get, layout.Reader.finish = orig_get, orig_finish

  want = dict(_leaves(captured['expected']))
  for path, leaf in _leaves(captured['params']):
    key = markers.get(id(leaf))
    if key is None:
      continue
    shape = tuple(want[path].shape)
    if path[-1] == 'kernel' and len(shape) == 4:
      shape = (shape[3], shape[2], shape[0], shape[1])
    elif path[-1] == 'kernel':
      shape = shape[::-1]
    asked[key] = shape
  unresolved = [k for k, s in asked.items() if s is None]
  if unresolved:
    raise SystemExit(f'{family}: no shape found for {", ".join(unresolved)}')
  fixed = {}
  if family == 'edm':  # resample_filter buffers must equal the configured filter
    from models import edm_precond
    from models.convert import edm
    net = edm_precond.create(kwargs)
    _, buffers, _ = edm.trace(net, *edm_precond.init_inputs(net))
    fixed = {k: np.asarray(v, np.float32) for k, v in buffers.items()}
  return asked, fixed


def child_make(name, path):
  _setup()
  import numpy as np
  import torch
  config = _config(name)
  family, kwargs = config.model.name, config.model.kwargs.to_dict()
  shapes, fixed = key_shapes(family, kwargs)
  rng = np.random.default_rng(0)
  sd = {}
  for key, shape in shapes.items():
    value = fixed[key] if key in fixed else 0.02 * rng.standard_normal(shape, np.float32)
    sd[key] = torch.from_numpy(np.ascontiguousarray(value, np.float32))
  obj = sd
  if family == 'edm':
    init_kwargs = {k: v for k, v in kwargs.items() if k != 'class_name'}
    obj = {'ema': {'class_name': kwargs['class_name'], 'init_kwargs': init_kwargs,
                   'state_dict': sd}}
  torch.save(obj, path)
  return dict(kind='make', name=name, tensors=len(sd),
              num_params=int(sum(v.numel() for k, v in sd.items() if k not in fixed)),
              file_mib=os.path.getsize(path) / 2**20)


def child_convert(name, path, workdir):
  jax = _setup()
  import importlib
  import numpy as np
  from models.convert import checkpoint_io
  from training import convert as convert_lib

  base_rss = toy._peak_rss_mib()
  config = _config(name)
  family = config.model.name
  module = importlib.import_module(convert_lib.CONVERTERS[family])
  times = {}

  def timed(label, fn):
    def wrapper(*args, **kwargs):
      t0 = time.perf_counter()
      out = fn(*args, **kwargs)
      times[label] = times.get(label, 0.0) + time.perf_counter() - t0
      return out
    return wrapper

  checkpoint_io.load = timed('load', checkpoint_io.load)
  module.convert = timed('convert', module.convert)
  with config.unlocked():
    config.convert.source = path
    config.convert.verify_io = ''
  t0 = time.perf_counter()
  params = convert_lib.convert(config, workdir)
  jax.block_until_ready(params)
  total = time.perf_counter() - t0
  num_params = int(sum(np.size(v) for v in jax.tree.leaves(params)))
  return dict(kind='convert', name=name, family=family, load_s=times['load'],
              convert_s=times['convert'], total_s=total, num_params=num_params,
              base_rss_mib=base_rss, peak_rss_mib=toy._peak_rss_mib())


def run_child(spec):
  kind, _, arg = spec.partition(':')
  opts = json.loads(arg)
  if kind == 'make':
    return child_make(**opts)
  if kind == 'convert':
    return child_convert(**opts)
  raise SystemExit(f'unknown child {spec!r}')


# ----------------------------------------------------------------------------- parent side


def spawn(kind, timeout, **opts):
  spec = f'{kind}:{json.dumps(opts, separators=(",", ":"))}'
  cmd = [sys.executable, os.path.abspath(__file__), f'--child={spec}']
  busy0, own0 = toy._busy_cpu_s(), toy._children_cpu_s()
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, env=toy._child_env(1), cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout)
  wall = time.perf_counter() - t0
  busy1, own1 = toy._busy_cpu_s(), toy._children_cpu_s()
  lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_TAG)]
  if proc.returncode or not lines:
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    raise SystemExit(f'child {kind} {opts.get("name")} failed (exit {proc.returncode})')
  result = json.loads(lines[-1][len(RESULT_TAG):])
  result['process_wall_s'] = wall
  result['background_cpu'] = (None if busy0 is None else
                              max(busy1 - busy0 - (own1 - own0), 0.0) / wall)
  return result


def rows(results):
  header = ['model (config)', 'parameters', 'tensors', 'file MiB', 'load s', 'convert s',
            'rest s', 'total s', 'import RSS MiB', 'peak RSS MiB', 'other load']
  out = []
  for made, r in results:
    rest = r['total_s'] - r['load_s'] - r['convert_s']
    out.append([r['name'], f'{r["num_params"]:,}', made['tensors'], f'{made["file_mib"]:.1f}',
                f'{r["load_s"]:.2f}', f'{r["convert_s"]:.2f}', f'{rest:.2f}',
                f'{r["total_s"]:.2f}', f'{r["base_rss_mib"]:.0f}', f'{r["peak_rss_mib"]:.0f}',
                toy._load(r)])
  return header, out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--only', nargs='*', default=None,
                 help='family names to run (prefix of the model column, e.g. edm ncsnpp)')
  p.add_argument('--json', default='', help='also write the raw results to this file')
  p.add_argument('--child', default='', help=argparse.SUPPRESS)
  args = p.parse_args(argv)

  if args.child:
    print(RESULT_TAG + json.dumps(run_child(args.child)), flush=True)
    return

  names = [n for n in MODELS if not args.only or n.split()[0] in args.only]
  if not names:
    p.error(f'--only matches none of: {", ".join(n.split()[0] for n in MODELS)}')
  results = []
  tmp = tempfile.mkdtemp(prefix='dpmx_convert_bench_')
  try:
    for i, name in enumerate(names):
      path = os.path.join(tmp, f'model{i}.pt')
      workdir = os.path.join(tmp, f'run{i}')
      print(f'[make] {name} ...', file=sys.stderr, flush=True)
      made = spawn('make', 600, name=name, path=path)
      print(f'[convert] {name}: {made["tensors"]} tensors, {made["file_mib"]:.0f} MiB ...',
            file=sys.stderr, flush=True)
      r = spawn('convert', 600, name=name, path=path, workdir=workdir)
      if r['num_params'] != made['num_params']:
        raise SystemExit(f'{name}: wrote {made["num_params"]:,} parameters, converted '
                         f'{r["num_params"]:,}')
      results.append((made, r))
      os.remove(path)
      shutil.rmtree(workdir, ignore_errors=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)

  header, table = rows(results)
  print(f'\ndpmx conversion benchmark ({os.cpu_count()} CPU cores visible; CPU backend; '
        f'loadavg {" ".join(f"{x:.2f}" for x in os.getloadavg())} at the end)\n')
  print(toy.format_table(header, table))
  print('\nload s = checkpoint_io.load (torch.load weights_only + to numpy); convert s = the '
        'family converter;\nrest s = state-dict extraction, model build, eval_shape check, '
        'sha256 of the file and the orbax write;\ntotal s = training.convert.convert; '
        'import RSS = peak RSS after the imports; peak RSS = at exit;\nother load = mean cores '
        'busy with other processes during the convert child')
  print('\nmarkdown:\n')
  print(toy.format_table(header, table, markdown=True))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump([r for _, r in results], f, indent=1)


if __name__ == '__main__':
  main()
