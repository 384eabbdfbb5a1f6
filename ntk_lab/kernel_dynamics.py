"""Closed-form MSE training dynamics of kernel machines (Jacot et al. 2018; Lee et al. 2019).

Gradient flow on L = ½ Σ_i (f(x_i) − y_i)² with learning rate η, for a model that is linear in its
parameters with kernel K = Θ(X, X) (a linearized network, or any network at infinite width), moves
the training outputs as du/dt = −η K (u − y), so

    u(t) = y + e^{−ηKt} (u₀ − y),
    u_test(t) = u₀,test + K_test,train K⁻¹ (I − e^{−ηKt}) (y − u₀).

Both are evaluated through one symmetric eigendecomposition K = V diag(λ) Vᵀ, with
K⁻¹(I − e^{−ηKt}) = V diag(−expm1(−ηλt)/λ) Vᵀ, whose λ → 0 limit ηt is taken explicitly: stable for
large t and for ill-conditioned or singular K (eigenvalues below N·eps·λ_max count as 0, as in a
pseudo-inverse). `diag_reg` adds ε·mean(diag K)·I, NT's convention.

Discrete time (``discrete=True``): gradient descent with step η, u_{k+1} = u_k − ηK(u_k − y), has
``times`` read as step counts k and

    u_k = y + (I − ηK)^k (u₀ − y),
    u_test,k = u₀,test + K_test,train K⁻¹ (I − (I − ηK)^k) (y − u₀),

through the same eigendecomposition, with K⁻¹(I − (I − ηK)^k) = V diag((1 − (1 − ηλ)^k)/λ) Vᵀ
(λ → 0 limit ηk). GD converges when every |1 − ηλ| < 1, i.e. η < 2/λ_max (`max_learning_rate`);
for small η it follows the flow at t = k. At η ≥ 2/λ_max (within rounding) the top mode's factor
1 − ηλ_max is ≤ −1: it oscillates forever (at exactly 2/λ_max) or grows, so k = ∞ has no limit and
is refused; finite step counts are returned as gradient descent computes them (oscillating or
growing), and a count at which they overflow raises.

K must be a kernel matrix: symmetric and positive semi-definite up to rounding. An asymmetry or a
negative eigenvalue beyond τ·λ_max, τ = max(100·√N·eps, 1e-9) (`_checks.kernel_tolerance`, set
from measured rounding), is refused with a `ValueError` (at run time under `jit`), since clipping
or symmetrising it would give plausible but wrong dynamics. `max_learning_rate` and
`kernel_complexity` apply the same check.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks

__all__ = ["MSEDynamics", "max_learning_rate", "mse_dynamics"]


class MSEDynamics(NamedTuple):
  """Outputs at the requested times: train (T, N, O) and test (T, N_test, O) or None."""

  times: jax.Array
  train: jax.Array
  test: jax.Array | None


def mse_dynamics(
  k_train_train,
  y_train,
  times,
  *,
  k_test_train=None,
  learning_rate: float = 1.0,
  u0_train=None,
  u0_test=None,
  diag_reg: float = 0.0,
  discrete: bool = False,
  reduction: str = "sum",
) -> MSEDynamics:
  """Closed-form gradient-flow (or gradient-descent) outputs of kernel regression under the MSE loss.

  Args:
    k_train_train: K = Θ(X, X), (N, N), symmetric positive semi-definite (up to rounding; a
      clearly non-symmetric or indefinite K is refused).
    y_train: targets, (N,) or (N, O).
    times: times t ≥ 0 at which to evaluate, (T,) (a scalar is one time); ``jnp.inf`` gives the
      converged predictor. With ``discrete=True``, whole numbers of GD steps k ≥ 0.
    k_test_train: Θ(X_test, X), (N_test, N), for test outputs.
    learning_rate: η > 0.
    u0_train, u0_test: outputs at t = 0, shaped like y (default 0: a centred network).
    diag_reg: ε ≥ 0; K + ε·mean(diag K)·I is used instead of K.
    discrete: gradient descent with step η instead of gradient flow: u_k = y + (I − ηK)^k (u₀ − y).
      At or above `max_learning_rate` the top mode oscillates (at it) or grows (above): finite
      step counts are returned as GD computes them (an overflow raises), k = ∞ is refused.
    reduction: ``"sum"`` (L = ½ Σ (f − y)², above) or ``"mean"`` (L divided by y.size, as
      neural-tangents: η K becomes η K / y.size), as in `gradient_flow`.

  Returns:
    `MSEDynamics(times, train, test)` with train (T, N, O) and test (T, N_test, O) (O = 1 for 1-D y).

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> K = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    >>> out = nl.mse_dynamics(K, jnp.array([1.0, -1.0]), jnp.array([0.0, jnp.inf]))
    >>> [round(float(v), 6) for v in out.train[-1, :, 0]]
    [1.0, -1.0]
    >>> gd = nl.mse_dynamics(K, jnp.array([1.0, -1.0]), jnp.array([0, 1]), learning_rate=0.5,
    ...                      discrete=True)  # one step: u_1 = ηKy
    >>> [round(float(v), 6) for v in gd.train[1, :, 0]]
    [0.75, -0.25]
  """
  K = _checks.kernel_matrix(k_train_train, "k_train_train")
  n = K.shape[0]
  y = _checks.targets(y_train, "y_train", n)
  t = check_schedule(times, K.dtype, learning_rate, diag_reg, discrete=discrete)
  u0 = jnp.zeros_like(y) if u0_train is None else _checks.targets(u0_train, "u0_train", n, y.shape[1])
  Kt = None
  if k_test_train is not None:
    Kt = _checks.as_batch(k_test_train, "k_test_train")
    if Kt.ndim != 2 or Kt.shape[1] != n:
      raise ValueError(f"k_test_train: expected (N_test, {n}), got shape {tuple(Kt.shape)}.")
  u0t = None
  if Kt is not None:
    u0t = (
      jnp.zeros((Kt.shape[0], y.shape[1]), y.dtype)
      if u0_test is None
      else _checks.targets(u0_test, "u0_test", Kt.shape[0], y.shape[1])
    )
  eta = learning_rate / (y.size if _checks.choice(reduction, "reduction", ("sum", "mean")) == "mean" else 1)
  train, test, defects, top = _dynamics(K, y, t, Kt, u0, u0t, eta, diag_reg, discrete=bool(discrete))
  _checks.check_kernel(defects, "k_train_train", n, K.dtype)
  if discrete:
    check_converges(t, top, learning_rate, n, K.dtype)
  _checks.finite_result((train, test), "mse_dynamics", overflow_cause(discrete))
  return MSEDynamics(t, train, test)


def overflow_cause(discrete):
  """What to change when the closed form overflowed."""
  if discrete:
    return (
      "With discrete=True this is gradient descent diverging: learning_rate is above "
      "max_learning_rate(K) = 2/λ_max; use a smaller one or fewer steps."
    )
  return "Rescale the targets, initial outputs or kernel, or use float64."


def check_converges(t, top, learning_rate, n, dtype):
  """Refuses k = ∞ in `t` when gradient descent has no limit: η·λ_max (`top`) ≥ 2 within the
  kernel rounding tolerance, now or at run time."""
  tol = _checks.kernel_tolerance(n, dtype)
  _checks.now_or_at_run_time(functools.partial(_raise_no_limit, tol=tol), t, top, learning_rate)


def _raise_no_limit(t, top, learning_rate, *, tol):
  t, top, lr = np.asarray(t), float(top), float(learning_rate)
  if np.isinf(t).any() and top >= 2 * (1 - tol):
    kind = "oscillates between two values forever" if top <= 2 * (1 + tol) else "grows without bound"
    raise ValueError(
      f"times: k = ∞ (jnp.inf) has no limit at learning_rate={lr:.6g}: η·λ_max = {top:.6g} ≥ 2 "
      f"(within rounding {tol:.2g}), so the top mode's factor 1 − ηλ_max = {1 - top:.4g} and it "
      f"{kind}. Use learning_rate < max_learning_rate(K) = {2 * lr / top:.6g} for a limit, or "
      "ask for finite step counts."
    )


def check_schedule(times, dtype, learning_rate, diag_reg, *, discrete=False):
  """Validates times ≥ 0 (``jnp.inf`` allowed; returned as a 1-D array of `dtype`), η > 0 and
  diag_reg ≥ 0, by the library's one policy (`ntk_lab._checks`: NumPy/JAX scalars accepted, bools
  and NaN/Inf refused, traced values checked at run time); with `discrete`, also that the times
  are whole step counts."""
  if not isinstance(discrete, bool):
    raise TypeError(f"discrete: expected True or False, got {discrete!r}.")
  t = _checks.times(times, "times", dtype, inf_ok=True)
  if discrete:
    _checks.now_or_at_run_time(_check_steps, t)
  _checks.positive_number(learning_rate, "learning_rate")
  _checks.nonnegative_number(diag_reg, "diag_reg")
  return t


def _check_steps(t):
  t = np.asarray(t)
  if np.any(np.isfinite(t) & (t != np.round(t))):
    raise ValueError(
      "times: with discrete=True the times are gradient-descent step counts and must "
      "be whole numbers (or jnp.inf); round them, e.g. jnp.round(t / learning_rate)."
    )


def max_learning_rate(
  k_train_train, *, diag_reg: float = 0.0, reduction: str = "sum", y_size: int | None = None
) -> jax.Array:
  """The largest stable gradient-descent step for the MSE loss: η < 2/λ_max.

  Gradient descent on L = ½ Σ (u − y)² moves the residual by (I − ηK) per step, which contracts
  every eigen-direction iff |1 − ηλ| < 1 for all eigenvalues λ of K: η < 2/λ_max(K). With the
  mean-reduced loss L = ½ Σ (u − y)² / y.size (neural-tangents' convention) the step is
  η/y.size in the sum convention, so the bound is 2·y.size/λ_max.

  Args:
    k_train_train: K = Θ(X, X), (N, N), symmetric positive semi-definite.
    diag_reg: ε ≥ 0; λ_max of K + ε·mean(diag K)·I, as `mse_dynamics` uses.
    reduction: ``"sum"`` (½Σ) or ``"mean"`` (½Σ / y.size).
    y_size: the number of entries of y (N·O) for ``reduction="mean"``; default N (one output).

  Raises:
    ValueError: K is not symmetric or is indefinite beyond rounding (the check of `mse_dynamics`);
      an indefinite K has no stable step (a negative eigenvalue grows at every η > 0).

  Returns:
    The bound 2/λ_max (or 2·y_size/λ_max), a scalar. At exactly this η the top mode oscillates
    without decaying; at η = 1/λ_max it is removed in one step.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> float(nl.max_learning_rate(jnp.diag(jnp.array([4.0, 1.0]))))
    0.5
    >>> float(nl.max_learning_rate(jnp.diag(jnp.array([4.0, 1.0])), reduction="mean"))
    1.0
  """
  _checks.choice(reduction, "reduction", ("sum", "mean"))
  K = _checks.kernel_matrix(k_train_train, "k_train_train")
  n = K.shape[0]
  _checks.nonnegative_number(diag_reg, "diag_reg")
  if y_size is not None and reduction == "sum":
    raise ValueError(
      "y_size: only used with reduction='mean' (the sum-reduced bound does not "
      "depend on it); drop it or pass reduction='mean'."
    )
  size = n if y_size is None else _checks.positive_int(y_size, "y_size")
  lam_max, defects = _top_eigenvalue(K, diag_reg)
  _checks.check_kernel(defects, "k_train_train", n, K.dtype)
  bound = 2.0 / lam_max
  return bound * size if reduction == "mean" else bound


@jax.jit
def _top_eigenvalue(K, diag_reg):
  lam, _, _ = spectrum(K, diag_reg)
  return jnp.max(lam), _checks.kernel_defects(K, lam, diag_reg)


def spectrum(K, diag_reg):
  """(λ, V, live) of the symmetrised, regularised K + ε·mean(diag K)·I (traceable); the callers
  of the dynamics refuse an asymmetry beyond rounding (`_checks.check_kernel`)."""
  K = (K + K.T) / 2
  K = K + diag_reg * jnp.mean(jnp.diag(K)) * jnp.eye(K.shape[0], dtype=K.dtype)
  lam, V = jnp.linalg.eigh(K)
  # Eigenvalues below N·eps·λ_max are rounding of a singular direction, as for a pseudo-inverse:
  # they neither decay nor (at t = ∞) get inverted.
  live = lam > K.shape[0] * jnp.finfo(K.dtype).eps * jnp.max(jnp.abs(lam))
  return lam, V, live


def decay(lam, live, eta, t, discrete=False):
  """e^{−ηλt} (or, discrete, (1 − ηλ)^k) per eigenvalue and time, (T, N); 1 for dead directions,
  0 at t = ∞ (when GD converges)."""
  if discrete:
    return 1.0 + _expm1_steps(lam, live, eta, t)
  return jnp.exp(-jnp.where(live[None, :], eta * lam[None, :] * t[:, None], 0.0))


def _expm1_steps(lam, live, eta, t):
  """(1 − ηλ)^k − 1, (T, N), accurate for small ηλ (via expm1(k·log1p(−ηλ)) when 0 ≤ ηλ < 1,
  where the base is positive); 0 for dead directions."""
  q = jnp.where(live, eta * lam, 0.0)[None, :]
  k = t[:, None]
  small = q < 1
  smooth = jnp.expm1(k * jnp.log1p(-jnp.where(small, q, 0.0)))
  # A base ≤ 0 (ηλ ≥ 1): a plain integer power; 0^0 = 1 and (−r)^k alternates as GD does.
  rough = jnp.power(1.0 - jnp.where(small, 0.0, q), k) - 1.0
  return jnp.where(live[None, :], jnp.where(small, smooth, rough), 0.0)


def gain(lam, live, eta, t, discrete=False):
  """K⁻¹(I − e^{−ηKt}) in the eigenbasis, (T, N): −expm1(−ηλt)/λ (discrete: (1 − (1 − ηλ)^k)/λ);
  for a dead direction its λ → 0 limit ηt, and 0 at t = ∞ (the minimum-norm interpolant)."""
  safe = jnp.where(live, lam, 1.0)[None, :]
  dead = jnp.where(jnp.isinf(t), 0.0, eta * t)[:, None]
  if discrete:
    return jnp.where(live[None, :], -_expm1_steps(lam, live, eta, t) / safe, dead)
  x = jnp.where(live[None, :], eta * lam[None, :] * t[:, None], 0.0)
  return jnp.where(live[None, :], -jnp.expm1(-x) / safe, dead)


@functools.partial(jax.jit, static_argnames="discrete")
def _dynamics(K, y, t, Kt, u0, u0t, eta, diag_reg, discrete=False):
  lam, V, live = spectrum(K, diag_reg)
  defects = _checks.kernel_defects(K, lam, diag_reg)  # checked by the caller, O(N²)
  r0 = V.T @ (u0 - y)  # the residual in the eigenbasis, (N, O)
  train = y[None] + jnp.einsum("ij,tj,jo->tio", V, decay(lam, live, eta, t, discrete), r0)
  top = eta * jnp.max(lam)  # η·λ_max: gradient descent has a limit iff < 2
  if Kt is None:
    return train, None, defects, top
  test = u0t[None] - jnp.einsum("ki,ij,tj,jo->tko", Kt, V, gain(lam, live, eta, t, discrete), r0)
  return train, test, defects, top
