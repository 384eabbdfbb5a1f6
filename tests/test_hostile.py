"""A hostile-input table: what a user may pass by mistake, and what the library must do with it.

Each row is (input → expected outcome): either the error type and the words its message must
contain (a refusal that names the argument and the fix), or a check of the returned value against
an independent route (a NumPy scalar must give what the Python float gives; a pytree output must
equal the leafwise linearization). Shapes are tiny so the whole table runs in seconds; most rows
fail before anything compiles. The policy behind the rows is docs/checks.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ntk_lab as nl
from tests.conftest import inputs, rel_err


class Raises(NamedTuple):
  exc: type
  words: str  # a regex the message must match


class Value(NamedTuple):
  check: Callable  # out -> bool


NET = nl.MLP((6,), out_dim=2, activation="erf", b_std=0.1)
P = NET.init(jax.random.PRNGKey(0), 3)
X = inputs(4, 3)
XT = inputs(2, 3, seed=5)
Y = jnp.sin(X[:, :2])
K = X @ X.T + 0.5 * jnp.eye(4)  # a symmetric positive-definite kernel
KT = XT @ X.T
TINY = nl.MLP((4,), b_std=None)
TP = TINY.init(jax.random.PRNGKey(1), 3)
P32 = TINY.init(jax.random.PRNGKey(1), 3, dtype=jnp.float32)


def with_leaf(params, layer, name, index, value):
  out = [dict(p) for p in params]
  out[layer][name] = out[layer][name].at[index].set(value)
  return out


TIMES = jnp.array([0.5, 2.0])


def mse(K=K, y=Y[:, 0], times=TIMES, **kw):
  return nl.mse_dynamics(K, y, times, k_test_train=kw.pop("k_test_train", KT), **kw)


def ens(ntk=K, **kw):
  return nl.mse_ensemble(
    nl.Kernel(K, ntk), Y, kw.pop("times", jnp.array([1.0, jnp.inf])), k_test_train=nl.Kernel(KT, KT), **kw
  )


def flow(params=TP, **kw):
  kw.setdefault("times", jnp.array([0.0, 0.5]))
  return nl.gradient_flow(TINY, params, X, Y[:, 0], **kw)


def sgd(params=TP, x=X, **kw):
  kw.setdefault("optimizer", optax.sgd(0.1))
  kw.setdefault("steps", 4)
  kw.setdefault("every", 2)
  return nl.train(TINY, params, x, Y[:, 0], **kw)


def same(a, b, tol=1e-12):
  return all(rel_err(u, v) <= tol for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tuple_model(p, x):
  return (jnp.tanh(x @ p["w"]), jnp.sin(x @ p["v"]) ** 2)


TUP_P0 = {"w": jnp.ones((3, 2)) * 0.3, "v": jnp.ones((3, 1)) * -0.2}
TUP_P1 = jax.tree.map(lambda a: a + 0.05, TUP_P0)


def tuple_linearization():
  """The leafwise first-order expansion, from jax.jacfwd: an independent route to `linearize`."""
  f0 = tuple_model(TUP_P0, X)
  jac = jax.jacfwd(lambda p: tuple_model(p, X))(TUP_P0)
  step = jax.tree.map(jnp.subtract, TUP_P1, TUP_P0)
  return tuple(
    f0[i] + sum(jnp.tensordot(jac[i][k], step[k], axes=step[k].ndim) for k in step) for i in range(2)
  )


NAN = jnp.nan
CASES = [
  # ------------------------------------------------------------------ MLP spec: the number policy
  (
    "mlp W_std np.float32",
    lambda: nl.MLP((4,), W_std=np.float32(1.5)).W_std,
    Value(lambda w: w == 1.5 and type(w) is float),
  ),
  ("mlp W_std 0-d jax array", lambda: nl.MLP((4,), W_std=jnp.asarray(2.0)).W_std, Value(lambda w: w == 2.0)),
  ("mlp W_std bool", lambda: nl.MLP((4,), W_std=True), Raises(ValueError, r"W_std: .*got the bool")),
  (
    "mlp W_std inf",
    lambda: nl.MLP((4,), W_std=float("inf")),
    Raises(ValueError, r"W_std: must be a finite number ≥ 0"),
  ),
  ("mlp W_std nan", lambda: nl.MLP((4,), W_std=np.nan), Raises(ValueError, r"W_std: must be a finite")),
  (
    "mlp W_std negative",
    lambda: nl.MLP((4,), W_std=-1.0),
    Raises(ValueError, r"W_std: must be a finite number ≥ 0, got -1"),
  ),
  (
    "mlp W_std string",
    lambda: nl.MLP((4,), W_std="1.0"),
    Raises(ValueError, r"W_std: must be a finite number"),
  ),
  (
    "mlp W_std per layer bad",
    lambda: nl.MLP((4,), W_std=(1.0, -0.5)),
    Raises(ValueError, r"W_std\[1\]: must be"),
  ),
  ("mlp W_std vector array", lambda: nl.MLP((4,), W_std=np.ones(3)), Raises(ValueError, r"W_std")),
  (
    "mlp b_std np negative",
    lambda: nl.MLP((4,), b_std=np.float64(-0.1)),
    Raises(ValueError, r"b_std: must be a finite number ≥ 0, or None"),
  ),
  ("mlp b_std np.float32", lambda: nl.MLP((4,), b_std=np.float32(0.25)).b_std, Value(lambda b: b == 0.25)),
  ("mlp hidden np.int64", lambda: nl.MLP((np.int64(4),)).hidden, Value(lambda h: h == (4,))),
  (
    "mlp hidden bool",
    lambda: nl.MLP((4, True)),
    Raises(ValueError, r"hidden\[1\]: must be a positive integer"),
  ),
  (
    "mlp hidden float",
    lambda: nl.MLP((4.0,)),
    Raises(ValueError, r"hidden\[0\]: must be a positive integer"),
  ),
  (
    "mlp activation typo",
    lambda: nl.MLP((4,), activation="rleu"),
    Raises(ValueError, r"did you mean 'relu'"),
  ),
  (
    "activation alpha np.float32",
    lambda: float(nl.Activation("leaky_relu", alpha=np.float32(0.5))(-2.0)),
    Value(lambda v: v == -1.0),
  ),
  (
    "activation alpha nan",
    lambda: nl.Activation("leaky_relu", alpha=NAN),
    Raises(ValueError, r"activation alpha: must be a finite"),
  ),
  (
    "mlp parametrization typo",
    lambda: nl.MLP((4,), parametrization="standrd"),
    Raises(ValueError, r"did you mean 'standard'"),
  ),
  (
    "init in_dim 0",
    lambda: NET.init(jax.random.PRNGKey(0), 0),
    Raises(ValueError, r"in_dim: must be a positive integer"),
  ),
  (
    "init in_dim float",
    lambda: NET.init(jax.random.PRNGKey(0), 3.0),
    Raises(ValueError, r"in_dim: must be a positive integer"),
  ),
  # ------------------------------------------------------------------------------ apply and inputs
  (
    "apply rank-1 x",
    lambda: NET.apply(P, jnp.ones(3)),
    Raises(ValueError, r"x: expected rank 2.*x\[None, :\]"),
  ),
  (
    "apply wrong features",
    lambda: NET.apply(P, jnp.ones((2, 4))),
    Raises(ValueError, r"x: has 4 features.*in_dim=3"),
  ),
  (
    "apply empty batch",
    lambda: NET.apply(P, jnp.ones((0, 3))),
    Raises(ValueError, r"x: needs at least one point"),
  ),
  (
    "apply complex x",
    lambda: NET.apply(P, jnp.ones((2, 3), complex)),
    Raises(TypeError, r"x: expected a real floating array"),
  ),
  ("apply string x", lambda: NET.apply(P, "abc"), Raises(TypeError, r"x: expected")),
  # ---------------------------------------------------------------------------------- empirical NTK
  (
    "entk nan weight",
    lambda: nl.empirical_ntk(NET, with_leaf(P, 0, "W", (1, 2), NAN), X),
    Raises(ValueError, r"params\[0\]\['W'\]: contains NaN or Inf \(1 entries, first at index \(1, 2\)\)"),
  ),
  (
    "entk inf bias",
    lambda: nl.empirical_ntk(NET, with_leaf(P, 1, "b", 1, jnp.inf), X),
    Raises(ValueError, r"params\[1\]\['b'\]: contains NaN or Inf \(1 entries, first at index \(1,\)\)"),
  ),
  (
    "entk nan weight jacobian route",
    lambda: nl.empirical_ntk(NET.apply, with_leaf(P, 0, "W", (0, 0), NAN), X),
    Raises(ValueError, r"params\[0\]\['W'\]: contains NaN"),
  ),
  (
    "entk nan weight under jit",
    lambda: jax.jit(lambda p: nl.empirical_ntk(NET, p, X))(
      with_leaf(P, 0, "W", (0, 0), NAN)
    ).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"params\[0\]\['W'\]: contains NaN"),
  ),
  (
    "entk inputs 1e200 overflow",
    lambda: nl.empirical_ntk(NET, P, X * 1e200),
    Raises(ValueError, r"empirical_ntk: the result is NaN/Inf .*overflowed float64.*Rescale the inputs"),
  ),
  (
    "entk float16 overflow",
    lambda: nl.empirical_ntk(
      NET, NET.init(jax.random.PRNGKey(0), 3, dtype=jnp.float16), (X * 300).astype(jnp.float16)
    ),
    Raises(ValueError, r"overflowed float16"),
  ),
  (
    "entk x nan",
    lambda: nl.empirical_ntk(NET, P, X.at[2, 1].set(NAN)),
    Raises(ValueError, r"x1: contains NaN or Inf"),
  ),
  (
    "entk x2 features",
    lambda: nl.empirical_ntk(NET, P, X, jnp.ones((2, 5))),
    Raises(ValueError, r"x2: has 5 features"),
  ),
  (
    "entk method typo",
    lambda: nl.empirical_ntk(NET, P, X, method="structred"),
    Raises(ValueError, r"did you mean 'structured'"),
  ),
  (
    "entk memory_budget bool",
    lambda: nl.empirical_ntk(NET, P, X, memory_budget=True),
    Raises(ValueError, r"memory_budget: .*bool"),
  ),
  (
    "entk memory_budget inf",
    lambda: nl.empirical_ntk(NET, P, X, memory_budget=float("inf")),
    Raises(ValueError, r"memory_budget: must be a finite number > 0"),
  ),
  (
    "entk memory_budget np",
    lambda: nl.empirical_ntk(NET, P, X, memory_budget=np.float32(1e6)),
    Value(lambda k: same(k, nl.empirical_ntk(NET, P, X))),
  ),
  (
    "entk tile_size np.int64",
    lambda: nl.empirical_ntk(NET, P, X, tile_size=np.int64(2)),
    Value(lambda k: same(k, nl.empirical_ntk(NET, P, X))),
  ),
  (
    "entk tile_size float",
    lambda: nl.empirical_ntk(NET, P, X, tile_size=2.0),
    Raises(ValueError, r"tile_size: must be a positive integer"),
  ),
  # ------------------------------------------------------------------------------- analytic kernels
  (
    "kernel W_std override negative",
    lambda: NET.kernel(X, W_std=-1.0),
    Raises(ValueError, r"W_std: must be finite and ≥ 0, got -1"),
  ),
  (
    "kernel W_std override nan",
    lambda: NET.kernel(X, W_std=NAN),
    Raises(ValueError, r"W_std: must be finite"),
  ),
  (
    "kernel W_std override negative layer",
    lambda: NET.kernel(X, W_std=jnp.array([1.0, -0.5])),
    Raises(ValueError, r"W_std: must be finite and ≥ 0, got -0.5 at layer 1"),
  ),
  (
    "kernel b_std override negative",
    lambda: NET.kernel(X, b_std=-0.5),
    Raises(ValueError, r"b_std: must be finite and ≥ 0"),
  ),
  (
    "kernel W_std override traced negative",
    lambda: jax.jit(lambda s: NET.kernel(X, W_std=s).ntk)(-1.0).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"W_std: must be finite and ≥ 0"),
  ),
  (
    "kernel W_std override np.float32",
    lambda: NET.kernel(X, W_std=np.float32(1.5)),
    Value(lambda k: same(k, nl.MLP((6,), out_dim=2, activation="erf", b_std=0.1, W_std=1.5).kernel(X), 1e-6)),
  ),
  (
    "kernel b_std on a bias-free net",
    lambda: TINY.kernel(X, b_std=0.1),
    Raises(ValueError, r"b_std: the model has no bias"),
  ),
  (
    "kernel get typo",
    lambda: NET.kernel(X, get="ntkk"),
    Raises(ValueError, r"get: must be one of.*did you mean 'ntk'"),
  ),
  (
    "kernel quadrature_nodes 0",
    lambda: nl.MLP((4,), activation="tanh").kernel(X, quadrature_nodes=0),
    Raises(ValueError, r"quadrature_nodes: must be a positive integer"),
  ),
  (
    "kernel inputs 1e200 overflow",
    lambda: NET.kernel(X * 1e200),
    Raises(ValueError, r"analytic_kernel: the result is NaN/Inf.*overflowed"),
  ),
  (
    "kernel x2 features",
    lambda: NET.kernel(X, jnp.ones((2, 4))),
    Raises(ValueError, r"x2: has 4 features but.*in_dim=3"),
  ),
  (
    "kernel memory_budget negative",
    lambda: NET.kernel(X, memory_budget=-1),
    Raises(ValueError, r"memory_budget: must be a finite number > 0"),
  ),
  (
    "monte carlo n_samples 1",
    lambda: nl.monte_carlo_kernel(NET, jax.random.PRNGKey(0), X, n_samples=1),
    Raises(ValueError, r"n_samples: needs at least 2"),
  ),
  (
    "monte carlo x2 features",
    lambda: nl.monte_carlo_kernel(NET, jax.random.PRNGKey(0), X, jnp.ones((2, 2)), n_samples=2),
    Raises(ValueError, r"x2: has 2 features"),
  ),
  (
    "monte carlo apply_fn",
    lambda: nl.monte_carlo_kernel(NET.apply, jax.random.PRNGKey(0), X, n_samples=2),
    Raises(TypeError, r"model: expected a network of ntk_lab layers"),
  ),
  (
    "two-layer x2 features",
    lambda: nl.two_layer.relu_h_infinity(X, jnp.ones((2, 2))),
    Raises(ValueError, r"x2: has 2 features"),
  ),
  (
    "two-layer series terms 0",
    lambda: nl.two_layer.relu_h_infinity_series(X, terms=0),
    Raises(ValueError, r"terms: must be a positive integer"),
  ),
  # --------------------------------------------------------------------------- closed-form dynamics
  (
    "mse learning_rate bool",
    lambda: mse(learning_rate=True),
    Raises(ValueError, r"learning_rate: .*got the bool"),
  ),
  (
    "mse learning_rate inf",
    lambda: mse(learning_rate=float("inf")),
    Raises(ValueError, r"learning_rate: must be a finite number > 0, got inf"),
  ),
  (
    "mse learning_rate zero",
    lambda: mse(learning_rate=0),
    Raises(ValueError, r"learning_rate: must be a finite number > 0"),
  ),
  (
    "mse learning_rate np.float32",
    lambda: mse(learning_rate=np.float32(0.5)),
    Value(lambda out: same(out, mse(learning_rate=0.5))),
  ),
  (
    "mse learning_rate jax scalar",
    lambda: mse(learning_rate=jnp.asarray(0.5)),
    Value(lambda out: same(out, mse(learning_rate=0.5))),
  ),
  (
    "mse learning_rate vector",
    lambda: mse(learning_rate=jnp.ones(2)),
    Raises(ValueError, r"learning_rate: .*a scalar"),
  ),
  (
    "mse learning_rate traced negative",
    lambda: jax.jit(lambda e: mse(learning_rate=e).train)(-1.0).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"learning_rate: must be a finite number > 0"),
  ),
  (
    "mse times negative",
    lambda: mse(times=[-5.0]),
    Raises(ValueError, r"times: must be ≥ 0 and not NaN.*times\[0\] = -5"),
  ),
  (
    "mse times negative under jit",
    lambda: jax.jit(lambda t: mse(times=t).train)(jnp.array([-5.0])).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"times: must be ≥ 0"),
  ),
  (
    "mse times nan",
    lambda: mse(times=[1.0, NAN]),
    Raises(ValueError, r"times: must be ≥ 0 and not NaN.*times\[1\]"),
  ),
  (
    "mse times 2-d",
    lambda: mse(times=jnp.ones((2, 2))),
    Raises(ValueError, r"times: expected a scalar or a 1-D array"),
  ),
  ("mse times string", lambda: mse(times="soon"), Raises(TypeError, r"times: expected")),
  ("mse times bool", lambda: mse(times=True), Raises(TypeError, r"times: expected real numbers")),
  (
    "mse times inf is the limit",
    lambda: mse(times=jnp.inf).train[0, :, 0],
    Value(lambda u: rel_err(u, Y[:, 0]) <= 1e-10),
  ),
  (
    "mse times np.float32 scalar",
    lambda: mse(times=np.float32(2.0)),
    Value(lambda out: rel_err(out.train[0], mse(times=2.0).train[0]) <= 1e-12),
  ),
  (
    "mse diag_reg negative",
    lambda: mse(diag_reg=-0.1),
    Raises(ValueError, r"diag_reg: must be a finite number ≥ 0"),
  ),
  ("mse diag_reg nan", lambda: mse(diag_reg=NAN), Raises(ValueError, r"diag_reg: must be a finite")),
  (
    "mse non-symmetric K",
    lambda: mse(K=K.at[0, 1].add(0.3)),
    Raises(ValueError, r"k_train_train: is not symmetric"),
  ),
  (
    "mse test-train block as K",
    lambda: mse(K=jnp.triu(K)),
    Raises(ValueError, r"k_train_train: is not symmetric"),
  ),
  (
    "mse indefinite K",
    lambda: mse(K=K - 2.0 * jnp.eye(4) * jnp.min(jnp.linalg.eigvalsh(K))),
    Raises(ValueError, r"k_train_train: is indefinite: its lowest eigenvalue"),
  ),
  ("mse negative definite K", lambda: mse(K=-K), Raises(ValueError, r"k_train_train: is indefinite")),
  (
    "mse indefinite K under jit",
    lambda: jax.jit(lambda k: mse(K=k).train)(jnp.diag(jnp.array([1.0, 1.0, 1.0, -1.0]))).block_until_ready(),
    Raises(jax.errors.JaxRuntimeError, r"k_train_train: is indefinite"),
  ),
  (
    "mse K with rounding asymmetry",
    lambda: mse(K=K.at[0, 1].multiply(1 + 1e-15)),
    Value(lambda out: same(out, mse(), 1e-12)),
  ),
  (
    "mse singular PSD K",
    lambda: mse(K=jnp.ones((4, 4)), times=jnp.inf).train,
    Value(lambda u: bool(np.isfinite(np.asarray(u)).all())),
  ),
  (
    "mse K nan",
    lambda: mse(K=K.at[1, 1].set(NAN)),
    Raises(ValueError, r"k_train_train: contains NaN or Inf"),
  ),
  (
    "mse y wrong length",
    lambda: mse(y=jnp.ones(3)),
    Raises(ValueError, r"y_train: expected shape \(4,\) or \(4, O\)"),
  ),
  (
    "mse k_test_train transposed",
    lambda: mse(k_test_train=KT.T),
    Raises(ValueError, r"k_test_train: expected \(N_test, 4\)"),
  ),
  (
    "ensemble non-symmetric ntk",
    lambda: ens(ntk=K.at[3, 0].add(1.0)),
    Raises(ValueError, r"k_train_train.ntk: is not symmetric"),
  ),
  (
    "ensemble indefinite ntk",
    lambda: ens(ntk=jnp.diag(jnp.array([1.0, -0.5, 1.0, 1.0]))),
    Raises(ValueError, r"k_train_train.ntk: is indefinite"),
  ),
  ("ensemble kernel typo", lambda: ens(kernel="nngpp"), Raises(ValueError, r"kernel: .*did you mean 'nngp'")),
  (
    "ensemble learning_rate np.float64",
    lambda: ens(learning_rate=np.float64(0.5), times=1.0),
    Value(lambda g: same(g, ens(learning_rate=0.5, times=1.0))),
  ),
  (
    "ensemble learning_rate bool",
    lambda: ens(learning_rate=True),
    Raises(ValueError, r"learning_rate: .*bool"),
  ),
  ("ensemble times negative", lambda: ens(times=-1.0), Raises(ValueError, r"times: must be ≥ 0")),
  (
    "gp non-symmetric K",
    lambda: nl.gp_inference(K.at[0, 2].add(0.5), Y),
    Raises(ValueError, r"is not symmetric"),
  ),
  ("gp indefinite K", lambda: nl.gp_inference(K - 10 * jnp.eye(4), Y), Raises(ValueError, r"is indefinite")),
  (
    "gp Kernel passed",
    lambda: nl.gp_inference(nl.Kernel(K, K), Y),
    Raises(TypeError, r"k_train_train: expected a matrix, got a Kernel"),
  ),
  ("gp diag_reg bool", lambda: nl.gp_inference(K, Y, diag_reg=True), Raises(ValueError, r"diag_reg: .*bool")),
  # ------------------------------------------------------------------------------------ linearize
  (
    "linearize tuple output",
    lambda: nl.linearize(tuple_model, TUP_P0).apply(TUP_P1, X),
    Value(lambda out: isinstance(out, tuple) and len(out) == 2 and same(out, tuple_linearization(), 1e-12)),
  ),
  (
    "linearize dict output",
    lambda: nl.linearize(lambda p, x: {"a": x @ p["w"]}, TUP_P0).apply(TUP_P1, X),
    Value(lambda out: set(out) == {"a"} and same(out["a"], X @ TUP_P1["w"])),
  ),
  (
    "linearize nan params0",
    lambda: nl.linearize(NET, with_leaf(P, 1, "W", (0, 1), NAN)),
    Raises(ValueError, r"params0\[1\]\['W'\]: contains NaN or Inf \(1 entries, first at index \(0, 1\)\)"),
  ),
  (
    "linearize not a model",
    lambda: nl.linearize("net", P),
    Raises(TypeError, r"model: expected a network of ntk_lab layers"),
  ),
  # ------------------------------------------------------------------------------------- trainers
  (
    "flow nan params0",
    lambda: flow(with_leaf(TP, 0, "W", (2, 3), NAN)),
    Raises(ValueError, r"params0\[0\]\['W'\]: contains NaN or Inf \(1 entries, first at index \(2, 3\)\)"),
  ),
  (
    "flow learning_rate np.float32",
    lambda: flow(learning_rate=np.float32(0.5)),
    Value(lambda run: same(run.train_outputs, flow(learning_rate=0.5).train_outputs)),
  ),
  ("flow learning_rate bool", lambda: flow(learning_rate=True), Raises(ValueError, r"learning_rate: .*bool")),
  (
    "flow learning_rate inf",
    lambda: flow(learning_rate=np.inf),
    Raises(ValueError, r"learning_rate: must be a finite number > 0"),
  ),
  ("flow rtol zero", lambda: flow(rtol=0.0), Raises(ValueError, r"rtol: must be a finite number > 0")),
  (
    "flow atol traced",
    lambda: jax.jit(lambda a: flow(atol=a).train_outputs)(1e-6),
    Raises(TypeError, r"atol: must be a concrete number"),
  ),
  (
    "flow dt0 negative",
    lambda: flow(solver="euler", dt0=-0.1),
    Raises(ValueError, r"dt0: must be a finite number > 0"),
  ),
  (
    "flow times unsorted",
    lambda: flow(times=jnp.array([0.0, 2.0, 1.0])),
    Raises(ValueError, r"times: must be strictly increasing, but times\[2\]"),
  ),
  (
    "flow times negative",
    lambda: flow(times=[-1.0, 1.0]),
    Raises(ValueError, r"times: must be finite and ≥ 0"),
  ),
  ("flow times inf", lambda: flow(times=[0.0, np.inf]), Raises(ValueError, r"times: must be finite and ≥ 0")),
  (
    "flow times scalar",
    lambda: flow(times=1.0),
    Raises(ValueError, r"times: expected a non-empty 1-D array"),
  ),
  (
    "flow loss typo",
    lambda: flow(loss="mse2"),
    Raises(ValueError, r"loss: must be one of.*did you mean 'mse'"),
  ),
  (
    "flow max_steps zero",
    lambda: flow(max_steps=0),
    Raises(ValueError, r"max_steps: must be a positive integer"),
  ),
  # The cast rule: params narrower than the data are promoted to the data's dtype.
  (
    "train float32 params float64 data",
    lambda: sgd(params=P32),
    Value(
      lambda run: (
        run.train_outputs.dtype == jnp.float64
        and jax.tree.leaves(run.final_params)[0].dtype == jnp.float64
        and same(
          run.train_outputs, sgd(params=jax.tree.map(lambda a: a.astype(jnp.float64), P32)).train_outputs
        )
      )
    ),
  ),
  (
    "flow float32 params float64 data",
    lambda: flow(params=P32),
    Value(
      lambda run: (
        run.train_outputs.dtype == jnp.float64
        and same(
          run.train_outputs, flow(params=jax.tree.map(lambda a: a.astype(jnp.float64), P32)).train_outputs
        )
      )
    ),
  ),
  (
    "train nan params0",
    lambda: sgd(params=with_leaf(TP, 1, "W", (0, 0), jnp.inf)),
    Raises(ValueError, r"params0\[1\]\['W'\]: contains NaN or Inf"),
  ),
  ("train steps zero", lambda: sgd(steps=0), Raises(ValueError, r"steps: must be a positive integer")),
  ("train steps np.int64", lambda: sgd(steps=np.int64(4)).times.tolist(), Value(lambda t: t == [0, 2, 4])),
  (
    "train optimizer missing",
    lambda: sgd(optimizer=None),
    Raises(TypeError, r"optimizer: expected an optax.GradientTransformation"),
  ),
  (
    "train every not a divisor",
    lambda: sgd(steps=5, every=2),
    Raises(ValueError, r"every: steps \(5\) must be a multiple"),
  ),
  (
    "train batch larger than data",
    lambda: sgd(batch_size=10, key=jax.random.PRNGKey(0)),
    Raises(ValueError, r"batch_size: 10 exceeds"),
  ),
  ("train x nan", lambda: sgd(x=X.at[0, 0].set(NAN)), Raises(ValueError, r"x: contains NaN or Inf")),
]


def test_table_is_large_and_unique():
  ids = [c[0] for c in CASES]
  assert len(ids) >= 60 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("name,call,expect", CASES, ids=[c[0] for c in CASES])
def test_hostile(name, call, expect):
  if isinstance(expect, Raises):
    with pytest.raises(expect.exc) as err:
      call()
    assert re.search(expect.words, str(err.value), re.S), f"{name}: message was {err.value}"
  else:
    assert expect.check(call()), name
