"""Gradient flow dθ/dt = −η ∇L as an ODE, integrated by diffrax.

`gradient_flow` runs in three parts: `_checked` validates the arguments (before anything is
traced), `_plan` names what will run (a `FlowPlan`: the program's structure, its runtime values and
the memory its results keep) and refuses what cannot fit, and `_execute` runs the compiled solve
(`flow_solve.solve`, compiled once per structure by `equinox.filter_jit`) and reads its outcome.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks
from ntk_lab.models import split_trainable, trainable_merge
from ntk_lab.observables import Observer
from ntk_lab.training import common, flow_solve
from ntk_lab.training.flow_solve import FlowInputs, FlowProgram
from ntk_lab.training.results import DivergenceError, SolverError, Trajectory
from ntk_lab.training.solvers import solver_of

__all__ = ["gradient_flow"]

ERROR_CONTROLS = ("outputs", "params", "both")


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
    save_params: also return the trainable params at every saved time (True or False). Runs
      whose kept results (saved params and outputs × saved times) cannot fit the memory
      available are refused before compiling, naming the sizes and what to change.

  Returns:
    A `Trajectory` with times (T,), train_outputs (T, N, O), test_outputs (T, N_test, O) or None.

  Raises:
    DivergenceError: the parameters or the loss became NaN/Inf (with the time it happened).
    SolverError: the solver did not reach the last time within ``max_steps``.
    jax.errors.JaxRuntimeError: either of them (same message) when called under `jax.jit`.
    ValueError: the kept results would not fit the memory available (before compiling).

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
  args = _checked(**locals())  # every argument, by name
  plan = _plan(args)
  common.refuse_unless_fits(
    "gradient_flow",
    plan.footprint,
    fewer_points=f"fewer times than {plan.footprint.records:,}",
    extra=f"for the gaps' running maxima at each of max_steps={args.max_steps:,} solver steps",
  )
  return _execute(args.model, plan)


class FlowArgs(NamedTuple):
  """The checked arguments of one call (values as the program will take them)."""

  model: Any
  params0: Any
  x: jax.Array
  y: jax.Array  # (N, O)
  x_test: jax.Array | None
  times: jax.Array
  t_last: float | None  # None when `times` is traced
  loss: str
  reduction: str
  learning_rate: float
  solver: diffrax.AbstractSolver
  adaptive: bool
  rtol: float
  atol: float
  error_control: str
  dt0: float | None
  max_steps: int
  observer: Observer
  save_params: bool


class FlowPlan(NamedTuple):
  """What one call will run: the program, its inputs, and the memory its results keep."""

  program: FlowProgram
  inputs: FlowInputs
  footprint: common.Footprint


def _checked(
  *,
  model,
  params0,
  x,
  y,
  times,
  loss,
  reduction,
  learning_rate,
  solver,
  rtol,
  atol,
  error_control,
  dt0,
  max_steps,
  observe,
  x_test,
  save_params,
) -> FlowArgs:
  """Every argument checked (and converted), before anything is traced or compiled."""
  x, y, x_test = common.prepare(model, params0, x, y, loss, x_test)
  _checks.choice(reduction, "reduction", common.REDUCTIONS)
  _checks.choice(error_control, "error_control", ERROR_CONTROLS)
  save_params = common._boolean(save_params, "save_params")
  params0 = _checks.promote_params(params0, x.dtype)
  times, t_last = _check_times(times, x.dtype)
  eta = _checks.positive_number(learning_rate, "learning_rate")
  max_steps = _checks.positive_int(max_steps, "max_steps")
  solver_obj, adaptive = solver_of(solver, dt0)
  if dt0 is not None:
    dt0 = common.positive(dt0, "dt0")
  if adaptive:
    rtol, atol = common.positive(rtol, "rtol"), common.positive(atol, "atol")
  else:
    rtol = atol = 1.0  # unused by constant steps
    if t_last is not None and math.ceil(t_last / dt0) > max_steps:
      raise ValueError(
        f"dt0: reaching t = {t_last:g} in steps of {dt0:g} takes "
        f"{math.ceil(t_last / dt0)} steps, more than max_steps={max_steps}; "
        "raise max_steps or dt0."
      )
  observer = Observer(model, params0, x, y, loss=loss, observe=observe, x_test=x_test, reduction=reduction)
  return FlowArgs(
    model=model,
    params0=params0,
    x=x,
    y=y,
    x_test=x_test,
    times=times,
    t_last=t_last,
    loss=loss,
    reduction=reduction,
    learning_rate=eta,
    solver=solver_obj,
    adaptive=adaptive,
    rtol=rtol,
    atol=atol,
    error_control=error_control if adaptive else "params",  # constant steps measure nothing
    dt0=dt0,
    max_steps=max_steps,
    observer=observer,
    save_params=save_params,
  )


def _plan(a: FlowArgs) -> FlowPlan:
  """The program, its runtime values, and the bytes its results keep (from shapes only)."""
  program = FlowProgram(
    loss=a.loss,
    reduction=a.reduction,
    solver=a.solver,
    adaptive=a.adaptive,
    error_control=a.error_control,
    auto_dt0=a.dt0 is None,
    max_steps=a.max_steps,
    observables=a.observer.entries,
    save_params=a.save_params,
  )
  trainable0, frozen = split_trainable(a.model, a.params0)
  context = {"params0": a.params0, "observables": a.observer.context}
  data = common.Data(a.model, frozen, a.x, a.y, a.x_test, context)
  dtype = a.x.dtype
  inputs = FlowInputs(
    data,
    trainable0,
    a.times,
    jnp.asarray(a.learning_rate, dtype),
    jnp.asarray(a.learning_rate * common.time_scale(a.reduction, a.y), dtype),
    jnp.asarray(a.rtol, dtype),
    jnp.asarray(a.atol, dtype),
    None if a.dt0 is None else jnp.asarray(a.dt0, dtype),
  )
  loss_fn = common.loss_fn(a.loss, a.reduction)
  record, peaks = common.record_shapes(data, loss_fn, program.observables, trainable0, a.save_params)
  # diffrax keeps a max_steps-long buffer of (t, running observables) when any is observed.
  per_step = common.nbytes(peaks) + dtype.itemsize if peaks else 0
  footprint = common.Footprint(
    records=int(a.times.shape[0]),
    record_bytes=common.nbytes(record),
    params_bytes=common.nbytes(record.get("params", ())),
    extra_bytes=a.max_steps * per_step,
  )
  return FlowPlan(program, inputs, footprint)


def _execute(model, plan: FlowPlan) -> Trajectory:
  """Runs the compiled solve; raises what went wrong, or returns the `Trajectory`."""
  solved = flow_solve.solve(plan.program, plan.inputs)
  times = plan.inputs.times
  stats = {k: v for k, v in solved.stats.items() if k.startswith("num_")}
  _checks.now_or_at_run_time(
    functools.partial(_flow_failure, max_steps=plan.program.max_steps),
    solved.status,
    solved.t_end,
    stats["num_steps"],
    stats["num_rejected_steps"],
    solved.saved["loss"],
    times,
  )
  try:
    stats = {k: int(v) for k, v in stats.items()}
  except _checks.TRACED:  # under jit or vmap they stay arrays
    pass
  obs = dict(solved.saved["obs"])
  if solved.steps is not None:
    obs.update(flow_solve.running_maxima(times, obs, *solved.steps))
  return Trajectory(
    times,
    solved.saved["train"],
    solved.saved.get("test"),
    solved.saved.get("params"),
    trainable_merge(model)(solved.final, plan.inputs.data.frozen),
    obs,
    stats,
  )


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
