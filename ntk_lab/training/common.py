"""Pieces both trainers share: losses, argument and data checks against the model, one record of
a training state, the memory the kept results need, and a count of compilations."""

from __future__ import annotations

import collections
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_lab import _checks, _tiling
from ntk_lab.models import apply_fn_of, trainable_merge
from ntk_lab.observables import State, compute

LOSSES = ("mse", "cross_entropy")
REDUCTIONS = ("sum", "mean")

# How many times each trainer's program was traced (so compiled): one per structure. Read by the
# tests that check a new learning rate, tolerance or fresh optimizer reuses the program.
TRACES: collections.Counter = collections.Counter()


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


# TODO(lead): `_checks.boolean(value, name)` is being added to ntk_lab/_checks.py; this private
# copy avoids a merge conflict until the two are unified.
def _boolean(value, name):
  """A Python or NumPy bool, as a bool; anything else (the string 'False', 0, None) is refused."""
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  raise TypeError(f"{name}: expected True or False, got {value!r} ({type(value).__name__}).")


def check_model(model, params0):
  """The model's apply function; anything else as the model (a dict or list of params in the
  model's place?) and non-array params are refused naming the argument."""
  try:
    apply_fn = apply_fn_of(model)
  except (TypeError, AttributeError) as e:
    if isinstance(model, (dict, list, tuple)):
      raise TypeError(
        f"model: expected a network (e.g. ntk_lab.MLP(...)), a wrapper of one (ntk_lab.linearize, "
        f"ntk_lab.centered) or an apply_fn(params, x), got a {type(model).__name__}; pass the "
        "network as model and its parameters (model.init(key, d)) as params0."
      ) from e
    raise TypeError(f"model: {e}" if not str(e).startswith("model:") else str(e)) from e
  bad = [l for l in jax.tree.leaves(params0) if not (eqx.is_array(l) or isinstance(l, (int, float)))]
  if bad:
    raise TypeError(
      f"params0: expected a pytree of arrays (model.init(key, d)), found a leaf of type "
      f"{type(bad[0]).__name__}; was the model passed as params0?"
    )
  return apply_fn


def prepare(model, params0, x, y, loss, x_test):
  """Checks the data against the model (before any compilation); returns x, y (N, O), x_test."""
  apply_fn = check_model(model, params0)
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


def positive(value, name):
  """A concrete finite number > 0 as a float (`_checks.positive_number`, the library's policy)."""
  return _checks.positive_number(value, name, static=True)


def all_finite(tree):
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(l)) for l in leaves])) if leaves else True


class Data(NamedTuple):
  """What the trainers' programs see of a run besides its parameters (arrays or static parts)."""

  model: object  # the network (static) or a wrapper (its θ₀ arrays are arguments, not constants)
  frozen: object  # the frozen params (None when every leaf trains)
  x: jax.Array
  y: jax.Array  # (N, O)
  x_test: jax.Array | None
  context: dict  # {"params0": θ₀, "observables": the observables' precomputed arrays}


def state_of(data: Data, loss_fn, theta, kernel_time):
  """The `State` observables see at trainable params θ (traceable)."""
  params = trainable_merge(data.model)(theta, data.frozen)
  f = apply_fn_of(data.model)
  out = f(params, data.x)
  test = None if data.x_test is None else f(params, data.x_test)
  loss = loss_fn(out, data.y)
  return State(
    data.model,
    params,
    data.context["params0"],
    data.x,
    data.y,
    out,
    loss,
    data.x_test,
    test,
    kernel_time,
    None,
  )


def snapshot(data: Data, loss_fn, entries, theta, save_params, kernel_time):
  """What both trainers record of one state: outputs, loss, observables (and params)."""
  s = state_of(data, loss_fn, theta, kernel_time)
  rec = {"train": s.outputs, "loss": s.loss, "obs": compute(entries, data.context["observables"], s)}
  if data.x_test is not None:
    rec["test"] = s.test_outputs
  if save_params:
    rec["params"] = theta
  return rec


def running(data: Data, loss_fn, entries, theta, kernel_time):
  """The running-maximum observables at one state (traceable)."""
  state = state_of(data, loss_fn, theta, kernel_time)
  return compute(entries, data.context["observables"], state, running_only=True)


def last_finite(values):
  ok = np.flatnonzero(np.isfinite(values))
  return int(ok[-1]) if ok.size else None


# ------------------------------------------------------------------------ memory of kept results
class Footprint(NamedTuple):
  """The bytes a run keeps: `records` saved points of `record_bytes` each (`params_bytes` of them
  the saved params), `extra_bytes` more (per-step buffers), all held `copies` times at the peak."""

  records: int
  record_bytes: int
  params_bytes: int
  extra_bytes: int = 0
  copies: int = 1

  @property
  def total(self) -> int:
    return self.copies * self.records * self.record_bytes + self.extra_bytes


def nbytes(tree) -> int:
  """Bytes of a pytree of arrays or shape-dtype structs."""
  return sum(int(np.prod(a.shape)) * jnp.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree))


def record_shapes(data: Data, loss_fn, entries, theta, save_params):
  """(one saved record, one running-maximum record) as shape-dtype structs: traced, not run."""
  tau = jnp.zeros((), data.x.dtype)
  record = eqx.filter_eval_shape(snapshot, data, loss_fn, entries, theta, save_params, tau)
  peaks = {}
  if any(e.running_max for _, e in entries):
    peaks = eqx.filter_eval_shape(running, data, loss_fn, entries, theta, tau)
  return record, peaks


def refuse_unless_fits(what: str, footprint: Footprint, *, fewer_points: str, extra: str = "") -> None:
  """Raises ValueError, before anything is compiled, when the kept results cannot fit the memory
  available (`ntk_lab._tiling.available_bytes`, the kernels' check), naming sizes and remedies."""
  free = _tiling.available_bytes()
  need = footprint.total
  if free is None or need <= free:
    return
  per, params = footprint.record_bytes, footprint.params_bytes
  parts = f"{footprint.records:,} saved points × {per / 1e6:.3g} MB"
  if params:
    parts += f" ({params / 1e6:.3g} MB of them the saved params)"
  if footprint.copies > 1:
    parts += f", held {footprint.copies} times while they are assembled"
  if footprint.extra_bytes:
    parts += f", + {footprint.extra_bytes / 1e9:.3g} GB {extra}"
  remedies = f"save fewer points ({fewer_points})"
  if params:
    remedies += ", save_params=False (final_params is returned either way)"
  raise ValueError(
    f"{what}: the results it keeps need {need / 1e9:.3g} GB ({parts}), more than the "
    f"{free / 1e9:.3g} GB available. Remedies: {remedies}, or observe fewer quantities; "
    "or split the run into shorter runs, each starting from the last one's final_params."
  )
