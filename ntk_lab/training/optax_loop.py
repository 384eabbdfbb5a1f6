"""Training with an optax optimizer: a jitted step inside `lax.scan`."""

from __future__ import annotations

import functools
import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_lab import _checks
from ntk_lab.mlp import apply_fn_of, split_trainable, trainable_merge
from ntk_lab.observables import Observer
from ntk_lab.training import common
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

  The program is compiled once per structure: the cache is keyed on what the optimizer computes
  (its traced update and constants), not on the object, so a freshly built ``optax.sgd(0.1)``
  reuses the compilation. Hyperparameters written into the optimizer (the 0.1) are part of that
  structure; to vary them without recompiling, make them runtime state with
  ``optax.inject_hyperparams(optax.sgd)(learning_rate=η)``.

  Args:
    model, params0, x, y, loss, reduction, x_test, observe, save_params: as in `gradient_flow`
      (the gaps' running maxima cover every step).
    optimizer: an ``optax.GradientTransformation``.
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

  Example:
    >>> import jax, jax.numpy as jnp, optax, ntk_lab as nl
    >>> net = nl.MLP((64,), b_std=None)
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 3)); y = jnp.sin(x[:, 0])
    >>> run = nl.train(net, net.init(jax.random.PRNGKey(1), 3), x, y,
    ...                optimizer=optax.sgd(0.05), steps=200, every=50, observe="loss")
    >>> run.times.tolist(), run.train_outputs.shape
    ([0, 50, 100, 150, 200], (5, 8, 1))
  """
  x, y, x_test = common.prepare(model, params0, x, y, loss, x_test)
  _checks.choice(reduction, "reduction", common.REDUCTIONS)
  params0 = _checks.promote_params(params0, x.dtype)
  if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
    raise TypeError(
      f"optimizer: expected an optax.GradientTransformation such as optax.sgd(0.1), "
      f"got {type(optimizer).__name__}."
    )
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
  trainable0, frozen = split_trainable(model, params0)
  static, leaves = common.split_model(model)
  opt_state = optimizer.init(trainable0)
  run = _compiled_train(
    static,
    loss,
    reduction,
    _canonical(optimizer, trainable0, opt_state),
    batch_size,
    every,
    steps // every,
    observer.entries,
    bool(save_params),
  )
  context = {"params0": params0, "observables": observer.context}
  rec, final, bad_step, last_loss, last_step = run(
    leaves, trainable0, opt_state, frozen, x, y, x_test, key, jnp.asarray(tau, x.dtype), context
  )
  _checks.now_or_at_run_time(functools.partial(_train_failure, steps=steps), bad_step, last_loss, last_step)
  recorded = np.arange(0, steps + 1, every)
  return Trajectory(
    recorded,
    rec["train"],
    rec.get("test"),
    rec.get("params"),
    trainable_merge(model)(final, frozen),
    dict(rec["obs"]),
    {"steps": steps},
  )


# Optimizers already compiled for, keyed on what their update computes.
_OPTIMIZERS: dict = {}


def _canonical(optimizer, params, state):
  """The first optimizer seen whose update traces to the same program with the same constants
  (so a fresh ``optax.sgd(0.1)`` maps to the one already compiled for). Under tracing (e.g. a
  `vmap` over θ₀) the optimizer itself is the key."""
  try:
    closed = jax.make_jaxpr(optimizer.update)(params, state, params)
    consts = tuple(
      (np.shape(c), str(np.result_type(c)), hashlib.sha256(np.asarray(c).tobytes()).hexdigest())
      for c in closed.consts
    )
  except _checks.TRACED:
    return optimizer
  key = (str(closed.jaxpr), consts, jax.tree.structure(state))
  if len(_OPTIMIZERS) > 256:
    _OPTIMIZERS.clear()
  return _OPTIMIZERS.setdefault(key, optimizer)


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


@functools.lru_cache(maxsize=32)
def _compiled_train(static, loss, reduction, optimizer, batch_size, every, n_records, entries, save_params):
  loss_fn = common.loss_fn(loss, reduction)
  run_max = any(e.running_max for _, e in entries)

  def run(leaves, trainable0, opt_state0, frozen, x, y, x_test, key, tau, context):
    model = common.join_model(static, leaves)
    f = apply_fn_of(model)
    merge = trainable_merge(model)
    n = x.shape[0]

    def batch_loss(theta, xb, yb):
      # A minibatch's loss, rescaled to estimate the full one (its mean is already per point).
      return loss_fn(f(merge(theta, frozen), xb), yb) * (1.0 if reduction == "mean" else n / xb.shape[0])

    def running(theta, k):
      return common.running(
        entries, context, common.state_of(model, loss_fn, context, theta, frozen, x, y, x_test, k * tau)
      )

    def step(carry, k):
      def advance(carry):
        theta, opt_state, bad, last_loss, last_step, peak = carry
        if batch_size is None:
          xb, yb = x, y
        else:
          idx = jax.random.choice(jax.random.fold_in(key, k), n, (batch_size,), replace=False)
          xb, yb = x[idx], y[idx]
        value, grads = jax.value_and_grad(batch_loss)(theta, xb, yb)
        updates, new_state = optimizer.update(grads, opt_state, theta)
        new_theta = optax.apply_updates(theta, updates)
        ok = jnp.isfinite(value) & common.all_finite(new_theta)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        if run_max:  # the gaps after this step, so that every step's state is measured
          peak = keep(jax.tree.map(jnp.maximum, peak, running(new_theta, k + 1)), peak)
        return (
          keep(new_theta, theta),
          keep(new_state, opt_state),
          jnp.where(ok, bad, k),
          jnp.where(ok, value, last_loss),
          jnp.where(ok, k, last_step),
          peak,
        )

      # After a divergence the remaining steps are skipped (cond runs one branch).
      return jax.lax.cond(carry[2] >= 0, lambda c: c, advance, carry), None

    def record(carry, k):
      rec = common.snapshot(
        model, loss_fn, entries, context, carry[0], frozen, x, y, x_test, save_params, k * tau
      )
      rec["obs"].update({name + "_max": v for name, v in carry[5].items()})
      return rec

    def chunk(carry, r):
      carry, _ = jax.lax.scan(step, carry, r * every + jnp.arange(every))
      return carry, record(carry, (r + 1) * every)

    dtype = jax.tree.leaves(trainable0)[0].dtype
    peak = running(trainable0, 0) if run_max else {}
    carry = (trainable0, opt_state0, jnp.asarray(-1), jnp.asarray(jnp.nan, dtype), jnp.asarray(-1), peak)
    first = record(carry, 0)
    carry, rest = jax.lax.scan(chunk, carry, jnp.arange(n_records))
    rec = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    return rec, carry[0], carry[2], carry[3], carry[4]

  return jax.jit(run)
