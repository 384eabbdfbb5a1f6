"""Closed-form MSE training dynamics of kernel machines (seed 000 eq 9; seed 001; seed 002 a, b).

Gradient flow on L = ½ Σ_i (f(x_i) − y_i)² with learning rate η, for a model that is linear in its
parameters with kernel K = Θ(X, X) (a linearized network, or any network at infinite width), moves
the training outputs as du/dt = −η K (u − y), so

    u(t) = y + e^{−ηKt} (u₀ − y),
    u_test(t) = u₀,test + K_test,train K⁻¹ (I − e^{−ηKt}) (y − u₀).

Both are evaluated through one symmetric eigendecomposition K = V diag(λ) Vᵀ, with
K⁻¹(I − e^{−ηKt}) = V diag(−expm1(−ηλt)/λ) Vᵀ, whose λ → 0 limit ηt is taken explicitly: stable for
large t and for ill-conditioned or singular K (eigenvalues below N·eps·λ_max count as 0, as in a
pseudo-inverse). `diag_reg` adds ε·mean(diag K)·I, NT's convention.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntk_lab import _checks

__all__ = ["MSEDynamics", "mse_dynamics"]


class MSEDynamics(NamedTuple):
  """Outputs at the requested times: train (T, N, O) and test (T, N_test, O) or None."""

  times: jax.Array
  train: jax.Array
  test: jax.Array | None


def mse_dynamics(k_train_train, y_train, times, *, k_test_train=None, learning_rate: float = 1.0,
                 u0_train=None, u0_test=None, diag_reg: float = 0.0) -> MSEDynamics:
  """Closed-form gradient-flow outputs of kernel regression under the MSE loss.

  Args:
    k_train_train: K = Θ(X, X), (N, N), symmetric positive semi-definite.
    y_train: targets, (N,) or (N, O).
    times: times t ≥ 0 at which to evaluate, (T,) (a scalar is one time); ``jnp.inf`` gives the
      converged predictor.
    k_test_train: Θ(X_test, X), (N_test, N), for test outputs.
    learning_rate: η > 0.
    u0_train, u0_test: outputs at t = 0, shaped like y (default 0: a centred network).
    diag_reg: ε ≥ 0; K + ε·mean(diag K)·I is used instead of K.

  Returns:
    `MSEDynamics(times, train, test)` with train (T, N, O) and test (T, N_test, O) (O = 1 for 1-D y).

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> K = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    >>> out = nl.mse_dynamics(K, jnp.array([1.0, -1.0]), jnp.array([0.0, jnp.inf]))
    >>> [round(float(v), 6) for v in out.train[-1, :, 0]]
    [1.0, -1.0]
  """
  K = _checks.as_batch(k_train_train, "k_train_train")
  n = K.shape[0]
  if K.shape != (n, n):
    raise ValueError(f"k_train_train: expected a square (N, N) matrix, got shape {tuple(K.shape)}.")
  y = _as_targets(y_train, "y_train", n)
  t = check_schedule(times, K.dtype, learning_rate, diag_reg)
  u0 = jnp.zeros_like(y) if u0_train is None else _as_targets(u0_train, "u0_train", n, y.shape[1])
  Kt = None
  if k_test_train is not None:
    Kt = _checks.as_batch(k_test_train, "k_test_train")
    if Kt.ndim != 2 or Kt.shape[1] != n:
      raise ValueError(f"k_test_train: expected (N_test, {n}), got shape {tuple(Kt.shape)}.")
  u0t = None
  if Kt is not None:
    u0t = jnp.zeros((Kt.shape[0], y.shape[1]), y.dtype) if u0_test is None else \
        _as_targets(u0_test, "u0_test", Kt.shape[0], y.shape[1])
  train, test = _dynamics(K, y, t, Kt, u0, u0t, learning_rate, diag_reg)
  return MSEDynamics(t, train, test)


def _as_targets(y, name, n, o=None):
  y = _checks.as_batch(y, name)
  y = y[:, None] if y.ndim == 1 else y
  if y.ndim != 2 or y.shape[0] != n or (o is not None and y.shape[1] != o):
    want = f"({n},) or ({n}, O)" if o is None else f"({n}, {o})"
    raise ValueError(f"{name}: expected shape {want}, got {tuple(y.shape)}.")
  return y


def check_schedule(times, dtype, learning_rate, diag_reg):
  """Validates times (returned as a 1-D array of `dtype`), η > 0 and diag_reg ≥ 0."""
  t = jnp.atleast_1d(jnp.asarray(times, dtype))
  if t.ndim != 1:
    raise ValueError(f"times: expected a scalar or a 1-D array, got shape {tuple(t.shape)}.")
  _check_times(t)
  if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
    raise ValueError(f"learning_rate: must be a positive number, got {learning_rate!r}.")
  if not (isinstance(diag_reg, (int, float)) and diag_reg >= 0):
    raise ValueError(f"diag_reg: must be a non-negative number, got {diag_reg!r}.")
  return t


def _check_times(t):
  try:
    bad = bool(jnp.any(t < 0)) or bool(jnp.any(jnp.isnan(t)))
  except jax.errors.ConcretizationTypeError:
    return  # traced: the caller's responsibility
  if bad:
    raise ValueError("times: must be ≥ 0 (and not NaN); gradient flow starts at t = 0.")


def spectrum(K, diag_reg):
  """(λ, V, live) of the symmetrised, regularised K + ε·mean(diag K)·I (traceable)."""
  K = (K + K.T) / 2
  K = K + diag_reg * jnp.mean(jnp.diag(K)) * jnp.eye(K.shape[0], dtype=K.dtype)
  lam, V = jnp.linalg.eigh(K)
  # Eigenvalues below N·eps·λ_max are rounding of a singular direction, as for a pseudo-inverse:
  # they neither decay nor (at t = ∞) get inverted.
  live = lam > K.shape[0] * jnp.finfo(K.dtype).eps * jnp.max(jnp.abs(lam))
  return lam, V, live


def decay(lam, live, eta, t):
  """e^{−ηλt} per eigenvalue and time, (T, N); 1 for dead directions, 0 at t = ∞."""
  return jnp.exp(-jnp.where(live[None, :], eta * lam[None, :] * t[:, None], 0.0))


def gain(lam, live, eta, t):
  """K⁻¹(I − e^{−ηKt}) in the eigenbasis, (T, N): −expm1(−ηλt)/λ; for a dead direction its
  λ → 0 limit ηt, and 0 at t = ∞ (the minimum-norm interpolant)."""
  x = jnp.where(live[None, :], eta * lam[None, :] * t[:, None], 0.0)
  safe = jnp.where(live, lam, 1.0)[None, :]
  dead = jnp.where(jnp.isinf(t), 0.0, eta * t)[:, None]
  return jnp.where(live[None, :], -jnp.expm1(-x) / safe, dead)


@jax.jit
def _dynamics(K, y, t, Kt, u0, u0t, eta, diag_reg):
  lam, V, live = spectrum(K, diag_reg)
  r0 = V.T @ (u0 - y)  # the residual in the eigenbasis, (N, O)
  train = y[None] + jnp.einsum("ij,tj,jo->tio", V, decay(lam, live, eta, t), r0)
  if Kt is None:
    return train, None
  test = u0t[None] - jnp.einsum("ki,ij,tj,jo->tko", Kt, V, gain(lam, live, eta, t), r0)
  return train, test
