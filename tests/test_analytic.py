"""Infinite-width kernels: against neural-tangents' kernel_fn (golden files), the seeds' closed forms,
quadrature against closed forms, and the empirical NTK of wide networks."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import inputs, rel_err

GOLDEN = np.load(pathlib.Path(__file__).parent / "golden" / "nt_analytic.npz")
QUADRATURE = {"tanh", "sigmoid", "softplus"}


def golden_case(i):
  spec = json.loads(str(GOLDEN[f"case{i}_spec"]))
  act = spec["activation"]
  activation = nl.Activation(act, alpha=spec["alpha"]) if act == "leaky_relu" else act
  net = nl.MLP(
    tuple(spec["hidden"]),
    activation=activation,
    parametrization=spec["parametrization"],
    W_std=spec["W_std"],
    b_std=spec["b_std"],
  )
  return spec, net, jnp.asarray(GOLDEN[f"case{i}_x1"]), jnp.asarray(GOLDEN[f"case{i}_x2"])


@pytest.mark.parametrize("case", range(int(GOLDEN["n_cases"])))
def test_matches_neural_tangents_kernel_fn(case):
  """Closed forms (GELU included) to 1e-10; quadrature (ours at its default accuracy, NT's
  ElementwiseNumerical at 300 nodes) to 1e-7. x1[0] = 0 is a zero-norm input: NT's numerical kernels give NaN there, ours
  the finite limit, so NT's non-finite entries are skipped."""
  spec, net, x1, x2 = golden_case(case)
  act = spec["activation"]
  k = nl.analytic_kernel(net, x1, x2)
  tol = 1e-7 if act in QUADRATURE else 1e-10
  for name in ("nngp", "ntk"):
    ours, theirs = np.asarray(getattr(k, name)), GOLDEN[f"case{case}_{name}"]
    assert np.isfinite(ours).all()
    ok = np.isfinite(theirs)
    assert ok.sum() >= ok.size - x2.shape[0]  # only the zero-norm row may be missing
    assert rel_err(ours[ok], theirs[ok]) <= tol, (spec, name, rel_err(ours[ok], theirs[ok]))


def test_seed002_fixed_readout_relu_closed_form():
  """002 (d): H^∞_ij = x_iᵀx_j (π − arccos(x_iᵀx_j)) / (2π) for unit-norm inputs."""
  d = 5
  x = np.array(inputs(7, d))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  net = nl.MLP((100,), W_std=(math.sqrt(d), 1.0), b_std=None, trainable="hidden")
  g = np.clip(x @ x.T, -1, 1)
  H = g * (math.pi - np.arccos(g)) / (2 * math.pi)
  K = np.asarray(nl.analytic_kernel(net, x).ntk)
  off = ~np.eye(7, dtype=bool)
  assert rel_err(K[off], H[off]) <= 1e-12
  # On the diagonal cos θ = 1 up to rounding ε, and arccos turns ε into θ ≈ √(2ε) ≈ 2e-8.
  assert rel_err(np.diag(K), np.diag(H)) <= 1e-7


# Every closed form of the registry, with non-default parameters and affine wraps.
CLOSED_CASES = {
  "relu": nl.Activation("relu"),
  "leaky_relu": nl.Activation("leaky_relu", alpha=0.2),
  "abs": nl.Activation("abs"),
  "abrelu": nl.Activation("abrelu", params=(-0.4, 1.3)),
  "erf": nl.Activation("erf"),
  "gelu": nl.Activation("gelu"),
  "identity": nl.Activation("identity"),
  "sin_phase": nl.Activation("sin", params=(0.7,)),
  "cos": nl.Activation("cos", params=(-0.3,)),
  "sign": nl.Activation("sign"),
  "step": nl.Activation("step"),
  "rect0": nl.Activation("rectified_monomial", params=(0,)),
  "rect2": nl.Activation("rectified_monomial", params=(2,)),
  "rect3": nl.Activation("rectified_monomial", params=(3,)),
  "monomial3": nl.Activation("monomial", params=(3,)),
  "polynomial": nl.Activation("polynomial", params=(0.3, -1.0, 0.5, 0.2)),
  "rbf": nl.Activation("rbf", params=(0.7,)),
  "gaussian": nl.Activation("gaussian", params=(-0.6,)),
  "exp": nl.Activation("exp", inner=0.5),
  "affine_erf": nl.Activation("erf", scale=1.5, inner=0.7, shift=0.4),
  "affine_relu": nl.Activation("relu", scale=-2.0, inner=0.5, shift=-0.3),
  "affine_sign": nl.Activation("sign", scale=0.5, inner=3.0, shift=1.0),
  "affine_gelu": nl.Activation("gelu", scale=1.2, inner=2.0, shift=0.1),
  "affine_rect2": nl.Activation("rectified_monomial", params=(2,), scale=0.8, shift=-0.5),
}


def test_every_registered_name_has_a_case_here():
  closed = {name for name, rule in nl.activations.REGISTRY.items() if rule.kernel is not None}
  covered = {a.name for a in CLOSED_CASES.values()}
  assert closed <= covered, closed - covered


@pytest.mark.parametrize("case", CLOSED_CASES)
def test_closed_forms_against_error_controlled_quadrature(case):
  """Each closed form (Σ and Σ̇) against the quadrature of its own function, a callable with no
  name, whose node count is chosen for 1e-7: they must agree to that accuracy, relative to
  √(Σ(x, x)Σ(x', x')) (Cauchy–Schwarz's bound on an entry), at correlations from −1 to 1."""
  closed = CLOSED_CASES[case]
  custom = nl.Activation("custom", fn=closed)
  assert closed.has_closed_form and not custom.has_closed_form
  q = np.array([0.3, 1.7])
  k11, k22, c = (a.ravel() for a in np.meshgrid(q, q, [-1.0, -0.95, -0.3, 0.0, 0.4, 0.999, 1.0]))
  k12 = c * np.sqrt(k11 * k22)
  nodes = nl.analytic.choose_nodes(custom, q, 1e-7)
  exact = nl.analytic.gaussian_expectations(closed, k11, k22, k12)
  approx = nl.analytic.gaussian_expectations(custom, k11, k22, k12, nodes=nodes)
  d1, d2 = (nl.analytic.gaussian_expectations(closed, k, k, k) for k in (k11, k22))
  for i in range(2):
    scale = np.sqrt(np.abs(np.asarray(d1[i]) * np.asarray(d2[i]))) + 1e-300
    err = np.abs(np.asarray(approx[i]) - np.asarray(exact[i])) / scale
    assert err.max() <= 1e-7, (case, ["Σ", "Σ̇"][i], err.max())


def _net(act, W_std, depth=2, b_std=0.1):
  return nl.MLP((16,) * depth, activation=act, W_std=W_std, b_std=b_std)


@pytest.mark.parametrize(
  "name,fn,W_std",
  [
    ("erf", lambda z: jax.scipy.special.erf(z), 4.0),  # a lambda: no name, so quadrature
    ("relu", lambda z: jnp.maximum(z, 0.0), 1.0),
    ("sign", lambda z: jnp.sign(z), 1.0),
    ("abs", lambda z: jnp.abs(z), 3.0),
  ],
)
def test_callables_match_their_closed_forms_at_the_default_accuracy(name, fn, W_std):
  """Saturating (erf at W_std = 4), kinked (relu, abs) and jumping (sign) callables: the kernels of
  the whole network to 1e-7 of the named activation's closed form."""
  x = inputs(5, 3)
  k_q = nl.analytic_kernel(_net(nl.Activation("custom", fn=fn), W_std), x)
  k_c = nl.analytic_kernel(_net(name, W_std), x)
  for field in ("nngp", "ntk"):
    assert rel_err(getattr(k_q, field), getattr(k_c, field)) <= 1e-7, field


def test_tanh_at_large_variance_against_adaptive_integration():
  """tanh at W_std = 5 (variances up to ~36): one hidden layer's NNGP entries against scipy's
  adaptive (Gauss–Kronrod) integration of E[tanh(u) tanh(v)]."""
  from scipy import integrate

  x = inputs(3, 3, seed=0)
  k = nl.analytic_kernel(nl.MLP((16,), activation="tanh", W_std=5.0, b_std=0.1), x).nngp
  X = np.asarray(x)
  C = 25 * X @ X.T / 3 + 0.01
  for i, j in ((0, 0), (0, 1), (1, 2)):
    if i == j:
      s = math.sqrt(C[i, i])
      e = integrate.quad(
        lambda z: np.tanh(s * z) ** 2 * np.exp(-z * z / 2),
        -12,
        12,
        points=[0],
        epsabs=1e-13,
        epsrel=1e-12,
        limit=500,
      )[0] / math.sqrt(2 * math.pi)
    else:
      L = np.linalg.cholesky(C[np.ix_([i, j], [i, j])])
      e = integrate.dblquad(
        lambda z2, z1: (
          np.tanh(L[0, 0] * z1) * np.tanh(L[1, 0] * z1 + L[1, 1] * z2) * np.exp(-(z1 * z1 + z2 * z2) / 2)
        ),
        -10,
        10,
        -10,
        10,
        epsabs=1e-12,
        epsrel=1e-11,
      )[0] / (2 * math.pi)
    assert abs(float(k[i, j]) - (25 * e + 0.01)) <= 1e-8 * math.sqrt(float(k[i, i] * k[j, j]))


def test_unreachable_accuracy_raises_with_the_estimate_and_a_forced_count_warns():
  """A jump away from 0 (where no rule is split) converges slowly: at the default accuracy the
  call refuses, naming the estimated error and the remedies; a looser quadrature_rtol is met."""
  act = nl.Activation("custom", fn=lambda z: jnp.sign(z - 0.3))
  net, x = _net(act, 2.0, depth=1), inputs(4, 3)
  with pytest.raises(ValueError, match=r"(?s)quadrature_rtol=1e-07.*estimated error.*closed form"):
    nl.analytic_kernel(net, x)
  nl.analytic_kernel(net, x, quadrature_rtol=0.1)
  with pytest.warns(UserWarning, match=r"quadrature_nodes=4: estimated relative error"):
    nl.analytic_kernel(_net("tanh", 3.0, depth=1), x, quadrature_nodes=4)


def test_traced_quadrature_checks_its_fixed_rule_at_run_time():
  """Under jit the variances are not known before running, so the node count is fixed (32 or the
  one given) and the estimate runs inside the program: tanh at W_std = 5 misses 1e-7 with 32
  nodes and the run raises; 128 nodes meet it and match the eager kernel; W_std = 1 passes."""
  x = inputs(5, 3)
  net = _net("tanh", 5.0, depth=1)
  with pytest.raises(jax.errors.JaxRuntimeError, match=r"32-node quadrature rule.*quadrature_nodes="):
    jax.block_until_ready(jax.jit(lambda x: net.kernel(x).ntk)(x))
  forced = jax.jit(lambda x: net.kernel(x, quadrature_nodes=128).ntk)(x)
  assert rel_err(forced, net.kernel(x).ntk) <= 1e-7
  mild = _net("tanh", 1.0, depth=1)
  assert rel_err(jax.jit(lambda x: mild.kernel(x).ntk)(x), mild.kernel(x).ntk) <= 1e-7
  # grad w.r.t. W_std traces the scale: the same run-time estimate, met at W_std = 1.
  g = jax.grad(lambda s: nl.analytic_kernel(mild, x, W_std=s).ntk.sum())(1.0)
  assert np.isfinite(float(g))


@pytest.mark.parametrize(
  "name,fn",
  [
    ("identity", lambda z: z),
    ("erf", jax.scipy.special.erf),
    pytest.param("sin", jnp.sin, marks=pytest.mark.slow),
  ],
)
def test_input_gradients_at_a_zero_norm_input_match_the_closed_form(name, fn):
  """At x = 0 the pre-activation variance is 0, where the rule's correlation is pinned; the
  k12-derivative comes from Price's theorem instead (E[ρ'(u)ρ'(v)]), as the closed forms have it."""
  xp = jnp.array([[0.6, -0.3, 0.9]])
  for depth in (1, 2):
    grads = []
    for act in (nl.Activation(name), nl.Activation("custom", fn=fn)):
      net = nl.MLP((8,) * depth, activation=act, W_std=1.2, b_std=None)
      grads.append(
        [
          jax.grad(lambda x: getattr(nl.analytic_kernel(net, x[None], xp), f)[0, 0])(jnp.zeros(3))
          for f in ("nngp", "ntk")
        ]
      )
    for closed, quad in zip(*grads):
      assert float(jnp.abs(closed).max()) > 0.1
      assert rel_err(quad, closed) <= 1e-9, (depth, closed, quad)


def test_output_that_cannot_fit_is_refused_before_compiling():
  """N = 300,000: the kernels alone are 1.4 TB in float64; the call must refuse at once, naming N,
  the bytes and the remedies (and the same for the empirical NTK)."""
  import time

  x = jnp.zeros((300_000, 2))
  net = nl.MLP((8,), b_std=0.1)
  t0 = time.perf_counter()
  with pytest.raises(ValueError, match=r"(?s)N1 = 300,000 × N2 = 300,000.*GB.*x2=x\[i:j\].*float32"):
    nl.analytic_kernel(net, x)
  with pytest.raises(ValueError, match=r"(?s)N1 = 300,000 × N2 = 300,000.*GB.*float32"):
    nl.empirical_ntk(net, net.init(jax.random.PRNGKey(0), 2), x)
  assert time.perf_counter() - t0 < 60  # nothing of N² size was compiled or allocated
  with pytest.raises(ValueError, match="needs 1.4 GB"):
    nl._tiling.check_fits("k", 10_000, 10_000, out_bytes=1_400_000_000, temp_bytes=0, available=10**9)
  nl._tiling.check_fits("k", 10, 10, out_bytes=800, temp_bytes=0, available=10**9)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(name="relu", params=(1.0,)), r"params: relu takes 0 number"),
    (dict(name="abrelu", params=(1.0,)), r"params: abrelu takes 2 number\(s\) \(a, b\)"),
    (dict(name="rectified_monomial", params=(4,)), r"degree 0 … 3"),
    (dict(name="monomial", params=(1.5,)), r"integer degree"),
    (dict(name="erf", scale=float("nan")), r"scale: must be a finite number"),
    (dict(name="tahn"), r"unknown name 'tahn'.*did you mean 'tanh'"),
  ],
)
def test_activation_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    nl.Activation(**kwargs)


def test_registry_names_resolve_and_user_rules_are_used():
  for name in nl.activations.ACTIVATIONS:
    act = nl.Activation(name)
    assert np.isfinite(np.asarray(act(jnp.linspace(-1.0, 1.0, 5)))).all(), name
  calls = []

  def kernel(p, k11, k22, k12, derivative):  # ρ(z) = 2z, in closed form
    calls.append(1)
    return 4 * k12, (4 * jnp.ones_like(k12) if derivative else None)

  nl.activations.register_activation("_double", lambda z, p: 2 * z, kernel=kernel)
  try:
    net, x = nl.MLP((4,), activation="_double", b_std=None), inputs(3, 2)
    ref = nl.MLP((4,), activation=nl.Activation("identity", scale=2.0), b_std=None)
    assert rel_err(net.kernel(x).ntk, ref.kernel(x).ntk) <= 1e-14 and calls
  finally:
    del nl.activations.REGISTRY["_double"]


@pytest.mark.slow  # a wide network's NTK (~10 s); the routes and the limit are checked cheaply elsewhere
def test_empirical_ntk_of_wide_network_approaches_the_limit():
  x = inputs(6, 3)
  errs = []
  for width in (64, 4096):
    net = nl.MLP((width, width), activation="erf", b_std=0.2)
    limit = nl.analytic_kernel(net, x).ntk
    emp = jnp.mean(
      jnp.stack([nl.empirical_ntk(net, net.init(jax.random.PRNGKey(s), 3), x) for s in range(4)]), axis=0
    )
    errs.append(rel_err(emp, limit))
  assert errs[1] < 0.05 and errs[1] < errs[0] / 3


def test_kernel_gradients_wrt_inputs_are_finite_including_zero_inputs():
  x = inputs(4, 3).at[0].set(0.0)
  for act, b_std in (("relu", None), ("relu", 0.1), ("erf", None), ("tanh", 0.1)):
    net = nl.MLP((8, 8), activation=act, b_std=b_std)
    for field in ("nngp", "ntk"):
      g = jax.grad(lambda x: jnp.sum(getattr(net.kernel(x), field)))(x)
      assert np.isfinite(np.asarray(g)).all(), (act, b_std, field)


def test_method_and_function_agree_and_get_selects():
  net = nl.MLP((8,), activation="erf", b_std=0.3)
  x1, x2 = inputs(4, 3), inputs(2, 3, seed=7)
  k = net.kernel(x1, x2, get="ntk")
  assert k.nngp is None and k.ntk.shape == (4, 2)
  assert rel_err(k.ntk, nl.analytic_kernel(net, x1, x2).ntk) == 0
  K = nl.analytic_kernel(net, x1)
  assert rel_err(K.ntk, K.ntk.T) == 0
  assert np.linalg.eigvalsh(np.asarray(K.ntk)).min() > -1e-12


def test_readout_initialisation_and_frozen_layers():
  x = inputs(5, 3)
  base = nl.MLP((10, 10), activation="erf", b_std=0.2)
  sym = nl.MLP((10, 10), activation="erf", b_std=0.2, readout_init="symmetric")
  k, ks = base.kernel(x), sym.kernel(x)
  assert rel_err(ks.ntk, k.ntk) <= 1e-15  # E[c²] = 1 either way (to rounding: other programs)
  assert float(jnp.abs(ks.nngp).max()) == 0  # f(x; θ₀) ≡ 0 has no prior variance
  # Frozen layers drop their own terms: the per-layer terms of the all-trainable kernel add up.
  only_readout = nl.MLP((10, 10), activation="erf", b_std=0.2, trainable="readout").kernel(x).ntk
  assert rel_err(only_readout, k.nngp) <= 1e-15  # Θ_readout = Σ_{L+1}, the NNGP
  hidden = nl.MLP((10, 10), activation="erf", b_std=0.2, trainable="hidden").kernel(x).ntk
  assert rel_err(hidden + only_readout, k.ntk) <= 1e-13


ACTS = ["relu", "leaky_relu", "abs", "erf", "sin", "gelu", "identity", "tanh"]  # tanh: the quadrature path


# op by op, the quadrature path (tanh) runs every node of its node choice and rule: the slow suite
@pytest.mark.parametrize("act", [pytest.param(a, marks=pytest.mark.slow) if a == "tanh" else a for a in ACTS])
def test_compiled_matches_eager_and_is_symmetric(act):
  """The jitted kernel equals the op-by-op one (a guard against miscompiled fusions), x2 = None
  is exactly symmetric, and x2 = x1 passed explicitly agrees to rounding (1e-7: arccos near
  cos θ = 1 turns a rounding ε of xᵀx' into θ ~ √ε, which x2 = None avoids on the diagonal)."""
  net = nl.MLP((8, 8, 8), activation=act, b_std=0.2)
  x = inputs(9, 4)
  K = net.kernel(x)
  with jax.disable_jit():
    E = net.kernel(x)
  for name in ("nngp", "ntk"):
    a, e = np.asarray(getattr(K, name)), np.asarray(getattr(E, name))
    assert rel_err(a, e) <= 1e-13, name
    assert np.abs(a - a.T).max() <= 1e-14 * np.abs(a).max(), name
    assert rel_err(getattr(net.kernel(x, x), name), a) <= 1e-7, name


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("tile_size", [1, 7, 16])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_blocked_evaluation_matches_whole(act, tile_size, symmetric):
  net = nl.MLP((8, 8), activation=act, b_std=0.1)
  x1 = inputs(13, 3)
  x2 = None if symmetric else inputs(9, 3, seed=5)
  whole = net.kernel(x1, x2)
  for get in (("nngp", "ntk"), ("ntk",)):
    blocked = net.kernel(x1, x2, get=get, tile_size=tile_size)
    assert blocked.ntk.shape == whole.ntk.shape
    assert rel_err(blocked.ntk, whole.ntk) <= 1e-14
  assert rel_err(net.kernel(x1, x2, tile_size=tile_size).nngp, whole.nngp) <= 1e-14
  tight = net.kernel(x1, x2, memory_budget=8 * 8 * 8 * 16 * 8)  # forces tiles of side ≤ 8
  assert rel_err(tight.ntk, whole.ntk) <= 1e-14


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_gradients_wrt_W_std_and_b_std_match_finite_differences(act, parametrization):
  """jax.grad of the kernels w.r.t. σ_w (per layer) and σ_b, against central differences."""
  net = nl.MLP((6, 6), activation=act, b_std=0.3, parametrization=parametrization)
  x = inputs(5, 3)
  w0, b0 = jnp.array([1.2, 0.9, 1.4]), jnp.asarray(0.3)

  def loss(w, b):
    k = nl.analytic_kernel(net, x, W_std=w, b_std=b)
    return jnp.sum(k.ntk**2) + jnp.sum(jnp.sin(k.nngp))

  gw, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(w0, b0)
  assert np.isfinite(np.asarray(gw)).all() and np.isfinite(float(gb))
  h = 1e-6
  fd_w = [(loss(w0.at[i].add(h), b0) - loss(w0.at[i].add(-h), b0)) / (2 * h) for i in range(3)]
  fd_b = (loss(w0, b0 + h) - loss(w0, b0 - h)) / (2 * h)
  assert rel_err(gw, jnp.array(fd_w)) <= 1e-7
  assert abs(float(gb - fd_b)) <= 1e-7 * abs(float(fd_b))
  # Overriding with the spec's own values changes nothing; a scalar W_std means every layer.
  same = nl.analytic_kernel(net, x, W_std=1.0, b_std=0.3)
  assert rel_err(same.ntk, net.kernel(x).ntk) == 0
  # b_std = 0 is a smooth point too: the gradient there is finite.
  assert np.isfinite(float(jax.grad(lambda b: loss(w0, b))(0.0)))


def test_vmap_over_hyperparameters_and_jit_over_inputs():
  net = nl.MLP((8,), activation="erf", b_std=0.1)
  x = inputs(4, 3)
  stds = jnp.array([0.5, 1.0, 2.0])
  batched = jax.vmap(lambda s: nl.analytic_kernel(net, x, W_std=s).ntk)(stds)
  for i, s in enumerate(stds):
    assert rel_err(batched[i], nl.analytic_kernel(net, x, W_std=float(s)).ntk) <= 1e-14
  jitted = jax.jit(lambda x: net.kernel(x).nngp)(x)
  assert rel_err(jitted, net.kernel(x).nngp) <= 1e-14


@pytest.mark.slow  # a fresh interpreter with 4 host devices; CI runs it with `make test-slow`
def test_sharded_over_four_cpu_devices_matches_one_device():
  """`devices=` splits rows of x1 over devices with jax.shard_map; run in a subprocess so XLA can
  be told to expose 4 host devices before it starts."""
  import os
  import subprocess
  import sys

  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  script = pathlib.Path(__file__).parent / "scripts" / "sharded_kernel.py"
  root = pathlib.Path(__file__).parent.parent
  run = subprocess.run(
    [sys.executable, str(script)], env=env, cwd=root, capture_output=True, text=True, timeout=600
  )
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.strip() == "ok 24"


@pytest.mark.parametrize(
  "kwargs,exc,match",
  [
    (dict(W_std=[1.0, 2.0, 3.0]), ValueError, r"W_std: expected a scalar or 2 values"),
    (dict(b_std=0.1, model=nl.MLP((4,), b_std=None)), ValueError, r"b_std: the model has no bias"),
    (dict(devices=["cpu"]), TypeError, r"devices: expected a non-empty sequence of jax.Device"),
    (dict(get=()), ValueError, r"get: asks for nothing"),
    (dict(get="ntgk"), ValueError, r"get"),
    (dict(tile_size=0), ValueError, r"tile_size"),
    (dict(memory_budget=-1), ValueError, r"memory_budget"),
    (dict(quadrature_nodes=0), ValueError, r"quadrature_nodes"),
    (dict(model=lambda p, x: x), TypeError, r"model: expected a network of ntk_lab layers"),
  ],
)
def test_argument_errors(kwargs, exc, match):
  model = kwargs.pop("model", nl.MLP((4,), b_std=0.1))
  x = inputs(3, 2)
  with pytest.raises(exc, match=match):
    nl.analytic_kernel(model, x, **kwargs)
  if isinstance(model, nl.MLP):
    with pytest.raises(exc, match=match):  # the same check under jit
      jax.jit(lambda x: nl.analytic_kernel(model, x, **kwargs).ntk)(x)


def test_quadrature_node_limit():
  with pytest.raises(ValueError, match="quadrature_nodes: at most 512"):
    nl.analytic_kernel(nl.MLP((4,), activation="tanh"), inputs(2, 2), quadrature_nodes=600)
  with pytest.raises(ValueError, match=r"quadrature_rtol: must be a number in \(0, 1\)"):
    nl.analytic_kernel(nl.MLP((4,), activation="tanh"), inputs(2, 2), quadrature_rtol=0.0)
