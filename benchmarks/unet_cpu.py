"""DDPM CIFAR-10 UNet on CPU: dpmx (JAX) against PyTorch eager (diffusers), side by side.

  python benchmarks/unet_cpu.py                  # default run (about 3.5 min on 2 idle cores)
  python benchmarks/unet_cpu.py --quick          # fewer rounds, DDIM timed over 10 steps (~2 min)
  python benchmarks/unet_cpu.py --xla-flags='--xla_cpu_enable_fast_math=true'  # JAX children
  python benchmarks/unet_cpu.py --tries --quick  # the JAX steps under each entry of TRIES (~13 min)

Every measurement runs in its own subprocess (this file with --child=...), as in
benchmarks/toy.py, so each has its own peak RSS; the parent imports neither jax nor torch.

Model: configs/ddpm_cifar10.py (models/ddpm_unet.py, Ho et al.'s CIFAR-10 UNet, 35.7M
parameters) at batch 8, 32x32, float32, one CPU device; PyTorch: diffusers `UNet2DModel`
configured like google/ddpm-cifar10-32 (DIFFUSERS_UNET), `torch.set_num_threads(2)`.

Training: JAX runs the real `training.train.make_update` step with `training.build.loss_fn`
(eps-mse DDPM loss, dropout 0.1, Adam 2e-4 with the config's warm-up, global-norm clip 1,
EMA 0.9999) on one fixed batch; `train.setup` is not used because it also opens the CIFAR-10
data source. PyTorch runs the same step: the same loss, torch.optim.Adam with the same
warm-up (LambdaLR), clip_grad_norm_(1.0) and an EMA of the parameters.
Sampling step: one network evaluation (eval mode, no gradient), what each sampler step costs.
DDIM: the whole eta = 0 chain (JAX: `training.sample.sampler_fn`, method ddim, one jitted
scan; PyTorch: diffusers DDIMScheduler + UNet2DModel in a Python loop).
Matmul: a 4096^2 float32 matmul in each framework, the machine's ceiling for the ratio.
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import toy  # noqa: E402  (shared child/parent helpers)

BATCH = 8
MATMUL_N = 4096
DDIM_STEPS = 50
TORCH_THREADS = 2

# google/ddpm-cifar10-32's UNet2DModel config: the same architecture as configs/ddpm_cifar10.py.
DIFFUSERS_UNET = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'),
    norm_eps=1e-6, norm_num_groups=32, downsample_padding=0, flip_sin_to_cos=False,
    freq_shift=1, attention_head_dim=None, dropout=0.1, act_fn='silu')

# --tries: (label, extra XLA flags, model.dtype) for the JAX training and sampling steps.
# jaxlib 0.10.2's CPU default sends convolutions, dots and reductions to YNNPACK
# (ynn_fusion_type = individual_convolution, individual_dot, reduce).
TRIES = (
    ('default', '', 'float32'),
    ('bfloat16 compute', '', 'bfloat16'),
    ('YNNPACK fuses elementwise ops too', '--xla_cpu_experimental_ynn_fusion_type=+eltwise',
     'float32'),
    ('reductions not in YNNPACK', '--xla_cpu_experimental_ynn_fusion_type=-reduce', 'float32'),
    ('no YNNPACK (Eigen convolutions and dots)', '--xla_cpu_experimental_ynn_fusion_type=',
     'float32'),
    ('XNNPACK dot/eltwise/reduce fusions',
     '--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce', 'float32'),
    ('oneDNN convolutions and dots',
     '--xla_cpu_use_onednn=true --xla_cpu_experimental_ynn_fusion_type=', 'float32'),
    ('concurrency-optimized scheduler',
     '--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_CONCURRENCY_OPTIMIZED', 'float32'),
    ('fast math', '--xla_cpu_enable_fast_math=true', 'float32'),
    ('512-bit vectors in XLA loops', '--xla_cpu_prefer_vector_width=512', 'float32'),
    ('single-threaded Eigen', '--xla_cpu_multi_thread_eigen=false', 'float32'),
)


# ----------------------------------------------------------------------------- child side


def _jax_config(dtype='float32', ddim_steps=DDIM_STEPS):
  from configs import ddpm_cifar10
  config = ddpm_cifar10.get_config()
  config.training.batch_size = BATCH
  config.model.dtype = dtype
  config.sampling.method = 'ddim'
  config.sampling.steps = ddim_steps
  config.sampling.eta = 0.0
  config.sampling.batch_size = BATCH
  return config


def _jax_model(dtype, ddim_steps=DDIM_STEPS):
  jax = toy._child_setup(1)
  from training import build
  config = _jax_config(dtype, ddim_steps)
  sched = build.schedule(build.schedule_kwargs(config))
  model = build.model(config.model.name, build.model_kwargs(config), sched)
  return jax, config, sched, model


def _num_params(jax, tree):
  import numpy as np
  leaves = jax.tree.leaves(tree)
  return sum(int(np.prod(p.shape)) for p in leaves), len(leaves)


def _compile(fn, *args):
  """(compiled, seconds, XLA cost-analysis FLOPs) of jitted fn at args."""
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  seconds = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return compiled, seconds, float(cost['flops'])


def _fixed_images(seed=0):
  import numpy as np
  return np.random.default_rng(seed).uniform(-1, 1, (BATCH, 32, 32, 3)).astype(np.float32)


def child_jax_train(rounds, steps, warmup, dtype='float32'):
  import numpy as np
  jax, config, sched, model = _jax_model(dtype)
  from training import build
  from training import mesh as mesh_lib
  from training import rng
  from training import state as state_lib
  from training import train

  base_rss = toy._peak_rss_mib()
  tx = state_lib.make_optimizer(config.optimizer)
  mesh = mesh_lib.make_mesh()
  repl = mesh_lib.replicated(mesh)
  state = mesh_lib.create(lambda k: state_lib.create(model.init(k), tx), repl,
                          rng.stream(config.seed, 'init'))
  update = train.make_update(build.loss_fn(config, model, sched), tx, config.training.ema_decay,
                             repl, repl)
  key = mesh_lib.create(lambda: rng.stream(config.seed, 'train'), repl)
  batch = mesh_lib.shard_batch(mesh, {'x': _fixed_images()})
  num_params, num_tensors = _num_params(jax, state.params)
  step_fn, compile_s, flops = _compile(update, state, batch, key)

  metrics = None

  def run(n):
    nonlocal state, metrics
    with jax.transfer_guard('disallow'):
      for _ in range(n):
        prev, (state, metrics) = metrics, step_fn(state, batch, key)
        toy._bound_in_flight(jax, prev)
    jax.block_until_ready((state, metrics))

  run(warmup)
  rates = [toy._rate(run, steps) for _ in range(rounds)]
  loss = float(jax.device_get(metrics['loss']))
  if not np.isfinite(loss):
    raise SystemExit(f'non-finite loss {loss}')
  return dict(num_params=num_params, num_tensors=num_tensors, compile_s=compile_s, flops=flops,
              rates=rates, steps=steps, warmup=warmup, final_loss=loss, base_rss_mib=base_rss,
              peak_rss_mib=toy._peak_rss_mib())


def _torch_setup():
  sys.path.insert(0, ROOT)
  import torch
  torch.set_num_threads(TORCH_THREADS)
  torch.manual_seed(0)
  import diffusers
  return torch, diffusers


def _torch_unet(torch, diffusers):
  net = diffusers.UNet2DModel(**DIFFUSERS_UNET)
  params = list(net.parameters())
  return net, sum(p.numel() for p in params), len(params)


def _torch_flops(torch, fn):
  """FLOPs of one call of fn counted by torch.utils.flop_counter (matmuls, convs, attention)."""
  from torch.utils.flop_counter import FlopCounterMode
  with FlopCounterMode(display=False) as counter:
    fn()
  return float(counter.get_total_flops())


def child_torch_train(rounds, steps, warmup):
  import numpy as np
  torch, diffusers = _torch_setup()
  from configs import ddpm_cifar10
  config = ddpm_cifar10.get_config()
  opt_cfg, n_steps = config.optimizer, config.diffusion.num_steps
  base_rss = toy._peak_rss_mib()
  net, num_params, num_tensors = _torch_unet(torch, diffusers)
  net.train()
  params = [p for p in net.parameters()]
  ema = [p.detach().clone() for p in params]
  opt = torch.optim.Adam(params, lr=opt_cfg.lr, betas=(opt_cfg.b1, opt_cfg.b2), eps=opt_cfg.eps)
  warm = max(int(opt_cfg.warmup_steps), 1)
  lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / warm, 1.0))
  betas = np.linspace(config.diffusion.beta_start, config.diffusion.beta_end, n_steps)
  alphabar = torch.tensor(np.cumprod(1.0 - betas), dtype=torch.float32)
  x0 = torch.from_numpy(_fixed_images()).permute(0, 3, 1, 2).contiguous()
  count = [0]

  def step():
    t = torch.randint(0, n_steps, (BATCH,))  # n - 1 for n ~ U{1..N}
    eps = torch.randn_like(x0)
    a = alphabar[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    loss = ((net(x_t, t).sample - eps)**2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, opt_cfg.grad_clip)
    opt.step()
    lr_sched.step()
    k = count[0]
    count[0] += 1
    with torch.no_grad():
      torch._foreach_lerp_(ema, params, 1.0 - min(config.training.ema_decay, (1 + k) / (10 + k)))
    return loss

  t0 = time.perf_counter()
  step()
  first_call_s = time.perf_counter() - t0
  flops = _torch_flops(torch, step)

  def run(n):
    loss = None
    for _ in range(n):
      loss = step()
    return loss

  run(warmup)
  rates = [toy._rate(run, steps) for _ in range(rounds)]
  loss = run(1).item()
  if not np.isfinite(loss):
    raise SystemExit(f'non-finite loss {loss}')
  return dict(num_params=num_params, num_tensors=num_tensors, first_call_s=first_call_s,
              torch_flops=flops, rates=rates, steps=steps, warmup=warmup, final_loss=loss,
              base_rss_mib=base_rss, peak_rss_mib=toy._peak_rss_mib())


def child_jax_forward(repeats, dtype='float32'):
  jax, config, sched, model = _jax_model(dtype)
  import jax.numpy as jnp
  from training import rng
  base_rss = toy._peak_rss_mib()
  params = jax.jit(model.init)(rng.stream(config.seed, 'init'))
  x = jnp.asarray(_fixed_images())
  lam = jnp.full((BATCH,), sched.lam_at(500))
  fn = jax.jit(lambda p, x, lam: model.apply(p, x, lam)[model.spec.prediction])
  num_params, num_tensors = _num_params(jax, params)
  compiled, compile_s, flops = _compile(fn, params, x, lam)
  jax.block_until_ready(compiled(params, x, lam))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, x, lam))
    times.append(time.perf_counter() - t0)
  return dict(num_params=num_params, num_tensors=num_tensors, compile_s=compile_s, flops=flops,
              times=times, base_rss_mib=base_rss, peak_rss_mib=toy._peak_rss_mib())


def child_torch_forward(repeats):
  torch, diffusers = _torch_setup()
  base_rss = toy._peak_rss_mib()
  net, num_params, num_tensors = _torch_unet(torch, diffusers)
  net.eval()
  x = torch.from_numpy(_fixed_images()).permute(0, 3, 1, 2).contiguous()
  t = torch.full((BATCH,), 499)
  with torch.inference_mode():
    call = lambda: net(x, t).sample
    t0 = time.perf_counter()
    call()
    first_call_s = time.perf_counter() - t0
    flops = _torch_flops(torch, call)
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      call()
      times.append(time.perf_counter() - t0)
  return dict(num_params=num_params, num_tensors=num_tensors, first_call_s=first_call_s,
              torch_flops=flops, times=times, base_rss_mib=base_rss,
              peak_rss_mib=toy._peak_rss_mib())


def child_jax_ddim(steps, repeats, dtype='float32'):
  import numpy as np
  jax, config, sched, model = _jax_model(dtype, steps)
  from training import rng
  from training import sample as sample_lib
  base_rss = toy._peak_rss_mib()
  params = jax.jit(model.init)(rng.stream(config.seed, 'init'))
  fn, nfe = sample_lib.sampler_fn(config, model, sched)
  keys = rng.per_example_keys(jax.random.key(config.sampling.seed), 0, BATCH)
  compiled, compile_s, _ = _compile(fn, params, keys)  # (XLA counts a scan body once)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    x = jax.block_until_ready(compiled(params, keys))
    times.append(time.perf_counter() - t0)
  x = np.asarray(x)
  if x.shape != (BATCH, 32, 32, 3) or not np.all(np.isfinite(x)):
    raise SystemExit(f'bad samples: shape {x.shape}')
  return dict(steps=int(nfe[0]), compile_s=compile_s, times=times,
              base_rss_mib=base_rss, peak_rss_mib=toy._peak_rss_mib())


def child_torch_ddim(steps, repeats):
  torch, diffusers = _torch_setup()
  from configs import ddpm_cifar10
  d = ddpm_cifar10.get_config().diffusion
  base_rss = toy._peak_rss_mib()
  net, _, _ = _torch_unet(torch, diffusers)
  net.eval()
  scheduler = diffusers.DDIMScheduler(num_train_timesteps=d.num_steps, beta_start=d.beta_start,
                                      beta_end=d.beta_end, beta_schedule='linear',
                                      clip_sample=False)
  scheduler.set_timesteps(steps)

  def chain():
    x = torch.randn(BATCH, 3, 32, 32)
    for t in scheduler.timesteps:
      x = scheduler.step(net(x, t).sample, t, x, eta=0.0).prev_sample
    return x

  times = []
  with torch.inference_mode():
    for _ in range(repeats):
      t0 = time.perf_counter()
      x = chain()
      times.append(time.perf_counter() - t0)
  if not bool(torch.isfinite(x).all()):
    raise SystemExit('non-finite samples')
  return dict(steps=len(scheduler.timesteps), times=times, base_rss_mib=base_rss,
              peak_rss_mib=toy._peak_rss_mib())


def child_matmul(framework, n, repeats):
  """Seconds of one n x n float32 matmul (random operands), median over repeats."""
  if framework == 'jax':
    jax = toy._child_setup(1)
    import jax.numpy as jnp
    a, b = (jax.random.normal(jax.random.key(i), (n, n), jnp.float32) for i in (0, 1))
    mm = jax.jit(jnp.matmul)
    jax.block_until_ready(mm(a, b))
    call = lambda: jax.block_until_ready(mm(a, b))
  else:
    torch, _ = _torch_setup()
    a, b = torch.randn(n, n), torch.randn(n, n)
    call = lambda: torch.mm(a, b)
    call()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    call()
    times.append(time.perf_counter() - t0)
  return dict(framework=framework, n=n, flops=2.0 * n**3, times=times,
              peak_rss_mib=toy._peak_rss_mib())


CHILDREN = {'jax_train': child_jax_train, 'torch_train': child_torch_train,
            'jax_forward': child_jax_forward, 'torch_forward': child_torch_forward,
            'jax_ddim': child_jax_ddim, 'torch_ddim': child_torch_ddim, 'matmul': child_matmul}


def run_child(spec):
  kind, _, arg = spec.partition(':')
  if kind not in CHILDREN:
    raise SystemExit(f'unknown child {spec!r}')
  return CHILDREN[kind](**(json.loads(arg) if arg else {}))


# ----------------------------------------------------------------------------- parent side


def spawn(kind, timeout, xla_flags='', **opts):
  """One measurement in a fresh process (toy.spawn's protocol, with extra XLA flags)."""
  import subprocess
  spec = f'{kind}:{json.dumps(opts, separators=(",", ":"))}'
  cmd = [sys.executable, os.path.abspath(__file__), f'--child={spec}']
  env = toy._child_env(1)
  env['XLA_FLAGS'] = ' '.join(f for f in (env['XLA_FLAGS'], xla_flags) if f)
  busy0, own0 = toy._busy_cpu_s(), toy._children_cpu_s()
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
  wall = time.perf_counter() - t0
  busy1, own1 = toy._busy_cpu_s(), toy._children_cpu_s()
  lines = [l for l in proc.stdout.splitlines() if l.startswith(toy.RESULT_TAG)]
  if proc.returncode or not lines:
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    raise SystemExit(f'child {spec} failed (exit {proc.returncode})')
  result = json.loads(lines[-1][len(toy.RESULT_TAG):])
  result.update(kind=kind, xla_flags=xla_flags, process_wall_s=wall, child_cpu_s=own1 - own0,
                background_cpu=(None if busy0 is None else
                                max(busy1 - busy0 - (own1 - own0), 0.0) / wall))
  return result


def _fw(r):
  return 'JAX (dpmx)' if r['kind'].startswith('jax') else 'PyTorch (diffusers)'


def step_rows(results, ceiling, what):
  """Training (rates, steps/s) or sampling-step (times, s) results -> a table. FLOPs are each
  framework's own count: XLA's cost analysis of the compiled JAX program, PyTorch's
  FlopCounterMode of its eager step."""
  torch_r = next(r for r in results if r['kind'].startswith('torch'))
  sec = lambda r: (1.0 / statistics.median(r['rates']) if 'rates' in r
                   else statistics.median(r['times']))
  spread = lambda r: ([1.0 / x for x in r['rates']] if 'rates' in r else r['times'])
  header = [what, 'params / tensors', 'compile / first call s', 's/step', 'range s', 'images/s',
            'vs PyTorch', 'GFLOP/step', 'GFLOP/s', 'of matmul ceiling', 'import RSS MiB',
            'peak RSS MiB', 'other load']
  rows = []
  for r in results:
    s = sec(r)
    flops = r['flops'] if 'flops' in r else r['torch_flops']
    first = r.get('compile_s', r.get('first_call_s'))
    rows.append([_fw(r), f'{r["num_params"]:,} / {r["num_tensors"]}', f'{first:.1f}', f'{s:.3f}',
                 f'{min(spread(r)):.3f}-{max(spread(r)):.3f}', f'{BATCH / s:.2f}',
                 f'{sec(torch_r) / s:.2f}x', f'{flops / 1e9:.1f}', f'{flops / s / 1e9:.0f}',
                 f'{flops / s / ceiling:.0%}', f'{r["base_rss_mib"]:.0f}',
                 f'{r["peak_rss_mib"]:.0f}', toy._load(r)])
  return header, rows


def ddim_rows(results, steps):
  torch_r = next(r for r in results if r['kind'].startswith('torch'))
  per_step = lambda r: statistics.median(r['times']) / r['steps']
  header = [f'DDIM eta=0, batch {BATCH}', 'steps timed', 'compile s', 's/chain (timed)',
            's/step', f's per {steps}-step chain', f'images/s ({steps} steps)', 'vs PyTorch',
            'import RSS MiB', 'peak RSS MiB', 'other load']
  rows = []
  for r in results:
    s = per_step(r)
    rows.append([_fw(r), r['steps'], f'{r["compile_s"]:.1f}' if 'compile_s' in r else '-',
                 f'{statistics.median(r["times"]):.2f}', f'{s:.3f}', f'{s * steps:.1f}',
                 f'{BATCH / (s * steps):.3f}', f'{per_step(torch_r) / s:.2f}x',
                 f'{r["base_rss_mib"]:.0f}', f'{r["peak_rss_mib"]:.0f}', toy._load(r)])
  return header, rows


def matmul_rows(results):
  header = [f'matmul {MATMUL_N}^2 float32', 'ms', 'GFLOP/s', 'peak RSS MiB', 'other load']
  name = {'jax': 'JAX (jnp.matmul)', 'torch': 'PyTorch (torch.mm)'}
  rows = [[name[r['framework']], f'{1e3 * statistics.median(r["times"]):.0f}',
           f'{r["flops"] / statistics.median(r["times"]) / 1e9:.0f}', f'{r["peak_rss_mib"]:.0f}',
           toy._load(r)] for r in results]
  return header, rows


def tries_rows(torch_train, torch_fwd, tries):
  header = ['XLA flags / dtype (JAX)', 'train images/s', 'vs PyTorch', 'compile s',
            'sampling-step images/s', 'vs PyTorch', 'compile s', 'other load']
  t_train = 1.0 / statistics.median(torch_train['rates'])
  t_fwd = statistics.median(torch_fwd['times'])
  rows = [['PyTorch eager (reference)', f'{BATCH / t_train:.2f}', '1.00x', '-',
           f'{BATCH / t_fwd:.2f}', '1.00x', '-',
           f'{toy._load(torch_train)} / {toy._load(torch_fwd)}']]
  for label, flags, dtype, tr, fw in tries:
    s_train, s_fwd = 1.0 / statistics.median(tr['rates']), statistics.median(fw['times'])
    rows.append([f'{label}: `{flags or "-"}`, {dtype}', f'{BATCH / s_train:.2f}',
                 f'{t_train / s_train:.2f}x', f'{tr["compile_s"]:.0f}', f'{BATCH / s_fwd:.2f}',
                 f'{t_fwd / s_fwd:.2f}x', f'{fw["compile_s"]:.0f}',
                 f'{toy._load(tr)} / {toy._load(fw)}'])
  return header, rows


def _print_tables(tables):
  for header, rows in tables:
    print(toy.format_table(header, rows))
    print()
  print('markdown:\n')
  for header, rows in tables:
    print(toy.format_table(header, rows, markdown=True))
    print()


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--quick', action='store_true', help='fewer rounds; DDIM timed over 10 steps')
  p.add_argument('--rounds', type=int, default=None,
                 help='timed rounds per training measurement (default 5, --quick 3)')
  p.add_argument('--ddim-steps', type=int, default=None,
                 help=f'DDIM steps actually timed (default {DDIM_STEPS}, --quick 10); the '
                      f'table extrapolates per step to {DDIM_STEPS}')
  p.add_argument('--xla-flags', default='', help='extra XLA_FLAGS for the JAX children')
  p.add_argument('--tries', action='store_true',
                 help='only the JAX training and sampling steps under each entry of TRIES, '
                      'against PyTorch')
  p.add_argument('--json', default='', help='also write the raw results to this file')
  p.add_argument('--child', default='', help=argparse.SUPPRESS)
  args = p.parse_args(argv)

  if args.child:
    result = run_child(args.child)
    print(toy.RESULT_TAG + json.dumps(result), flush=True)
    return

  quick = args.quick
  rounds = args.rounds or (3 if quick else 5)
  ddim_steps = args.ddim_steps or (10 if quick else DDIM_STEPS)
  if rounds < 1 or ddim_steps < 1:
    p.error('--rounds and --ddim-steps must be positive')
  train_opts = dict(rounds=rounds, steps=2, warmup=2)
  fwd_opts = dict(repeats=3 if quick else 10)
  ddim_opts = dict(steps=ddim_steps, repeats=2)
  timeout, flags = 900, args.xla_flags
  log = lambda msg: print(msg, file=sys.stderr, flush=True)
  load_before = os.getloadavg()
  t_start = time.perf_counter()
  raw = dict(quick=quick, load_before=load_before, xla_flags=flags)

  log('[train] PyTorch ...')
  torch_train = spawn('torch_train', timeout, **train_opts)
  log('[sampling step] PyTorch ...')
  torch_fwd = spawn('torch_forward', timeout, **fwd_opts)
  if args.tries:
    tries = []
    for label, extra, dtype in TRIES:
      log(f'[tries] {label} ...')
      tr = spawn('jax_train', timeout, ' '.join(f for f in (flags, extra) if f), dtype=dtype,
                 **train_opts)
      fw = spawn('jax_forward', timeout, ' '.join(f for f in (flags, extra) if f), dtype=dtype,
                 **fwd_opts)
      tries.append((label, extra, dtype, tr, fw))
    print(f'\nJAX under XLA flags (batch {BATCH}, 32x32, 1 CPU device; {os.cpu_count()} cores)\n')
    _print_tables([tries_rows(torch_train, torch_fwd, tries)])
    raw.update(torch_train=torch_train, torch_forward=torch_fwd,
               tries=[dict(label=l, flags=f, dtype=d, train=tr, forward=fw)
                      for l, f, d, tr, fw in tries])
  else:
    log('[matmul] JAX, PyTorch ...')
    matmuls = [spawn('matmul', timeout, flags, framework=fw, n=MATMUL_N, repeats=5)
               for fw in ('jax', 'torch')]
    ceiling = max(r['flops'] / statistics.median(r['times']) for r in matmuls)
    log('[train] JAX ...')
    jax_train = spawn('jax_train', timeout, flags, **train_opts)
    log('[sampling step] JAX ...')
    jax_fwd = spawn('jax_forward', timeout, flags, **fwd_opts)
    log(f'[DDIM] {ddim_steps} steps, JAX, PyTorch ...')
    ddims = [spawn('jax_ddim', timeout, flags, **ddim_opts), spawn('torch_ddim', timeout,
                                                                   **ddim_opts)]
    tables = [step_rows([jax_train, torch_train], ceiling, f'train step, batch {BATCH}'),
              step_rows([jax_fwd, torch_fwd], ceiling, f'sampling step (1 net eval), batch {BATCH}'),
              ddim_rows(ddims, DDIM_STEPS), matmul_rows(matmuls)]
    print(f'\nDDPM CIFAR-10 UNet, 32x32, batch {BATCH}, float32, CPU ({os.cpu_count()} cores); '
          f'JAX: 1 device, x64 on{", XLA_FLAGS+=" + flags if flags else ""}; PyTorch: '
          f'{TORCH_THREADS} threads')
    print(f'training: median of {rounds} rounds of {train_opts["steps"]} steps after '
          f'{train_opts["warmup"]} warm-up steps; sampling step: median of {fwd_opts["repeats"]} '
          f'calls; DDIM: median of {ddim_opts["repeats"]} chains of {ddim_steps} steps, '
          f'per step x {DDIM_STEPS}; matmul ceiling {ceiling / 1e9:.0f} GFLOP/s\n')
    _print_tables(tables)
    print('GFLOP/step: JAX = XLA cost analysis of the compiled step; PyTorch = '
          'torch.utils.flop_counter (matmuls, convolutions, attention) of the eager step')
    raw.update(matmul=matmuls, train=[jax_train, torch_train], forward=[jax_fwd, torch_fwd],
               ddim=ddims)
  print('compile / first call s: JAX lower + XLA compile (no execution); PyTorch: the first '
        'call; other load = mean cores busy with other processes (> ~0.1 disturbs the numbers)')
  results = [r for v in raw.values() if isinstance(v, list) for r in v if isinstance(r, dict)]
  busy = [r['kind'] for r in results if (r.get('background_cpu') or 0) > 0.1]
  busy += [f'{t["label"]}' for t in raw.get('tries', [])
           if max(t['train'].get('background_cpu') or 0, t['forward'].get('background_cpu') or 0)
           > 0.1]
  if busy:
    print(f'WARNING: other processes kept CPU cores busy during {", ".join(busy)}; '
          f'rerun on a quiet machine.')
  total = time.perf_counter() - t_start
  print(f'load average before: {load_before[0]:.2f}; total wall time {total:.0f} s')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(raw, total_s=total), f, indent=1)


if __name__ == '__main__':
  main()
