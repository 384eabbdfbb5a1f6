"""Pieces both trainers share: losses, data checks against the model, the model's split into
static structure and arrays (for `jax.jit`), and one record of a training state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_lab import _checks
from ntk_lab.mlp import Wrapper, apply_fn_of, trainable_merge
from ntk_lab.observables import State, compute

LOSSES = ("mse", "cross_entropy")
REDUCTIONS = ("sum", "mean")


def loss_fn(kind, reduction="sum"):
  """L(out, y): MSE ½ Σ (out − y)² or summed softmax cross-entropy (``"sum"``); ``"mean"`` divides
  MSE by y.size (NT's, Jacot et al.'s and Lee et al.'s convention) and cross-entropy by the
  number of points."""
  if kind == "mse":
    if reduction == "mean":
      return lambda out, y: 0.5 * jnp.mean((out - y) ** 2)
    return lambda out, y: 0.5 * jnp.sum((out - y) ** 2)
  if reduction == "mean":
    return lambda out, y: jnp.mean(optax.softmax_cross_entropy(out, y))
  return lambda out, y: jnp.sum(optax.softmax_cross_entropy(out, y))


def time_scale(reduction, y):
  """The factor c with kernel time τ = c·η·t: 1 for ``"sum"``, 1/y.size for ``"mean"``."""
  return 1.0 if reduction == "sum" else 1.0 / y.size


def prepare(model, params0, x, y, loss, x_test):
  """Checks the data against the model (before any compilation); returns x, y (N, O), x_test."""
  apply_fn = apply_fn_of(model)
  _checks.choice(loss, "loss", LOSSES)
  _checks.finite_tree(params0, "params0")
  x = _checks.as_batch(x, "x")
  n = x.shape[0]
  try:
    out = jax.eval_shape(apply_fn, params0, x[:1])
  except (TypeError, ValueError) as e:
    raise type(e)(f"params0/x: the model cannot be applied to them: {e}") from e
  if len(out.shape) != 2:
    raise ValueError(f"model: apply(params, x) must return (N, O), got {out.shape} for 1 point.")
  o = out.shape[1]
  y = (
    _checks.as_batch(y, "y")
    if not (hasattr(y, "dtype") and jnp.issubdtype(y.dtype, jnp.integer) and loss == "cross_entropy")
    else jnp.asarray(y)
  )
  if y.shape[0] != n:
    raise ValueError(f"y: has {y.shape[0]} targets but x has {n} points; they must match.")
  if loss == "cross_entropy" and y.ndim == 1:
    if not jnp.issubdtype(y.dtype, jnp.integer):
      raise TypeError(
        "y: for loss='cross_entropy' pass integer class labels (N,) or "
        f"probabilities (N, {o}); got a 1-D {y.dtype} array."
      )

    def labels_in_range(lo, hi):
      if int(lo) < 0 or int(hi) >= o:
        raise ValueError(
          f"y: class labels must lie in [0, {o}) for a model with {o} outputs, "
          f"got range [{int(lo)}, {int(hi)}]."
        )

    _checks.now_or_at_run_time(labels_in_range, y.min(), y.max())
    y = jax.nn.one_hot(y, o, dtype=out.dtype)
  elif y.ndim == 1:
    y = y[:, None]
  if y.shape != (n, o):
    raise ValueError(
      f"y: expected shape ({n},) or ({n}, {o}) for a model with {o} outputs, got {tuple(y.shape)}."
    )
  y = y.astype(out.dtype)
  if x_test is not None:
    x_test = _checks.as_batch(x_test, "x_test")
    if x_test.shape[1:] != x.shape[1:]:
      raise ValueError(f"x_test: per-point shape {x_test.shape[1:]} differs from x's {x.shape[1:]}.")
  return x, y, x_test


def split_model(model):
  """(static, leaves): wrappers carry arrays (θ₀) that must be jit arguments, not constants."""
  if isinstance(model, Wrapper):
    leaves, treedef = jax.tree.flatten(model)
    return treedef, leaves
  return model, None


def join_model(static, leaves):
  return static if leaves is None else jax.tree.unflatten(static, leaves)


def positive(value, name):
  """A concrete finite number > 0 as a float (`_checks.positive_number`, the library's policy)."""
  return _checks.positive_number(value, name, static=True)


def all_finite(tree):
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(l)) for l in leaves])) if leaves else True


def state_of(model, loss_fn, context, theta, frozen, x, y, x_test, kernel_time):
  """The `State` observables see at trainable params θ (traceable)."""
  params = trainable_merge(model)(theta, frozen)
  f = apply_fn_of(model)
  out = f(params, x)
  test = None if x_test is None else f(params, x_test)
  return State(model, params, context["params0"], x, y, out, loss_fn(out, y), x_test, test, kernel_time, None)


def snapshot(model, loss_fn, entries, context, theta, frozen, x, y, x_test, save_params, kernel_time):
  """What both trainers record of one state: outputs, loss, observables (and params)."""
  s = state_of(model, loss_fn, context, theta, frozen, x, y, x_test, kernel_time)
  rec = {"train": s.outputs, "loss": s.loss, "obs": compute(entries, context["observables"], s)}
  if x_test is not None:
    rec["test"] = s.test_outputs
  if save_params:
    rec["params"] = theta
  return rec


def running(entries, context, state):
  """The running-maximum observables at one state (traceable)."""
  return compute(entries, context["observables"], state, running_only=True)


def last_finite(values):
  ok = np.flatnonzero(np.isfinite(values))
  return int(ok[-1]) if ok.size else None
