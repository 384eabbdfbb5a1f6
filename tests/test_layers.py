"""The layer model: networks written with `nl.layers` against `nl.MLP`, combinators, a residual
block (routes against each other, the limit in width), a layer without a structured term, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from ntk_lab.layers import (
  Activation,
  Dense,
  FanInSum,
  FanOut,
  Identity,
  Layer,
  Relu,
  parallel,
  serial,
)
from tests.conftest import inputs, rel_err

ROUTES = ("structured", "jacobian", "ntvp")


def _by_hand(hidden, out_dim, activations, W_std, b_std, kinds, trainable):
  layers = []
  for l, width in enumerate((*hidden, out_dim)):
    layers.append(Dense(width, W_std[l], b_std[l], kinds[l], trainable=trainable[l]))
    if l < len(hidden):
      layers.append(Activation(activations[l]))
  return serial(*layers)


MIXES = [
  dict(activations=("relu", "erf"), W_std=(1.5, 0.7, 1.2), b_std=(0.1, None, 0.3), kinds=("ntk",) * 3),
  dict(
    activations=("tanh", "identity"),
    W_std=(1.0, 2.0, 0.5),
    b_std=(0.0, 0.2, None),
    kinds=("standard", "ntk", "standard"),
  ),
  dict(
    activations=("gelu", "abs"),
    W_std=(1.3, 1.0, 1.0),
    b_std=(None, None, 0.1),
    kinds=("ntk", "standard", "ntk"),
  ),
]


@pytest.mark.parametrize("mix", MIXES, ids=lambda m: "-".join(m["activations"]))
@pytest.mark.parametrize("trainable", [(True, True, True), (False, True, False)])
def test_a_hand_written_mlp_is_nl_mlp(mix, trainable):
  hidden, out_dim = (24, 16), 2
  net = nl.MLP(
    hidden,
    out_dim=out_dim,
    activation=mix["activations"],
    W_std=mix["W_std"],
    b_std=mix["b_std"],
    parametrization=mix["kinds"],
    trainable=trainable,
  )
  hand = _by_hand(hidden, out_dim, trainable=trainable, **mix)
  key, x = jax.random.PRNGKey(3), inputs(6, 3)
  p_net, p_hand = net.init(key, 3), hand.init(key, 3)
  assert jax.tree.structure(p_net) == jax.tree.structure(p_hand)
  for a, b in zip(jax.tree.leaves(p_net), jax.tree.leaves(p_hand)):
    assert a.shape == b.shape and float(jnp.max(jnp.abs(a - b))) == 0.0
  assert rel_err(hand.apply(p_hand, x), net.apply(p_net, x)) <= 1e-12
  for x2, diagonal in ((x[1:], False), (None, True), (x[::-1], True)):
    k_net = nl.analytic_kernel(net, x, x2, diagonal=diagonal)
    k_hand = nl.analytic_kernel(hand, x, x2, diagonal=diagonal)
    assert rel_err(k_hand.nngp, k_net.nngp) <= 1e-12 and rel_err(k_hand.ntk, k_net.ntk) <= 1e-12
  for method in ROUTES:
    for kw in (dict(), dict(trace_outputs=False, per_layer=True), dict(diagonal=True)):
      a = nl.empirical_ntk(hand, p_hand, x, method=method, **kw)
      b = nl.empirical_ntk(net, p_net, x, method=method, **kw)
      assert rel_err(a, b) <= 1e-12, (method, kw)
  assert rel_err(nl.empirical_nngp(hand, p_hand, x), nl.empirical_nngp(net, p_net, x)) <= 1e-12


def residual(width, act="relu", W_std=1.3, b_std=0.1):
  block = serial(Dense(width, W_std, b_std), Activation(act), Dense(width, W_std, b_std))
  return serial(
    Dense(width, W_std, b_std),
    FanOut(2),
    parallel(block, Identity()),
    FanInSum(),
    Activation(act),
    Dense(1, W_std, b_std),
  )


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_residual_block_routes_agree(act):
  net = residual(32, act)
  params = net.init(jax.random.PRNGKey(0), 4)
  x, x2 = inputs(7, 4), inputs(5, 4, seed=2)
  ref = nl.empirical_ntk(net, params, x, x2, method="jacobian", trace_outputs=False, per_layer=True)
  assert ref.shape == (4, 7, 5, 1, 1)  # four Dense layers
  for method in ("structured", "ntvp"):
    got = nl.empirical_ntk(net, params, x, x2, method=method, trace_outputs=False, per_layer=True)
    assert rel_err(got, ref) <= 1e-10, method
  full = nl.empirical_ntk(net, params, x)
  assert rel_err(nl.empirical_ntk(net, params, x, diagonal=True), jnp.diagonal(full)) <= 1e-12
  assert rel_err(jnp.sum(ref, 0)[..., 0, 0], nl.empirical_ntk(net, params, x, x2)) <= 1e-12
  k = nl.analytic_kernel(net, x)
  assert rel_err(nl.analytic_kernel(net, x, diagonal=True).ntk, jnp.diagonal(k.ntk)) <= 1e-12
  assert np.all(np.linalg.eigvalsh(np.asarray(k.ntk)) > 0)


def test_residual_block_empirical_ntk_converges_to_its_limit():
  x = inputs(6, 4)
  limit = nl.analytic_kernel(residual(8), x).ntk

  def distance(width):
    net = residual(width)
    errs = [rel_err(nl.empirical_ntk(net, net.init(jax.random.PRNGKey(s), 4), x), limit) for s in range(4)]
    return float(np.mean(errs))

  small, large = distance(64), distance(2048)
  # like width^(−1/2): 32× the width, ~5.7× closer (at least 3× allowing for the seeds' spread)
  assert large < small / 3 and large < 0.05


def test_residual_monte_carlo_nngp_is_the_analytic_nngp():
  """At any width the NNGP of a network whose last layer is Dense on a Gaussian-free input...
  here, one hidden layer and a skip: E[f f'] is exact at every width for the pre-activation sum."""
  net = serial(
    Dense(16, 1.0, 0.1), FanOut(2), parallel(serial(Relu(), Dense(16, 1.2)), Identity()), FanInSum()
  )
  x = inputs(4, 3)
  mc = nl.monte_carlo_kernel(net, jax.random.PRNGKey(0), x, n_samples=400, samples_per_step=50, get=("nngp",))
  exact = nl.analytic_kernel(net, x).nngp
  assert float(jnp.max(jnp.abs(mc.nngp - exact) / (mc.nngp_stderr + 1e-12))) < 5


def test_networks_nest():
  flat = serial(Dense(8, b_std=0.1), Relu(), Dense(8), Relu(), Dense(1))
  nested = serial(serial(Dense(8, b_std=0.1), Relu()), serial(serial(Dense(8)), Relu(), Dense(1)))
  x = inputs(5, 3)
  pf, pn = flat.init(jax.random.PRNGKey(0), 3), nested.init(jax.random.PRNGKey(0), 3)
  assert len(pn) == 2 and len(pn[1]) == 2
  assert rel_err(nl.analytic_kernel(nested, x).ntk, nl.analytic_kernel(flat, x).ntk) <= 1e-14
  # the structured route sums the same terms whatever the nesting
  pn = [[pf[0]], [[pf[1]], pf[2]]]
  assert rel_err(nl.empirical_ntk(nested, pn, x), nl.empirical_ntk(flat, pf, x)) <= 1e-14
  with_mlp = serial(nl.MLP((8,), out_dim=4, activation="erf"), Relu(), Dense(1))
  p = with_mlp.init(jax.random.PRNGKey(1), 3)
  assert (
    rel_err(
      nl.empirical_ntk(with_mlp, p, x, method="structured"),
      nl.empirical_ntk(with_mlp, p, x, method="jacobian"),
    )
    <= 1e-10
  )


@dataclasses.dataclass(frozen=True)
class Scale(Layer):
  """A layer with one trainable scalar s: z = s·x. No structured term of its own."""

  has_params = True

  def init_params(self, key, in_shape, dtype):
    return {"s": jnp.ones((), dtype)}

  def apply(self, params, x):
    return params["s"] * x

  def kernel_rule(self, state, ctx):
    raise NotImplementedError


def test_a_layer_without_a_structured_term_refuses_structured_and_auto_picks_another_route():
  net = serial(Dense(8, b_std=0.1), Relu(), Scale(), Dense(1))
  params = net.init(jax.random.PRNGKey(0), 3)
  x = inputs(4, 3)
  with pytest.raises(
    ValueError, match=r"method='structured': layer Scale\(\) declares no structured term.*jacobian"
  ):
    nl.empirical_ntk(net, params, x, method="structured")
  auto = nl.empirical_ntk(net, params, x)
  assert rel_err(auto, nl.empirical_ntk(net, params, x, method="ntvp")) <= 1e-10
  frozen = serial(Dense(8, b_std=0.1), Relu(), Dense(1, trainable=False))
  p = frozen.init(jax.random.PRNGKey(0), 3)
  assert (
    rel_err(
      nl.empirical_ntk(frozen, p, x, method="structured"), nl.empirical_ntk(frozen, p, x, method="jacobian")
    )
    <= 1e-10
  )


def test_networks_under_jit_vmap_and_grad():
  net = residual(16, "erf")
  x = inputs(5, 3)
  params = net.init(jax.random.PRNGKey(0), 3)
  eager = nl.empirical_ntk(net, params, x)
  assert rel_err(jax.jit(lambda p: nl.empirical_ntk(net, p, x))(params), eager) <= 1e-12
  stacked = jax.vmap(lambda k: net.init(k, 3))(jax.random.split(jax.random.PRNGKey(0), 3))
  many = jax.vmap(lambda p: nl.empirical_ntk(net, p, x))(stacked)
  assert many.shape == (3, 5, 5)
  k = jax.jit(lambda xs: nl.analytic_kernel(net, xs).ntk)(x)
  assert rel_err(k, nl.analytic_kernel(net, x).ntk) <= 1e-12
  f = lambda s: nl.analytic_kernel(net, x, W_std=s).ntk.sum()
  h = 1e-6
  w = jnp.full((4,), 1.3)
  g = jax.grad(f)(w)
  fd = (f(w.at[1].add(h)) - f(w.at[1].add(-h))) / (2 * h)
  assert abs(float(g[1] - fd)) <= 1e-6 * abs(float(fd))


def test_training_and_observables_take_a_network():
  net = residual(16, "erf")
  x = inputs(6, 3)
  y = jnp.sin(x[:, :1])
  params = net.init(jax.random.PRNGKey(0), 3)
  run = nl.gradient_flow(
    net,
    params,
    x,
    y,
    times=jnp.linspace(0.0, 1.0, 3),
    observe=["loss", "weight_change", "unit_change", "ntk_gap"],
  )
  assert run.observables["weight_change"].shape == (3, 4)
  assert float(run.observables["loss"][-1]) < float(run.observables["loss"][0])
  lin = nl.linearize(net, params)
  assert rel_err(lin.apply(params, x), net.apply(params, x)) <= 1e-14


@pytest.mark.parametrize(
  "call, exc, match",
  [
    (lambda: serial(Dense(4), "relu"), TypeError, r"serial: argument 1 is a str, not an ntk_lab layer"),
    (lambda: serial(Dense(4), Identity), TypeError, r"call it"),
    (lambda: serial(), ValueError, r"serial: needs at least one layer"),
    (lambda: Dense(0), ValueError, r"out_dim"),
    (lambda: Dense(4, W_std=-1.0), ValueError, r"W_std"),
    (lambda: Dense(4, parameterization="mup"), ValueError, r"parameterization"),
    (lambda: FanOut(0), ValueError, r"num"),
    (
      lambda: nl.analytic_kernel(serial(Relu(), Dense(1)), inputs(3, 2)),
      ValueError,
      r"must be Gaussian.*a Dense or Conv layer.*put one before it",
    ),
    (
      lambda: nl.analytic_kernel(serial(Dense(4), FanOut(2)), inputs(3, 2)),
      ValueError,
      r"ends in 2 branches; join them",
    ),
    (
      lambda: serial(FanOut(3), parallel(Dense(2), Dense(2))).init(jax.random.PRNGKey(0), 2),
      ValueError,
      r"parallel: its 2 layers take a list of 2 inputs, got 3",
    ),
    (
      lambda: serial(FanOut(2), parallel(Dense(2), Dense(3)), FanInSum()).init(jax.random.PRNGKey(0), 2),
      ValueError,
      r"FanInSum: needs a list of inputs of one shape",
    ),
    (
      lambda: nl.empirical_ntk(
        serial(Dense(4), Relu(), Dense(1)),
        serial(Dense(4), Relu(), Dense(1)).init(jax.random.PRNGKey(0), 3),
        inputs(2, 5),
      ),
      ValueError,
      r"params\[0\]\['W'\]: has shape \(3, 4\).*\(5, 4\) for inputs of per-point shape \(5,\)",
    ),
    (lambda: Dense(3).init(jax.random.PRNGKey(0), "3"), TypeError, r"in_shape"),
    (
      lambda: nl.analytic_kernel(lambda p, x: x, inputs(2, 2)),
      TypeError,
      r"a plain apply_fn has no infinite-width rule",
    ),
  ],
)
def test_errors(call, exc, match):
  with pytest.raises(exc, match=match):
    call()


@pytest.mark.parametrize(
  "call, name",
  [
    (lambda net, p, x: nl.empirical_ntk(net, p, x, trace_outputs="False"), "trace_outputs"),
    (lambda net, p, x: nl.empirical_ntk(net, p, x, diagonal="no"), "diagonal"),
    (lambda net, p, x: nl.empirical_ntk(net, p, x, per_layer=1), "per_layer"),
    (lambda net, p, x: nl.empirical_nngp(net, p, x, trace_outputs="True"), "trace_outputs"),
    (lambda net, p, x: nl.analytic_kernel(net, x, diagonal="False"), "diagonal"),
  ],
)
def test_switches_take_booleans_only(call, name):
  net = serial(Dense(4), Relu(), Dense(1))
  x = inputs(3, 2)
  with pytest.raises((TypeError, ValueError), match=name):
    call(net, net.init(jax.random.PRNGKey(0), 2), x)
