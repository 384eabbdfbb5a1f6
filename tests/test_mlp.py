"""The functional MLP: NT's stax.Dense conventions, readout initialisations, centring, trainability."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import inputs, rel_err


def reference_forward(params, x, act, W_std, b_std, parametrization):
  """NT's stax.Dense written out: ntk: W_std/√n · xW + b_std·b; standard: xW + b."""
  h = np.asarray(x)
  for l, p in enumerate(params):
    W = np.asarray(p["W"])
    if parametrization == "ntk":
      z = W_std / math.sqrt(W.shape[0]) * h @ W + (b_std * np.asarray(p["b"]) if "b" in p else 0)
    else:
      z = h @ W + (np.asarray(p["b"]) if "b" in p else 0)
    h = z if l == len(params) - 1 else np.asarray(act(z))
  return h


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [None, 0.0, 0.7])
def test_apply_matches_stax_dense_conventions(parametrization, b_std):
  net = nl.MLP((16, 8), out_dim=3, activation="erf", parametrization=parametrization, W_std=1.7, b_std=b_std)
  params = net.init(jax.random.PRNGKey(0), 5)
  x = inputs(4, 5)
  expected = reference_forward(params, x, net.activation, 1.7, b_std, parametrization)
  assert rel_err(net.apply(params, x), expected) <= 1e-13
  assert [sorted(p) for p in params] == [["W"] if b_std is None else ["W", "b"]] * 3
  assert [p["W"].shape for p in params] == [(5, 16), (16, 8), (8, 3)]


def test_init_statistics_follow_the_parametrization():
  # ntk: W ~ N(0, 1); standard: W ~ N(0, W_std²/n_in), b ~ N(0, b_std²).
  key = jax.random.PRNGKey(1)
  ntk = nl.MLP((2000,), W_std=2.0, b_std=0.5).init(key, 500)
  std = nl.MLP((2000,), W_std=2.0, b_std=0.5, parametrization="standard").init(key, 500)
  assert abs(float(jnp.std(ntk[0]["W"])) - 1.0) < 0.01
  assert abs(float(jnp.std(std[0]["W"])) - 2.0 / math.sqrt(500)) < 0.01 * 2 / math.sqrt(500)
  assert abs(float(jnp.std(std[0]["b"])) - 0.5) < 0.05
  # Same key, same draws: the two parametrizations compute the same function at init.
  x = inputs(3, 500)
  a = nl.MLP((2000,), W_std=2.0, b_std=0.5).apply(ntk, x)
  b = nl.MLP((2000,), W_std=2.0, b_std=0.5, parametrization="standard").apply(std, x)
  assert rel_err(a, b) <= 1e-12


def test_readout_initialisations():
  x = inputs(5, 3)
  rad = nl.MLP((10,), readout_init="rademacher").init(jax.random.PRNGKey(0), 3)
  assert set(np.unique(np.asarray(rad[-1]["W"]))) == {-1.0, 1.0}
  net = nl.MLP((12, 10), out_dim=2, b_std=0.3, readout_init="symmetric")
  sym = net.init(jax.random.PRNGKey(0), 3)
  out = net.apply(sym, x)
  # f(x; θ₀) = 0: exactly in exact arithmetic; here up to rounding of the paired sums.
  scale = float(
    jnp.abs(net.apply(nl.MLP((12, 10), out_dim=2, b_std=0.3).init(jax.random.PRNGKey(0), 3), x)).max()
  )
  assert float(jnp.abs(out).max()) <= 1e-13 * max(scale, 1.0)
  W = np.asarray(sym[-1]["W"])
  np.testing.assert_array_equal(W[:5], -W[5:])
  assert set(np.unique(W)) == {-1.0, 1.0}


def test_centered_model_is_zero_at_init_and_shifts_by_f0():
  net = nl.MLP((20,), activation="tanh", b_std=0.1)
  p0 = net.init(jax.random.PRNGKey(0), 3)
  p1 = net.init(jax.random.PRNGKey(1), 3)
  model = nl.centered(net, p0)
  x = inputs(4, 3)
  assert float(jnp.abs(model.apply(p0, x)).max()) == 0.0
  assert rel_err(model.apply(p1, x), net.apply(p1, x) - net.apply(p0, x)) <= 1e-15
  # A pytree: it passes through jit as an argument.
  assert rel_err(jax.jit(lambda m, p: m.apply(p, x))(model, p1), model.apply(p1, x)) <= 1e-15


def test_trainable_split_and_merge():
  net = nl.MLP((4, 4), trainable="hidden")
  params = net.init(jax.random.PRNGKey(0), 2)
  trainable, frozen = net.split(params)
  # each a tree shaped like params, None on the leaves that belong to the other
  assert jax.tree.leaves(trainable[-1]) == [] and jax.tree.leaves(frozen[0]) == []
  assert frozen[-1]["W"] is params[-1]["W"] and trainable[0]["W"] is params[0]["W"]
  assert net.merge(trainable, frozen) == params
  assert nl.MLP((4,), trainable=(False, True)).trainable == (False, True)
  assert nl.MLP((4,), trainable="readout").trainable == (False, True)


def test_spec_is_hashable_static_and_vmappable():
  net = nl.MLP([8, 8], activation=nl.Activation("leaky_relu", alpha=0.1))
  assert net == nl.MLP((8, 8), activation=nl.Activation("leaky_relu", alpha=0.1))
  assert hash(net) == hash(nl.MLP((8, 8), activation=nl.Activation("leaky_relu", alpha=0.1)))
  x = inputs(3, 2)
  params = net.init(jax.random.PRNGKey(0), 2)
  f = jax.jit(lambda m, p: m.apply(p, x), static_argnums=0)
  assert rel_err(f(net, params), net.apply(params, x)) == 0
  ens = jax.vmap(lambda k: net.init(k, 2))(jax.random.split(jax.random.PRNGKey(0), 3))
  assert jax.vmap(net.apply, in_axes=(0, None))(ens, x).shape == (3, 3, 1)
  per_point = jax.vmap(lambda xi: net.apply(params, xi[None])[0])(x)
  assert rel_err(per_point, net.apply(params, x)) <= 1e-15


@pytest.mark.parametrize("name", nl.activations.ACTIVATIONS)
def test_activation_functions(name):
  z = jnp.linspace(-3, 3, 13)
  ref = {
    "relu": np.maximum(z, 0),
    "leaky_relu": np.where(z >= 0, z, 0.01 * z),
    "abs": np.abs(z),
    "erf": np.asarray(jax.scipy.special.erf(z)),
    "tanh": np.tanh(z),
    "sigmoid": 1 / (1 + np.exp(-z)),
    "gelu": np.asarray(z) * 0.5 * (1 + np.asarray(jax.scipy.special.erf(z / math.sqrt(2)))),
    "softplus": np.log1p(np.exp(z)),
    "sin": np.sin(z),
    "identity": np.asarray(z),
    # the registry's further names at their default parameters
    "abrelu": np.maximum(z, 0),
    "cos": np.cos(z),
    "sign": np.sign(z),
    "step": (z >= 0) * 1.0,
    "rectified_monomial": np.maximum(z, 0),
    "monomial": np.asarray(z) ** 2,
    "polynomial": np.asarray(z),
    "rbf": math.sqrt(2) * np.sin(math.sqrt(2) * z + math.pi / 4),
    "gaussian": np.exp(-(np.asarray(z) ** 2)),
    "exp": np.exp(z),
  }[name]
  np.testing.assert_allclose(nl.Activation(name)(z), ref, rtol=1e-12, atol=1e-14)


def test_activation_can_be_built_under_jit():
  """An Activation (its checks included) may be constructed while tracing."""
  import jax

  import ntk_lab as nl

  out = jax.jit(lambda z: nl.Activation("leaky_relu", alpha=0.2)(z) + nl.Activation("erf")(z))(-1.0)
  assert abs(float(out) - (-0.2 + float(jax.scipy.special.erf(-1.0)))) < 1e-6


# ------------------------------------------------------------------- per-layer values
MIXED = [  # (hidden, activation, parametrization, W_std, b_std)
  ((9, 7), ("relu", "identity"), ("standard", "ntk", "standard"), (1.3, 0.8, 1.1), (0.2, None, 0.5)),
  (
    (8, 6, 5),
    ("erf", "gelu", "identity"),
    ("ntk", "standard", "standard", "ntk"),
    (1.0, 0.0, 1.4, 0.9),
    (None, 0.7, 0.0, 0.3),
  ),
  ((10,), ("leaky_relu",), ("standard", "ntk"), (0.0, 1.2), (0.6, None)),
]


def per_layer_reference(params, x, hidden, acts, params_kind, W_std, b_std):
  """NT's stax.serial(Dense, ρ, Dense, …) written out layer by layer, with ρ = identity as no layer."""
  h = np.asarray(x)
  for l, p in enumerate(params):
    W = np.asarray(p["W"])
    if params_kind[l] == "ntk":
      z = W_std[l] / math.sqrt(W.shape[0]) * h @ W + (
        b_std[l] * np.asarray(p["b"]) if b_std[l] is not None else 0
      )
    else:
      z = h @ W + (np.asarray(p["b"]) if b_std[l] is not None else 0)
    h = z if l == len(params) - 1 else np.asarray(nl.Activation(acts[l])(z))
  return h


@pytest.mark.parametrize("case", range(len(MIXED)))
def test_per_layer_spec_init_and_apply(case):
  hidden, acts, kinds, W_std, b_std = MIXED[case]
  net = nl.MLP(hidden, out_dim=2, activation=acts, parametrization=kinds, W_std=W_std, b_std=b_std)
  params = net.init(jax.random.PRNGKey(case), 4)
  assert [sorted(p) for p in params] == [["W"] if b is None else ["W", "b"] for b in b_std]
  for l, p in enumerate(params):  # standard layers carry their scale in W and b; σ_w = 0 makes W = 0
    if kinds[l] == "standard" and W_std[l] == 0.0:
      assert float(jnp.abs(p["W"]).max()) == 0.0
  x = inputs(5, 4)
  assert (
    rel_err(net.apply(params, x), per_layer_reference(params, x, hidden, acts, kinds, W_std, b_std)) <= 1e-13
  )
  assert net.activation_of(len(hidden) - 1).name == acts[-1]
  assert net.parametrization_of(0) == kinds[0] and net.b_std_of(1) == b_std[1]


def test_uniform_per_layer_values_equal_the_scalar_spec():
  x = inputs(4, 3)
  scalar = nl.MLP((8, 6), out_dim=2, activation="erf", parametrization="standard", W_std=1.2, b_std=0.3)
  tuples = nl.MLP(
    (8, 6),
    out_dim=2,
    activation=("erf", "erf"),
    parametrization=("standard",) * 3,
    W_std=(1.2,) * 3,
    b_std=(0.3,) * 3,
  )
  p = scalar.init(jax.random.PRNGKey(0), 3)
  assert rel_err(tuples.apply(p, x), scalar.apply(p, x)) == 0
  for a, b in zip(
    jax.tree_util.tree_leaves(tuples.init(jax.random.PRNGKey(0), 3)), jax.tree_util.tree_leaves(p)
  ):
    assert rel_err(a, b) == 0
  ka, kb = tuples.kernel(x), scalar.kernel(x)
  assert rel_err(ka.ntk, kb.ntk) <= 1e-15 and rel_err(ka.nngp, kb.nngp) <= 1e-15
  assert rel_err(nl.empirical_ntk(tuples, p, x), nl.empirical_ntk(scalar, p, x)) <= 1e-15


def test_identity_activation_is_two_consecutive_affine_layers():
  """f with ρ₂ = identity equals the product of the two affine maps: Dense(Dense(ρ(Dense x)))."""
  net = nl.MLP(
    (7, 5),
    activation=("tanh", "identity"),
    parametrization=("ntk", "standard", "ntk"),
    W_std=(1.1, 0.9, 1.3),
    b_std=(0.2, 0.4, None),
  )
  p = net.init(jax.random.PRNGKey(2), 3)
  x = inputs(4, 3)
  h1 = jnp.tanh(1.1 / math.sqrt(3) * x @ p[0]["W"] + 0.2 * p[0]["b"])
  W, c = p[1]["W"] @ p[2]["W"] * (1.3 / math.sqrt(5)), p[1]["b"] @ p[2]["W"] * (1.3 / math.sqrt(5))
  assert rel_err(net.apply(p, x), h1 @ W + c) <= 1e-13


@pytest.mark.parametrize("case", range(len(MIXED)))
def test_per_layer_analytic_kernel_is_the_monte_carlo_mean(case):
  """With the only nonlinearity right after the first layer, E over θ₀ of f f' and of Θ_θ equals
  the analytic kernels at any width (each weight matrix enters twice and independently), so the
  Monte Carlo mean must lie within Z standard errors; the later layers carry per-layer values."""
  _, _, kinds, W_std, b_std = MIXED[case]
  L = len(kinds)
  net = nl.MLP(
    (24,) * (L - 1),
    out_dim=2,
    activation=("erf",) + ("identity",) * (L - 2),
    parametrization=kinds,
    W_std=W_std,
    b_std=b_std,
  )
  x1, x2 = inputs(4, 3), inputs(3, 3, seed=4)
  exact = net.kernel(x1, x2)
  mc = nl.monte_carlo_kernel(net, jax.random.PRNGKey(case), x1, x2, n_samples=300, samples_per_step=50)
  for name in ("nngp", "ntk"):
    mean, se, truth = (
      np.asarray(v) for v in (getattr(mc, name), getattr(mc, name + "_stderr"), getattr(exact, name))
    )
    assert (np.abs(mean - truth) <= 5.0 * se + 1e-12 * np.abs(truth).max()).all(), (
      name,
      np.max(np.abs(mean - truth) / np.maximum(se, 1e-300)),
    )


def test_w_std_zero_layers():
  """σ_w = 0: in NTK parametrization the weights still train but get no gradient (their NTK term is
  0) and the layer passes only its bias on; in standard parametrization W starts at 0."""
  x = inputs(4, 3)
  net = nl.MLP((6, 5), activation="erf", W_std=(1.0, 0.0, 1.0), b_std=0.5)
  p = net.init(jax.random.PRNGKey(0), 3)
  per = nl.empirical_ntk(net, p, x, per_layer=True, method="jacobian")
  # Layer 2's term is only its bias (c_b = σ_b² times ⟨Δ, Δ'⟩); the layer below gets no signal.
  assert float(jnp.abs(per[0]).max()) == 0.0
  z2 = 0.5 * p[1]["b"]  # every input gives the same second pre-activation
  out = net.apply(p, x)
  assert rel_err(out, jnp.broadcast_to(out[0], out.shape)) <= 1e-15
  assert rel_err(out[0], jax.scipy.special.erf(z2) @ p[2]["W"] / math.sqrt(5) + 0.5 * p[2]["b"]) <= 1e-14
  k = net.kernel(x)
  assert rel_err(k.nngp, jnp.full_like(k.nngp, k.nngp[0, 0])) <= 1e-14


@pytest.mark.parametrize("x2", [None, "paired"])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_analytic_diagonal_is_the_diagonal_of_the_full_kernel(x2, act):
  net = nl.MLP(
    (8, 8),
    activation=(act, "identity"),
    parametrization=("standard", "ntk", "ntk"),
    W_std=(1.2, 0.7, 1.5),
    b_std=(0.1, None, 0.3),
  )
  x = inputs(6, 3)
  other = None if x2 is None else inputs(6, 3, seed=9)
  full, diag = net.kernel(x, other), net.kernel(x, other, diagonal=True)
  for name in ("nngp", "ntk"):
    assert getattr(diag, name).shape == (6,)
    assert rel_err(getattr(diag, name), jnp.diagonal(getattr(full, name))) <= 1e-13
  assert net.kernel(x, diagonal=True, get="ntk").nngp is None
  jitted = jax.jit(lambda x: net.kernel(x, diagonal=True).ntk)(x)
  assert rel_err(jitted, diag.ntk if other is None else net.kernel(x, diagonal=True).ntk) <= 1e-14


def test_per_layer_spec_errors():
  with pytest.raises(ValueError, match=r"parametrization: needs one value per layer \(3\), got 2"):
    nl.MLP((4, 4), parametrization=("ntk", "standard"))
  with pytest.raises(ValueError, match=r"parametrization\[1\]: must be one of 'ntk', 'standard', got 'std'"):
    nl.MLP((4,), parametrization=("ntk", "std"))
  with pytest.raises(ValueError, match=r"activation: needs one value per hidden layer \(2\), got 3"):
    nl.MLP((4, 4), activation=("relu",) * 3)
  with pytest.raises(
    ValueError, match=r"b_std\[1\]: must be a finite number ≥ 0, or None for no bias, got -1"
  ):
    nl.MLP((4,), b_std=(0.1, -1))
  with pytest.raises(ValueError, match=r"W_std\[0\]: must be a finite number ≥ 0, got -0.5"):
    nl.MLP((4,), W_std=(-0.5, 1.0))
  with pytest.raises(ValueError, match=r"x2: diagonal=True pairs x1\[i\] with x2\[i\]"):
    nl.MLP((4,)).kernel(inputs(3, 2), inputs(2, 2), diagonal=True)
  net = nl.MLP((4,), b_std=(None, 0.1))
  with pytest.raises(ValueError, match=r"params\[0\]: expected a dict with keys \['W'\] \(b_std=None\)"):
    net.apply(
      [{"W": jnp.ones((2, 4)), "b": jnp.ones(4)}, {"W": jnp.ones((4, 1)), "b": jnp.ones(1)}], inputs(2, 2)
    )
