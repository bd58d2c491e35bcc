"""PSLD samplers (Pandey & Mandt 2023; idode_vdm_psld.md B.3): EM, SSCS splitting, PF-ODE.

Every sampler has the project's signature

  sample(apply, params, spec, schedule, keys, shape, *, steps, ...) -> (x, nfe)

with one difference: PSLD is not a Schedule, so `schedule` is the
diffusion.psld.PhaseSpaceProcess, and the model's apply receives PSLD's forward time t
in its `lam` slot (ModelSpec.time_input 'psld_t'; a model with another time input is
refused). `shape` is one sample's z = [x, m] (last axis 2C, as spec.data_shape of a
PSLD model); the output is the x half [B, ..., C], the momentum dropped. The network
predicts eps ([eps_x, eps_m], or eps_m alone when Gamma = 0); the score is
-L^-T eps with the HSM factor (B.7.1), in float64.

Reverse time tau in [0, T - eval_eps], forward time t = T - tau; the reverse drift is
-f(z, t) + G^2 s (SDE, diffusion G) or -f + G^2 s / 2 (probability flow). `steps` is
PSLD's n_discrete_steps: N = steps - 1 grid steps when `denoise` (then one noise-free
Euler step of size eval_eps from t = eval_eps to 0), else N = steps; the grid is
`time_grid`. The start is the prior N(0, diag(I, M I)). Sample i draws its prior from
fold_in(keys[i], 0) and its step-j noises from fold_in(keys[i], j >= 1), so samples do
not depend on batch size or devices. Everything runs in float64 (PSLD: the state and the
kernel scalars are float64; the network's input and output float32).
"""
import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from diffusion import psld
from sampling.noise import normal

STRIDE_TYPES = ('uniform', 'quadratic')
CLF_TIMES = ('t', 'tau')


def time_grid(steps, stride_type='uniform', denoise=True, eval_eps=1e-3, T=1.0):
  """tau_0 = 0 < ... < tau_N = T - eval_eps (float64 numpy, [N + 1]; PSLD predict_step).

  N = steps - 1 if denoise else steps. uniform: linspace; quadratic:
  tau_i = (T - eval_eps) (1 - ((N - i) / N)^2), steps shrinking towards the data end."""
  if stride_type not in STRIDE_TYPES:
    raise ValueError(f'unknown stride_type {stride_type!r}; allowed: {", ".join(STRIDE_TYPES)}')
  n = int(steps) - 1 if denoise else int(steps)
  if n < 1:
    raise ValueError(f'steps={steps}: PSLD samplers need at least one step before '
                     f'{"the denoising step" if denoise else "t = eval_eps"}')
  if not 0 < eval_eps < T:
    raise ValueError(f'eval_eps={eval_eps} must lie in (0, {T})')
  tf = T - eval_eps
  i = np.arange(n + 1, dtype=np.float64)
  if stride_type == 'uniform':
    return np.linspace(0.0, tf, n + 1, dtype=np.float64)
  return tf * (1 - ((n - i) / n)**2)


def _score_fn(apply, params, spec, process, shape, classifier=None, clf_temp=1.0, clf_time='t'):
  """score(z, t, y) = get_score(eps_theta(z, t, y), t) at forward time t (a scalar), after
  checking the process, the model's time input and prediction, and the shape.

  With a classifier (PSLD's `cc_em_sde`, B.3), the score of the tilted law
  p_t(z) p_t(y | z)^clf_temp:
    score + clf_temp grad_z log softmax(classifier(z, t_c))[y]   (all 2C channels),
  so every reverse drift gains G^2 clf_temp grad log p(y | z) (probability flow: half of
  it); clf_temp = 1 with an exact classifier is the class-conditional score. t_c is the
  forward time t ('t'), or the reverse time T - t that PSLD's code feeds its classifier
  ('tau', quirk B.7.2, for reproducing it)."""
  if not isinstance(process, psld.PhaseSpaceProcess):
    raise ValueError(f'PSLD samplers take the PhaseSpaceProcess as `schedule`; got '
                     f'{type(process).__name__}')
  if spec.time_input != 'psld_t' or spec.prediction != 'eps':
    raise ValueError(f'PSLD samplers need a model fed forward time t predicting eps '
                     f'(time_input psld_t, prediction eps); {spec.family} has '
                     f'{spec.time_input!r}, {spec.prediction!r}')
  if shape[-1] % 2:
    raise ValueError(f'shape {shape} is not a phase-space z = [x, m] (odd last axis)')
  if clf_time not in CLF_TIMES:
    raise ValueError(f'unknown clf_time {clf_time!r}; allowed: {", ".join(CLF_TIMES)}')

  def log_p_y(z, t, y):
    logits = classifier(z, jnp.full(z.shape[:1], t if clf_time == 't' else process.T - t))
    return jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits.astype(z.dtype)), y[:, None], 1))

  def score(z, t, y):
    tb = jnp.full(z.shape[:1], t, jnp.float64)
    eps = apply(params, z, tb, y)['eps'].astype(z.dtype)
    s = process.get_score(eps, tb, m_only=eps.shape[-1] * 2 == z.shape[-1])
    if classifier is None:
      return s
    if y is None:
      raise ValueError('classifier guidance needs the labels y')
    return s + clf_temp * jax.grad(log_p_y)(z, t, y)  # samples are independent: grad of the sum

  return score


def _prior(process, keys, shape, dtype):
  return (normal(keys, 0, shape, dtype) * process.prior_scale(shape, dtype)).astype(dtype)


def _drift(process, score, z, tau, y, probability_flow=False):
  t = process.T - tau
  return process.reverse_drift(z, t, score(z, t, y), probability_flow)


def _denoise(process, score, z, eval_eps, y, probability_flow=False):
  """One noise-free Euler step of size eval_eps from forward time eval_eps to 0."""
  return z + _drift(process, score, z, process.T - eval_eps, y, probability_flow) * eval_eps


def psld_em(apply, params, spec, schedule, keys, shape, *, steps, stride_type='uniform',
            denoise=True, eval_eps=1e-3, dtype=jnp.float64, y=None, classifier=None,
            clf_temp=1.0, clf_time='t'):
  """PSLD `em_sde`: Euler-Maruyama on the reverse SDE, then the denoising step (B.3).

  Per grid step, Delta = tau_{i+1} - tau_i:
    z <- z + fbar(z, tau_i) Delta + G(t_i) sqrt(Delta) xi_i,  xi_i ~ N(0, I) (fold_in j = i + 1)
  then, if denoise, z <- z + fbar(z, T - eval_eps) eval_eps (the mean, no noise).
  NFE = steps. Options: stride_type (uniform | quadratic), denoise, eval_eps (1e-3);
  y labels passed to the model (None: unconditional) and to the classifier;
  classifier(z, t [B]) -> logits [B, K], clf_temp, clf_time: classifier guidance
  (`_score_fn`; PSLD's cc_em_sde, its denoising step guided too). A classifier pass is
  not counted in the NFE."""
  process = schedule
  score = _score_fn(apply, params, spec, process, shape, classifier, clf_temp, clf_time)
  tau = time_grid(steps, stride_type, denoise, eval_eps, process.T)
  n = len(tau) - 1

  def step(z, inp):
    i, t0, t1 = inp
    d = t1 - t0
    gx, gm = process.diffusion_sq(process.T - t0)
    g = jnp.concatenate([jnp.full(shape[-1] // 2, jnp.sqrt(gx)),
                         jnp.full(shape[-1] // 2, jnp.sqrt(gm))]).astype(dtype)
    noise = g * jnp.sqrt(d) * normal(keys, i + 1, shape, dtype)
    z = z + _drift(process, score, z, t0, y) * d + noise
    return z.astype(dtype), None

  z = _prior(process, keys, shape, dtype)
  z, _ = jax.lax.scan(step, z, (jnp.arange(n), jnp.asarray(tau[:-1]), jnp.asarray(tau[1:])))
  if denoise:
    z = _denoise(process, score, z, eval_eps, y).astype(dtype)
  return psld.split(z)[0], int(steps)


def psld_splitting(apply, params, spec, schedule, keys, shape, *, steps, stride_type='uniform',
                   denoise=True, eval_eps=1e-3, dtype=jnp.float64, y=None, classifier=None,
                   clf_temp=1.0, clf_time='t'):
  """PSLD `sscs_sde`: symmetric splitting of the reverse SDE (adapted from CLD), B.3.

  fbar = [-f + G^2 grad log p_inf] + [G^2 (s_theta - grad log p_inf)], grad log p_inf =
  (-x, -m / M). Per grid step from tau with size Delta:
    1. an exact half step of the linear SDE (PhaseSpaceProcess.reverse_ou_transition) over
       the integrated beta -delta, delta = B(T - tau - Delta/2) - B(T - tau) <= 0,
       noise drawn with the Cholesky factor (fold_in j = 2i + 1);
    2. an Euler step of the score part with the network at t = T - tau:
       x <- x + Delta beta Gamma (s_x + x),  m <- m + Delta beta M nu (s_m + m / M);
    3. a second analytic half step with the SAME delta (fold_in j = 2i + 2), as PSLD
       computes it from the start-of-step tau: exact only for constant beta (every
       released config has beta_min = beta_max = 8).
  Then, if denoise, the EM mean step of size eval_eps. NFE = steps (one call per step).
  Options as psld_em (a classifier guides the score part, step 2)."""
  process = schedule
  score = _score_fn(apply, params, spec, process, shape, classifier, clf_temp, clf_time)
  tau = time_grid(steps, stride_type, denoise, eval_eps, process.T)
  n = len(tau) - 1

  def half(z, b, j):
    (axx, axm, amx, amm), cov = process.reverse_ou_transition(b)
    l11, l21, l22 = process.cholesky(cov)
    x, m = psld.split(z)
    ex, em = psld.split(normal(keys, j, shape, dtype))
    return psld.join(axx * x + axm * m + l11 * ex, amx * x + amm * m + l21 * ex + l22 * em)

  def step(z, inp):
    i, t0, t1 = inp
    d = t1 - t0
    b = process.B(process.T - t0) - process.B(process.T - (t0 + 0.5 * d))  # -delta >= 0
    z = half(z, b, 2 * i + 1)
    t = process.T - t0
    beta = process.beta(t)
    sx, sm = psld.split(score(z, t, y))
    x, m = psld.split(z)
    z = psld.join(x + d * beta * process.gamma * (sx + x),
                  m + d * beta * process.M * process.nu * (sm + process.M_inv * m))
    return half(z, b, 2 * i + 2).astype(dtype), None

  z = _prior(process, keys, shape, dtype)
  z, _ = jax.lax.scan(step, z, (jnp.arange(n), jnp.asarray(tau[:-1]), jnp.asarray(tau[1:])))
  if denoise:
    z = _denoise(process, score, z, eval_eps, y).astype(dtype)
  return psld.split(z)[0], int(steps)


def psld_ode(apply, params, spec, schedule, keys, shape, *, steps=None, rtol=1e-5, atol=1e-5,
             denoise=True, eval_eps=1e-3, max_steps=4096, dtype=jnp.float64, y=None,
             classifier=None, clf_temp=1.0, clf_time='t'):
  """PSLD `bb_ode`: the probability-flow ODE from tau = 0 to T - eval_eps with an adaptive
  Runge-Kutta 4(5) solver, then (if denoise) one Euler step of size eval_eps with the
  probability-flow drift (B.3).

  PSLD calls scipy's RK45 (Dormand-Prince) on the whole batch as one system; here it is
  diffrax's Dopri5 with a PID controller (scipy's I-controller defaults: safety 0.9,
  factors 0.2-10, RMS error norm of err / (atol + rtol max(|z|, |z_new|))) on each sample
  as its own system (vmap), so a sample does not depend on its batch. `steps` and
  stride_type are ignored (as PSLD ignores n_discrete_steps). Returns (x, nfe) with nfe an
  int32 array [B]: each sample's function evaluations from the solver's stats,
  6 per attempted (accepted or rejected) step + 1 (Dopri5 is first-same-as-last; the
  count equals the drift calls diffrax makes, dt0 from its initial step selection), + 1
  for the denoising step. max_steps bounds the attempted steps per sample. y and the
  classifier options as psld_em (the probability flow takes half the guidance term)."""
  del steps
  process = schedule
  score = _score_fn(apply, params, spec, process, shape, classifier, clf_temp, clf_time)
  tf = process.T - eval_eps
  if not 0 < eval_eps < process.T:
    raise ValueError(f'eval_eps={eval_eps} must lie in (0, {process.T})')

  def solve(z0, yi):
    yi = None if yi is None else yi[None]
    term = diffrax.ODETerm(lambda tau, z, _: _drift(process, score, z[None], tau, yi, True)[0])
    sol = diffrax.diffeqsolve(
        term, diffrax.Dopri5(), t0=0.0, t1=tf, dt0=None, y0=z0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps,
        saveat=diffrax.SaveAt(t1=True))
    z, nfe = sol.ys[0], 6 * sol.stats['num_steps'] + 1
    if denoise:
      z = _denoise(process, score, z[None], eval_eps, yi, True)[0]
    return z.astype(dtype), (nfe + int(denoise)).astype(jnp.int32)

  z0 = _prior(process, keys, shape, dtype)
  z, nfe = jax.vmap(solve)(z0, y) if y is not None else jax.vmap(lambda z: solve(z, None))(z0)
  return psld.split(z)[0], nfe
