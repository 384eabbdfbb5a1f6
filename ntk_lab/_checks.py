"""Argument checks shared by the public functions.

Shape and type checks run in Python at trace time, so they raise the same `ValueError`/`TypeError`
under `jax.jit` as in a plain call. Value checks (finiteness) need concrete numbers: on concrete
arrays they raise `ValueError` at once; on traced arrays (inside `jit`) a host callback raises the
same message when the compiled function runs, surfacing as a `jax.errors.JaxRuntimeError`. Under a
plain `jax.vmap` the callback runs once per batch element and raises the original exception.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def as_batch(x, name: str, *, finite: bool = True):
  """Validates a batch of N ≥ 1 points of any per-point shape; returns a floating jax array."""
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    try:
      x = jnp.asarray(x)
    except TypeError as e:
      raise TypeError(f"{name}: expected an array with a leading axis of N points, got "
                      f"{type(x).__name__}.") from e
  if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected a real floating array, got dtype {x.dtype}.")
  if x.ndim < 1 or x.shape[0] == 0:
    raise ValueError(f"{name}: needs at least one point, got shape {tuple(x.shape)}.")
  if jnp.issubdtype(x.dtype, jnp.integer):
    x = x.astype(jnp.result_type(float))
  if finite:
    check_finite(x, name)
  return x


def as_inputs(x, name: str, in_dim: int | None = None, *, finite: bool = True):
  """Validates MLP inputs of shape (N, in_dim); returns a floating jax array."""
  x = as_batch(x, name, finite=False)
  if x.ndim != 2:
    fix = " Use x[None, :] for a single point." if x.ndim == 1 else ""
    raise ValueError(f"{name}: expected rank 2 (N, in_dim), got shape {tuple(x.shape)}.{fix}")
  if in_dim is not None and x.shape[1] != in_dim:
    raise ValueError(
        f"{name}: has {x.shape[1]} features but the params were built for in_dim={in_dim}; "
        f"pass inputs of shape (N, {in_dim}) or re-init with net.init(key, {x.shape[1]}).")
  if finite:
    check_finite(x, name)
  return x


# What converting a traced value to a Python or numpy one raises.
TRACED = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
          jax.errors.TracerIntegerConversionError)


def now_or_at_run_time(check, *args):
  """Calls ``check(*args)`` on concrete values now, or, when any is traced (jit, vmap), from the
  running program through `jax.debug.callback` (once per batch element under vmap)."""
  try:
    concrete = jax.tree.map(np.asarray, args)
  except TRACED:
    jax.debug.callback(check, *args)
    return
  check(*concrete)


def check_finite(x, name: str):
  """Raises if `x` holds NaN or Inf; under tracing, defers the check to run time."""
  ok = jnp.all(jnp.isfinite(x))
  try:
    concrete = bool(ok)
  except jax.errors.ConcretizationTypeError:
    jax.debug.callback(_raise_if_not_finite, ok, name=name)
    return
  if not concrete:
    raise ValueError(_finite_message(name, np.asarray(x)))


def _finite_message(name, x=None):
  where = ""
  if x is not None:
    bad = np.argwhere(~np.isfinite(x))
    where = f" ({len(bad)} entries, first at index {tuple(int(i) for i in bad[0])})"
  return f"{name}: contains NaN or Inf{where}; clean or drop those entries before calling."


def _raise_if_not_finite(ok, *, name):
  if not bool(ok):
    raise ValueError(_finite_message(name))


def positive_int(value, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name}: must be a positive integer, got {value!r}.")
  return int(value)


def did_you_mean(value, options) -> str:
  """``"; did you mean 'x'?"`` for the option closest to `value`, or "" when none is close."""
  import difflib
  close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
  return f"; did you mean {close[0]!r}?" if close else ""


def choice(value, name: str, options):
  if value not in options:
    raise ValueError(f"{name}: must be one of {', '.join(map(repr, options))}, got {value!r}"
                     f"{did_you_mean(value, options) or '.'}")
  return value


def kernel_fields(get) -> tuple[str, ...]:
  """Validates `get` (a name or names among "nngp", "ntk"); returns it as a non-empty tuple."""
  get = (get,) if isinstance(get, str) else tuple(get)
  for g in get:
    choice(g, "get", ("nngp", "ntk"))
  if not get:
    raise ValueError("get: asks for nothing; pass 'nngp', 'ntk' or both.")
  return get
