"""Error against NFE of every sampler, with the exact Gaussian-mixture oracle as the model.

  python benchmarks/samplers.py                      # gaussian8 and gaussian25 (~19 min, 2 cores)
  python benchmarks/samplers.py --quick              # 3 points per sampler, 4,000 samples
  python benchmarks/samplers.py --datasets gaussian8 --json out.json --plot out.png

The model is the exact oracle, so what is measured is the sampler alone. Each sampler runs
through `training.sample.sampler_fn` (the table behind --mode=sample) on the continuous
oracle (round 'none'; the discrete samplers evaluate it on their grid), float64, with
`--samples` per run from the same per-sample keys for every run. The error against `--ref`
exact draws of the law the sampler targets is metrics/mixture.py's pair: the sliced
Wasserstein-2 distance of the within-mode offsets (each sample minus its nearest mode mean,
64 fixed directions) in units of the modes' std, and the largest mode-weight error (a
distance between whole sets would be dominated by the weights' binomial noise). Targets:

  * DDPM/DDIM/Analytic/SN/NPR, EDM and the second-order SDE samplers: the data law. The
    discrete grid is the 1000-step linear schedule with beta 1e-6 -> 0.02 (sigma_1 = 1e-3,
    far below the modes' std of 0.014 / 0.018, so the posterior-mean end of a faithful
    chain narrows them by < 0.3%); EDM-style samplers use sigma in [0.002, 80].
  * PSLD: z ~ p_{eval_eps} pushed through the final denoising step (psld_oracle.denoised_sample,
    the SDE or probability-flow drift), not the data law: at eval_eps = 1e-3 the kernel's own
    std (0.009) is comparable to the modes'.

The noise floor is the error of an independent exact set of the same size; errors near it
are converged. The wall time is one post-compile run of the batch, on however many cores
the machine gives. Analytic-DPM's ms_eps is
estimated once per dataset on 2,000 exact data points (its cost is printed, not counted).
Writes a table (plain and markdown) and a log-log plot of the offsets' SW2 against NFE.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.toy import format_table  # noqa: E402  (the benchmarks' one table printer)

DDPM_K = (10, 20, 50, 100, 200, 1000)
EDM_N = (4, 8, 16, 32, 64, 128, 256)
# (label, config.sampling overrides, step counts / psld_ode tolerances, family)
SERIES = (
    ('ddpm fixed-small', dict(method='ddpm', var_type='fixed-small'), DDPM_K, 'discrete'),
    ('ddpm fixed-large', dict(method='ddpm', var_type='fixed-large'), DDPM_K, 'discrete'),
    ('ddim', dict(method='ddim'), DDPM_K, 'discrete'),
    ('analytic_ddpm', dict(method='analytic_ddpm'), DDPM_K, 'discrete'),
    ('analytic_ddim', dict(method='analytic_ddim'), DDPM_K, 'discrete'),
    ('sn_ddpm', dict(method='sn_ddpm'), DDPM_K, 'discrete'),
    ('sn_ddim', dict(method='sn_ddim'), DDPM_K, 'discrete'),
    ('npr_ddpm', dict(method='npr_ddpm'), DDPM_K, 'discrete'),
    ('npr_ddim', dict(method='npr_ddim'), DDPM_K, 'discrete'),
    ('edm_euler', dict(method='edm_euler'), EDM_N, 'edm'),
    ('edm_heun', dict(method='edm_heun'), EDM_N, 'edm'),
    ('edm_heun S_churn=10', dict(method='edm_heun', S_churn=10.0), EDM_N, 'edm'),
    ('sed_fork (ddb)', dict(method='sed_fork'), (18, 42, 84, 168, 336), 'edm'),
    ('ito_taylor2 split', dict(method='ito_taylor2'), (6, 12, 18, 36, 72, 144), 'edm'),
    ('ito_taylor2 unsplit', dict(method='ito_taylor2', variant='unsplit'),
     (9, 17, 33, 65, 129, 257), 'edm'),
    ('ito_taylor2 unsplit, no Laplacian',
     dict(method='ito_taylor2', variant='unsplit', laplacian=False), (9, 17, 33, 65, 129, 257),
     'edm'),
    ('psld_em quadratic', dict(method='psld_em', stride_type='quadratic'),
     (25, 50, 100, 200, 400, 800), 'psld'),
    ('psld_splitting quadratic', dict(method='psld_splitting', stride_type='quadratic'),
     (25, 50, 100, 200, 400, 800), 'psld'),
    ('psld_ode', dict(method='psld_ode'), (1e-2, 1e-3, 1e-4, 1e-5, 1e-6), 'psld'),
)


def config_for(dataset, overrides, point):
  """configs/toy.py with the benchmark's schedule and the series' sampling options."""
  from configs import toy as toy_config
  c = toy_config.get_config()
  c.data.name = dataset
  c.model.name = 'psld_oracle' if overrides['method'].startswith('psld') else 'gmm_oracle'
  c.diffusion.schedule, c.diffusion.num_steps = 'linear', 1000
  c.diffusion.beta_start, c.diffusion.beta_end = 1e-6, 0.02
  s = c.sampling
  for k, v in overrides.items():
    if k == 'var_type':
      c.diffusion.var_type = v
    elif k in ('variant', 'laplacian'):
      s.ito_taylor2[k] = v
    elif k == 'stride_type':
      s.psld.stride_type = v
    else:
      s[k] = v
  if s.method == 'psld_ode':
    s.psld.rtol = s.psld.atol = point
  else:
    s.steps = point
  return c


class Bench:
  """One dataset: models, exact reference draws and the floor."""

  def __init__(self, dataset, n, n_ref):
    import jax
    import numpy as np
    from data import toy
    from diffusion import analytic
    from diffusion import psld as psld_lib
    from metrics import mixture
    from models import gmm_oracle, psld_oracle
    from training import build
    self.jax, self.np = jax, np
    self.dataset = dataset
    self.mix = gmm_oracle.GaussianMixture.create(*toy.mixture(dataset))
    self.errors = lambda x, law: mixture.errors(x, self.ref[law], self.mix.means,
                                                self.mix.stds[0, 0])
    base = config_for(dataset, dict(method='ddpm'), 10)
    self.sched = build.schedule(build.schedule_kwargs(base))
    self.model = gmm_oracle.oracle_model(self.mix)  # continuous: round 'none'
    self.process = psld_lib.PhaseSpaceProcess(**build.psld_kwargs(base))
    self.psld_model = psld_oracle.oracle_model(self.mix, self.process)
    eval_eps = base.sampling.psld.eval_eps
    rng = np.random.default_rng(1)
    draw = {'data': lambda r, m: self.mix.sample(r, m)[0],
            'psld_sde': lambda r, m: psld_oracle.denoised_sample(self.mix, self.process, r, m,
                                                                 eval_eps),
            'psld_pf': lambda r, m: psld_oracle.denoised_sample(self.mix, self.process, r, m,
                                                                eval_eps, True)}
    self.ref = {k: f(rng, n_ref) for k, f in draw.items()}
    self.floor = {k: self.errors(f(rng, n), k) for k, f in draw.items()}
    t0 = time.perf_counter()
    x0 = self.mix.sample(np.random.default_rng(2), 2000)[0]
    self.ms_eps = analytic.estimate_ms_eps(self.model.apply, {}, self.model.spec, self.sched, x0,
                                           jax.random.key(3))
    print(f'{dataset}: ms_eps on 2,000 points x {self.sched.N} steps in '
          f'{time.perf_counter() - t0:.1f}s; noise floor (offsets SW2 / std, weights): ' +
          ', '.join(f'{k} {v["offsets"]:.3f} {v["weights"]:.4f}' for k, v in self.floor.items()),
          flush=True)
    self.keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(
        jax.numpy.arange(n))

  def run(self, overrides, point):
    from training import sample as sample_lib
    jax, np = self.jax, self.np
    config = config_for(self.dataset, overrides, point)
    psld = config.sampling.method.startswith('psld')
    model, sched = (self.psld_model, self.process) if psld else (self.model, self.sched)
    fn, nfe = sample_lib.sampler_fn(config, model, sched, self.ms_eps)
    t0 = time.perf_counter()
    x = np.asarray(jax.block_until_ready(fn({}, self.keys)))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn({}, self.keys))
    run_s = time.perf_counter() - t0
    jax.effects_barrier()
    nfe = nfe[0] if isinstance(nfe[0], int) else float(np.mean(nfe))
    law = ('psld_pf' if config.sampling.method == 'psld_ode' else 'psld_sde') if psld else 'data'
    finite = bool(np.all(np.isfinite(x)))
    err = self.errors(x, law) if finite else dict(offsets=float('inf'), weights=float('inf'))
    return dict(nfe=nfe, sw2=err['offsets'], weights=err['weights'], floor=self.floor[law]['offsets'],
                law=law, finite=finite, compile_and_run_s=first, run_s=run_s)


def rows_of(results):
  header = ['sampler', 'steps / tol', 'NFE', 'offsets SW2 / std', 'x floor', 'weight error',
            'run s']
  rows = []
  for r in results:
    rows.append([r['label'], f'{r["point"]:g}', f'{r["nfe"]:g}', f'{r["sw2"]:.3g}',
                 f'{r["sw2"] / r["floor"]:.1f}', f'{r["weights"]:.4f}', f'{r["run_s"]:.3f}'])
  return header, rows


def plot(all_results, floors, path):
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  datasets = list(all_results)
  fig, axes = plt.subplots(1, len(datasets), figsize=(8 * len(datasets), 6.5), squeeze=False)
  styles = {'discrete': '-', 'edm': '--', 'psld': ':'}
  cmap = plt.get_cmap('tab20')
  for ax, ds in zip(axes[0], datasets):
    for i, (label, _, _, family) in enumerate(SERIES):
      rs = [r for r in all_results[ds] if r['label'] == label and r['finite']]
      if rs:
        ax.plot([r['nfe'] for r in rs], [r['sw2'] for r in rs], styles[family], marker='o',
                ms=3, color=cmap(i % 20), label=label)
    ax.axhline(floors[ds]['data']['offsets'], color='k', lw=0.8, ls='-.', label='noise floor')
    ax.set(xscale='log', yscale='log', xlabel='NFE',
           ylabel='sliced W2 of the within-mode offsets / mode std',
           title=f'{ds}: error vs NFE (exact oracle)')
    ax.grid(True, which='both', lw=0.3)
  axes[0][-1].legend(fontsize=7, loc='upper right', ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--datasets', nargs='+', default=['gaussian8', 'gaussian25'])
  p.add_argument('--samples', type=int, default=0, help='samples per run (default 10,000; quick 4,000)')
  p.add_argument('--ref', type=int, default=200_000, help='exact reference draws')
  p.add_argument('--quick', action='store_true')
  p.add_argument('--only', default='', help='run only the series whose label contains this')
  p.add_argument('--json', default='')
  p.add_argument('--plot', default=os.path.join(ROOT, 'docs', 'samplers_error_vs_nfe.png'))
  args = p.parse_args(argv)
  import jax
  jax.config.update('jax_enable_x64', True)
  n = args.samples or (4000 if args.quick else 10_000)
  all_results, floors = {}, {}
  t_start = time.perf_counter()
  for ds in args.datasets:
    bench = Bench(ds, n, args.ref)
    floors[ds] = bench.floor
    results = []
    for label, overrides, points, _ in SERIES:
      if args.only and args.only not in label:
        continue
      if args.quick:  # the first, middle and last point
        points = (points[0], points[len(points) // 2], points[-1])
      for pt in points:
        r = dict(label=label, point=pt, **bench.run(overrides, pt))
        results.append(r)
        print(f'  {ds} {label:36s} {pt:>8g}  NFE {r["nfe"]:>8g}  offsets {r["sw2"]:.3g} '
              f'({r["sw2"] / r["floor"]:.1f} x floor)  weights {r["weights"]:.4f}  '
              f'{r["run_s"]:.3f}s', flush=True)
    all_results[ds] = results
  print(f'\nsamples per run {n:,}, reference {args.ref:,} exact draws, SW2 with 64 directions; '
        f'total {time.perf_counter() - t_start:.0f}s\n')
  for ds, results in all_results.items():
    f = floors[ds]
    print(f'## {ds} (noise floor, offsets SW2 / std and weights: ' +
          ', '.join(f'{k} {v["offsets"]:.3f} / {v["weights"]:.4f}' for k, v in f.items()) + ')\n')
    print(format_table(*rows_of(results)))
    print()
    print(format_table(*rows_of(results), markdown=True))
    print()
  if args.plot:
    plot(all_results, floors, args.plot)
    print(f'plot: {args.plot}')
  if args.json:
    with open(args.json, 'w') as fh:
      json.dump(dict(samples=n, ref=args.ref, floors=floors, results=all_results), fh, indent=1)


if __name__ == '__main__':
  main()
