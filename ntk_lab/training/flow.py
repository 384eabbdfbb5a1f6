"""Gradient flow dθ/dt = −η ∇L as an ODE, integrated by diffrax."""

from __future__ import annotations

import functools
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks
from ntk_lab.mlp import apply_fn_of, split_trainable, trainable_merge
from ntk_lab.observables import Observer
from ntk_lab.training import common
from ntk_lab.training.results import DivergenceError, SolverError, Trajectory
from ntk_lab.training.solvers import solver_of

__all__ = ["gradient_flow"]


def gradient_flow(
  model,
  params0,
  x,
  y,
  *,
  times,
  loss: str = "mse",
  reduction: str = "sum",
  learning_rate: float = 1.0,
  solver="tsit5",
  rtol: float = 1e-4,
  atol: float = 1e-6,
  error_control: str = "outputs",
  dt0: float | None = None,
  max_steps: int = 100_000,
  observe=(),
  x_test=None,
  save_params: bool = False,
) -> Trajectory:
  """Integrates gradient flow dθ/dt = −η ∇_θ L(θ) from θ(0) = θ₀ and samples it at `times`.

  Args:
    model: an `MLP`, a `centered` or `linearize`d model, or any ``apply_fn(params, x) -> (N, O)``.
    params0: θ₀. For an MLP only the layers its ``trainable`` spec names move.
    x: training inputs (N, …); y: targets (N,) or (N, O) (for cross-entropy, integer labels (N,)
      or class probabilities (N, O)).
    times: increasing times 0 ≤ t₁ < … < t_T (t₁ may be 0) at which to save the state.
    loss: ``"mse"`` (L = ½ Σ ‖f − y‖²) or ``"cross_entropy"``.
    reduction: ``"sum"`` (default: L as above, and summed cross-entropy) or ``"mean"`` (MSE divided
      by y.size, as neural-tangents, Jacot et al. 2018 and Lee et al. 2019; cross-entropy averaged
      over points). With ``"mean"`` the flow is slower by that factor (see docs/training.md).
    learning_rate: η > 0 (only rescales time: θ_η(t) = θ_1(ηt)). A runtime value: a new η does
      not recompile.
    solver: a name in `SOLVERS` — ``"tsit5"`` (default), ``"dopri5"``, ``"dopri8"``, ``"bosh3"``
      (adaptive, PID step control with `rtol`/`atol`), ``"euler"``, ``"heun"``, ``"rk4"`` (fixed
      step `dt0`) — or a diffrax solver instance (adaptive iff `dt0` is None).
    rtol, atol: the adaptive solvers' tolerances on each step's local error (runtime values: new
      tolerances do not recompile). What they measure is set by `error_control`.
    error_control: ``"outputs"`` (default): the step controller measures the local error of the
      training outputs u = f(X; θ), integrated alongside θ (du/dt = J θ̇, one Jacobian-vector
      product per stage), so the error of what is measured does not grow with the width;
      ``"params"``: the local error of the displacement θ − θ₀ (cheaper per step, but in a wide
      net a small parameter error moves the outputs by √width times more); ``"both"``: each step
      meets both (for measurements of the parameters themselves, such as weight changes).
      For ReLU-like activations the vector field jumps wherever a unit's activation pattern flips
      on a training point, and each tenfold tightening costs several times more steps.
    dt0: the step size of a fixed-step solver (required there); the first trial step of an
      adaptive one (None: chosen automatically).
    max_steps: the most solver steps before giving up with `SolverError`.
    observe: observables to record: names in `OBSERVABLES` or functions of an
      `ntk_lab.observables.State` (see `ntk_lab.observables`); none by default. The gaps'
      running maxima cover every accepted solver step.
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
  x, y, x_test = common.prepare(model, params0, x, y, loss, x_test)
  _checks.choice(reduction, "reduction", common.REDUCTIONS)
  _checks.choice(error_control, "error_control", ERROR_CONTROLS)
  params0 = _checks.promote_params(params0, x.dtype)
  times, t_last = _check_times(times, x.dtype)
  eta = _checks.positive_number(learning_rate, "learning_rate")
  max_steps = _checks.positive_int(max_steps, "max_steps")
  solver_obj, adaptive = solver_of(solver, dt0)
  if dt0 is not None:
    dt0 = common.positive(dt0, "dt0")
  if adaptive:
    rtol, atol = common.positive(rtol, "rtol"), common.positive(atol, "atol")
  elif t_last is not None and math.ceil(t_last / dt0) > max_steps:
    raise ValueError(
      f"dt0: reaching t = {t_last:g} in steps of {dt0:g} takes "
      f"{math.ceil(t_last / dt0)} steps, more than max_steps={max_steps}; "
      "raise max_steps or dt0."
    )
  observer = Observer(model, params0, x, y, loss=loss, observe=observe, x_test=x_test, reduction=reduction)
  trainable0, frozen = split_trainable(model, params0)
  static, leaves = common.split_model(model)
  run = _compiled_flow(
    static,
    loss,
    reduction,
    solver_obj,
    adaptive,
    error_control if adaptive else "params",
    dt0 is None,
    max_steps,
    observer.entries,
    bool(save_params),
  )
  dtype = x.dtype
  tol = (jnp.asarray(rtol if adaptive else 1.0, dtype), jnp.asarray(atol if adaptive else 1.0, dtype))
  rate = jnp.asarray(eta * common.time_scale(reduction, y), dtype)
  context = {"params0": params0, "observables": observer.context}
  saved, final, t_end, status, stats, steps = run(
    leaves,
    trainable0,
    frozen,
    x,
    y,
    x_test,
    times,
    jnp.asarray(eta, dtype),
    rate,
    tol,
    None if dt0 is None else jnp.asarray(dt0, dtype),
    context,
  )
  stats = {k: v for k, v in stats.items() if k.startswith("num_")}
  _checks.now_or_at_run_time(
    functools.partial(_flow_failure, max_steps=max_steps),
    status,
    t_end,
    stats["num_steps"],
    stats["num_rejected_steps"],
    saved["loss"],
    times,
  )
  try:
    stats = {k: int(v) for k, v in stats.items()}
  except _checks.TRACED:  # under jit or vmap they stay arrays
    pass
  obs = dict(saved["obs"])
  if steps is not None:
    obs.update(_running_maxima(times, obs, *steps))
  return Trajectory(
    times,
    saved["train"],
    saved.get("test"),
    saved.get("params"),
    trainable_merge(model)(final, frozen),
    obs,
    stats,
  )


ERROR_CONTROLS = ("outputs", "params", "both")


def _running_maxima(times, saved_obs, step_ts, step_obs):
  """For each entry e measured at every accepted step: ``e_max`` (T,), the largest value over the
  steps and saved points up to each saved time."""
  out = {}
  # Step s falls in the interval that ends at the first saved time ≥ t_s; unused buffer slots
  # (t = inf) land past the last interval and are dropped.
  seg = jnp.searchsorted(times, step_ts, side="left")
  for name, values in step_obs.items():
    per_interval = jax.ops.segment_max(values, seg, num_segments=times.shape[0])
    out[name + "_max"] = jax.lax.cummax(jnp.maximum(per_interval, saved_obs[name]), axis=0)
  return out


def _flow_failure(status, t_end, steps, rejected, losses, times, *, max_steps):
  """Raises what went wrong in a finished solve (numpy in): divergence, max_steps, solver failure."""
  status, t_end, steps, losses, times = (
    int(status),
    float(np.ravel(t_end)[0]),
    int(steps),
    np.asarray(losses),
    np.asarray(times),
  )
  if status == 1:
    k = common.last_finite(losses)
    last = (
      ""
      if k is None
      else f"; the last finite loss was {losses[k]:.6g} at saved time t = {float(times[k]):.6g}"
    )
    raise DivergenceError(
      f"gradient_flow: diverged at t = {t_end:.6g} (solver step {steps}): the "
      f"parameters became NaN/Inf{last}. Use a smaller learning_rate, a smaller dt0 or an "
      "adaptive solver.",
      time=t_end,
      step=steps,
      last_finite_loss=None if k is None else float(losses[k]),
      last_finite_at=None if k is None else float(times[k]),
    )
  if status == 2:
    raise SolverError(
      f"gradient_flow: the solver reached only t = {t_end:.6g} of {float(times[-1]):.6g} in "
      f"max_steps={max_steps} steps ({int(rejected)} rejected). The flow is stiff "
      "(η·λ_max of the NTK is large relative to the time span): raise max_steps, or loosen "
      "rtol/atol.",
      time=t_end,
      steps=steps,
    )
  if status == 3:
    raise SolverError(
      f"gradient_flow: the solver failed at t = {t_end:.6g} after "
      f"{steps} steps; try another solver or tighter rtol/atol.",
      time=t_end,
      steps=steps,
    )
  if not np.all(np.isfinite(losses)):
    k = int(np.argmin(np.isfinite(losses)))
    j = common.last_finite(losses[:k]) if k else None
    last = "" if j is None else f"; the last finite loss was {losses[j]:.6g} at t = {float(times[j]):.6g}"
    raise DivergenceError(
      f"gradient_flow: the loss is NaN/Inf from saved time t = {float(times[k]):.6g} on{last}. "
      "Use a smaller learning_rate.",
      time=float(times[k]),
      last_finite_loss=None if j is None else float(losses[j]),
      last_finite_at=None if j is None else float(times[j]),
    )


def _check_times(times, dtype):
  """(times as a `dtype` array, the last time as a float or None when traced): shapes now, values
  (finite, ≥ 0, strictly increasing) now or, when traced, at run time."""
  t = _checks.times(times, "times", dtype, increasing=True)
  try:
    t_last = float(t[-1])
  except _checks.TRACED:
    t_last = None
  return t, t_last


@functools.lru_cache(maxsize=32)
def _compiled_flow(
  static, loss, reduction, solver, adaptive, error_control, auto_dt0, max_steps, entries, save_params
):
  """One compiled solve per structure; η, the time scale, rtol/atol and dt0 are arguments."""
  loss_fn = common.loss_fn(loss, reduction)
  run_max = any(e.running_max for _, e in entries)
  on_outputs = error_control in ("outputs", "both")

  def run(leaves, trainable0, frozen, x, y, x_test, times, eta, rate, tol, dt0, context):
    model = common.join_model(static, leaves)
    f = apply_fn_of(model)
    merge = trainable_merge(model)

    # The state is the displacement δ = θ − θ₀, not θ: in a wide net each weight moves by
    # O(1/√width) while being O(1) itself, so tolerances relative to θ would not resolve the motion.
    def at(delta):
      return jax.tree.map(jnp.add, trainable0, delta)

    def outputs(delta):
      return f(merge(at(delta), frozen), x)

    def field(t, z, args):
      if not on_outputs:
        return jax.tree.map(lambda g: -eta * g, jax.grad(lambda d: loss_fn(outputs(d), y))(z))
      # One forward pass; its linearisation gives both θ̇ = −η Jᵀ ∂L/∂u and u̇ = J θ̇.
      u, jvp = jax.linearize(outputs, z[0])
      (g,) = jax.linear_transpose(jvp, z[0])(jax.grad(loss_fn)(u, y))
      d_delta = jax.tree.map(lambda a: -eta * a, g)
      return d_delta, jvp(d_delta)

    def delta_of(z):
      return z[0] if on_outputs else z

    def save(t, z, args):
      return common.snapshot(
        model, loss_fn, entries, context, at(delta_of(z)), frozen, x, y, x_test, save_params, rate * t
      )

    def save_running(t, z, args):
      s = common.state_of(model, loss_fn, context, at(delta_of(z)), frozen, x, y, x_test, rate * t)
      return common.running(entries, context, s)

    subs = [diffrax.SubSaveAt(ts=times, fn=save), diffrax.SubSaveAt(t1=True, fn=lambda t, z, a: delta_of(z))]
    if run_max:
      subs.append(diffrax.SubSaveAt(steps=True, fn=save_running))
    if not adaptive:
      controller = diffrax.ConstantStepSize()
    elif on_outputs:
      # Only the outputs' error steers the steps (it is what users measure), or both errors.
      norm = _rms_of_outputs if error_control == "outputs" else _rms_of_both
      controller = diffrax.PIDController(rtol=tol[0], atol=tol[1], norm=norm)
    else:
      controller = diffrax.PIDController(rtol=tol[0], atol=tol[1])
    delta0 = jax.tree.map(jnp.zeros_like, trainable0)
    z0 = (delta0, outputs(delta0)) if on_outputs else delta0
    event = diffrax.Event(lambda t, z, args, **kw: jnp.logical_not(common.all_finite(z)))
    sol = diffrax.diffeqsolve(
      diffrax.ODETerm(field),
      solver,
      t0=jnp.zeros((), times.dtype),
      t1=times[-1],
      dt0=None if auto_dt0 else dt0,
      y0=z0,
      saveat=diffrax.SaveAt(subs=subs),
      stepsize_controller=controller,
      event=event,
      max_steps=max_steps,
      throw=False,
    )
    status = jnp.select(
      [
        sol.result == diffrax.RESULTS.successful,
        sol.result == diffrax.RESULTS.event_occurred,
        sol.result == diffrax.RESULTS.max_steps_reached,
      ],
      [0, 1, 2],
      3,
    )
    final = at(jax.tree.map(lambda a: a[-1], sol.ys[1]))
    steps = (sol.ts[2], sol.ys[2]) if run_max else None
    return sol.ys[0], final, sol.ts[1], status, sol.stats, steps

  return jax.jit(run)


def _rms_of_outputs(scaled_error):
  """The step controller's norm: the RMS of the outputs' scaled local error (the displacement's is
  ignored, since it matters only through the outputs)."""
  e = scaled_error[1]
  return jnp.sqrt(jnp.mean(jnp.square(e)))


def _rms_of_both(scaled_error):
  """The larger of the outputs' and the displacement's RMS scaled local errors."""
  leaves = jax.tree.leaves(scaled_error[0])
  size = sum(l.size for l in leaves)
  params = jnp.sqrt(sum(jnp.sum(jnp.square(l)) for l in leaves) / size)
  return jnp.maximum(_rms_of_outputs(scaled_error), params)
