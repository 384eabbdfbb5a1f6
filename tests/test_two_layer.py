"""The seeds' named two-layer kernels against the general recursion (`analytic_kernel`) and
against direct Monte Carlo of their defining expectations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import inputs, rel_err


def unit(n, d, seed=1):
  x = np.asarray(inputs(n, d, seed))
  return jnp.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


@pytest.mark.parametrize("act", ["relu", "erf", "tanh", "sigmoid"])
@pytest.mark.parametrize("s,a2", [(1.0, 1.0), (0.6, 2.5)])
def test_seed001_g_and_h_infinity_against_the_recursion(act, s, a2):
  """G^∞ = Θ_readout/σ_a² and H^∞ = Θ_hidden/s² for MLP((m,), W_std=(s√d, σ_a)), σ_a² = E[a²]:
  the seed differentiates w.r.t. w and a themselves, NTK parametrization w.r.t. their z-scores."""
  d = 4
  x1, x2 = inputs(6, d), inputs(3, d, seed=2)
  W_std = (s * math.sqrt(d), math.sqrt(a2))
  readout = nl.MLP((8,), activation=act, W_std=W_std, b_std=None, trainable="readout")
  hidden = nl.MLP((8,), activation=act, W_std=W_std, b_std=None, trainable="hidden")
  G = nl.two_layer.g_infinity(x1, x2, activation=act, first_layer_std=s)
  H = nl.two_layer.h_infinity(x1, x2, activation=act, first_layer_std=s, a_second_moment=a2)
  assert rel_err(G, readout.kernel(x1, x2).ntk / a2) <= 1e-13
  assert rel_err(H, hidden.kernel(x1, x2).ntk / s**2) <= 1e-13
  if s == 1.0 and a2 == 1.0:  # both layers trained: K^∞ = G^∞ + H^∞ is the NTK itself
    both = nl.MLP((8,), activation=act, W_std=W_std, b_std=None)
    assert rel_err(G + H, both.kernel(x1, x2).ntk) <= 1e-13


def test_seed001_definitions_by_monte_carlo():
  """G^∞ and H^∞ as printed, E over w ~ N(0, s²I) (and E[a²]), by direct sampling."""
  s, a2, d = 0.8, 1.7, 3
  x = inputs(4, d)
  w = s * jax.random.normal(jax.random.PRNGKey(0), (400_000, d))
  pre = w @ x.T
  G_mc = jnp.tanh(pre).T @ jnp.tanh(pre) / w.shape[0]
  dt = 1 - jnp.tanh(pre) ** 2
  H_mc = (x @ x.T) * a2 * (dt.T @ dt) / w.shape[0]
  assert rel_err(G_mc, nl.two_layer.g_infinity(x, activation="tanh", first_layer_std=s)) < 1e-2
  assert (
    rel_err(H_mc, nl.two_layer.h_infinity(x, activation="tanh", first_layer_std=s, a_second_moment=a2)) < 1e-2
  )


def test_seed002d_closed_form_is_h_infinity_and_the_recursion():
  x1, x2 = unit(7, 5), unit(4, 5, seed=3)
  H = nl.two_layer.relu_h_infinity(x1, x2)
  g = np.clip(np.asarray(x1 @ x2.T), -1, 1)
  assert rel_err(H, g * (math.pi - np.arccos(g)) / (2 * math.pi)) <= 1e-14
  assert rel_err(H, nl.two_layer.h_infinity(x1, x2)) <= 1e-14
  net = nl.MLP((8,), W_std=(math.sqrt(5), 1.0), b_std=None, trainable="hidden")
  assert rel_err(H, net.kernel(x1, x2).ntk) <= 1e-13
  # Any norms: the angle form scales bilinearly, H(αx, βx') = αβ H(x, x').
  assert rel_err(nl.two_layer.relu_h_infinity(2.0 * x1, 0.5 * x2), H) <= 1e-14


@pytest.mark.parametrize("terms", [1, 2, 5, 20, 200])
def test_seed002_p2a_series_and_its_truncation_bound(terms):
  x = jnp.concatenate([unit(8, 3), unit(1, 3, seed=9)])
  exact = np.asarray(nl.two_layer.relu_h_infinity(x))
  s = nl.two_layer.relu_h_infinity_series(x, terms=terms)
  err = np.abs(np.asarray(s.value) - exact)
  bound = np.asarray(s.error_bound)
  assert (err <= bound + 1e-15).all()
  # The bound is informative: within a factor 20 of the true error off the diagonal (|z| < 1),
  # and the diagonal (z = 1, where the series converges like L^(−1/2)) within a factor 5.
  off = ~np.eye(len(x), dtype=bool)
  big = off & (err > 1e-13)
  assert (bound[big] <= 20 * err[big]).all()
  assert (np.diag(bound) <= 5 * np.diag(err)).all()


def test_seed002_series_rejects_non_unit_inputs():
  with pytest.raises(ValueError, match="unit-norm"):
    nl.two_layer.relu_h_infinity_series(2.0 * unit(3, 2), terms=3)


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0])
def test_seed003_q3a_all_weights_relu_ntk(s):
  """K = Θ_hidden/s² + Θ_readout (readout c Rademacher, E[c²] = 1), and = H^∞ + G^∞ of 001."""
  d = 4
  x1, x2 = inputs(6, d), inputs(5, d, seed=4)
  K = nl.two_layer.relu_ntk_all_weights(x1, x2, first_layer_std=s)
  W_std = (s * math.sqrt(d), 1.0)
  hidden = nl.MLP((8,), W_std=W_std, b_std=None, trainable="hidden", readout_init="rademacher")
  readout = nl.MLP((8,), W_std=W_std, b_std=None, trainable="readout", readout_init="rademacher")
  assert rel_err(K, hidden.kernel(x1, x2).ntk / s**2 + readout.kernel(x1, x2).ntk) <= 1e-13
  assert (
    rel_err(
      K,
      nl.two_layer.h_infinity(x1, x2, first_layer_std=s) + nl.two_layer.g_infinity(x1, x2, first_layer_std=s),
    )
    <= 1e-13
  )


def test_ntk_complexity_is_kernel_complexity_even_for_repeated_inputs():
  """One implementation: the trace form of `kernel_complexity` on H^∞ (a pseudo-inverse), finite
  where a Cholesky solve of the singular H^∞ of a repeated input is not."""
  x = unit(6, 4)
  x = jnp.concatenate([x, x[:2]])  # two inputs repeated: H^∞ has rank 6 of 8
  y = jnp.sign(x[:, 0])
  c = nl.two_layer.ntk_complexity(x, y)
  ref = nl.kernel_complexity(nl.two_layer.relu_h_infinity(x), y, definition="trace").value
  assert np.isfinite(float(c)) and abs(float(c - ref)) <= 1e-12 * float(ref)
  # The duplicates change nothing in yᵀH⁺y when their labels agree: H^∞ of the 6 distinct points.
  H6 = np.asarray(nl.two_layer.relu_h_infinity(x[:6]))
  quad = float(y[:6] @ np.linalg.solve(H6, y[:6]))
  tr = float(np.trace(np.asarray(nl.two_layer.relu_h_infinity(x))))
  assert abs(float(c) - math.sqrt(2 * quad * tr) / 8) <= 1e-9 * float(c)


def test_relu_closed_forms_are_the_general_expectation():
  """relu_h_infinity and relu_ntk_all_weights are h_infinity/g_infinity of relu (one
  implementation), and still the arc-cosine formulas."""
  x1, x2 = inputs(5, 3), inputs(4, 3, seed=6)
  assert rel_err(nl.two_layer.relu_h_infinity(x1, x2), nl.two_layer.h_infinity(x1, x2)) == 0
  K = nl.two_layer.relu_ntk_all_weights(x1, x2, first_layer_std=0.7)
  G = nl.two_layer.g_infinity(x1, x2, first_layer_std=0.7)
  assert rel_err(K, nl.two_layer.h_infinity(x1, x2, first_layer_std=0.7) + G) == 0
  g = np.asarray(x1 @ x2.T)
  n = np.outer(np.linalg.norm(x1, axis=1), np.linalg.norm(x2, axis=1))
  th = np.arccos(np.clip(g / n, -1, 1))
  assert rel_err(G, 0.49 * n * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)) <= 1e-13


@pytest.mark.slow
def test_two_layer_quadrature_under_jit_checks_its_rule():
  """g_infinity/h_infinity under jit: the node count is fixed (32), the estimate runs inside the
  program and raises when it misses the accuracy; forced nodes warn, as in analytic_kernel."""
  x = 3.0 * unit(4, 2)
  with pytest.raises(jax.errors.JaxRuntimeError, match=r"h_infinity under jit/grad: the 32-node"):
    jax.block_until_ready(
      jax.jit(lambda x: nl.two_layer.h_infinity(x, activation="tanh", first_layer_std=2.0))(x)
    )
  ok = jax.jit(lambda x: nl.two_layer.g_infinity(x, activation="tanh"))(unit(4, 2))
  assert rel_err(ok, nl.two_layer.g_infinity(unit(4, 2), activation="tanh")) <= 1e-7
  with pytest.warns(UserWarning, match=r"quadrature_nodes=4 in h_infinity"):
    nl.two_layer.h_infinity(x, activation="tanh", quadrature_nodes=4)
