"""The three empirical-NTK routes against each other, and the kernel's basic properties."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import TOL, inputs, rel_err

ROUTES = ("structured", "jacobian", "ntvp")


def all_routes(model, params, x1, x2=None, **kw):
  return {m: nl.empirical_ntk(model, params, x1, x2, method=m, **kw) for m in ROUTES}


def assert_routes_agree(model, params, x1, x2=None, tol=TOL[jnp.float64], **kw):
  ks = all_routes(model, params, x1, x2, **kw)
  for m in ("structured", "ntvp"):
    assert rel_err(ks[m], ks["jacobian"]) <= tol, (m, rel_err(ks[m], ks["jacobian"]))
  return ks


def _every_activation_cases():
  """Every activation × parametrization × bias; each activation's first combination (cycling, so
  every combination appears) in the default suite, its other three in the slow suite."""
  combos = [(p, b) for p in ("ntk", "standard") for b in (None, 0.4)]
  names = nl.activations.ACTIVATIONS + ("leaky_relu_0.2", "custom")
  return [
    pytest.param(a, p, b, marks=() if j == i % 4 else pytest.mark.slow)
    for i, a in enumerate(names)
    for j, (p, b) in enumerate(combos)
  ]


@pytest.mark.parametrize("activation,parametrization,b_std", _every_activation_cases())
def test_routes_agree_every_activation(activation, parametrization, b_std):
  if activation == "leaky_relu_0.2":
    activation = nl.Activation("leaky_relu", alpha=0.2)
  elif activation == "custom":
    activation = lambda z: jnp.cos(z) + 0.1 * z
  net = nl.MLP((12, 9), activation=activation, parametrization=parametrization, W_std=1.3, b_std=b_std)
  params = net.init(jax.random.PRNGKey(3), 4)
  assert_routes_agree(net, params, inputs(5, 4), inputs(3, 4, seed=2))


@pytest.mark.parametrize("parametrization,b_std", [("ntk", 0.0), ("standard", 0.0), ("standard", 1.5)])
def test_routes_agree_zero_bias_and_per_layer_w_std(parametrization, b_std):
  # b_std = 0 keeps bias parameters: their NTK term is 0 in NTK and 1 in standard parametrization.
  net = nl.MLP(
    (11, 4), activation="relu", parametrization=parametrization, W_std=(2.0, 0.7, 1.1), b_std=b_std
  )
  params = net.init(jax.random.PRNGKey(8), 3)
  ks = assert_routes_agree(net, params, inputs(5, 3), inputs(4, 3, seed=6), per_layer=True)
  if b_std == 0.0:
    no_bias = nl.MLP(
      (11, 4), activation="relu", parametrization=parametrization, W_std=(2.0, 0.7, 1.1), b_std=None
    )
    K0 = nl.empirical_ntk(
      no_bias, [{"W": p["W"]} for p in params], inputs(5, 3), inputs(4, 3, seed=6), per_layer=True
    )
    offset = 0.0 if parametrization == "ntk" else 1.0  # readout bias term; hidden ones are scaled by Δ
    np.testing.assert_allclose(ks["structured"][-1], K0[-1] + offset, rtol=1e-12)


@pytest.mark.parametrize("out_dim,trace", [(1, True), (3, True), (3, False), (1, False)])
@pytest.mark.parametrize("hidden", [(), (7,), (10, 6, 5)])
def test_routes_agree_outputs_and_depths(out_dim, trace, hidden):
  net = nl.MLP(hidden, out_dim=out_dim, activation="gelu", b_std=0.2)
  params = net.init(jax.random.PRNGKey(0), 3)
  ks = assert_routes_agree(net, params, inputs(4, 3), inputs(6, 3, seed=5), trace_outputs=trace)
  assert ks["jacobian"].shape == ((4, 6) if trace else (4, 6, out_dim, out_dim))


@pytest.mark.parametrize("trainable", ["hidden", "readout", (True, False, True), (False, True, False)])
def test_frozen_layers_drop_out(trainable):
  net = nl.MLP((8, 6), out_dim=2, activation="tanh", b_std=0.5, trainable=trainable)
  params = net.init(jax.random.PRNGKey(1), 3)
  x = inputs(5, 3)
  ks = assert_routes_agree(net, params, x, per_layer=True)
  mask = net.trainable
  for l, t in enumerate(mask):
    assert (float(jnp.abs(ks["structured"][l]).max()) > 0) == t
  # Only the trainable layers contribute: the all-trainable per-layer terms, masked, give the total.
  full = nl.MLP((8, 6), out_dim=2, activation="tanh", b_std=0.5)
  per_layer_full = nl.empirical_ntk(full, params, x, per_layer=True)
  expected = sum(per_layer_full[l] for l, t in enumerate(mask) if t)
  assert rel_err(nl.empirical_ntk(net, params, x), expected) <= 1e-12


def test_per_layer_sums_to_total():
  net = nl.MLP((9, 7), out_dim=2, activation="softplus", b_std=0.3)
  params = net.init(jax.random.PRNGKey(2), 4)
  x1, x2 = inputs(5, 4), inputs(3, 4, seed=9)
  for m in ROUTES:
    for trace in (True, False):
      per = nl.empirical_ntk(net, params, x1, x2, method=m, per_layer=True, trace_outputs=trace)
      assert per.shape[0] == net.n_layers
      total = nl.empirical_ntk(net, params, x1, x2, method=m, trace_outputs=trace)
      assert rel_err(per.sum(0), total) <= 1e-12


def test_centered_model_and_symmetric_readout():
  net = nl.MLP((10,), activation="sigmoid", b_std=None, readout_init="symmetric")
  params0 = net.init(jax.random.PRNGKey(4), 3)
  model = nl.centered(net, params0)
  x = inputs(6, 3)
  # Move away from θ₀ so that the centred output is not trivially zero.
  params = jax.tree_util.tree_map(lambda p: p + 0.3, params0)
  assert float(jnp.abs(model.apply(params, x)).max()) > 1e-3
  via_structured = nl.empirical_ntk(model, params, x, method="structured")
  generic = lambda p, xx: model.apply(p, xx)  # a plain callable: differentiated as written
  for m in ("jacobian", "ntvp"):
    assert rel_err(nl.empirical_ntk(generic, params, x, method=m), via_structured) <= 1e-10


def _conv_like_apply(params, x):
  """A non-MLP model: shared weights across a sliding window, then a dense readout."""
  w, v = params["w"], params["v"]
  windows = jnp.stack([x[:, i : i + 3] for i in range(x.shape[1] - 2)], axis=1)  # (N, P, 3)
  h = jnp.tanh(windows @ w)  # (N, P, C)
  return h.reshape(x.shape[0], -1) @ v / np.sqrt(v.shape[0])


@pytest.mark.parametrize("trace", [True, False])
def test_general_apply_fn_jacobian_vs_ntvp(trace):
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  params = {"w": jax.random.normal(k1, (3, 4)), "v": jax.random.normal(k2, (4 * 4, 2))}
  x1, x2 = inputs(5, 6), inputs(4, 6, seed=3)
  jac = nl.empirical_ntk(_conv_like_apply, params, x1, x2, method="jacobian", trace_outputs=trace)
  ntvp = nl.empirical_ntk(_conv_like_apply, params, x1, x2, method="ntvp", trace_outputs=trace)
  assert rel_err(ntvp, jac) <= 1e-10
  per = nl.empirical_ntk(_conv_like_apply, params, x1, x2, method="ntvp", per_layer=True, trace_outputs=trace)
  assert per.shape[0] == 2 and rel_err(per.sum(0), jac) <= 1e-10
  auto = nl.empirical_ntk(_conv_like_apply, params, x1, x2, trace_outputs=trace)
  assert rel_err(auto, jac) <= 1e-12


def test_traced_kernel_is_mean_of_diagonal_blocks():
  net = nl.MLP((8,), out_dim=4, activation="erf", b_std=0.1)
  params = net.init(jax.random.PRNGKey(0), 3)
  x = inputs(5, 3)
  full = nl.empirical_ntk(net, params, x, trace_outputs=False)
  traced = nl.empirical_ntk(net, params, x)
  np.testing.assert_allclose(traced, jnp.einsum("ijaa->ij", full) / 4, rtol=1e-12)


@pytest.mark.parametrize("method", ROUTES)
def test_symmetric_and_psd(method):
  net = nl.MLP((16, 16), out_dim=2, activation="relu", b_std=0.1)
  params = net.init(jax.random.PRNGKey(5), 4)
  x = inputs(12, 4)
  K = nl.empirical_ntk(net, params, x, method=method)
  np.testing.assert_allclose(K, K.T, rtol=0, atol=1e-12 * float(jnp.abs(K).max()))
  eig = np.linalg.eigvalsh(np.asarray(K))
  assert eig.min() >= -1e-10 * eig.max()
  Kfull = nl.empirical_ntk(net, params, x, method=method, trace_outputs=False)  # (N, N, O, O)
  M = np.asarray(Kfull).transpose(0, 2, 1, 3).reshape(24, 24)
  assert np.linalg.eigvalsh((M + M.T) / 2).min() >= -1e-10 * np.abs(M).max()


@pytest.mark.parametrize("method", ROUTES)
def test_x2_none_equals_x2_equal_x1(method):
  net = nl.MLP((10,), out_dim=2, activation="tanh", b_std=0.2)
  params = net.init(jax.random.PRNGKey(6), 3)
  x = inputs(7, 3)
  for trace in (True, False):
    a = nl.empirical_ntk(net, params, x, method=method, trace_outputs=trace)
    b = nl.empirical_ntk(net, params, x, x, method=method, trace_outputs=trace)
    assert rel_err(a, b) <= 1e-13


@pytest.mark.parametrize(
  "method,tile_size,symmetric,trace,per_layer",
  [
    *itertools.product(ROUTES, [1, 3, 4], [True, False], [True], [False]),
    ("structured", 3, True, False, True),
    ("structured", 2, False, False, True),
    ("jacobian", 3, True, False, True),
    ("ntvp", 4, False, False, False),
  ],
)
def test_blocking_gives_identical_results(method, tile_size, symmetric, trace, per_layer):
  net = nl.MLP((9, 5), out_dim=2, activation="erf", b_std=0.3)
  params = net.init(jax.random.PRNGKey(7), 3)
  x1 = inputs(10, 3)
  x2 = None if symmetric else inputs(7, 3, seed=4)
  kw = dict(method=method, trace_outputs=trace, per_layer=per_layer)
  whole = nl.empirical_ntk(net, params, x1, x2, **kw)
  tiled = nl.empirical_ntk(net, params, x1, x2, tile_size=tile_size, **kw)
  assert tiled.shape == whole.shape
  assert rel_err(tiled, whole) <= 1e-13


def test_memory_budget_picks_tiles_and_matches():
  net = nl.MLP((32,), activation="relu")
  params = net.init(jax.random.PRNGKey(0), 5)
  x = inputs(300, 5)
  whole = nl.empirical_ntk(net, params, x)
  # A budget far below N² numbers forces tiling; the result must not change.
  small = nl.empirical_ntk(net, params, x, memory_budget=300 * 300 * 8)
  assert rel_err(small, whole) <= 1e-13


def test_works_under_jit_and_vmap():
  net = nl.MLP((8,), out_dim=2, activation="tanh", b_std=0.1)
  x = inputs(6, 3)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  ensemble = jax.vmap(lambda k: net.init(k, 3))(keys)
  one = lambda p: nl.empirical_ntk(net, p, x)
  Ks = jax.jit(jax.vmap(one))(ensemble)
  assert Ks.shape == (4, 6, 6)
  for i in range(4):
    p_i = jax.tree_util.tree_map(lambda a: a[i], ensemble)
    for m in ROUTES:
      assert rel_err(Ks[i], nl.empirical_ntk(net, p_i, x, method=m)) <= 1e-10
  jitted = jax.jit(nl.empirical_ntk, static_argnames=("model", "method", "tile_size"))
  p0 = net.init(keys[0], 3)
  assert rel_err(jitted(net, p0, x, method="ntvp", tile_size=4), nl.empirical_ntk(net, p0, x)) <= 1e-10


@pytest.mark.parametrize("method", ROUTES)
def test_float32_routes_agree(method):
  net = nl.MLP((64, 64), out_dim=2, activation="relu", b_std=0.1)
  params = net.init(jax.random.PRNGKey(0), 5, dtype=jnp.float32)
  x = inputs(16, 5, dtype=jnp.float32)
  K32 = nl.empirical_ntk(net, params, x, method=method)
  assert K32.dtype == jnp.float32
  p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
  K64 = nl.empirical_ntk(net, p64, x.astype(jnp.float64), method="jacobian")
  assert rel_err(K32, K64) <= TOL[jnp.float32]


def test_auto_picks_structured_for_mlp_and_ntvp_when_jacobians_do_not_fit():
  net = nl.MLP((8,), activation="relu")
  params = net.init(jax.random.PRNGKey(0), 3)
  x = inputs(5, 3)
  assert rel_err(nl.empirical_ntk(net, params, x), nl.empirical_ntk(net, params, x, method="structured")) == 0
  apply_fn = net.apply
  tiny_budget = nl.empirical_ntk(apply_fn, params, x, memory_budget=64)  # forces ntvp, 8-point tiles
  assert rel_err(tiny_budget, nl.empirical_ntk(net, params, x, method="jacobian")) <= 1e-10


@pytest.mark.parametrize(
  "n2,trace,out_dim,trainable",
  [
    (None, True, 1, "all"),
    (40, True, 3, "all"),
    (40, False, 2, "all"),
    (None, True, 2, "hidden"),
    (None, True, 1, (False, True, True, False)),
  ],
)
def test_structured_flops_match_xla_cost_analysis(n2, trace, out_dim, trainable):
  net = nl.MLP((96, 64, 48), out_dim=out_dim, b_std=0.1, trainable=trainable)
  params = net.init(jax.random.PRNGKey(0), 10)
  x1 = inputs(60, 10)
  x2 = None if n2 is None else inputs(n2, 10, seed=2)
  lowered = jax.jit(lambda p, a, b: nl.empirical_ntk(net, p, a, b, trace_outputs=trace)).lower(params, x1, x2)
  cost = lowered.compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  ours = nl.empirical.structured_flops(net, 10, 60, n2, trace_outputs=trace)
  # XLA also counts elementwise work (activations, Hadamard products), which ours leaves out.
  assert 0.9 * cost["flops"] <= ours <= cost["flops"]


# ---------------------------------------------------------- per-layer specs, diagonal, NNGP
MIXED_SPECS = [
  dict(
    hidden=(9, 7),
    activation=("relu", "identity"),
    parametrization=("standard", "ntk", "standard"),
    W_std=(1.3, 0.8, 1.1),
    b_std=(0.2, None, 0.5),
  ),
  dict(
    hidden=(8, 6, 5),
    activation=("erf", "gelu", "identity"),
    parametrization=("ntk", "standard", "standard", "ntk"),
    W_std=(1.0, 0.0, 1.4, 0.9),
    b_std=(None, 0.7, 0.0, 0.3),
  ),
  dict(
    hidden=(10,),
    activation=("tanh",),
    parametrization=("standard", "ntk"),
    W_std=(0.0, 1.2),
    b_std=(0.6, None),
  ),
]


@pytest.mark.parametrize("spec", range(len(MIXED_SPECS)))
@pytest.mark.parametrize("trace,per_layer", [(True, False), (False, True)])
def test_routes_agree_per_layer_mixes(spec, trace, per_layer):
  net = nl.MLP(out_dim=2, **MIXED_SPECS[spec])
  params = net.init(jax.random.PRNGKey(spec), 3)
  assert_routes_agree(
    net, params, inputs(5, 3), inputs(4, 3, seed=2), trace_outputs=trace, per_layer=per_layer
  )


@pytest.mark.parametrize("method", ROUTES)
@pytest.mark.parametrize("x2", [None, "paired"])
@pytest.mark.parametrize(
  "trace,per_layer,tile_size", [(True, False, None), (False, False, 2), (True, True, 3), (False, True, None)]
)
def test_diagonal_is_the_diagonal_of_the_full_kernel(method, x2, trace, per_layer, tile_size):
  net = nl.MLP(out_dim=3, **MIXED_SPECS[1])
  params = net.init(jax.random.PRNGKey(4), 3)
  x = inputs(5, 3)
  other = None if x2 is None else inputs(5, 3, seed=7)
  kw = dict(method=method, trace_outputs=trace, per_layer=per_layer)
  full = np.asarray(nl.empirical_ntk(net, params, x, other, **kw))
  diag = nl.empirical_ntk(net, params, x, other, diagonal=True, tile_size=tile_size, **kw)
  lead = 1 if per_layer else 0  # the (L,) axis, when present
  expected = np.diagonal(full, axis1=lead, axis2=lead + 1)  # diagonal goes last
  expected = np.moveaxis(expected, -1, lead)
  assert (
    diag.shape == expected.shape == ((net.n_layers,) if per_layer else ()) + (5,) + (() if trace else (3, 3))
  )
  assert rel_err(diag, expected) <= 1e-13


@pytest.mark.parametrize("method", ["jacobian", "ntvp"])
def test_diagonal_of_a_general_apply_fn(method):
  def f(p, x):
    return jnp.tanh(x @ p["a"]) @ p["b"]

  params = {
    "a": jax.random.normal(jax.random.PRNGKey(0), (3, 6)),
    "b": jax.random.normal(jax.random.PRNGKey(1), (6, 2)),
  }
  x = inputs(4, 3)
  full = nl.empirical_ntk(f, params, x, method=method, per_layer=True)
  diag = nl.empirical_ntk(f, params, x, method=method, per_layer=True, diagonal=True, tile_size=3)
  assert rel_err(diag, jnp.diagonal(full, axis1=1, axis2=2)) <= 1e-13
  with pytest.raises(ValueError, match=r"x2: diagonal=True pairs x1\[i\] with x2\[i\]"):
    nl.empirical_ntk(f, params, x, x[:2], diagonal=True)


@pytest.mark.parametrize("x2", [None, "other"])
def test_empirical_nngp_is_the_output_outer_product(x2):
  net = nl.MLP(out_dim=3, **MIXED_SPECS[0])
  params = net.init(jax.random.PRNGKey(1), 3)
  x = inputs(5, 3)
  other = None if x2 is None else inputs(4, 3, seed=5)
  f1 = np.asarray(net.apply(params, x))
  f2 = f1 if other is None else np.asarray(net.apply(params, other))
  full = np.einsum("ia,jb->ijab", f1, f2)
  assert rel_err(nl.empirical_nngp(net, params, x, other), np.trace(full, axis1=2, axis2=3) / 3) <= 1e-14
  assert rel_err(nl.empirical_nngp(net, params, x, other, trace_outputs=False), full) <= 1e-14
  if other is None:
    assert rel_err(nl.empirical_nngp(net, params, x, diagonal=True), np.sum(f1 * f1, 1) / 3) <= 1e-14
    assert (
      rel_err(
        nl.empirical_nngp(net, params, x, diagonal=True, trace_outputs=False), np.einsum("ia,ib->iab", f1, f1)
      )
      <= 1e-14
    )
  # A plain apply_fn, a centred model (zero at θ₀) and jit.
  assert (
    rel_err(nl.empirical_nngp(net.apply, params, x, other), nl.empirical_nngp(net, params, x, other)) == 0
  )
  assert float(jnp.abs(nl.empirical_nngp(nl.centered(net, params), params, x)).max()) == 0.0
  jitted = jax.jit(lambda p: nl.empirical_nngp(net, p, x, other))(params)
  assert rel_err(jitted, nl.empirical_nngp(net, params, x, other)) <= 1e-14


def test_empirical_nngp_averages_to_the_analytic_nngp():
  """One hidden layer: E over θ₀ of (1/O) f fᵀ is the analytic NNGP at any width."""
  net = nl.MLP(
    (32,),
    out_dim=2,
    activation=("erf",),
    parametrization=("standard", "ntk"),
    W_std=(1.4, 0.9),
    b_std=(0.2, None),
  )
  x = inputs(4, 3)
  keys = jax.random.split(jax.random.PRNGKey(0), 2000)
  draws = jax.vmap(lambda k: nl.empirical_nngp(net, net.init(k, 3), x))(keys)
  mean, se = np.asarray(draws.mean(0)), np.asarray(draws.std(0, ddof=1)) / np.sqrt(len(keys))
  truth = np.asarray(net.kernel(x, get="nngp").nngp)
  assert (np.abs(mean - truth) <= 5.0 * se).all()
