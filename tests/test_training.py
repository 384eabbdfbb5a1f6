"""Gradient flow (diffrax) and optax training against independent routes: the closed-form dynamics
of the linearized network, the function-space ODE du/dt = −η Θ ∇_u L, step-size limits, solver
orders, and observables recomputed from saved parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ntk_lab as nl
from tests.conftest import rel_err

TIMES = jnp.array([0.0, 0.25, 1.0, 3.0])


def problem(n=8, d=3, out_dim=1, seed=0, **spec):
  spec = {"activation": "tanh", "b_std": 0.1, **spec}
  net = nl.MLP((48,), out_dim=out_dim, **spec)
  kx, ky, kp = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jax.random.normal(kx, (n + 3, d))
  y = jax.random.normal(ky, (n, out_dim))
  return net, net.init(kp, d), x[:n], y, x[n:]


@pytest.mark.parametrize("trainable,out_dim", [("all", 1), ("hidden", 2)])
def test_linearized_flow_is_the_closed_form(trainable, out_dim):
  """f_lin is linear in θ, so its MSE flow is u(t) = y + e^{−ηΘ₀t}(u₀ − y) with the full
  (N·O × N·O) NTK at θ₀, and the test outputs follow; diffrax at tight tolerances ≤ 1e-6."""
  net, p0, x, y, xt = problem(out_dim=out_dim, trainable=trainable)
  lin = nl.linearize(net, p0)
  run = nl.gradient_flow(
    lin, p0, x, y, times=TIMES, learning_rate=0.7, rtol=1e-10, atol=1e-12, x_test=xt, observe=["lin_gap"]
  )
  n, o = y.shape
  K = nl.empirical_ntk(net, p0, x, trace_outputs=False).transpose(0, 2, 1, 3).reshape(n * o, -1)
  Kt = nl.empirical_ntk(net, p0, xt, x, trace_outputs=False).transpose(0, 2, 1, 3).reshape(3 * o, -1)
  ref = nl.mse_dynamics(
    K,
    y.reshape(-1),
    TIMES,
    k_test_train=Kt,
    learning_rate=0.7,
    u0_train=net.apply(p0, x).reshape(-1),
    u0_test=net.apply(p0, xt).reshape(-1),
  )
  assert rel_err(run.train_outputs.reshape(4, -1), ref.train[..., 0]) <= 1e-6
  assert rel_err(run.test_outputs.reshape(4, -1), ref.test[..., 0]) <= 1e-6
  assert np.max(run.observables["lin_gap"]) <= 1e-6  # the same comparison, as an observable
  if trainable == "hidden":  # frozen layers never move
    np.testing.assert_array_equal(run.final_params[-1]["W"], p0[-1]["W"])


def test_linearize_is_the_first_order_taylor_expansion():
  """f_lin(θ₀ + εδ) − f(θ₀ + εδ) = O(ε²), and f_lin is exactly affine in θ."""
  net, p0, x, _, _ = problem()
  lin = nl.linearize(net, p0)
  delta = jax.tree.map(lambda a: jax.random.normal(jax.random.PRNGKey(9), a.shape), p0)
  gaps = []
  for eps in (1e-2, 1e-3):
    p = jax.tree.map(lambda a, b: a + eps * b, p0, delta)
    gaps.append(float(jnp.max(jnp.abs(lin.apply(p, x) - net.apply(p, x)))))
  assert 80 <= gaps[0] / gaps[1] <= 120  # second order: ×100 per decade
  p2 = jax.tree.map(lambda a, b: a + 2 * b, p0, delta)
  p1 = jax.tree.map(lambda a, b: a + b, p0, delta)
  assert rel_err(lin.apply(p2, x) - lin.apply(p1, x), lin.apply(p1, x) - lin.apply(p0, x)) <= 1e-12


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_outputs_follow_the_function_space_ode(loss):
  """du/dt = −η Θ(t) ∇_u L at t = 0, with the full empirical NTK: a central difference of the
  saved outputs, an independent route through the kernel rather than parameter gradients."""
  net, p0, x, _, _ = problem(out_dim=3)
  labels = jnp.arange(8) % 3
  y = (
    jax.nn.one_hot(labels, 3) if loss == "cross_entropy" else jax.random.normal(jax.random.PRNGKey(3), (8, 3))
  )
  h, eta = 1e-4, 0.5
  run = nl.gradient_flow(
    net,
    p0,
    x,
    labels if loss == "cross_entropy" else y,
    loss=loss,
    learning_rate=eta,
    times=jnp.array([0.0, h, 2 * h]),
    rtol=1e-12,
    atol=1e-14,
  )
  u = net.apply(p0, x)
  grad_u = u - y if loss == "mse" else jax.nn.softmax(u) - y
  theta = nl.empirical_ntk(net, p0, x, trace_outputs=False)
  want = -eta * jnp.einsum("ijab,jb->ia", theta, grad_u)
  slope = (-3 * run.train_outputs[0] + 4 * run.train_outputs[1] - run.train_outputs[2]) / (2 * h)
  assert rel_err(slope, want) <= 1e-6


def test_gradient_descent_approaches_gradient_flow_at_first_order():
  """optax.sgd(η) for t/η steps is Euler's method for the flow: its error shrinks ∝ η."""
  net, p0, x, y, _ = problem()
  flow = nl.gradient_flow(net, p0, x, y, times=jnp.array([0.0, 1.0]), rtol=1e-10, atol=1e-12)
  errors = []
  for lr in (0.02, 0.005):
    steps = int(round(1.0 / lr))
    run = nl.train(net, p0, x, y, optimizer=optax.sgd(lr), steps=steps, every=steps)
    errors.append(float(jnp.max(jnp.abs(run.train_outputs[-1] - flow.train_outputs[-1]))))
  assert errors[1] <= 1e-2 and 3.5 <= errors[0] / errors[1] <= 4.5


def test_learning_rate_only_rescales_time_and_fixed_step_solvers_agree():
  net, p0, x, y, _ = problem(activation="erf")
  ref = nl.gradient_flow(net, p0, x, y, times=2 * TIMES[1:], rtol=1e-10, atol=1e-12)
  fast = nl.gradient_flow(net, p0, x, y, times=TIMES[1:], learning_rate=2.0, rtol=1e-10, atol=1e-12)
  assert rel_err(fast.train_outputs, ref.train_outputs) <= 1e-8
  errs = {}
  for dt in (0.1, 0.05):
    rk4 = nl.gradient_flow(net, p0, x, y, times=2 * TIMES[1:], solver="rk4", dt0=dt)
    errs[dt] = rel_err(rk4.train_outputs, ref.train_outputs)
  assert 12 <= errs[0.1] / errs[0.05] <= 20  # 4th order: ×16 per halving


@pytest.mark.slow
@pytest.mark.parametrize(
  "solver,dt0", [("dopri5", None), ("dopri8", None), ("bosh3", None), ("heun", 1e-3), ("euler", 1e-4)]
)
def test_every_solver_reaches_the_same_flow(solver, dt0):
  net, p0, x, y, _ = problem(activation="erf")
  ref = nl.gradient_flow(net, p0, x, y, times=TIMES[1:], rtol=1e-10, atol=1e-12)
  other = nl.gradient_flow(net, p0, x, y, times=TIMES[1:], solver=solver, dt0=dt0, rtol=1e-9, atol=1e-11)
  assert rel_err(other.train_outputs, ref.train_outputs) <= (1e-3 if solver == "euler" else 1e-6)


def test_observables_match_recomputation_from_saved_params():
  net, p0, x, y, _ = problem(b_std=None)
  names = ["loss", "residual", "ntk_eigs", "kernel_drift", "weight_change", "unit_change", "ntk_gap"]
  run = nl.gradient_flow(net, p0, x, y, times=TIMES, observe=names, save_params=True)
  obs = run.observables
  K0 = nl.empirical_ntk(net, p0, x)
  for k in range(len(TIMES)):
    p = jax.tree.map(lambda a: a[k], run.params)
    u = net.apply(p, x)
    assert abs(obs["loss"][k] - 0.5 * jnp.sum((u - y) ** 2)) <= 1e-10
    assert abs(obs["residual"][k] - jnp.linalg.norm(y - u)) <= 1e-10
    K = nl.empirical_ntk(net, p, x, method="jacobian")
    lam = np.linalg.eigvalsh(np.asarray(K))
    assert abs(obs["ntk_min_eig"][k] - lam[0]) <= 1e-9 and abs(obs["ntk_max_eig"][k] - lam[-1]) <= 1e-9
    assert abs(obs["kernel_drift"][k] - jnp.linalg.norm(K - K0) / jnp.linalg.norm(K0)) <= 1e-9
    w, w0 = np.asarray(p[0]["W"]), np.asarray(p0[0]["W"])
    assert abs(obs["weight_change"][k, 0] - np.linalg.norm(w - w0) / np.linalg.norm(w0)) <= 1e-10
    # seed 001 b: max_r ‖w_r(t) − w_r(0)‖ over the hidden units' weight vectors w_r, and |a_r|
    units = max(np.linalg.norm(w[:, r] - w0[:, r]) for r in range(w.shape[1]))
    assert abs(obs["unit_change"][k, 0] - units) <= 1e-10
    a, a0 = np.asarray(p[1]["W"][:, 0]), np.asarray(p0[1]["W"][:, 0])
    assert abs(obs["unit_change"][k, 1] - np.max(np.abs(a - a0))) <= 1e-10
  assert obs["ntk_gap"][0] <= 1e-12 and obs["ntk_gap"][-1] > 1e-3  # both start at u(0)
  assert obs["loss"].shape == (4,) and obs["weight_change"].shape == (4, 2)


def test_minibatch_of_everything_is_gradient_descent_and_adam_learns():
  net, p0, x, y, _ = problem()
  full = nl.train(net, p0, x, y, optimizer=optax.sgd(0.01), steps=40, every=10, observe="loss")
  batch = nl.train(
    net, p0, x, y, optimizer=optax.sgd(0.01), steps=40, every=10, batch_size=8, key=jax.random.PRNGKey(1)
  )
  assert rel_err(batch.train_outputs, full.train_outputs) <= 1e-12
  assert full.times.tolist() == [0, 10, 20, 30, 40]
  adam = nl.train(
    net,
    p0,
    x,
    y,
    optimizer=optax.adam(1e-2),
    steps=300,
    batch_size=4,
    key=jax.random.PRNGKey(2),
    observe=["loss"],
    every=100,
  )
  assert adam.observables["loss"][-1] < 0.2 * adam.observables["loss"][0]


def test_plain_apply_fn_trains_every_leaf():
  net, p0, x, y, _ = problem()
  params = {"w": p0[0]["W"], "a": p0[1]["W"]}
  f = lambda p, x: jnp.tanh(x @ p["w"] / np.sqrt(3)) @ p["a"] / np.sqrt(48)
  run = nl.gradient_flow(f, params, x, y, times=TIMES, observe=["weight_change", "loss"])
  assert run.observables["weight_change"].shape == (4, 2)
  assert run.observables["loss"][-1] < run.observables["loss"][0]


# ------------------------------------------------------------------------------ failures
def test_divergence_is_reported_with_time_and_last_finite_loss():
  net, p0, x, y, _ = problem()
  with pytest.raises(nl.DivergenceError, match=r"diverged at t = .*last finite loss") as err:
    nl.gradient_flow(
      net, p0, x, y, times=jnp.array([0.0, 5.0, 60.0]), solver="euler", dt0=0.5, learning_rate=20.0
    )
  assert 5.0 < err.value.time <= 60.0 and err.value.last_finite_at == 5.0
  with pytest.raises(nl.DivergenceError, match=r"diverged at step \d+ of 2000.*last finite loss") as err:
    nl.train(net, p0, x, y, optimizer=optax.sgd(3.0), steps=2000)
  assert 0 < err.value.step < 2000 and np.isfinite(err.value.last_finite_loss)
  with pytest.raises(nl.SolverError, match="max_steps=50"):
    nl.gradient_flow(net, p0, x, y, times=jnp.array([0.0, 50.0]), learning_rate=100.0, max_steps=50)


def seeds(net, d, n_seeds=3):
  """The params of `n_seeds` draws, stacked along a leading axis (as `jax.vmap` wants them)."""
  return jax.vmap(lambda k: net.init(k, d))(jax.random.split(jax.random.PRNGKey(5), n_seeds))


@pytest.mark.slow  # two vmapped compilations of each trainer (~35 s); the runner's vmap test is in the default suite
def test_seeds_vmap_through_gradient_flow_and_train():
  """vmap over draws of θ₀ (what the runner does with seeds) gives each draw's own run, with its
  own adaptive steps."""
  net, _, x, y, xt = problem()
  ps = seeds(net, x.shape[1], n_seeds=2)
  obs = ["loss", "unit_change", "ntk_gap"]
  flow = lambda p: nl.gradient_flow(net, p, x, y, times=TIMES, x_test=xt, observe=obs)  # noqa: E731
  gd = lambda p: nl.train(net, p, x, y, optimizer=optax.sgd(0.05), steps=60, every=20, observe="loss")  # noqa: E731
  for fn in (flow, gd):
    batched = jax.vmap(fn)(ps)
    for i in range(2):
      one = fn(jax.tree.map(lambda a: a[i], ps))
      for field in ("train_outputs", "test_outputs", "final_params", "observables", "stats"):
        jax.tree.map(
          lambda b, a: np.testing.assert_allclose(np.asarray(b)[i], a, rtol=1e-12, atol=1e-14),
          getattr(batched, field),
          getattr(one, field),
        )
  assert batched.observables["loss"].shape == (2, 4)
  steps = np.asarray(jax.vmap(flow)(ps).stats["num_steps"])
  assert steps[0] != steps[1]  # each draw took its own adaptive steps


@pytest.mark.parametrize("wrap", ["vmap", "jit"])
def test_divergence_is_reported_under_vmap_and_jit(wrap):
  """Under a plain vmap the draw's DivergenceError comes through as itself; under jit JAX wraps
  it in a JaxRuntimeError that carries the same message."""
  net, _, x, y, _ = problem()
  ps = seeds(net, x.shape[1])
  flow = lambda p: nl.gradient_flow(
    net,
    p,
    x,
    y,
    times=jnp.array([0.0, 5.0, 60.0]),  # noqa: E731
    solver="euler",
    dt0=0.5,
    learning_rate=20.0,
  )
  gd = lambda p: nl.train(net, p, x, y, optimizer=optax.sgd(3.0), steps=2000)  # noqa: E731
  for fn, match in ((flow, r"diverged at t = .*last finite loss"), (gd, r"diverged at step \d+ of 2000")):
    if wrap == "vmap":
      with pytest.raises(nl.DivergenceError, match=match):
        jax.vmap(fn)(ps)
    else:
      with pytest.raises(jax.errors.JaxRuntimeError, match=match):
        jax.jit(fn)(jax.tree.map(lambda a: a[0], ps))


def test_under_jit_traced_arguments_give_the_plain_results_and_their_checks_run_inside():
  net, p0, x, y, _ = problem(out_dim=3)
  flow = jax.jit(lambda t: nl.gradient_flow(net, p0, x, y, times=t, observe="loss"))
  jitted, plain = flow(TIMES), nl.gradient_flow(net, p0, x, y, times=TIMES, observe="loss")
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14),
    (jitted.train_outputs, jitted.observables),
    (plain.train_outputs, plain.observables),
  )
  with pytest.raises(jax.errors.JaxRuntimeError, match=r"times: must be strictly increasing, but times\[2\]"):
    flow(jnp.array([0.0, 2.0, 1.0, 3.0]))  # the same compiled program, bad values
  labels = jnp.array([0, 1, 2, 3, 0, 1, 2, 0])
  with pytest.raises(
    jax.errors.JaxRuntimeError, match=r"y: class labels must lie in \[0, 3\).*got range \[0, 3\]"
  ):
    jax.jit(lambda l: nl.gradient_flow(net, p0, x, l, times=TIMES, loss="cross_entropy").train_outputs)(
      labels
    )
  with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):  # and at once without jit
    nl.gradient_flow(net, p0, x, labels, times=TIMES, loss="cross_entropy")


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"learning_rate": 0.0}, "learning_rate: must be a finite number > 0"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"times": jnp.array([0.0, 2.0, 1.0])}, r"times: must be strictly increasing, but times\[2\]"),
    ({"times": jnp.array([-1.0, 1.0])}, "times: must be finite and ≥ 0"),
    ({"y": jnp.zeros(5)}, "y: has 5 targets but x has 8 points"),
    ({"y": jnp.zeros((8, 2))}, r"y: expected shape \(8,\) or \(8, 1\)"),
    ({"loss": "l2"}, "loss: must be one of 'mse', 'cross_entropy'"),
    ({"solver": "rk45"}, "solver: must be one of"),
    ({"solver": "euler"}, "dt0: solver='euler' takes fixed steps"),
    ({"solver": "rk4", "dt0": 1e-4, "max_steps": 10}, "dt0: reaching t = 3 .* more than max_steps"),
    ({"observe": ["loss", "kernel_drfit"]}, "observe: must be one of"),
    ({"observe": "lin_gap", "loss": "cross_entropy", "y": jnp.zeros(8, int)}, "needs loss='mse'"),
  ],
)
def test_argument_errors_come_before_compilation(kwargs, match):
  net, p0, x, y, _ = problem()
  call = {"times": TIMES, "y": y, **kwargs}
  y = call.pop("y")
  with pytest.raises((ValueError, TypeError), match=match):
    nl.gradient_flow(net, p0, x, y, **call)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"optimizer": "sgd"}, "optimizer: expected an optax.GradientTransformation"),
    ({"steps": 0}, "steps: must be a positive integer"),
    ({"every": 7}, r"every: steps \(100\) must be a multiple of every \(7\)"),
    ({"batch_size": 4}, "key: minibatch SGD"),
    ({"batch_size": 9, "key": jax.random.PRNGKey(0)}, "batch_size: 9 exceeds the 8"),
    ({"observe": "ntk_gap"}, "time_per_step"),
  ],
)
def test_train_argument_errors(kwargs, match):
  net, p0, x, y, _ = problem()
  call = {"optimizer": optax.sgd(0.1), "steps": 100, **kwargs}
  with pytest.raises((ValueError, TypeError), match=match):
    nl.train(net, p0, x, y, **call)


# ------------------------------------------------------------------ error control in output space
@pytest.mark.parametrize("width", [64, 2048])
def test_output_error_control_keeps_the_outputs_error_independent_of_width(width):
  """A linearized one-hidden-layer ReLU net on 32 points to t = 10 at the default tolerances: the
  outputs stay within a few rtol of the closed form at every width (controlling the displacement
  instead lets the output error grow with the width; it is reported here, not asserted)."""
  net = nl.MLP((width,), activation="relu")
  x = jax.random.normal(jax.random.PRNGKey(0), (32, 4))
  y = jnp.sin(x[:, 0])
  p0 = net.init(jax.random.PRNGKey(1), 4)
  times = jnp.linspace(0.0, 10.0, 6)
  ref = nl.mse_dynamics(nl.empirical_ntk(net, p0, x), y, times, u0_train=net.apply(p0, x)).train
  run = nl.gradient_flow(nl.linearize(net, p0), p0, x, y, times=times)
  err = np.linalg.norm(np.asarray(run.train_outputs - ref).reshape(6, -1), axis=1)
  assert np.max(err) <= 5e-4, err


# ----------------------------------------------------------------------------- loss conventions
def test_mean_reduction_is_the_sum_flow_at_learning_rate_over_y_size():
  """L_mean = L_sum / y.size, so every trainer and closed form under "mean" equals "sum" with
  η / y.size; the closed form is also checked against NT's formula e^{−ηΘt/y.size} directly."""
  net, p0, x, y, xt = problem(out_dim=2)
  size = y.size
  mean = nl.gradient_flow(
    net, p0, x, y, times=TIMES, reduction="mean", learning_rate=3.0, rtol=1e-10, atol=1e-12, observe=["loss"]
  )
  summ = nl.gradient_flow(
    net, p0, x, y, times=TIMES, learning_rate=3.0 / size, rtol=1e-10, atol=1e-12, observe=["loss"]
  )
  assert rel_err(mean.train_outputs, summ.train_outputs) <= 1e-8
  np.testing.assert_allclose(mean.observables["loss"] * size, summ.observables["loss"], rtol=1e-8)
  gd_mean = nl.train(net, p0, x, y, optimizer=optax.sgd(2.0), steps=20, every=10, reduction="mean")
  gd_sum = nl.train(net, p0, x, y, optimizer=optax.sgd(2.0 / size), steps=20, every=10)
  assert rel_err(gd_mean.train_outputs, gd_sum.train_outputs) <= 1e-12
  K = nl.empirical_ntk(net, p0, x)
  u0 = net.apply(p0, x)
  lam, V = np.linalg.eigh(np.asarray(K))
  want = [
    np.asarray(y) + V @ np.diag(np.exp(-0.5 * lam * t / size)) @ V.T @ np.asarray(u0 - y) for t in TIMES
  ]
  got = nl.mse_dynamics(K, y, TIMES, learning_rate=0.5, u0_train=u0, reduction="mean").train
  assert rel_err(got, np.stack(want)) <= 1e-12
  kern = net.kernel(x)
  ens_mean = nl.mse_ensemble(kern, y, TIMES, learning_rate=0.5, reduction="mean").mean
  ens_sum = nl.mse_ensemble(kern, y, TIMES, learning_rate=0.5 / size).mean
  assert rel_err(ens_mean, ens_sum) <= 1e-12
  with pytest.raises(ValueError, match="reduction: must be one of 'sum', 'mean', got 'avg'"):
    nl.gradient_flow(net, p0, x, y, times=TIMES, reduction="avg")


# --------------------------------------------------------------------- running maxima of the gaps
def test_train_gap_maxima_cover_every_step_whatever_every_is():
  """lin_gap_max at a recorded step is the maximum of the gap over all steps so far: the same for
  every = 25 and 50, and equal to the cumulative maximum of the gap recorded at every step."""
  net, p0, x, y, _ = problem(activation="relu", b_std=None)
  opts = dict(optimizer=optax.sgd(0.5), steps=100, observe=["lin_gap", "ntk_gap"], time_per_step=0.5)
  dense = nl.train(net, p0, x, y, every=1, **opts)
  for every in (25, 50):
    run = nl.train(net, p0, x, y, every=every, **opts)
    for gap in ("lin_gap", "ntk_gap"):
      want = np.maximum.accumulate(np.asarray(dense.observables[gap]))[::every]
      np.testing.assert_allclose(run.observables[gap + "_max"], want, rtol=1e-12)
      assert np.all(run.observables[gap + "_max"] >= run.observables[gap])


def test_flow_gap_maxima_cover_every_accepted_step():
  """Saved times do not move diffrax's steps, so the running maximum over accepted steps is the
  same with 3 or 41 saved times (up to the dense saves' own values), and bounds every saved gap."""
  net, p0, x, y, xt = problem(activation="relu", b_std=None)
  runs = [
    nl.gradient_flow(net, p0, x, y, times=jnp.linspace(0.0, 3.0, k), x_test=xt, observe=["lin_gap"])
    for k in (3, 41)
  ]
  coarse, dense = runs
  for name in ("lin_gap", "lin_gap_test"):
    m = np.asarray(dense.observables[name + "_max"])
    assert np.all(np.diff(m) >= 0) and np.all(m >= np.asarray(dense.observables[name]))
    assert np.max(dense.observables[name]) <= m[-1]
    # the coarse run sees every step too: its maximum is within interpolation error of the dense one
    assert abs(float(coarse.observables[name + "_max"][-1]) - m[-1]) <= 1e-3 * m[-1]
  assert coarse.stats["num_steps"] == dense.stats["num_steps"]


# ------------------------------------------------------------------------------------- registries
def test_observables_registry_takes_names_user_functions_and_registered_ones():
  net, p0, x, y, _ = problem()

  def out_norm(s):
    return jnp.linalg.norm(s.outputs)

  nl.observables.register("params_norm", lambda s: optax.tree.norm(s.params))
  try:
    run = nl.gradient_flow(
      net,
      p0,
      x,
      y,
      times=TIMES,
      observe=["residual", out_norm, "params_norm"],
      save_params=True,
      rtol=1e-8,
      atol=1e-10,
    )
  finally:
    del nl.observables.OBSERVABLES["params_norm"]
  np.testing.assert_allclose(
    run.observables["out_norm"],
    np.linalg.norm(np.asarray(run.train_outputs).reshape(4, -1), axis=1),
    rtol=1e-12,
  )
  np.testing.assert_allclose(
    run.observables["residual"],
    np.linalg.norm(np.asarray(run.train_outputs - y).reshape(4, -1), axis=1),
    rtol=1e-12,
  )
  first = float(optax.tree.norm(p0))
  np.testing.assert_allclose(run.observables["params_norm"][0], first, rtol=1e-12)
  with pytest.raises(ValueError, match="__name__"):
    nl.gradient_flow(net, p0, x, y, times=TIMES, observe=[lambda s: s.loss])
  with pytest.raises(ValueError, match="did you mean 'residual'"):
    nl.gradient_flow(net, p0, x, y, times=TIMES, observe=["residul"])
  with pytest.raises(ValueError, match="repeat"):
    nl.train(net, p0, x, y, optimizer=optax.sgd(0.1), steps=2, observe=["loss", "loss"])


def test_solvers_are_objects_from_one_registry():
  import diffrax

  from ntk_lab.training.solvers import RK4

  assert all(isinstance(s.solver, diffrax.AbstractSolver) for s in nl.training.SOLVERS.values())
  net, p0, x, y, _ = problem()
  by_name = nl.gradient_flow(net, p0, x, y, times=TIMES, solver="rk4", dt0=0.01)
  by_object = nl.gradient_flow(net, p0, x, y, times=TIMES, solver=RK4(), dt0=0.01)
  np.testing.assert_array_equal(by_name.train_outputs, by_object.train_outputs)
  with pytest.raises(TypeError, match=r"instance, e.g. Tsit5\(\)"):
    nl.gradient_flow(net, p0, x, y, times=TIMES, solver=diffrax.Tsit5)


# ------------------------------------------------------------------------------- compile once
def test_fresh_optimizers_and_new_hyperparameters_reuse_the_compilation():
  """Counted by the trainers' trace counters (a compilation traces the program once; no timing):
  a freshly built optax.sgd(0.1), an injected learning rate, and gradient flow's η and
  tolerances add none; a new constant in the optimizer, or a new structure, adds one."""
  from ntk_lab.training.common import TRACES

  net, p0, x, y, _ = problem()
  nl.train(net, p0, x, y, optimizer=optax.sgd(0.1), steps=4)
  traced = TRACES["train"]
  a = nl.train(net, p0, x, y, optimizer=optax.sgd(0.1), steps=4)
  assert TRACES["train"] == traced
  inject = lambda lr: optax.inject_hyperparams(optax.sgd)(learning_rate=lr)  # noqa: E731
  nl.train(net, p0, x, y, optimizer=inject(0.3), steps=4)
  traced = TRACES["train"]
  b = nl.train(net, p0, x, y, optimizer=inject(0.1), steps=4)
  assert TRACES["train"] == traced
  assert rel_err(a.train_outputs, b.train_outputs) <= 1e-13
  c = nl.train(net, p0, x, y, optimizer=optax.sgd(0.2), steps=4)  # a new constant: its own program
  assert TRACES["train"] == traced + 1 and rel_err(c.train_outputs, a.train_outputs) > 1e-6
  nl.gradient_flow(net, p0, x, y, times=TIMES)
  traced = TRACES["gradient_flow"]
  nl.gradient_flow(net, p0, x, y, times=TIMES * 2, learning_rate=np.float32(0.5), rtol=1e-6, atol=1e-9)
  assert TRACES["gradient_flow"] == traced
  nl.gradient_flow(net, p0, x, y, times=TIMES, observe="loss")  # a new structure compiles once
  assert TRACES["gradient_flow"] == traced + 1


@pytest.mark.parametrize("control", ["outputs", "params", "both"])
def test_every_error_control_reaches_the_tight_solution(control):
  """Each control, at rtol 1e-6, lands within 1e-4 (outputs) and 1e-4 (params) of a solve at 1e-11;
  the controls differ in which error steers the steps, not in the flow they integrate."""
  net, p0, x, y, _ = problem()
  ref = nl.gradient_flow(
    net, p0, x, y, times=TIMES, rtol=1e-11, atol=1e-13, error_control="both", save_params=True
  )
  run = nl.gradient_flow(
    net, p0, x, y, times=TIMES, rtol=1e-6, atol=1e-8, error_control=control, save_params=True
  )
  assert float(jnp.max(jnp.abs(run.train_outputs - ref.train_outputs))) <= 1e-4
  for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(ref.params)):
    assert float(jnp.max(jnp.abs(a - b))) <= 1e-4
  with pytest.raises(ValueError, match="error_control: must be one of 'outputs', 'params', 'both'"):
    nl.gradient_flow(net, p0, x, y, times=TIMES, error_control="output")
