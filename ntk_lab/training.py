"""Training a network: gradient flow as an ODE (diffrax) and discrete optimizers (optax).

Gradient flow (seed 000 eq 9; seed 001; seed 002 a, b) moves the trainable parameters by

    dθ/dt = −η ∇_θ L(θ),     L(θ) = ½ Σ_i ‖f(x_i; θ) − y_i‖²   (loss="mse"),

or L(θ) = Σ_i CE(softmax f(x_i; θ), y_i) (loss="cross_entropy"). The training outputs
u(t) = f(X; θ(t)) then follow du/dt = −η K(t)(u − y) with K(t) the empirical NTK. Both trainers
are compiled once per shape and configuration and run unchanged on CPU or GPU; frozen layers of
an MLP (its ``trainable`` spec) never move. Divergence (NaN/Inf) and solver failures raise
`DivergenceError` / `SolverError` naming where they began; results never hold silent NaNs.

Both compose with `jax.vmap` (e.g. over draws of θ₀: each draw keeps its own adaptive steps) and
`jax.jit`. Hyperparameters (learning rate, tolerances, steps, `observe`) must be Python values;
arrays may be traced. Under tracing, the checks that need values run inside the program: under a
plain `vmap` a failing draw raises its own `DivergenceError`/`SolverError`/`ValueError`; under
`jit` JAX re-raises it as a `jax.errors.JaxRuntimeError` with the same message.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_lab import _checks
from ntk_lab.mlp import Wrapper, apply_fn_of, split_trainable, trainable_merge
from ntk_lab.observables import Observer, state_observables

__all__ = ["DivergenceError", "LOSSES", "SOLVERS", "SolverError", "Trajectory", "gradient_flow",
           "train"]

LOSSES = ("mse", "cross_entropy")


class _RK4(diffrax.AbstractERK):
  """The classical 4th-order Runge–Kutta method (fixed steps; diffrax ships no RK4)."""

  tableau = diffrax.ButcherTableau(
      c=np.array([0.5, 0.5, 1.0]),
      b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
      b_error=np.zeros(4),  # no embedded method: only for constant step sizes
      a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
  )
  interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

  def order(self, terms):
    return 4


# name -> (solver class, adaptive?)
SOLVERS = {"tsit5": (diffrax.Tsit5, True), "dopri5": (diffrax.Dopri5, True),
           "dopri8": (diffrax.Dopri8, True), "bosh3": (diffrax.Bosh3, True),
           "heun": (diffrax.Heun, False), "euler": (diffrax.Euler, False), "rk4": (_RK4, False)}


class Trajectory(NamedTuple):
  """A training run sampled at T points.

  Attributes:
    times: (T,) gradient-flow times t (`gradient_flow`), or step counts (`train`).
    train_outputs: (T, N, O), u = f(X; θ) on the training inputs.
    test_outputs: (T, N_test, O) on ``x_test``, or None.
    params: the trainable params at each point, each leaf with a leading T axis (with
      ``save_params=True``), else None.
    final_params: the full params at the last point, ready to evaluate or train further.
    observables: dict of (T, …) arrays, see `ntk_lab.observables`.
    stats: solver statistics (``num_steps``, ``num_accepted_steps``, ``num_rejected_steps``) or,
      for `train`, ``{"steps": …}``.
  """

  times: Any
  train_outputs: Any
  test_outputs: Any
  params: Any
  final_params: Any
  observables: dict
  stats: dict


class DivergenceError(FloatingPointError):
  """Training produced NaN or Inf. Attributes: ``time`` (or ``step``) where it began and the last
  finite loss (``last_finite_loss``, at ``last_finite_at``)."""

  def __init__(self, message, *, time=None, step=None, last_finite_loss=None, last_finite_at=None):
    super().__init__(message)
    self.time, self.step = time, step
    self.last_finite_loss, self.last_finite_at = last_finite_loss, last_finite_at


class SolverError(RuntimeError):
  """The ODE solver stopped before the last requested time (e.g. it ran out of ``max_steps``)."""

  def __init__(self, message, *, time=None, steps=None):
    super().__init__(message)
    self.time, self.steps = time, steps


# ----------------------------------------------------------------------------- shared
def _loss_fn(kind):
  if kind == "mse":
    return lambda out, y: 0.5 * jnp.sum((out - y) ** 2)
  return lambda out, y: jnp.sum(optax.softmax_cross_entropy(out, y))


def _prepare(model, params0, x, y, loss, x_test):
  """Checks the data against the model (before any compilation); returns x, y (N, O), x_test."""
  apply_fn = apply_fn_of(model)
  _checks.choice(loss, "loss", LOSSES)
  x = _checks.as_batch(x, "x")
  n = x.shape[0]
  try:
    out = jax.eval_shape(apply_fn, params0, x[:1])
  except (TypeError, ValueError) as e:
    raise type(e)(f"params0/x: the model cannot be applied to them: {e}") from e
  if len(out.shape) != 2:
    raise ValueError(f"model: apply(params, x) must return (N, O), got {out.shape} for 1 point.")
  o = out.shape[1]
  y = _checks.as_batch(y, "y") if not (hasattr(y, "dtype") and jnp.issubdtype(y.dtype, jnp.integer)
                                       and loss == "cross_entropy") else jnp.asarray(y)
  if y.shape[0] != n:
    raise ValueError(f"y: has {y.shape[0]} targets but x has {n} points; they must match.")
  if loss == "cross_entropy" and y.ndim == 1:
    if not jnp.issubdtype(y.dtype, jnp.integer):
      raise TypeError("y: for loss='cross_entropy' pass integer class labels (N,) or "
                      f"probabilities (N, {o}); got a 1-D {y.dtype} array.")
    def labels_in_range(lo, hi):
      if int(lo) < 0 or int(hi) >= o:
        raise ValueError(f"y: class labels must lie in [0, {o}) for a model with {o} outputs, "
                         f"got range [{int(lo)}, {int(hi)}].")
    _checks.now_or_at_run_time(labels_in_range, y.min(), y.max())
    y = jax.nn.one_hot(y, o, dtype=out.dtype)
  elif y.ndim == 1:
    y = y[:, None]
  if y.shape != (n, o):
    raise ValueError(f"y: expected shape ({n},) or ({n}, {o}) for a model with {o} outputs, "
                     f"got {tuple(y.shape)}.")
  y = y.astype(out.dtype)
  if x_test is not None:
    x_test = _checks.as_batch(x_test, "x_test")
    if x_test.shape[1:] != x.shape[1:]:
      raise ValueError(f"x_test: per-point shape {x_test.shape[1:]} differs from x's {x.shape[1:]}.")
  return x, y, x_test


def _split_model(model):
  """(static, leaves): wrappers carry arrays (θ₀) that must be jit arguments, not constants."""
  if isinstance(model, Wrapper):
    leaves, treedef = jax.tree.flatten(model)
    return treedef, leaves
  return model, None


def _join_model(static, leaves):
  return static if leaves is None else jax.tree.unflatten(static, leaves)


def _positive(value, name):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
      or value <= 0:
    raise ValueError(f"{name}: must be a finite number > 0, got {value!r}.")
  return float(value)


def _all_finite(tree):
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(l)) for l in leaves])) if leaves else True


def _snapshot(model, loss_fn, names, context, theta, frozen, x, y, x_test, save_params):
  """What both trainers record of one state: outputs, loss, observables (and params)."""
  params = trainable_merge(model)(theta, frozen)
  f = apply_fn_of(model)
  out = f(params, x)
  value = loss_fn(out, y)
  rec = {"train": out, "loss": value,
         "obs": state_observables(names, model, context, params, x, y, out, value)}
  if x_test is not None:
    rec["test"] = f(params, x_test)
  if save_params:
    rec["params"] = theta
  return rec


# ------------------------------------------------------------------------ gradient flow
def gradient_flow(model, params0, x, y, *, times, loss: str = "mse", learning_rate: float = 1.0,
                  solver="tsit5", rtol: float = 1e-4, atol: float = 1e-6, dt0: float | None = None,
                  max_steps: int = 100_000, observe=(), x_test=None,
                  save_params: bool = False) -> Trajectory:
  """Integrates gradient flow dθ/dt = −η ∇_θ L(θ) from θ(0) = θ₀ and samples it at `times`.

  Args:
    model: an `MLP`, a `centered` or `linearize`d model, or any ``apply_fn(params, x) -> (N, O)``.
    params0: θ₀. For an MLP only the layers its ``trainable`` spec names move.
    x: training inputs (N, …); y: targets (N,) or (N, O) (for cross-entropy, integer labels (N,)
      or class probabilities (N, O)).
    times: increasing times 0 ≤ t₁ < … < t_T (t₁ may be 0) at which to save the state.
    loss: ``"mse"`` (L = ½ Σ ‖f − y‖², the seeds' convention) or ``"cross_entropy"`` (summed).
    learning_rate: η > 0 (only rescales time: θ_η(t) = θ_1(ηt)).
    solver: ``"tsit5"`` (default), ``"dopri5"``, ``"dopri8"``, ``"bosh3"`` (adaptive, PID step
      control with `rtol`/`atol`), ``"euler"``, ``"heun"``, ``"rk4"`` (fixed step `dt0`), or a
      diffrax solver instance (adaptive iff `dt0` is None).
    rtol, atol: the adaptive solvers' tolerances, applied to the displacement θ(t) − θ₀ (the
      ODE's state), which in a wide net is much smaller than θ. For ReLU-like activations the vector field
      jumps wherever a unit's activation pattern flips on a training point, and each tenfold
      tightening costs several times more steps; pass tighter values for exact comparisons.
    dt0: the step size of a fixed-step solver (required there); the first trial step of an
      adaptive one (None: chosen automatically).
    max_steps: the most solver steps before giving up with `SolverError`.
    observe: names of observables to record (see `ntk_lab.observables`); none by default.
    x_test: inputs whose outputs are also recorded, (N_test, …).
    save_params: also return the trainable params at every saved time.

  Returns:
    A `Trajectory` with times (T,), train_outputs (T, N, O), test_outputs (T, N_test, O) or None.

  Raises:
    DivergenceError: the parameters or the loss became NaN/Inf (with the time it happened).
    SolverError: the solver did not reach the last time within ``max_steps``.
    jax.errors.JaxRuntimeError: either of them (same message) when called under `jax.jit`.

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> net = nl.MLP((64,), b_std=None)
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 3)); y = jnp.sin(x[:, 0])
    >>> p0 = net.init(jax.random.PRNGKey(1), 3)
    >>> run = nl.gradient_flow(net, p0, x, y, times=jnp.linspace(0, 5, 6), observe=["loss"])
    >>> run.train_outputs.shape, run.observables["loss"].shape
    ((6, 8, 1), (6,))
    >>> bool(run.observables["loss"][-1] < run.observables["loss"][0])
    True

    ``jax.vmap(lambda p: nl.gradient_flow(net, p, x, y, times=…))(ps)`` runs several draws of θ₀
    at once (ps stacked along a leading axis), each with its own adaptive steps.
  """
  x, y, x_test = _prepare(model, params0, x, y, loss, x_test)
  times, t_last = _check_times(times, x.dtype)
  eta = _positive(learning_rate, "learning_rate")
  max_steps = _checks.positive_int(max_steps, "max_steps")
  solver_obj, adaptive = _solver(solver, dt0)
  if dt0 is not None:
    dt0 = _positive(dt0, "dt0")
  if adaptive:
    rtol, atol = _positive(rtol, "rtol"), _positive(atol, "atol")
  elif t_last is not None and math.ceil(t_last / dt0) > max_steps:
    raise ValueError(f"dt0: reaching t = {t_last:g} in steps of {dt0:g} takes "
                     f"{math.ceil(t_last / dt0)} steps, more than max_steps={max_steps}; "
                     "raise max_steps or dt0.")
  observer = Observer(model, params0, x, y, loss=loss, observe=observe, x_test=x_test)
  trainable0, frozen = split_trainable(model, params0)
  static, leaves = _split_model(model)
  run = _compiled_flow(static, loss, solver_obj, adaptive, rtol if adaptive else None,
                       atol if adaptive else None, dt0, max_steps, observer.names,
                       bool(save_params))
  saved, final, t_end, status, stats = run(leaves, trainable0, frozen, x, y, x_test, times,
                                           jnp.asarray(eta, x.dtype), observer.context)
  stats = {k: v for k, v in stats.items() if k.startswith("num_")}
  _checks.now_or_at_run_time(functools.partial(_flow_failure, max_steps=max_steps), status,
                             t_end, stats["num_steps"], stats["num_rejected_steps"], saved["loss"], times)
  try:
    stats = {k: int(v) for k, v in stats.items()}
  except _checks.TRACED:  # under jit or vmap they stay arrays
    pass
  train_out, test_out = saved["train"], saved.get("test")
  obs = dict(saved["obs"])
  obs.update(observer.gaps(times, eta, train_out, test_out))
  return Trajectory(times, train_out, test_out, saved.get("params"), trainable_merge(model)(final, frozen),
                    obs, stats)


def _flow_failure(status, t_end, steps, rejected, losses, times, *, max_steps):
  """Raises what went wrong in a finished solve (numpy in): divergence, max_steps, solver failure."""
  status, t_end, steps, losses, times = int(status), float(np.ravel(t_end)[0]), int(steps), \
      np.asarray(losses), np.asarray(times)
  if status == 1:
    k = _last_finite(losses)
    last = "" if k is None else \
        f"; the last finite loss was {losses[k]:.6g} at saved time t = {float(times[k]):.6g}"
    raise DivergenceError(
        f"gradient_flow: diverged at t = {t_end:.6g} (solver step {steps}): the "
        f"parameters became NaN/Inf{last}. Use a smaller learning_rate, a smaller dt0 or an "
        "adaptive solver.", time=t_end, step=steps,
        last_finite_loss=None if k is None else float(losses[k]),
        last_finite_at=None if k is None else float(times[k]))
  if status == 2:
    raise SolverError(
        f"gradient_flow: the solver reached only t = {t_end:.6g} of {float(times[-1]):.6g} in "
        f"max_steps={max_steps} steps ({int(rejected)} rejected). The flow is stiff "
        "(η·λ_max of the NTK is large relative to the time span): raise max_steps, or loosen "
        "rtol/atol.", time=t_end, steps=steps)
  if status == 3:
    raise SolverError(f"gradient_flow: the solver failed at t = {t_end:.6g} after "
                      f"{steps} steps; try another solver or tighter rtol/atol.",
                      time=t_end, steps=steps)
  if not np.all(np.isfinite(losses)):
    k = int(np.argmin(np.isfinite(losses)))
    j = _last_finite(losses[:k]) if k else None
    last = "" if j is None else f"; the last finite loss was {losses[j]:.6g} at t = {float(times[j]):.6g}"
    raise DivergenceError(
        f"gradient_flow: the loss is NaN/Inf from saved time t = {float(times[k]):.6g} on{last}. "
        "Use a smaller learning_rate.", time=float(times[k]),
        last_finite_loss=None if j is None else float(losses[j]),
        last_finite_at=None if j is None else float(times[j]))


def _check_times(times, dtype):
  """(times as a `dtype` array, the last time as a float or None when traced): shapes now, values
  now or, when traced, at run time."""
  if not hasattr(times, "shape"):
    try:
      times = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError) as e:
      raise TypeError(f"times: expected a 1-D array of numbers, got {type(times).__name__}.") from e
  if not (jnp.issubdtype(times.dtype, jnp.floating) or jnp.issubdtype(times.dtype, jnp.integer)):
    raise TypeError(f"times: expected real numbers, got dtype {times.dtype}.")
  if times.ndim != 1 or times.shape[0] == 0:
    raise ValueError(f"times: expected a non-empty 1-D array, got shape {tuple(times.shape)}.")
  _checks.now_or_at_run_time(_times_in_order, times)
  try:
    t_last = float(times[-1])
  except _checks.TRACED:
    t_last = None
  return jnp.asarray(times, dtype), t_last


def _times_in_order(t):
  t = np.asarray(t, np.float64)
  if not np.all(np.isfinite(t)) or t[0] < 0:
    raise ValueError("times: must be finite and ≥ 0 (gradient flow starts at t = 0).")
  if t.size > 1 and not np.all(np.diff(t) > 0):
    k = int(np.argmin(np.diff(t) > 0))
    raise ValueError(f"times: must be strictly increasing, but times[{k + 1}] = {t[k + 1]:g} ≤ "
                     f"times[{k}] = {t[k]:g}; sort them and drop duplicates.")
  if t[-1] <= 0:
    raise ValueError("times: the last time must be > 0.")


def _solver(solver, dt0):
  if isinstance(solver, str):
    cls, adaptive = SOLVERS[_checks.choice(solver, "solver", tuple(SOLVERS))]
    if not adaptive and dt0 is None:
      raise ValueError(f"dt0: solver={solver!r} takes fixed steps, so it needs dt0 (e.g. a fraction "
                       "of 1/(η λ_max) of the NTK); or use an adaptive solver such as 'tsit5'.")
    return cls(), adaptive
  if isinstance(solver, diffrax.AbstractSolver):
    return solver, dt0 is None
  raise TypeError(f"solver: expected one of {sorted(SOLVERS)} or a diffrax solver, got {solver!r}.")


def _last_finite(values):
  ok = np.flatnonzero(np.isfinite(values))
  return int(ok[-1]) if ok.size else None


@functools.lru_cache(maxsize=32)
def _compiled_flow(static, loss, solver, adaptive, rtol, atol, dt0, max_steps, names,
                   save_params):
  loss_fn = _loss_fn(loss)

  def run(leaves, trainable0, frozen, x, y, x_test, times, eta, context):
    model = _join_model(static, leaves)
    f = apply_fn_of(model)
    merge = trainable_merge(model)

    # The state is the displacement δ = θ − θ₀, not θ: in a wide net each weight moves by
    # O(1/√width) while being O(1) itself, so tolerances relative to θ would not resolve the motion.
    def at(delta):
      return jax.tree.map(jnp.add, trainable0, delta)

    def training_loss(delta):
      return loss_fn(f(merge(at(delta), frozen), x), y)

    def field(t, delta, args):
      return jax.tree.map(lambda g: -eta * g, jax.grad(training_loss)(delta))

    def save(t, delta, args):
      return _snapshot(model, loss_fn, names, context, at(delta), frozen, x, y, x_test, save_params)

    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=times, fn=save), diffrax.SubSaveAt(t1=True)])
    controller = (diffrax.PIDController(rtol=rtol, atol=atol) if adaptive
                  else diffrax.ConstantStepSize())
    event = diffrax.Event(lambda t, delta, args, **kw: jnp.logical_not(_all_finite(delta)))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), solver, t0=jnp.zeros((), times.dtype), t1=times[-1], dt0=dt0,
        y0=jax.tree.map(jnp.zeros_like, trainable0), saveat=saveat, stepsize_controller=controller, event=event,
        max_steps=max_steps, throw=False)
    status = jnp.select([sol.result == diffrax.RESULTS.successful,
                         sol.result == diffrax.RESULTS.event_occurred,
                         sol.result == diffrax.RESULTS.max_steps_reached], [0, 1, 2], 3)
    final = at(jax.tree.map(lambda a: a[-1], sol.ys[1]))
    return sol.ys[0], final, sol.ts[1], status, sol.stats

  return jax.jit(run)




# ------------------------------------------------------------------------- optax
def train(model, params0, x, y, *, optimizer, steps: int, loss: str = "mse",
          batch_size: int | None = None, key=None, every: int | None = None, observe=(),
          x_test=None, save_params: bool = False, time_per_step: float | None = None) -> Trajectory:
  """Trains with an optax optimizer for `steps` steps (one `lax.scan`, compiled once).

  Each step takes the gradient of L on the full batch (``batch_size=None``: gradient descent) or
  on ``batch_size`` points drawn without replacement (SGD), rescaled by N/batch_size so that its
  expectation is ∇L; the optimizer (``optax.sgd(η)``, ``optax.sgd(η, momentum=…)``,
  ``optax.adam(…)``, …) turns it into an update. With ``optax.sgd(η)`` and full batches this is
  the Euler discretisation of `gradient_flow` (learning_rate=1) with step η.

  Args:
    model, params0, x, y, loss, x_test, observe, save_params: as in `gradient_flow`.
    optimizer: an ``optax.GradientTransformation``.
    steps: the number of optimizer steps.
    batch_size: minibatch size for SGD (needs `key`), or None for full batches.
    key: a PRNG key for the minibatches.
    every: record outputs and observables every `every` steps (steps must be a multiple);
      default: about 100 records.
    time_per_step: the gradient-flow time of one step (η for ``optax.sgd(η)``); needed only by
      the ``lin_gap``/``ntk_gap`` observables, whose references are gradient-flow closed forms.

  Returns:
    A `Trajectory` whose ``times`` are the recorded step counts 0, every, …, steps.

  Raises:
    DivergenceError: the loss or the parameters became NaN/Inf, naming the step.

  Example:
    >>> import jax, jax.numpy as jnp, optax, ntk_lab as nl
    >>> net = nl.MLP((64,), b_std=None)
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 3)); y = jnp.sin(x[:, 0])
    >>> run = nl.train(net, net.init(jax.random.PRNGKey(1), 3), x, y,
    ...                optimizer=optax.sgd(0.05), steps=200, every=50, observe="loss")
    >>> run.times.tolist(), run.train_outputs.shape
    ([0, 50, 100, 150, 200], (5, 8, 1))
  """
  x, y, x_test = _prepare(model, params0, x, y, loss, x_test)
  if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
    raise TypeError(f"optimizer: expected an optax.GradientTransformation such as optax.sgd(0.1), "
                    f"got {type(optimizer).__name__}.")
  steps = _checks.positive_int(steps, "steps")
  if every is None:
    every = max(d for d in range(1, max(1, steps // 100) + 1) if steps % d == 0)
  every = _checks.positive_int(every, "every")
  if steps % every:
    raise ValueError(f"every: steps ({steps}) must be a multiple of every ({every}); e.g. every="
                     f"{math.gcd(steps, every)}.")
  n = x.shape[0]
  if batch_size is not None:
    batch_size = _checks.positive_int(batch_size, "batch_size")
    if batch_size > n:
      raise ValueError(f"batch_size: {batch_size} exceeds the {n} training points.")
    if key is None:
      raise ValueError("key: minibatch SGD (batch_size set) needs a PRNG key, e.g. "
                       "key=jax.random.PRNGKey(0).")
  key = jax.random.PRNGKey(0) if key is None else key
  observer = Observer(model, params0, x, y, loss=loss, observe=observe, x_test=x_test)
  if {"lin_gap", "ntk_gap"} & set(observer.names) and time_per_step is None:
    raise ValueError("time_per_step: the 'lin_gap'/'ntk_gap' observables compare with gradient "
                     "flow at t = step · time_per_step; pass it (η for optax.sgd(η)).")
  trainable0, frozen = split_trainable(model, params0)
  static, leaves = _split_model(model)
  run = _compiled_train(static, loss, optimizer, batch_size, every, steps // every, observer.names,
                        bool(save_params))
  rec, final, bad_step, last_loss, last_step = run(leaves, trainable0, frozen, x, y, x_test, key,
                                                   observer.context)
  _checks.now_or_at_run_time(functools.partial(_train_failure, steps=steps), bad_step, last_loss,
                             last_step)
  recorded = np.arange(0, steps + 1, every)
  obs = dict(rec["obs"])
  if time_per_step is not None:
    obs.update(observer.gaps(recorded * _positive(time_per_step, "time_per_step"), 1.0,
                             rec["train"], rec.get("test")))
  return Trajectory(recorded, rec["train"], rec.get("test"), rec.get("params"),
                    trainable_merge(model)(final, frozen), obs, {"steps": steps})


def _train_failure(bad_step, last_loss, last_step, *, steps):
  bad_step, last_step = int(bad_step), int(last_step)
  if bad_step >= 0:
    last = "" if last_step < 0 else f"; the last finite loss was {float(last_loss):.6g} at step {last_step}"
    raise DivergenceError(
        f"train: diverged at step {bad_step} of {steps}: the loss or the parameters became "
        f"NaN/Inf{last}. Use a smaller learning rate.", step=bad_step,
        last_finite_loss=None if last_step < 0 else float(last_loss),
        last_finite_at=None if last_step < 0 else last_step)


@functools.lru_cache(maxsize=32)
def _compiled_train(static, loss, optimizer, batch_size, every, n_records, names, save_params):
  loss_fn = _loss_fn(loss)

  def run(leaves, trainable0, frozen, x, y, x_test, key, context):
    model = _join_model(static, leaves)
    f = apply_fn_of(model)
    merge = trainable_merge(model)
    n = x.shape[0]

    def batch_loss(theta, xb, yb):
      return loss_fn(f(merge(theta, frozen), xb), yb) * (n / xb.shape[0])

    def step(carry, k):
      def advance(carry):
        theta, opt_state, bad, last_loss, last_step = carry
        if batch_size is None:
          xb, yb = x, y
        else:
          idx = jax.random.choice(jax.random.fold_in(key, k), n, (batch_size,), replace=False)
          xb, yb = x[idx], y[idx]
        value, grads = jax.value_and_grad(batch_loss)(theta, xb, yb)
        updates, new_state = optimizer.update(grads, opt_state, theta)
        new_theta = optax.apply_updates(theta, updates)
        ok = jnp.isfinite(value) & _all_finite(new_theta)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        return (keep(new_theta, theta), keep(new_state, opt_state), jnp.where(ok, bad, k),
                jnp.where(ok, value, last_loss), jnp.where(ok, k, last_step))
      # After a divergence the remaining steps are skipped (cond runs one branch).
      return jax.lax.cond(carry[2] >= 0, lambda c: c, advance, carry), None

    def record(theta):
      return _snapshot(model, loss_fn, names, context, theta, frozen, x, y, x_test, save_params)

    def chunk(carry, r):
      carry, _ = jax.lax.scan(step, carry, r * every + jnp.arange(every))
      return carry, record(carry[0])

    dtype = jax.tree.leaves(trainable0)[0].dtype
    carry = (trainable0, optimizer.init(trainable0), jnp.asarray(-1), jnp.asarray(jnp.nan, dtype),
             jnp.asarray(-1))
    first = record(trainable0)
    carry, rest = jax.lax.scan(chunk, carry, jnp.arange(n_records))
    rec = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    return rec, carry[0], carry[2], carry[3], carry[4]

  return jax.jit(run)
