"""Hostile inputs to the kernel-matrix functions: one kernel check (symmetric, positive
semi-definite to the measured rounding tolerance) applied by every function that takes a kernel,
and gradient descent at and above its critical step.

Each row is (input → expected outcome): the error type and the words its message must contain, or
a check of the returned value against an independent route (an explicit gradient-descent loop, a
float64 linear solve). The policy is docs/checks.md; the tolerance's measurement is
benchmarks/bench_definiteness.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from ntk_lab import _checks
from tests.conftest import rel_err


class Raises(NamedTuple):
  exc: type
  words: str  # a regex the message must match


class Value(NamedTuple):
  check: Callable  # out -> bool


def with_spectrum(lam, dtype=jnp.float64, seed=0):
  """Q diag(λ) Qᵀ for a random orthogonal Q (built in float64, then cast): a symmetric matrix
  whose eigenvalues are `lam` to rounding."""
  lam = np.asarray(lam, np.float64)
  q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((lam.size, lam.size)))
  return jnp.asarray((q * lam) @ q.T, dtype)


def indefinite(n, fraction, dtype):
  """An (n, n) kernel with λ_max = 1 and λ_min = −fraction·λ_max."""
  return with_spectrum(np.linspace(-fraction, 1.0, n), dtype)


def gram(n, rank, dtype, seed=1):
  """A rank-deficient PSD Gram matrix ΦΦᵀ/rank computed in `dtype`."""
  phi = jax.random.normal(jax.random.PRNGKey(seed), (n, rank), dtype) / math.sqrt(rank)
  return phi @ phi.T


X = jax.random.normal(jax.random.PRNGKey(2), (4, 3))
K = X @ X.T + 0.5 * jnp.eye(4)  # symmetric positive definite
Y = jnp.sin(X[:, :2])
NEG = jnp.diag(jnp.array([1.0, 1.0, 1.0, -0.5]))  # indefinite: λ_min = −½ λ_max
D = jnp.diag(jnp.array([1.0, 0.5]))  # λ_max = 1: η = 2 is the critical step
YD = jnp.array([1.0, -1.0])
U0 = jnp.array([0.3, 0.2])


def gd_loop(K, y, u0, eta, steps):
  """Explicit gradient descent u ← u − ηK(u − y), recorded at `steps` (an independent route)."""
  u, out = u0, []
  for k in range(max(steps) + 1):
    if k in steps:
      out.append(u)
    u = u - eta * K @ (u - y)
  return jnp.stack(out)


def gd(times, eta=2.0, **kw):
  return nl.mse_dynamics(D, YD, times, learning_rate=eta, u0_train=U0, discrete=True, **kw)


def ens(theta=K, nngp=K, **kw):
  kw.setdefault("k_test_train", nl.Kernel(K[:2], K[:2]))
  kw.setdefault("nngp_test_test", K[:2, :2])
  return nl.mse_ensemble(nl.Kernel(nngp, theta), Y, kw.pop("times", 1.0), **kw)


K32 = {f: indefinite(400, f, jnp.float32) for f in (0.05, 0.01, 0.001)}
G32 = gram(400, 100, jnp.float32)
Y400 = jax.random.normal(jax.random.PRNGKey(3), (400,))

CASES = [
  # ------------------------------------------------------------------ max_learning_rate: the check
  (
    "max_lr -I",
    lambda: nl.max_learning_rate(-jnp.eye(3)),
    Raises(ValueError, r"k_train_train: is indefinite"),
  ),
  ("max_lr indefinite", lambda: nl.max_learning_rate(NEG), Raises(ValueError, r"is indefinite.*positive")),
  (
    "max_lr indefinite under diag_reg",
    lambda: nl.max_learning_rate(NEG, diag_reg=2.0),
    Raises(ValueError, r"k_train_train: is indefinite"),
  ),
  (
    "max_lr non-symmetric",
    lambda: nl.max_learning_rate(K.at[0, 1].add(0.3)),
    Raises(ValueError, r"k_train_train: is not symmetric"),
  ),
  (
    "max_lr not square",
    lambda: nl.max_learning_rate(jnp.ones((3, 4))),
    Raises(ValueError, r"k_train_train: expected a square"),
  ),
  ("max_lr nan", lambda: nl.max_learning_rate(K.at[0, 0].set(jnp.nan)), Raises(ValueError, r"contains NaN")),
  (
    "max_lr indefinite under jit",
    lambda: jax.jit(nl.max_learning_rate)(NEG).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"k_train_train: is indefinite"),
  ),
  (
    "max_lr float32 -1% at N=400",
    lambda: nl.max_learning_rate(K32[0.01]),
    Raises(ValueError, r"is indefinite"),
  ),
  (
    "max_lr PSD value",
    lambda: nl.max_learning_rate(K),
    Value(lambda b: abs(float(b) - 2 / np.linalg.eigvalsh(np.asarray(K))[-1]) <= 1e-12 * float(b)),
  ),
  # ------------------------------------------------------------------ kernel_complexity: the check
  (
    "complexity indefinite",
    lambda: nl.kernel_complexity(NEG, jnp.ones(4), definition="arora2019"),
    Raises(ValueError, r"k_train_train: is indefinite"),
  ),
  (
    "complexity -I",
    lambda: nl.kernel_complexity(-jnp.eye(3), jnp.ones(3), definition="trace"),
    Raises(ValueError, r"k_train_train: is indefinite"),
  ),
  (
    "complexity non-symmetric",
    lambda: nl.kernel_complexity(jnp.triu(K), jnp.ones(4), definition="trace"),
    Raises(ValueError, r"k_train_train: is not symmetric"),
  ),
  (
    "complexity not square",
    lambda: nl.kernel_complexity(jnp.ones((4, 3)), jnp.ones(4), definition="trace"),
    Raises(ValueError, r"k_train_train: expected a square"),
  ),
  (
    "complexity indefinite under jit",
    lambda: jax.jit(lambda k: nl.kernel_complexity(k, jnp.ones(4), definition="trace").value)(
      NEG
    ).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"is indefinite"),
  ),
  (
    "complexity float32 -0.1% at N=400",
    lambda: nl.kernel_complexity(K32[0.001], Y400, definition="arora2019"),
    Raises(ValueError, r"is indefinite"),
  ),
  (
    "complexity float32 rank-deficient Gram accepted",
    lambda: nl.kernel_complexity(G32 + 1e-2 * jnp.eye(400, dtype=jnp.float32), Y400, definition="arora2019"),
    Value(
      lambda c: (
        rel_err(
          c.quadratic_form,
          float(Y400 @ np.linalg.solve(np.asarray(G32, np.float64) + 1e-2 * np.eye(400), Y400)),
        )
        <= 1e-3
      )
    ),
  ),
  # ---------------------------------------------------- the tolerance: float32, N = 400, measured
  (
    "mse float32 -5% at N=400",
    lambda: nl.mse_dynamics(K32[0.05], Y400, 1.0),
    Raises(ValueError, r"indefinite"),
  ),
  (
    "mse float32 -1% at N=400",
    lambda: nl.mse_dynamics(K32[0.01], Y400, 1.0),
    Raises(ValueError, r"indefinite"),
  ),
  (
    "mse float32 -0.1% at N=400",
    lambda: nl.mse_dynamics(K32[0.001], Y400, 1.0),
    Raises(ValueError, r"indefinite.*-0.001"),
  ),
  (
    "mse float32 rank-deficient Gram accepted",
    lambda: nl.mse_dynamics(G32, Y400.astype(jnp.float32), jnp.array([0.0, 2.0])).train,
    Value(lambda u: bool(np.isfinite(np.asarray(u)).all()) and u.dtype == jnp.float32),
  ),
  (
    "mse float64 -1e-6 refused",
    lambda: nl.mse_dynamics(indefinite(50, 1e-6, jnp.float64), jnp.ones(50), 1.0),
    Raises(ValueError, r"is indefinite"),
  ),
  (
    "mse float64 rank-deficient Gram accepted",
    lambda: nl.mse_dynamics(gram(200, 20, jnp.float64), jnp.ones(200), jnp.inf).train,
    Value(lambda u: bool(np.isfinite(np.asarray(u)).all())),
  ),
  (
    "tolerance float32 N=400 below 0.1%",
    lambda: _checks.kernel_tolerance(400, jnp.float32),
    Value(lambda tol: 1e-5 < tol < 1e-3),
  ),
  (
    "tolerance float64 N=100",
    lambda: _checks.kernel_tolerance(100, jnp.float64),
    Value(lambda tol: tol == 1e-9),
  ),
  # ----------------------------------------------------- gradient descent at the critical step
  (
    "gd critical step finite k is GD",
    lambda: gd(jnp.array([0, 1, 2, 3, 8])).train[:, :, 0],
    Value(lambda u: rel_err(u, gd_loop(D, YD, U0, 2.0, [0, 1, 2, 3, 8])) <= 1e-12),
  ),
  (
    "gd critical step oscillates",
    lambda: gd(jnp.array([1, 2, 3])).train[:, 0, 0],
    Value(lambda u: abs(float(u[0] - u[2])) <= 1e-12 and abs(float(u[0] - u[1])) > 0.1),
  ),
  (
    "gd critical step k=inf",
    lambda: gd(jnp.array([1.0, jnp.inf])),
    Raises(ValueError, r"times: k = ∞.*no limit.*oscillates.*learning_rate < max_learning_rate"),
  ),
  (
    "gd at max_learning_rate k=inf",
    lambda: nl.mse_dynamics(K, Y, jnp.inf, learning_rate=nl.max_learning_rate(K), discrete=True),
    Raises(ValueError, r"times: k = ∞ \(jnp.inf\) has no limit"),
  ),
  (
    "gd critical step mean reduction k=inf",
    lambda: gd(jnp.inf, eta=4.0, reduction="mean"),
    Raises(ValueError, r"no limit.*max_learning_rate\(K\) = 4"),
  ),
  (
    "gd critical step k=inf under jit",
    lambda: jax.jit(lambda eta: gd(jnp.inf, eta=eta).train)(2.0).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"times: k = ∞"),
  ),
  (
    "gd just below critical k=inf converges",
    lambda: gd(jnp.inf, eta=1.99).train[0, :, 0],
    Value(lambda u: rel_err(u, YD) <= 1e-10),
  ),
  (
    "gd above critical k=inf",
    lambda: gd(jnp.inf, eta=2.5),
    Raises(ValueError, r"no limit.*grows without bound"),
  ),
  (
    "gd above critical finite k is GD",
    lambda: gd(jnp.array([0, 5, 20]), eta=2.5).train[:, :, 0],
    Value(lambda u: rel_err(u, gd_loop(D, YD, U0, 2.5, [0, 5, 20])) <= 1e-12),
  ),
  (
    "gd above critical overflows",
    lambda: gd(jnp.array([5000]), eta=2.5),
    Raises(ValueError, r"mse_dynamics: the result is NaN/Inf.*gradient descent diverging"),
  ),
  (
    "flow has no critical step",
    lambda: nl.mse_dynamics(D, YD, jnp.inf, learning_rate=2.0).train[0, :, 0],
    Value(lambda u: rel_err(u, YD) <= 1e-12),
  ),
  (
    "ensemble gd critical step k=inf",
    lambda: nl.mse_ensemble(nl.Kernel(D, D), YD, jnp.inf, learning_rate=2.0, discrete=True),
    Raises(ValueError, r"times: k = ∞.*oscillates"),
  ),
  # ------------------------------------------------- mse_ensemble / gp_inference: every kernel
  (
    "ensemble nngp_test_test indefinite",
    lambda: ens(nngp_test_test=-K[:2, :2], compute_cov=True),
    Raises(ValueError, r"nngp_test_test: is indefinite"),
  ),
  (
    "ensemble nngp_test_test non-symmetric",
    lambda: ens(nngp_test_test=jnp.array([[1.0, 0.5], [0.0, 1.0]]), compute_cov=True),
    Raises(ValueError, r"nngp_test_test: is not symmetric"),
  ),
  (
    "ensemble nngp train indefinite with ntk cov",
    lambda: ens(nngp=NEG, compute_cov=True),
    Raises(ValueError, r"k_train_train.nngp: is indefinite"),
  ),
  (
    "ensemble nngp train wrong size",
    lambda: ens(nngp=K[:3, :3], compute_cov=True),
    Raises(ValueError, r"k_train_train.nngp: expected \(4, 4\)"),
  ),
  (
    "ensemble nngp_test_test without k_test_train",
    lambda: ens(k_test_train=None, compute_cov=True),
    Raises(ValueError, r"nngp_test_test: given without k_test_train"),
  ),
  (
    "ensemble ntk not square",
    lambda: nl.mse_ensemble(nl.Kernel(K, jnp.ones((4, 3))), Y),
    Raises(ValueError, r"k_train_train.ntk: expected a square"),
  ),
  (
    "ensemble indefinite ntk under diag_reg",
    lambda: ens(theta=NEG, diag_reg=2.0),
    Raises(ValueError, r"k_train_train.ntk: is indefinite"),
  ),
  (
    "gp k_test_test indefinite",
    lambda: nl.gp_inference(K, Y, k_test_train=K[:2], k_test_test=-K[:2, :2]),
    Raises(ValueError, r"nngp_test_test: is indefinite"),
  ),
  (
    "gp k_test_test without k_test_train",
    lambda: nl.gp_inference(K, Y, k_test_test=K),
    Raises(ValueError, r"k_test_test: given without k_test_train"),
  ),
  (
    "gp k_test_test not square",
    lambda: nl.gp_inference(K, Y, k_test_train=K[:2], k_test_test=K[:2]),
    Raises(ValueError, r"nngp_test_test: expected a square"),
  ),
  (
    "gp train points: posterior is Bayes' rule",
    lambda: nl.gp_inference(K, Y, diag_reg=0.1),
    Value(
      lambda post: (
        rel_err(post.mean, K @ np.linalg.solve(np.asarray(K) + 0.1 * np.mean(np.diag(K)) * np.eye(4), Y))
        <= 1e-10
        and rel_err(
          post.cov, K - K @ np.linalg.solve(np.asarray(K) + 0.1 * np.mean(np.diag(K)) * np.eye(4), K)
        )
        <= 1e-10
      )
    ),
  ),
  (
    "gp diag_reg nan",
    lambda: nl.gp_inference(K, Y, diag_reg=jnp.nan),
    Raises(ValueError, r"diag_reg: must be a finite"),
  ),
  (
    "gp y wrong length",
    lambda: nl.gp_inference(K, Y[:3]),
    Raises(ValueError, r"y_train: expected shape \(4,\) or \(4, O\)"),
  ),
]


def test_table_is_unique():
  ids = [c[0] for c in CASES]
  assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name,call,expect", CASES, ids=[c[0] for c in CASES])
def test_hostile_checks(name, call, expect):
  if isinstance(expect, Raises):
    with pytest.raises(expect.exc) as err:
      call()
    assert re.search(expect.words, str(err.value), re.S), f"{name}: message was {err.value}"
  else:
    assert expect.check(call()), name
