"""Closed-form MSE gradient-flow dynamics against matrix exponentials, the ODE itself, and the
converged (pseudo-inverse) kernel regressor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import expm

import ntk_lab as nl
from tests.conftest import inputs, rel_err


def problem(n=8, n_test=5, rank=None, seed=0):
  """A kernel from features, K = ΦΦᵀ/p (rank-deficient when rank < n), with its test block."""
  p = rank or 3 * n
  phi = jax.random.normal(jax.random.PRNGKey(seed), (n + n_test, p)) / np.sqrt(p)
  full = phi @ phi.T
  y = jax.random.normal(jax.random.PRNGKey(seed + 1), (n, 2))
  u0 = 0.3 * jax.random.normal(jax.random.PRNGKey(seed + 2), (n, 2))
  u0t = 0.3 * jax.random.normal(jax.random.PRNGKey(seed + 3), (n_test, 2))
  return full[:n, :n], full[n:, :n], y, u0, u0t


@pytest.mark.parametrize("eta", [0.5, 2.0])
def test_matches_matrix_exponential(eta):
  K, Kt, y, u0, u0t = problem()
  times = jnp.array([0.0, 0.3, 2.0, 10.0])
  out = nl.mse_dynamics(K, y, times, k_test_train=Kt, learning_rate=eta, u0_train=u0, u0_test=u0t)
  assert out.train.shape == (4, 8, 2) and out.test.shape == (4, 5, 2)
  for i, t in enumerate(times):
    E = expm(-eta * K * t)
    assert rel_err(out.train[i], y + E @ (u0 - y)) <= 1e-10
    want = u0t + Kt @ jnp.linalg.solve(K, (jnp.eye(8) - E) @ (y - u0))
    assert rel_err(out.test[i] - u0t, want - u0t) <= 1e-9  # the part that moved; 0 = 0 at t = 0


def test_is_the_gradient_flow_ode():
  """d u/dt = −η K (u − y), by forward-mode autodiff in t (an independent route to the formula)."""
  K, _, y, u0, _ = problem(seed=4)
  eta = 0.7
  u = lambda t: nl.mse_dynamics(K, y, t, learning_rate=eta, u0_train=u0).train[0]
  for t in (0.0, 0.5, 3.0):
    du = jax.jacfwd(u)(jnp.asarray(t))
    assert rel_err(du, -eta * K @ (u(t) - y)) <= 1e-10


def test_converged_predictor_is_kernel_regression_and_singular_kernels_stay_finite():
  K, Kt, y, u0, u0t = problem()
  out = nl.mse_dynamics(K, y, jnp.inf, k_test_train=Kt, u0_train=u0, u0_test=u0t)
  assert rel_err(out.train[0], y) <= 1e-10
  assert rel_err(out.test[0], u0t + Kt @ jnp.linalg.solve(K, y - u0)) <= 1e-9
  # Rank 3 < N = 8: the flow cannot fit y; at t = ∞ it reaches the minimum-norm (pinv) solution.
  K, Kt, y, u0, u0t = problem(rank=3, seed=7)
  times = jnp.array([1.0, 1e8, jnp.inf])
  out = nl.mse_dynamics(K, y, times, k_test_train=Kt, u0_train=u0, u0_test=u0t)
  assert np.isfinite(np.asarray(out.train)).all() and np.isfinite(np.asarray(out.test)).all()
  P = K @ jnp.linalg.pinv(K)  # projector onto range(K): only that part of the residual decays
  assert rel_err(out.train[-1], y + (jnp.eye(8) - P) @ (u0 - y)) <= 1e-8
  assert rel_err(out.test[-1], u0t + Kt @ jnp.linalg.pinv(K) @ (y - u0)) <= 1e-8
  assert rel_err(out.test[1], out.test[-1]) <= 1e-6  # t = 1e8 is converged, and not blown up


def test_diag_reg_and_jit_and_one_dimensional_targets():
  K, Kt, y, _, _ = problem()
  eps = 0.1
  a = nl.mse_dynamics(K, y[:, 0], jnp.array([1.0, 5.0]), k_test_train=Kt, diag_reg=eps)
  K_reg = K + eps * jnp.mean(jnp.diag(K)) * jnp.eye(8)
  b = nl.mse_dynamics(K_reg, y[:, :1], jnp.array([1.0, 5.0]), k_test_train=Kt)
  assert a.train.shape == (2, 8, 1)
  assert rel_err(a.train, b.train) <= 1e-12 and rel_err(a.test, b.test) <= 1e-12
  jitted = jax.jit(lambda K, y: nl.mse_dynamics(K, y, jnp.array([2.0])).train)(K, y)
  assert rel_err(jitted, nl.mse_dynamics(K, y, 2.0).train) <= 1e-14


def test_with_the_infinite_width_ntk_of_an_mlp():
  """The kernel of a real network: at t = ∞ the training outputs interpolate y."""
  net = nl.MLP((64, 64), activation="erf", b_std=0.1)
  x, xt = inputs(10, 3), inputs(4, 3, seed=8)
  y = jnp.sin(x[:, :1])
  out = nl.mse_dynamics(
    net.kernel(x, get="ntk").ntk,
    y,
    jnp.array([0.0, 1.0, jnp.inf]),
    k_test_train=net.kernel(xt, x, get="ntk").ntk,
  )
  assert rel_err(out.train[-1], y) <= 1e-8
  loss = [float(jnp.sum((u - y) ** 2)) for u in out.train]
  assert loss[0] > loss[1] > loss[2]


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(k_train_train=jnp.ones((3, 4))), "k_train_train: expected a square"),
    (dict(y_train=jnp.ones(5)), r"y_train: expected shape \(3,\) or \(3, O\)"),
    (dict(times=jnp.array([-1.0])), "times: must be ≥ 0"),
    (dict(learning_rate=0.0), "learning_rate: must be a finite number > 0"),
    (dict(diag_reg=-1.0), "diag_reg: must be a finite number ≥ 0"),
    (dict(k_test_train=jnp.ones((2, 4))), r"k_test_train: expected \(N_test, 3\)"),
    (dict(u0_train=jnp.ones((3, 2))), r"u0_train: expected shape \(3, 1\)"),
    (dict(k_train_train=jnp.full((3, 3), jnp.nan)), "k_train_train"),
  ],
)
def test_argument_errors(kwargs, match):
  args = dict(k_train_train=jnp.eye(3), y_train=jnp.ones(3), times=jnp.array([1.0]))
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    nl.mse_dynamics(args.pop("k_train_train"), args.pop("y_train"), args.pop("times"), **args)


@pytest.mark.parametrize("eta", [0.3, 1.5])
@pytest.mark.parametrize("rank", [None, 3])
def test_discrete_matches_repeated_gradient_descent_steps(eta, rank):
  """u_k = y + (I − ηK)^k (u₀ − y) against k explicit GD updates on train and test outputs,
  including η past 1/λ_max (an oscillating top mode) and a singular K."""
  K, Kt, y, u0, u0t = problem(rank=rank, seed=5)
  eta = eta / float(jnp.linalg.eigvalsh(K)[-1])
  steps = jnp.array([0, 1, 2, 7, 40])
  out = nl.mse_dynamics(
    K, y, steps, k_test_train=Kt, learning_rate=eta, u0_train=u0, u0_test=u0t, discrete=True
  )
  u, ut = u0, u0t
  for k in range(41):
    if k in steps.tolist():
      i = steps.tolist().index(k)
      assert rel_err(out.train[i], u) <= 1e-10
      assert float(jnp.max(jnp.abs(out.test[i] - ut))) <= 1e-10 * float(jnp.max(jnp.abs(ut)))
    r = u - y
    u, ut = u - eta * K @ r, ut - eta * Kt @ r  # the test outputs move along Θ(X*, X) too


def test_discrete_limits_small_steps_divergence_and_step_checks():
  K, Kt, y, u0, u0t = problem(seed=6)
  lam_max = float(jnp.linalg.eigvalsh(K)[-1])
  # k = ∞ below the bound is the converged kernel regressor, as for the flow.
  eta = 1.9 / lam_max
  a = nl.mse_dynamics(
    K, y, jnp.inf, k_test_train=Kt, learning_rate=eta, u0_train=u0, u0_test=u0t, discrete=True
  )
  b = nl.mse_dynamics(K, y, jnp.inf, k_test_train=Kt, learning_rate=eta, u0_train=u0, u0_test=u0t)
  assert rel_err(a.train, b.train) <= 1e-10 and rel_err(a.test, b.test) <= 1e-9
  # Small steps: k steps of η/k follow the flow to time η (error O(1/k)).
  errs = []
  for k in (100, 1000):
    d = nl.mse_dynamics(K, y, k, learning_rate=3.0 / k, u0_train=u0, discrete=True).train
    errs.append(rel_err(d, nl.mse_dynamics(K, y, 1.0, learning_rate=3.0, u0_train=u0).train))
  assert errs[1] < errs[0] / 5 and errs[1] < 1e-3
  # The bound: just below it GD contracts, just above it the top mode grows.
  bound = float(nl.max_learning_rate(K))
  assert bound == pytest.approx(2 / lam_max, rel=1e-12)
  for factor, grows in ((0.99, False), (1.01, True)):
    r = (
      nl.mse_dynamics(
        K, y, jnp.array([0, 2000]), learning_rate=factor * bound, u0_train=u0, discrete=True
      ).train
      - y
    )
    assert bool(jnp.linalg.norm(r[1]) > jnp.linalg.norm(r[0])) == grows
  assert float(nl.max_learning_rate(K, reduction="mean", y_size=16)) == pytest.approx(16 * bound)
  reg = float(nl.max_learning_rate(K, diag_reg=0.1))
  assert reg == pytest.approx(2 / (lam_max + 0.1 * float(jnp.mean(jnp.diag(K)))), rel=1e-10)
  jitted = jax.jit(lambda K: nl.mse_dynamics(K, y, jnp.array([3.0]), learning_rate=eta, discrete=True).train)(
    K
  )
  assert rel_err(jitted, nl.mse_dynamics(K, y, 3, learning_rate=eta, discrete=True).train) <= 1e-14
  with pytest.raises(ValueError, match="whole numbers"):
    nl.mse_dynamics(K, y, jnp.array([0.5]), discrete=True)
  with pytest.raises(TypeError, match="discrete: expected True or False"):
    nl.mse_dynamics(K, y, 1.0, discrete="yes")
  with pytest.raises(ValueError, match="reduction: must be one of"):
    nl.max_learning_rate(K, reduction="avg")
  with pytest.raises(ValueError, match="y_size: only used"):
    nl.max_learning_rate(K, y_size=8)


def test_discrete_predictor_is_optax_sgd_on_the_linearized_network():
  """nl.train with optax.sgd(η) on the linearized net moves its outputs exactly as the discrete
  closed form with K = Θ(θ₀) (½Σ loss: one optax step is u ← u − ηΘ(u − y))."""
  import optax

  net = nl.MLP((48,), activation="tanh", b_std=0.2)
  x, xt = inputs(6, 3), inputs(3, 3, seed=9)
  y = jnp.cos(x[:, :1])
  p0 = net.init(jax.random.PRNGKey(2), 3)
  lin = nl.linearize(net, p0)
  K = nl.empirical_ntk(net, p0, x)
  Kt = nl.empirical_ntk(net, p0, xt, x)
  eta = 0.8 * float(nl.max_learning_rate(K))
  run = nl.train(lin, p0, x, y, optimizer=optax.sgd(eta), steps=30, every=10, x_test=xt)
  ref = nl.mse_dynamics(
    K,
    y,
    run.times,
    k_test_train=Kt,
    learning_rate=eta,
    discrete=True,
    u0_train=net.apply(p0, x),
    u0_test=net.apply(p0, xt),
  )
  assert rel_err(run.train_outputs, ref.train) <= 1e-9
  assert rel_err(run.test_outputs, ref.test) <= 1e-9
