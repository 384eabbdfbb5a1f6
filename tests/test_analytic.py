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
QUADRATURE = {"gelu", "tanh", "sigmoid", "softplus"}


def golden_case(i):
  spec = json.loads(str(GOLDEN[f"case{i}_spec"]))
  act = spec["activation"]
  activation = nl.Activation(act, alpha=spec["alpha"]) if act == "leaky_relu" else act
  net = nl.MLP(tuple(spec["hidden"]), activation=activation, parametrization=spec["parametrization"],
               W_std=spec["W_std"], b_std=spec["b_std"])
  return spec, net, jnp.asarray(GOLDEN[f"case{i}_x1"]), jnp.asarray(GOLDEN[f"case{i}_x2"])


@pytest.mark.parametrize("case", range(int(GOLDEN["n_cases"])))
def test_matches_neural_tangents_kernel_fn(case):
  """Closed forms to 1e-10; quadrature (ours and NT's ElementwiseNumerical, both at 300 nodes, or
  NT's closed-form GELU against our 64-node default) to 1e-7. x1[0] = 0 is a zero-norm input: NT's
  numerical kernels give NaN there, ours the finite limit, so NT's non-finite entries are skipped."""
  spec, net, x1, x2 = golden_case(case)
  act = spec["activation"]
  nodes = 300 if act in QUADRATURE - {"gelu"} else 64
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


@pytest.mark.parametrize("name", ["relu", "erf", "sin", "abs"])
def test_quadrature_matches_closed_forms(name):
  """Gauss–Hermite quadrature (a custom callable) against each closed form, error shrinking with nodes."""
  closed = nl.Activation(name)
  custom = nl.Activation("custom", fn=closed)
  k11, k22 = jnp.array([0.5, 2.0, 1.0]), jnp.array([1.5, 0.7, 1.0])
  k12 = jnp.array([0.3, -0.9, 0.999]) * jnp.sqrt(k11 * k22)
  exact = nl.gaussian_expectations(closed, k11, k22, k12)
  smooth = name in ("erf", "sin")
  errs = []
  for nodes in (16, 64, 256):
    approx = nl.gaussian_expectations(custom, k11, k22, k12, nodes=nodes)
    errs.append(rel_err(approx[0], exact[0]))
  assert errs[-1] <= (1e-12 if smooth else 2e-3) and errs[-1] <= errs[0]


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
