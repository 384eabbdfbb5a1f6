"""Test set-up: float64 everywhere unless a test asks for float32 explicitly.

Exact identities are checked in float64 at 1e-10 relative; float32 runs use `TOL[float32]`.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Relative Frobenius tolerances by dtype, for quantities that are equal in exact arithmetic.
TOL = {jnp.float64: 1e-10, jnp.float32: 2e-5}


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.fixture
def key():
  return jax.random.PRNGKey(0)


def inputs(n, d, seed=1, dtype=jnp.float64):
  return jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype)


@pytest.fixture(autouse=True)
def _float64_stays_on():
  """Fails the test that switches float64 off for the tests after it in the same worker.

  Which tests share a worker changes with `pytest -n`, so such a leak shows up as a float32 result
  in some unrelated test, on some machines only.
  """
  yield
  assert jax.config.jax_enable_x64, "this test left jax_enable_x64 off; scope it with `jax.enable_x64(...)`"
