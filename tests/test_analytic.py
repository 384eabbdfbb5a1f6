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
  net = nl.MLP(tuple(spec["hidden"]), activation=activation, parametrization=spec["parametrization"],
               W_std=spec["W_std"], b_std=spec["b_std"])
  return spec, net, jnp.asarray(GOLDEN[f"case{i}_x1"]), jnp.asarray(GOLDEN[f"case{i}_x2"])


@pytest.mark.parametrize("case", range(int(GOLDEN["n_cases"])))
def test_matches_neural_tangents_kernel_fn(case):
  """Closed forms (GELU included) to 1e-10; quadrature (ours and NT's ElementwiseNumerical, both at
  300 nodes) to 1e-7. x1[0] = 0 is a zero-norm input: NT's numerical kernels give NaN there, ours
  the finite limit, so NT's non-finite entries are skipped."""
  spec, net, x1, x2 = golden_case(case)
  act = spec["activation"]
  nodes = 300 if act in QUADRATURE else 64
  k = nl.analytic_kernel(net, x1, x2, quadrature_nodes=nodes)
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


@pytest.mark.parametrize("name", ["relu", "erf", "sin", "abs", "gelu", "leaky_relu"])
def test_quadrature_matches_closed_forms(name):
  """Gauss–Hermite quadrature (a custom callable) against each closed form, for Σ and Σ̇, the
  error shrinking with the number of nodes (smooth ρ: spectrally; kinked ρ: slowly)."""
  closed = nl.Activation(name)
  custom = nl.Activation("custom", fn=closed)
  k11, k22 = jnp.array([0.5, 2.0, 1.0]), jnp.array([1.5, 0.7, 1.0])
  k12 = jnp.array([0.3, -0.9, 0.999]) * jnp.sqrt(k11 * k22)
  exact = nl.gaussian_expectations(closed, k11, k22, k12)
  smooth = name in ("erf", "sin", "gelu")
  errs, derr = [], []
  for nodes in (16, 64, 256):
    approx = nl.gaussian_expectations(custom, k11, k22, k12, nodes=nodes)
    errs.append(rel_err(approx[0], exact[0]))
    derr.append(rel_err(approx[1], exact[1]))
  assert errs[-1] <= (1e-12 if smooth else 2e-3) and errs[-1] <= errs[0]
  # Σ̇ of a kinked ρ integrates a step function: first-order accurate in the node spacing.
  assert derr[-1] <= (1e-11 if smooth else 3e-2) and derr[-1] <= derr[0]


def test_empirical_ntk_of_wide_network_approaches_the_limit():
  x = inputs(6, 3)
  errs = []
  for width in (64, 4096):
    net = nl.MLP((width, width), activation="erf", b_std=0.2)
    limit = nl.analytic_kernel(net, x).ntk
    emp = jnp.mean(jnp.stack([nl.empirical_ntk(net, net.init(jax.random.PRNGKey(s), 3), x)
                              for s in range(4)]), axis=0)
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
  assert rel_err(ks.ntk, k.ntk) == 0  # E[c²] = 1 either way
  assert float(jnp.abs(ks.nngp).max()) == 0  # f(x; θ₀) ≡ 0 has no prior variance
  # Frozen layers drop their own terms: the per-layer terms of the all-trainable kernel add up.
  only_readout = nl.MLP((10, 10), activation="erf", b_std=0.2, trainable="readout").kernel(x).ntk
  assert rel_err(only_readout, k.nngp) <= 1e-15  # Θ_readout = Σ_{L+1}, the NNGP
  hidden = nl.MLP((10, 10), activation="erf", b_std=0.2, trainable="hidden").kernel(x).ntk
  assert rel_err(hidden + only_readout, k.ntk) <= 1e-13


ACTS = ["relu", "leaky_relu", "abs", "erf", "sin", "gelu", "identity", "tanh"]  # tanh: the quadrature path


@pytest.mark.parametrize("act", ACTS)
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
@pytest.mark.parametrize("batch_size", [1, 7, 16])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_blocked_evaluation_matches_whole(act, batch_size, symmetric):
  net = nl.MLP((8, 8), activation=act, b_std=0.1)
  x1 = inputs(13, 3)
  x2 = None if symmetric else inputs(9, 3, seed=5)
  whole = net.kernel(x1, x2)
  for get in (("nngp", "ntk"), ("ntk",)):
    blocked = net.kernel(x1, x2, get=get, batch_size=batch_size)
    assert blocked.ntk.shape == whole.ntk.shape
    assert rel_err(blocked.ntk, whole.ntk) <= 1e-14
  assert rel_err(net.kernel(x1, x2, batch_size=batch_size).nngp, whole.nngp) <= 1e-14
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
    return jnp.sum(k.ntk ** 2) + jnp.sum(jnp.sin(k.nngp))

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
  run = subprocess.run([sys.executable, str(script)], env=env, cwd=root, capture_output=True,
                       text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.strip() == "ok 24"


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(W_std=[1.0, 2.0, 3.0]), ValueError, r"W_std: expected a scalar or 2 values"),
    (dict(b_std=0.1, model=nl.MLP((4,), b_std=None)), ValueError, r"b_std: the model has no bias"),
    (dict(devices=["cpu"]), TypeError, r"devices: expected a non-empty sequence of jax.Device"),
    (dict(get=()), ValueError, r"get: asks for nothing"),
    (dict(get="ntgk"), ValueError, r"get"),
    (dict(batch_size=0), ValueError, r"batch_size"),
    (dict(memory_budget=-1), ValueError, r"memory_budget"),
    (dict(quadrature_nodes=0), ValueError, r"quadrature_nodes"),
    (dict(model=lambda p, x: x), TypeError, r"model: expected an ntk_lab.MLP"),
])
def test_argument_errors(kwargs, exc, match):
  model = kwargs.pop("model", nl.MLP((4,), b_std=0.1))
  x = inputs(3, 2)
  with pytest.raises(exc, match=match):
    nl.analytic_kernel(model, x, **kwargs)
  if isinstance(model, nl.MLP):
    with pytest.raises(exc, match=match):  # the same check under jit
      jax.jit(lambda x: nl.analytic_kernel(model, x, **kwargs).ntk)(x)


def test_quadrature_error_grows_with_variance_and_falls_with_nodes():
  """The documented behaviour, against erf's closed form (erf saturates like tanh): Σ̇ needs more
  nodes as the pre-activation variance q grows, since ρ' narrows to width ~1/√q."""
  closed = nl.Activation("erf")
  custom = nl.Activation("custom", fn=jax.scipy.special.erf)
  errs = {}
  for q in (1.0, 4.0, 25.0):
    k = jnp.array([q])
    exact = nl.gaussian_expectations(closed, k, k, 0.5 * k)[1]
    errs[q] = [rel_err(nl.gaussian_expectations(custom, k, k, 0.5 * k, nodes=n)[1], exact)
               for n in (64, 128, 256)]
    assert errs[q][2] < errs[q][1] < errs[q][0], (q, errs[q])
  assert errs[1.0][0] < 1e-7 and errs[4.0][0] > errs[1.0][0] and errs[25.0][0] > errs[4.0][0]
  with pytest.raises(ValueError, match="quadrature_nodes: at most 370"):
    nl.analytic_kernel(nl.MLP((4,), activation="tanh"), inputs(2, 2), quadrature_nodes=400)
