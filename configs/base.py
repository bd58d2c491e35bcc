"""Shared defaults: every key other tools rely on exists here (DESIGN.md)."""
import ml_collections


def get_base_config():
  c = ml_collections.ConfigDict()
  c.seed = 1234  # base of every random stream (init, train noise, eval)

  c.data = d = ml_collections.ConfigDict()
  d.name = 'gaussian8'  # dataset
  d.data_dir = ''  # where prepared tfds data live (real image sets)
  d.size = 100_000  # toy sets: size of the fixed training set
  d.seed = 1234  # toy sets: the draw of the fixed training/held-out sets; data order
  d.image_size = 0  # images: output resolution (0 = the dataset's own)
  d.crop = 'none'  # celeb_a: ead128 (rows 57-184, cols 25-152) | tq148 (top 40, left 15, 148 px) | none
  d.random_flip = False  # images: stateless random horizontal flip (training split only)

  c.model = m = ml_collections.ConfigDict()
  m.name = 'toy_mlp'  # toy_mlp | gmm_oracle | psld_oracle | an image family (models/registry.py)
  m.kwargs = ml_collections.ConfigDict()  # image families: the original constructor's kwargs
  m.time_input = ''  # how the noise level becomes the network input; '' = the family's default
  m.head = ''  # an SN-DPM / NPR-DPM head after the trunk's eps: '' | eps2 (SN) | eps_res (NPR)
  m.dtype = 'float32'  # compute dtype of the network (float32 | bfloat16); params stay float32
  m.prediction = 'eps'  # what the network predicts: eps | x0 | v | mean
  m.features = 128
  m.num_layers = 3
  m.oracle = o = ml_collections.ConfigDict()
  o.means = []  # gmm_oracle: mixture means [K][D]; empty = the toy dataset's own mixture
  o.stds = []  # per component [K] or [K][D]
  o.weights = []  # [K]; empty = uniform
  o.process = 'vp'  # vp | ve
  o.eps_scale = 1.0  # imperfect-mean variant: eps_hat = eps_scale * E[eps | x]
  o.discrete = True  # gmm_oracle: a discrete model on the config's grid (EDM-style samplers round
  #                    sigma to it, as for a DDPM network); False: continuous in the noise level

  c.diffusion = f = ml_collections.ConfigDict()
  f.schedule = 'linear'  # linear | quad | cosine | warmup10 | warmup50 | jsd | const | vpsde
  f.num_steps = 1000  # N, the grid n = 0..N
  f.beta_start = 1e-4
  f.beta_end = 0.02
  f.var_type = 'fixed-large'  # fixed-small | fixed-large | learned
  f.psld = k = ml_collections.ConfigDict()  # PSLD's phase-space process (idode_vdm_psld.md B.1)
  k.nu = 4.01  # critical damping: M = 4 / (gamma - nu)^2
  k.gamma = 0.01  # 0 = score_m (noise only in m)
  k.kappa = 0.04  # initial momentum m0 ~ N(0, kappa M)
  k.beta_min = 8.0  # beta(t) = beta_min + t (beta_max - beta_min); released configs: 8, 8
  k.beta_max = 8.0
  k.mode = 'hsm'  # hsm | dsm: training kernel (samplers always convert eps with HSM)
  k.numerical_eps = 1e-9

  c.training = t = ml_collections.ConfigDict()
  t.objective = 'ddpm'
  t.loss = 'mse'  # mse | kl | hybrid
  t.vlb_weight = 1e-3  # hybrid: lambda of L_simple + lambda L_vlb (Improved DDPM)
  t.num_steps = 10_000
  t.batch_size = 128  # global batch, split over all devices
  t.ema_decay = 0.9999  # 0 disables EMA (ema_params = params)
  t.log_every = 100
  t.checkpoint_every = 1000
  t.keep_checkpoints = 3
  t.label_dropout = 0.0  # class-conditional models: P(y -> -1, the null label) per example,
  #                        which classifier-free guidance (sampling.guidance) needs
  t.sample_every = 0  # images: a PNG grid of EMA samples (config.sampling) every K steps; 0 = off
  t.sample_grid = 64  # images in that grid

  c.optimizer = p = ml_collections.ConfigDict()
  p.lr = 2e-4
  p.b1 = 0.9
  p.b2 = 0.999
  p.eps = 1e-8
  p.warmup_steps = 0  # linear warm-up: lr * min((k + 1) / warmup, 1)
  p.grad_clip = 0.0  # global-norm clip; 0 = off

  c.sampling = s = ml_collections.ConfigDict()
  s.method = 'ddpm'  # ddpm, sn_ddpm, npr_ddpm, analytic_ddpm, ddim, sn_ddim, npr_ddim, analytic_ddim, edm_euler, edm_heun
  s.steps = 0  # ddpm/ddim: K steps of the trajectory (0 = all N); edm: N noise levels (0 = 18)
  s.trajectory = 'linear'  # linear, power<p>, quad_ddim, dp_seg, tq_linear, tq_quadratic
  s.eta = 0.0  # ddim: lambda^2 = eta^2 beta~(s, t)
  s.ddim_mean = 'raw_eps'  # raw_eps (Extended Analytic-DPM) | clipped_x0 (tqch/ddpm-torch)
  s.clip_sigma_idx = 0  # clip sigma of steps s <= tau[clip_sigma_idx] (0 = off; EAD uses 1)
  s.clip_pixel = 2  # ... to the variance of `clip_pixel` grey levels of expected perturbation
  s.ms_eps_samples = 10_000  # analytic: training examples behind Gamma_n (cached in DIR/ms_eps)
  s.ms_eps_path = ''  # analytic: import Gamma_n (EAD's torch.save'd arrays, .npy, .npz) instead
  s.avg_cov = False  # sn / npr: average the covariance estimate over each sample's elements (EAD)
  s.sigma_min = 0.0  # edm: noise range; 0 = the discretization's default (0.002 / 80 for edm)
  s.sigma_max = 0.0
  s.rho = 7.0  # edm: exponent of the time-step grid
  s.discretization = 'edm'  # edm | vp | ve | iddpm
  s.noise_schedule = 'linear'  # sigma(t): linear | vp | ve
  s.scaling = 'none'  # s(t): none | vp
  s.S_churn = 0.0  # edm stochastic sampler: total churn (0 = deterministic)
  s.S_min = 0.0
  s.S_max = float('inf')
  s.S_noise = 1.0
  s.sed_fork = k = ml_collections.ConfigDict()  # the 2nd-SED fork's sampler, as published
  k.rho = 3.0
  k.randn_like = 'ddb'  # db | ddb: noise increments (ddb: the fork's double-Brownian draw)
  k.S_max = float('inf')  # the fork's jvp threshold on the noise level (not EDM's churn window)
  k.last_noise = 'reuse'  # reuse (as coded) | zero
  s.ito_taylor2 = k = ml_collections.ConfigDict()  # consistent second-order SDE step (B.1.4)
  k.rho = 3.0
  k.variant = 'split'  # split (K_ode, recommended) | unsplit (Ito-Taylor with jvp terms)
  k.laplacian = True  # unsplit: the Hutchinson jvp-of-jvp Laplacian term
  k.probes = 1
  k.g = 0.0  # diffusion coefficient; 0 = the fork's g
  s.psld = k = ml_collections.ConfigDict()  # psld_em | psld_splitting | psld_ode (B.3)
  k.stride_type = 'uniform'  # uniform | quadratic (steps shrink towards the data)
  k.denoise = True  # the last of `steps` is a noise-free Euler step from eval_eps to 0
  k.eval_eps = 1e-3
  k.rtol = 1e-5  # psld_ode (PSLD: 1e-4 CIFAR-10 sota, 1e-5 CelebA-64 / ablations)
  k.atol = 1e-5
  k.clf_temp = 0.0  # classifier guidance weight (PSLD scripts: 5 CIFAR-10, 10 AFHQv2); 0 = off
  k.clf_time = 't'  # the classifier's time input: t (forward) | tau (reverse, PSLD's code quirk)
  s.num_samples = 10_000
  s.batch_size = 10_000
  s.seed = 0  # sample i uses fold_in(key(seed), i)
  s.guidance = 0.0  # classifier-free guidance weight w: (1+w) out(x,y) - w out(x,null); 0 = none

  c.eval = e = ml_collections.ConfigDict()
  e.method = 'vlb'
  e.num_examples = 10_000  # held-out examples
  e.batch_size = 1000
  e.steps = 0  # K of the bound's chain; 0 = full chain
  e.metrics = 'bpd'
  e.samples = ''  # sample .npz for sample-quality metrics (not used by vlb)
  e.reference = ''  # reference statistics for FID (not used by vlb)
  e.inception_weights = ''

  c.convert = v = ml_collections.ConfigDict()
  v.source = ''
  v.source_kwargs = ''
  v.verify_io = ''
  v.verify_tol = 1e-4
  v.verify_rtol = 1e-4
  return c
