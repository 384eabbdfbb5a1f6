"""Argument checks shared by the public functions: one policy, written once (see docs/checks.md).

Shape and type checks run in Python at trace time, so they raise the same `ValueError`/`TypeError`
under `jax.jit` as in a plain call. Value checks (finiteness, signs, order) need concrete numbers:
on concrete values they raise `ValueError` at once; on traced values (inside `jit`, `grad`, `vmap`)
a host callback (`host_check`) raises the same message when the program runs, surfacing under
`jit` as a `jax.errors.JaxRuntimeError`. Under a plain `jax.vmap` the callback checks every batch
element and raises the original exception.

Numbers: a Python int/float, a NumPy scalar or a 0-d NumPy/JAX array is a number; a bool is not
(``learning_rate=True`` is a slip, not 1.0); NaN and ±Inf are refused unless a check says
otherwise (``times`` accepts ``jnp.inf``, the converged limit).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


def as_batch(x, name: str, *, finite: bool = True):
  """Validates a batch of N ≥ 1 points of any per-point shape; returns a floating jax array."""
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    try:
      x = jnp.asarray(x)
    except TypeError as e:
      raise TypeError(
        f"{name}: expected an array with a leading axis of N points, got {type(x).__name__}."
      ) from e
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
      f"pass inputs of shape (N, {in_dim}) or re-init with net.init(key, {x.shape[1]})."
    )
  if finite:
    check_finite(x, name)
  return x


# What converting a traced value to a Python or numpy one raises.
TRACED = (
  jax.errors.ConcretizationTypeError,
  jax.errors.TracerArrayConversionError,
  jax.errors.TracerIntegerConversionError,
)


def host_check(check, *args) -> None:
  """``check(*args)`` from the running program (`jax.debug.callback`), on every batch element
  under `jax.vmap`: one callback that loops over the batch on the host. (JAX's own rule for a
  vmapped callback unrolls the program once per element, so its compile time grows with the
  batch: minutes for a vmap over a few thousand seeds.) Arguments carry no derivative."""
  args = jax.tree.map(jax.lax.stop_gradient, args)

  @jax.custom_batching.custom_vmap
  def call(args):
    jax.debug.callback(check, *args)
    return jnp.zeros((), jnp.bool_)

  @call.def_vmap
  def _batched(axis_size, in_batched, args):
    def each(*values):
      for i in range(axis_size):
        check(*[v[i] if batched else v for v, batched in zip(values, in_batched[0])])

    jax.debug.callback(each, *args)
    return jnp.zeros((), jnp.bool_), False

  call(args)


def now_or_at_run_time(check, *args):
  """Calls ``check(*args)`` on concrete values now, or, when any is traced (jit, vmap), from the
  running program (`host_check`)."""
  try:
    concrete = jax.tree.map(np.asarray, args)
  except TRACED:
    host_check(check, *args)
    return
  check(*concrete)


def check_finite(x, name: str):
  """Raises if `x` holds NaN or Inf; under tracing, defers the check to run time."""
  ok = jnp.all(jnp.isfinite(x))
  try:
    concrete = bool(ok)
  except jax.errors.ConcretizationTypeError:
    host_check(functools.partial(_raise_if_not_finite, name=name), ok)
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
  """A positive integer (Python or NumPy integer, not a bool), returned as an int."""
  if isinstance(value, np.ndarray) and value.ndim == 0 and np.issubdtype(value.dtype, np.integer):
    value = value.item()
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
    raise ValueError(
      f"{name}: must be one of {', '.join(map(repr, options))}, got {value!r}"
      f"{did_you_mean(value, options) or '.'}"
    )
  return value


def kernel_fields(get) -> tuple[str, ...]:
  """Validates `get` (a name or names among "nngp", "ntk"); returns it as a non-empty tuple."""
  get = (get,) if isinstance(get, str) else tuple(get)
  for g in get:
    choice(g, "get", ("nngp", "ntk"))
  if not get:
    raise ValueError("get: asks for nothing; pass 'nngp', 'ntk' or both.")
  return get


# ----------------------------------------------------------------------------------------- numbers
def _traced(value) -> bool:
  if not isinstance(value, jax.Array):
    return False
  try:
    np.asarray(value)
  except TRACED:
    return True
  return False


def number(
  value,
  name: str,
  *,
  low: float | None = None,
  strict: bool = True,
  inf_ok: bool = False,
  static: bool = False,
  unit: str = "",
):
  """A real scalar ≥ `low` (> `low` when `strict`; any when `low` is None), finite unless `inf_ok`.

  Python and NumPy scalars and 0-d arrays are numbers; a bool or a string is not. Returns a float,
  or, for a traced scalar (allowed unless `static`: an option that selects the compiled program
  must be known now), the tracer itself, whose value is checked when the program runs.
  """
  rel = "" if low is None else (f" > {low:g}" if strict else f" ≥ {low:g}")
  kind = f"a number{rel}" if inf_ok else f"a finite number{rel}"
  what = f"{kind}{unit}"
  if isinstance(value, (bool, np.bool_)) or (hasattr(value, "dtype") and value.dtype == bool):
    raise ValueError(f"{name}: must be {what}, got the bool {value!r}; pass a number.")
  if isinstance(value, (int, float, np.integer, np.floating)):
    value = float(value)
  elif hasattr(value, "shape") and hasattr(value, "dtype"):
    if tuple(value.shape) != () or not (
      jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)
    ):
      raise ValueError(
        f"{name}: must be {what} (a scalar), got an array of shape "
        f"{tuple(value.shape)} and dtype {value.dtype}."
      )
    if _traced(value):
      if static:
        raise TypeError(
          f"{name}: must be a concrete number (it selects the compiled program), got "
          "a traced value; pass a Python float, not a jit argument."
        )
      host_check(
        functools.partial(_check_number, name=name, low=low, strict=strict, inf_ok=inf_ok, what=what), value
      )
      return value
    value = float(np.asarray(value))
  else:
    raise ValueError(f"{name}: must be {what}, got {value!r}.")
  _check_number(value, name=name, low=low, strict=strict, inf_ok=inf_ok, what=what)
  return value


def _check_number(value, *, name, low, strict, inf_ok, what):
  value = float(value)
  bad = (
    math.isnan(value)
    or (math.isinf(value) and not inf_ok)
    or (low is not None and (value < low or (strict and value == low)))
  )
  if bad:
    raise ValueError(f"{name}: must be {what}, got {value!r}.")


def positive_number(value, name: str, **kw):
  """A finite number > 0 (see `number`)."""
  return number(value, name, low=0.0, strict=True, **kw)


def nonnegative_number(value, name: str, **kw):
  """A finite number ≥ 0 (see `number`)."""
  return number(value, name, low=0.0, strict=False, **kw)


def memory_budget(value):
  """A positive, finite number of bytes."""
  return positive_number(value, "memory_budget", static=True, unit=" (bytes)")


def layer_values(arr, name: str, *, strict: bool):
  """Per-layer σ_w (> 0, `strict`) or σ_b (≥ 0) overrides, an array; checked now or at run time."""
  rel = "> 0" if strict else "≥ 0"

  def check(a):
    a = np.atleast_1d(np.asarray(a, np.float64))
    bad = ~np.isfinite(a) | (a <= 0 if strict else a < 0)
    if bad.any():
      i = int(np.argmax(bad))
      at = f" at layer {i}" if a.size > 1 else ""
      raise ValueError(f"{name}: must be finite and {rel}, got {float(a[i])!r}{at}.")

  now_or_at_run_time(check, arr)
  return arr


# ------------------------------------------------------------------------------------------- times
def times(t, name: str = "times", dtype=None, *, inf_ok: bool = False, increasing: bool = False):
  """Times t ≥ 0 as a 1-D array of `dtype` (a scalar is one time); values now or at run time.

  `inf_ok`: ``jnp.inf`` (the converged limit) is a time. `increasing`: strictly increasing with a
  last time > 0, as an ODE solve saving at those times needs.
  """
  if not hasattr(t, "shape"):
    try:
      t = np.asarray(t)
    except (TypeError, ValueError) as e:
      raise TypeError(f"{name}: expected numbers (a scalar or a 1-D array), got {type(t).__name__}.") from e
    if t.dtype.kind not in "biuf":
      raise TypeError(f"{name}: expected numbers (a scalar or a 1-D array), got {t.dtype} values.")
  if t.dtype == bool or not (jnp.issubdtype(t.dtype, jnp.floating) or jnp.issubdtype(t.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected real numbers, got dtype {t.dtype}.")
  if t.ndim > 1 or (increasing and t.ndim != 1):
    want = "a non-empty 1-D array" if increasing else "a scalar or a 1-D array"
    raise ValueError(f"{name}: expected {want}, got shape {tuple(t.shape)}.")
  t = jnp.atleast_1d(jnp.asarray(t, dtype))
  if t.shape[0] == 0:
    raise ValueError(f"{name}: expected at least one time, got an empty array.")
  now_or_at_run_time(functools.partial(_check_times, name=name, inf_ok=inf_ok, increasing=increasing), t)
  return t


def _check_times(t, *, name, inf_ok, increasing):
  t = np.asarray(t, np.float64)
  bad = np.isnan(t) | (t < 0) | (np.isinf(t) & (not inf_ok))
  if bad.any():
    k = int(np.argmax(bad))
    if inf_ok:
      raise ValueError(
        f"{name}: must be ≥ 0 and not NaN (jnp.inf is the converged limit), got "
        f"{name}[{k}] = {t[k]:g}; gradient flow starts at t = 0."
      )
    raise ValueError(
      f"{name}: must be finite and ≥ 0 (gradient flow starts at t = 0), got {name}[{k}] = {t[k]:g}."
    )
  if increasing:
    if t.size > 1 and not np.all(np.diff(t) > 0):
      k = int(np.argmin(np.diff(t) > 0))
      raise ValueError(
        f"{name}: must be strictly increasing, but {name}[{k + 1}] = {t[k + 1]:g} ≤ "
        f"{name}[{k}] = {t[k]:g}; sort them and drop duplicates."
      )
    if t[-1] <= 0:
      raise ValueError(f"{name}: the last time must be > 0.")


# ------------------------------------------------------------------------------------- data shapes
def input_pair(x1, x2, in_dim: int | None = None):
  """(x1, x2) of MLP inputs (N, in_dim): x2 (or None) must have x1's features (or `in_dim`)."""
  x1 = as_inputs(x1, "x1", in_dim)
  x2 = None if x2 is None else as_inputs(x2, "x2", x1.shape[1])
  return x1, x2


def point_pair(x1, x2):
  """(x1, x2) of any network's inputs: vectors (N, d) as `input_pair` checks them, or sequences
  (N, L, C) and images (N, H, W, C), x2 (or None) with x1's per-point shape."""
  x1 = as_batch(x1, "x1")
  if x1.ndim <= 2:
    return input_pair(x1, x2)
  if x2 is not None:
    x2 = as_batch(x2, "x2")
    if x2.shape[1:] != x1.shape[1:]:
      raise ValueError(
        f"x2: per-point shape {tuple(x2.shape[1:])} differs from x1's {tuple(x1.shape[1:])}; "
        "both need the same shape."
      )
  return x1, x2


def targets(y, name: str, n: int, o: int | None = None):
  """Targets (n,) or (n, O) as (n, O) (O = `o` when given)."""
  y = as_batch(y, name)
  y = y[:, None] if y.ndim == 1 else y
  if y.ndim != 2 or y.shape[0] != n or (o is not None and y.shape[1] != o):
    want = f"({n},) or ({n}, O)" if o is None else f"({n}, {o})"
    raise ValueError(f"{name}: expected shape {want}, got {tuple(y.shape)}.")
  return y


def promote_params(params, dtype):
  """Floating params narrower than the data's `dtype` are cast up to it (one dtype per program):
  float32 params trained on float64 data train, and are returned, in float64."""

  def up(p):
    if (
      hasattr(p, "dtype")
      and jnp.issubdtype(p.dtype, jnp.floating)
      and jnp.finfo(p.dtype).bits < jnp.finfo(dtype).bits
    ):
      return jnp.asarray(p, dtype)
    return p

  return jax.tree.map(up, params)


# ------------------------------------------------------------------------------ non-finite values
def finite_tree(tree, name: str):
  """Raises naming the first leaf (by its path, e.g. ``params[0]['W']``) and index holding NaN or
  Inf; one fused reduction per leaf, a host callback when traced."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  leaves = [
    (path, leaf)
    for path, leaf in leaves
    if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact)
  ]
  if not leaves:
    return tree
  ok = _finite_flags([leaf for _, leaf in leaves])
  paths = [f"{name}{jax.tree_util.keystr(path)}" for path, _ in leaves]
  try:
    ok_now = np.asarray(ok)
  except TRACED:
    host_check(functools.partial(_raise_tree, paths=tuple(paths)), ok)
    return tree
  if not ok_now.all():
    i = int(np.argmin(ok_now))
    leaf = np.asarray(leaves[i][1])
    raise ValueError(
      _finite_message(paths[i], leaf.reshape(leaf.shape or (1,))).replace(
        "clean or drop those entries", "re-initialise them (a diverged run or a bad checkpoint?)"
      )
    )
  return tree


@jax.jit
def _finite_flags(arrays):
  """One flag per array: all entries finite. Compiled once per structure, so a plain call is one
  dispatch and one fused pass over the data, not a chain of eager ops."""
  return jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays])


def _raise_tree(ok, *, paths):
  ok = np.asarray(ok)
  if not ok.all():
    raise ValueError(
      f"{paths[int(np.argmin(ok))]}: contains NaN or Inf; re-initialise them (a "
      "diverged run or a bad checkpoint?)."
    )


def finite_result(out, what: str, cause: str):
  """Raises when a result computed from finite arguments is NaN/Inf: it overflowed; `cause`
  says what to change. One fused reduction per array, a host callback when traced."""
  arrays = [a for a in jax.tree.leaves(out) if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.inexact)]
  if not arrays:
    return out
  ok = jnp.all(_finite_flags(arrays))
  dtype = jnp.result_type(*arrays)
  now_or_at_run_time(functools.partial(_raise_overflow, what=what, cause=cause, dtype=str(dtype)), ok)
  return out


def _raise_overflow(ok, *, what, cause, dtype):
  if not bool(ok):
    raise ValueError(
      f"{what}: the result is NaN/Inf although the arguments are finite: it "
      f"overflowed {dtype} (largest {float(jnp.finfo(dtype).max):.3g}). {cause}"
    )


# ----------------------------------------------------------------------------------- kernel matrices
def kernel_tolerance(n: int, dtype) -> float:
  """Relative size (to λ_max) of asymmetry or negative eigenvalues still taken as rounding:
  τ = max(100·√N·eps, 1e-9).

  Measured (`benchmarks/bench_definiteness.py`, `results/bench_definiteness.md`): over the
  library's positive semi-definite kernels (closed-form and quadrature analytic NTKs, empirical
  NTKs, rank-deficient Gram matrices, near-duplicate inputs; N = 10 … 1000), the most negative
  eigenvalue that rounding and `eigh` produce is a few eps·λ_max (≤ 0.18·√N·eps in float32);
  float64 quadrature kernels (accurate to 1e-7 per entry) reach −3.2e-13·λ_max; the floor 1e-9
  leaves room for their stated accuracy.
  τ is 100·√N·eps: 3.8e-5 at N = 10 and 5.3e-4 at N = 2,000 in float32 (so a kernel 0.1 % of
  λ_max indefinite is refused up to N ≈ 7,000), and 1e-9 in float64 below N ≈ 2·10⁷.
  """
  return max(100.0 * math.sqrt(max(n, 1)) * float(jnp.finfo(dtype).eps), 1e-9)


def kernel_matrix(K, name: str):
  """A kernel matrix argument: a real, finite, square (N, N) array (its symmetry and definiteness
  are values, checked by `check_kernel` on `kernel_defects`/`psd_defects`)."""
  K = as_batch(K, name)
  n = K.shape[0]
  if K.shape != (n, n):
    raise ValueError(f"{name}: expected a square (N, N) kernel matrix, got shape {tuple(K.shape)}.")
  return K


@jax.jit
def psd_defects(K):
  """`kernel_defects` of a kernel matrix that is not otherwise diagonalised (one `eigvalsh`)."""
  return kernel_defects(K, jnp.linalg.eigvalsh((K + K.T) / 2), 0.0)


def kernel_defects(K, lam, diag_reg):
  """(asymmetry, lowest eigenvalue, λ_max) of K, traceable: `lam` are the eigenvalues of the
  symmetrised K + ε·mean(diag K)·I, so λ(K) = lam − ε·mean(diag K)."""
  shift = diag_reg * jnp.mean(jnp.diag((K + K.T) / 2))
  return jnp.max(jnp.abs(K - K.T)), jnp.min(lam) - shift, jnp.max(jnp.abs(lam - shift))


def check_kernel(defects, name: str, n: int, dtype):
  """Refuses a non-symmetric or clearly indefinite kernel matrix (see `kernel_tolerance`), from
  `kernel_defects`, now or at run time."""
  now_or_at_run_time(functools.partial(_raise_kernel, name=name, tol=kernel_tolerance(n, dtype)), *defects)


def _raise_kernel(asym, lam_min, lam_max, *, name, tol):
  asym, lam_min, lam_max = float(asym), float(lam_min), float(lam_max)
  scale = max(lam_max, 1e-300)
  if asym > tol * scale:
    raise ValueError(
      f"{name}: is not symmetric: max |K − Kᵀ| = {asym:.3g}, {asym / scale:.2g} of λ_max (rounding "
      f"allows {tol:.2g}); a kernel matrix Θ(X, X) is symmetric. Pass the train-train kernel "
      "(not test-train), or symmetrise it yourself if the asymmetry is expected."
    )
  if lam_min < -tol * scale:
    raise ValueError(
      f"{name}: is indefinite: its lowest eigenvalue is {lam_min:.3g}, {lam_min / scale:.2g} of "
      f"λ_max = {lam_max:.3g} (rounding allows −{tol:.2g}); a kernel matrix is positive "
      "semi-definite, and a negative eigenvalue makes gradient flow grow along it. Check how K "
      "was computed (an inaccurate quadrature, float16/float32 cancellation?)."
    )


def boolean(value, name: str) -> bool:
  """True or False (a Python or NumPy bool), returned as a bool.

  Anything else is refused, the strings ``"False"``/``"true"`` above all: a non-empty string is
  truthy, so ``flag="False"`` would silently mean True; 0 and 1 are refused too (a count is not a
  switch).
  """
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, np.ndarray) and value.shape == () and value.dtype == bool:
    return bool(value)
  if isinstance(value, str):
    word = value.strip().lower()
    fix = f"pass {word.capitalize()} without quotes" if word in ("true", "false") else "pass True or False"
    raise ValueError(
      f"{name}: must be True or False, got the string {value!r} (a non-empty string counts as True); {fix}."
    )
  raise ValueError(f"{name}: must be True or False, got {value!r} ({type(value).__name__}).")


def integer(value, name: str, *, low: int = 1) -> int:
  """An integer ≥ `low` (a Python or NumPy integer, or a 0-d integer array), returned as an int.

  A bool, a float (even 3.0: a size written as 3.0 or 1e3 is a slip), a string or NaN is refused,
  with the reason.
  """
  if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, np.generic):
    if tuple(value.shape) == () and np.issubdtype(np.dtype(value.dtype), np.integer):
      value = int(np.asarray(value))
  kind = "a positive integer" if low == 1 else f"an integer ≥ {low}"
  if isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name}: must be {kind}, got the bool {value!r}; pass a number.")
  if not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name}: must be {kind}, got {value!r} ({type(value).__name__}).")
  if value < low:
    raise ValueError(f"{name}: must be {kind}, got {value!r}.")
  return int(value)
