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
  net = nl.MLP((16, 8), out_dim=3, activation="erf", parametrization=parametrization, W_std=1.7,
               b_std=b_std)
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
  scale = float(jnp.abs(net.apply(nl.MLP((12, 10), out_dim=2, b_std=0.3).init(jax.random.PRNGKey(0), 3), x)).max())
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
  assert trainable[-1] is None and frozen[0] is None and frozen[-1] is params[-1]
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


@pytest.mark.parametrize("name", nl.ACTIVATIONS)
def test_activation_functions(name):
  z = jnp.linspace(-3, 3, 13)
  ref = {"relu": np.maximum(z, 0), "leaky_relu": np.where(z >= 0, z, 0.01 * z), "abs": np.abs(z),
         "erf": np.asarray(jax.scipy.special.erf(z)), "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z)),
         "gelu": np.asarray(z) * 0.5 * (1 + np.asarray(jax.scipy.special.erf(z / math.sqrt(2)))),
         "softplus": np.log1p(np.exp(z)), "sin": np.sin(z), "identity": np.asarray(z),
         # the registry's further names at their default parameters
         "abrelu": np.maximum(z, 0), "cos": np.cos(z), "sign": np.sign(z), "step": (z >= 0) * 1.0,
         "rectified_monomial": np.maximum(z, 0), "monomial": np.asarray(z) ** 2, "polynomial": np.asarray(z),
         "rbf": math.sqrt(2) * np.sin(math.sqrt(2) * z + math.pi / 4), "gaussian": np.exp(-np.asarray(z) ** 2),
         "exp": np.exp(z)}[name]
  np.testing.assert_allclose(nl.Activation(name)(z), ref, rtol=1e-12, atol=1e-14)


def test_activation_can_be_built_under_jit():
  """An Activation (its checks included) may be constructed while tracing."""
  import jax
  import ntk_lab as nl
  out = jax.jit(lambda z: nl.Activation("leaky_relu", alpha=0.2)(z) + nl.Activation("erf")(z))(-1.0)
  assert abs(float(out) - (-0.2 + float(jax.scipy.special.erf(-1.0)))) < 1e-6
