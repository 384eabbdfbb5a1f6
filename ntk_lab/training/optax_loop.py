"""Training with an optax optimizer: a jitted step inside `lax.scan`.

`train` runs in three parts: `_checked` validates the arguments and the optimizer (before anything
is compiled), `_plan` names what will run (a `TrainPlan`: the program's structure, its runtime
values and the memory its records keep) and refuses what cannot fit, and `_execute` runs the
compiled loop (`_run`, compiled once per structure by `equinox.filter_jit`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_lab import _checks
from ntk_lab.models import apply_fn_of, split_trainable, trainable_merge
from ntk_lab.observables import Observer
from ntk_lab.training import common, optimizers
from ntk_lab.training.results import DivergenceError, Trajectory

__all__ = ["train"]


def train(
  model,
  params0,
  x,
  y,
  *,
  optimizer,
  steps: int,
  loss: str = "mse",
  reduction: str = "sum",
  batch_size: int | None = None,
  key=None,
  every: int | None = None,
  observe=(),
  x_test=None,
  save_params: bool = False,
  time_per_step: float | None = None,
) -> Trajectory:
  """Trains with an optax optimizer for `steps` steps (one `lax.scan`, compiled once).

  Each step takes the gradient of L on the full batch (``batch_size=None``: gradient descent) or
  on ``batch_size`` points drawn without replacement (SGD), rescaled by N/batch_size so that its
  expectation is ∇L; the optimizer (``optax.sgd(η)``, ``optax.sgd(η, momentum=…)``,
  ``optax.adam(…)``, …) turns it into an update. With ``optax.sgd(η)`` and full batches this is
  the Euler discretisation of `gradient_flow` (learning_rate=1, same `reduction`) with step η.

  The program is compiled once per structure: the optimizer counts by what its update computes
  (a fingerprint of its code and the values it closes over), not by the object, so a freshly
  built ``optax.sgd(0.1)`` reuses the compilation. Hyperparameters written into the optimizer (the 0.1) are part of that
  structure; to vary them without recompiling, make them runtime state with
  ``optax.inject_hyperparams(optax.sgd)(learning_rate=η)``.

  Args:
    model, params0, x, y, loss, reduction, x_test, observe, save_params: as in `gradient_flow`
      (the gaps' running maxima cover every step).
    optimizer: an ``optax.GradientTransformation``. Every optax optimizer (an
      ``optax.GradientTransformationExtraArgs``) also gets the batch loss as ``value``, its
      gradient as ``grad`` and the batch loss function as ``value_fn``, so ``optax.lbfgs()`` and
      ``optax.contrib.reduce_on_plateau`` work; one that needs other arguments, or its own
      parameter structure (``optax.lookahead``), is refused before compiling.
    steps: the number of optimizer steps.
    batch_size: minibatch size for SGD (needs `key`), or None for full batches.
    key: a PRNG key for the minibatches.
    every: record outputs and observables every `every` steps (steps must be a multiple);
      default: about 100 records.
    time_per_step: the gradient-flow time of one step (η for ``optax.sgd(η)``); needed only by
      observables that compare with gradient-flow closed forms (``lin_gap``, ``ntk_gap``).

  Returns:
    A `Trajectory` whose ``times`` are the recorded step counts 0, every, …, steps.

  Raises:
    DivergenceError: the loss or the parameters became NaN/Inf, naming the step.
    TypeError: an optimizer train cannot drive, or a non-bool ``save_params`` (before compiling).
    ValueError: the records would not fit the memory available (before compiling).

  Example:
    >>> import jax, jax.numpy as jnp, optax, ntk_lab as nl
    >>> net = nl.MLP((64,), b_std=None)
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 3)); y = jnp.sin(x[:, 0])
    >>> run = nl.train(net, net.init(jax.random.PRNGKey(1), 3), x, y,
    ...                optimizer=optax.sgd(0.05), steps=200, every=50, observe="loss")
    >>> run.times.tolist(), run.train_outputs.shape
    ([0, 50, 100, 150, 200], (5, 8, 1))
  """
  args = _checked(**locals())  # every argument, by name
  plan = _plan(args)
  common.refuse_unless_fits("train", plan.footprint, fewer_points=f"a larger every than {args.every}")
  return _execute(args.model, plan)


class TrainArgs(NamedTuple):
  """The checked arguments of one call."""

  model: Any
  params0: Any
  x: jax.Array
  y: jax.Array  # (N, O)
  x_test: jax.Array | None
  loss: str
  reduction: str
  optimizer: Any
  steps: int
  every: int
  batch_size: int | None
  key: jax.Array
  kernel_time_per_step: float  # time_per_step in kernel time (NaN when not given)
  observer: Observer
  save_params: bool


class TrainProgram(NamedTuple):
  """The structure of one compiled loop (`_run` is compiled once per distinct value of it)."""

  loss: str
  reduction: str
  optimizer: Any  # the canonical optimizer of its fingerprint (`optimizers.canonical`)
  batch_size: int | None  # None: full batches
  every: int  # steps between records
  n_records: int  # records after the initial one
  observables: tuple  # (name, Observable) entries
  save_params: bool

  @property
  def running_max(self) -> bool:
    return any(e.running_max for _, e in self.observables)


class TrainInputs(NamedTuple):
  """The runtime values of one loop."""

  data: common.Data
  trainable0: Any
  opt_state0: Any
  key: jax.Array
  tau: jax.Array  # kernel time per step


class TrainPlan(NamedTuple):
  """What one call will run: the program, its inputs, the memory its records keep, and the
  recorded step counts."""

  program: TrainProgram
  inputs: TrainInputs
  footprint: common.Footprint
  recorded: np.ndarray


class Carry(NamedTuple):
  """The loop's state between steps."""

  theta: Any  # trainable params
  opt_state: Any
  bad_step: jax.Array  # the first step that produced NaN/Inf, or -1
  last_loss: jax.Array  # the last finite loss ...
  last_step: jax.Array  # ... and its step (-1: none yet)
  peak: dict  # running maxima of the gaps


class Ran(NamedTuple):
  """What the compiled loop returns."""

  records: dict  # the records, each with a leading (n_records + 1) axis
  final: Any  # trainable params after the last finite step
  bad_step: jax.Array
  last_loss: jax.Array
  last_step: jax.Array


def _checked(
  *,
  model,
  params0,
  x,
  y,
  optimizer,
  steps,
  loss,
  reduction,
  batch_size,
  key,
  every,
  observe,
  x_test,
  save_params,
  time_per_step,
) -> TrainArgs:
  """Every argument checked (and converted), before anything is compiled."""
  x, y, x_test = common.prepare(model, params0, x, y, loss, x_test)
  _checks.choice(reduction, "reduction", common.REDUCTIONS)
  save_params = common._boolean(save_params, "save_params")
  params0 = _checks.promote_params(params0, x.dtype)
  if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
    raise TypeError(optimizers._OPTIMIZER_TYPE.format(type(optimizer).__name__))
  steps = _checks.positive_int(steps, "steps")
  if every is None:
    every = max(d for d in range(1, max(1, steps // 100) + 1) if steps % d == 0)
  every = _checks.positive_int(every, "every")
  if steps % every:
    raise ValueError(
      f"every: steps ({steps}) must be a multiple of every ({every}); e.g. every={math.gcd(steps, every)}."
    )
  n = x.shape[0]
  if batch_size is not None:
    batch_size = _checks.positive_int(batch_size, "batch_size")
    if batch_size > n:
      raise ValueError(f"batch_size: {batch_size} exceeds the {n} training points.")
    if key is None:
      raise ValueError(
        "key: minibatch SGD (batch_size set) needs a PRNG key, e.g. key=jax.random.PRNGKey(0)."
      )
  key = jax.random.PRNGKey(0) if key is None else key
  observer = Observer(model, params0, x, y, loss=loss, observe=observe, x_test=x_test, reduction=reduction)
  if observer.needs_time and time_per_step is None:
    raise ValueError(
      "time_per_step: the 'lin_gap'/'ntk_gap' observables compare with gradient "
      "flow at t = step · time_per_step; pass it (η for optax.sgd(η))."
    )
  tau = (
    np.nan
    if time_per_step is None
    else common.positive(time_per_step, "time_per_step") * common.time_scale(reduction, y)
  )
  return TrainArgs(
    model=model,
    params0=params0,
    x=x,
    y=y,
    x_test=x_test,
    loss=loss,
    reduction=reduction,
    optimizer=optimizer,
    steps=steps,
    every=every,
    batch_size=batch_size,
    key=key,
    kernel_time_per_step=tau,
    observer=observer,
    save_params=save_params,
  )


def _plan(a: TrainArgs) -> TrainPlan:
  """The program, its runtime values, and the bytes its records keep (from shapes only)."""
  trainable0, frozen = split_trainable(a.model, a.params0)
  opt_state = optimizers.check(a.optimizer, trainable0, a.y.dtype)
  n_records = a.steps // a.every
  program = TrainProgram(
    loss=a.loss,
    reduction=a.reduction,
    optimizer=optimizers.canonical(a.optimizer, opt_state),
    batch_size=a.batch_size,
    every=a.every,
    n_records=n_records,
    observables=a.observer.entries,
    save_params=a.save_params,
  )
  context = {"params0": a.params0, "observables": a.observer.context}
  data = common.Data(a.model, frozen, a.x, a.y, a.x_test, context)
  inputs = TrainInputs(data, trainable0, opt_state, a.key, jnp.asarray(a.kernel_time_per_step, a.x.dtype))
  loss_fn = common.loss_fn(a.loss, a.reduction)
  record, peaks = common.record_shapes(data, loss_fn, program.observables, trainable0, a.save_params)
  footprint = common.Footprint(
    records=n_records + 1,
    record_bytes=common.nbytes(record) + common.nbytes(peaks),  # each record also holds the maxima
    params_bytes=common.nbytes(record.get("params", ())),
    copies=2,  # the scan's records and their concatenation with the first
  )
  return TrainPlan(program, inputs, footprint, np.arange(0, a.steps + 1, a.every))


def _execute(model, plan: TrainPlan) -> Trajectory:
  """Runs the compiled loop; raises a divergence, or returns the `Trajectory`."""
  ran = _run(plan.program, plan.inputs)
  steps = int(plan.recorded[-1])
  _checks.now_or_at_run_time(
    functools.partial(_train_failure, steps=steps), ran.bad_step, ran.last_loss, ran.last_step
  )
  return Trajectory(
    plan.recorded,
    ran.records["train"],
    ran.records.get("test"),
    ran.records.get("params"),
    trainable_merge(model)(ran.final, plan.inputs.data.frozen),
    dict(ran.records["obs"]),
    {"steps": steps},
  )


def _train_failure(bad_step, last_loss, last_step, *, steps):
  bad_step, last_step = int(bad_step), int(last_step)
  if bad_step >= 0:
    last = "" if last_step < 0 else f"; the last finite loss was {float(last_loss):.6g} at step {last_step}"
    raise DivergenceError(
      f"train: diverged at step {bad_step} of {steps}: the loss or the parameters became "
      f"NaN/Inf{last}. Use a smaller learning rate.",
      step=bad_step,
      last_finite_loss=None if last_step < 0 else float(last_loss),
      last_finite_at=None if last_step < 0 else last_step,
    )


@eqx.filter_jit
def _run(program: TrainProgram, inputs: TrainInputs) -> Ran:
  """The loop, compiled once per (program, array shapes): values in `inputs` are arguments."""
  common.TRACES["train"] += 1
  p, data = program, inputs.data
  loss_fn = common.loss_fn(p.loss, p.reduction)
  f = apply_fn_of(data.model)
  merge = trainable_merge(data.model)
  n = data.x.shape[0]

  def batch_loss(theta, xb, yb):
    # A minibatch's loss, rescaled to estimate the full one (its mean is already per point).
    return loss_fn(f(merge(theta, data.frozen), xb), yb) * (1.0 if p.reduction == "mean" else n / xb.shape[0])

  def running(theta, k):
    return common.running(data, loss_fn, p.observables, theta, k * inputs.tau)

  def step(carry: Carry, k) -> tuple[Carry, None]:
    def advance(c: Carry) -> Carry:
      if p.batch_size is None:
        xb, yb = data.x, data.y
      else:
        idx = jax.random.choice(jax.random.fold_in(inputs.key, k), n, (p.batch_size,), replace=False)
        xb, yb = data.x[idx], data.y[idx]
      value, grads = jax.value_and_grad(batch_loss)(c.theta, xb, yb)
      updates, new_state = optimizers.update(
        p.optimizer, grads, c.opt_state, c.theta, value=value, value_fn=lambda th: batch_loss(th, xb, yb)
      )
      new_theta = optax.apply_updates(c.theta, updates)
      ok = jnp.isfinite(value) & common.all_finite(new_theta)
      keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
      peak = c.peak
      if p.running_max:  # the gaps after this step, so that every step's state is measured
        peak = keep(jax.tree.map(jnp.maximum, peak, running(new_theta, k + 1)), peak)
      return Carry(
        theta=keep(new_theta, c.theta),
        opt_state=keep(new_state, c.opt_state),
        bad_step=jnp.where(ok, c.bad_step, k),
        last_loss=jnp.where(ok, value, c.last_loss),
        last_step=jnp.where(ok, k, c.last_step),
        peak=peak,
      )

    # After a divergence the remaining steps are skipped (cond runs one branch).
    return jax.lax.cond(carry.bad_step >= 0, lambda c: c, advance, carry), None

  def record(carry: Carry, k):
    rec = common.snapshot(data, loss_fn, p.observables, carry.theta, p.save_params, k * inputs.tau)
    rec["obs"].update({name + "_max": v for name, v in carry.peak.items()})
    return rec

  def chunk(carry: Carry, r):
    carry, _ = jax.lax.scan(step, carry, r * p.every + jnp.arange(p.every))
    return carry, record(carry, (r + 1) * p.every)

  dtype = jax.tree.leaves(inputs.trainable0)[0].dtype
  carry = Carry(
    theta=inputs.trainable0,
    opt_state=inputs.opt_state0,
    bad_step=jnp.asarray(-1),
    last_loss=jnp.asarray(jnp.nan, dtype),
    last_step=jnp.asarray(-1),
    peak=running(inputs.trainable0, 0) if p.running_max else {},
  )
  first = record(carry, 0)
  carry, rest = jax.lax.scan(chunk, carry, jnp.arange(p.n_records))
  records = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
  return Ran(records, carry.theta, carry.bad_step, carry.last_loss, carry.last_step)
