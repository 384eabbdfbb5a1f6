"""kernel_complexity against a direct linear solve, nl.two_layer.ntk_complexity and the pseudo-inverse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import rel_err


def unit_inputs(n=24, d=5, seed=0):
  x = jax.random.normal(jax.random.PRNGKey(seed), (n, d))
  return x / jnp.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("definition", ["arora2019", "trace"])
@pytest.mark.parametrize("outputs", [None, 3])
def test_matches_a_linear_solve(definition, outputs):
  x = unit_inputs()
  H = nl.two_layer.relu_h_infinity(x)
  shape = (24,) if outputs is None else (24, outputs)
  y = jnp.sign(jax.random.normal(jax.random.PRNGKey(1), shape))
  c = nl.kernel_complexity(H, y, definition=definition)
  Y = y.reshape(24, -1)
  quad = float(jnp.sum(Y * np.linalg.solve(np.asarray(H), np.asarray(Y))))
  assert abs(float(c.quadratic_form) - quad) <= 1e-9 * quad
  assert abs(float(c.trace) - float(jnp.trace(H))) <= 1e-12 * 24
  want = np.sqrt(2 * quad / 24) if definition == "arora2019" else np.sqrt(2 * quad * float(jnp.trace(H))) / 24
  assert abs(float(c.value) - want) <= 1e-10 * want


def test_trace_form_is_ntk_complexity_and_arora_over_sqrt2_on_unit_inputs():
  x = unit_inputs(seed=3)
  y = jnp.sign(x[:, 1])
  H = nl.two_layer.relu_h_infinity(x)
  t = nl.kernel_complexity(H, y, definition="trace").value
  a = nl.kernel_complexity(H, y, definition="arora2019").value
  assert rel_err(t, nl.two_layer.ntk_complexity(x, y)) <= 1e-10
  # tr H^∞ = n/2 for unit-norm inputs, up to arccos's rounding at angle 0 on the diagonal (~1e-10)
  assert rel_err(a, np.sqrt(2) * t) <= 1e-8


def test_random_labels_are_more_complex_than_structured_ones():
  x = unit_inputs(n=60, seed=4)
  H = nl.two_layer.relu_h_infinity(x)
  easy = nl.kernel_complexity(H, jnp.sign(x[:, 0]), definition="arora2019").value
  rand = jnp.sign(jax.random.normal(jax.random.PRNGKey(9), (60,)))
  hard = nl.kernel_complexity(H, rand, definition="arora2019").value
  assert float(hard) > 1.5 * float(easy)


def test_singular_kernel_uses_the_pseudo_inverse_and_diag_reg_and_jit():
  phi = jax.random.normal(jax.random.PRNGKey(2), (10, 3))
  K = phi @ phi.T  # rank 3
  y = jax.random.normal(jax.random.PRNGKey(5), (10,))
  c = nl.kernel_complexity(K, y, definition="arora2019")
  assert abs(float(c.quadratic_form) - float(y @ jnp.linalg.pinv(K) @ y)) <= 1e-8 * float(c.quadratic_form)
  eps = 0.05
  r = nl.kernel_complexity(K, y, definition="arora2019", diag_reg=eps)
  Kr = K + eps * jnp.mean(jnp.diag(K)) * jnp.eye(10)
  assert rel_err(r.quadratic_form, y @ jnp.linalg.solve(Kr, y)) <= 1e-10
  jitted = jax.jit(lambda K, y: nl.kernel_complexity(K, y, definition="trace").value)(K + jnp.eye(10), y)
  assert rel_err(jitted, nl.kernel_complexity(K + jnp.eye(10), y, definition="trace").value) <= 1e-13


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(definition="arora"), "definition: must be one of 'arora2019', 'trace', got 'arora'; did you mean"),
    (dict(definition="trace", diag_reg=-1.0), "diag_reg: must be a finite number ≥ 0"),
  ],
)
def test_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    nl.kernel_complexity(jnp.eye(3), jnp.ones(3), **kwargs)
  with pytest.raises(ValueError, match="y_train: expected shape"):
    nl.kernel_complexity(jnp.eye(3), jnp.ones(4), definition="trace")
