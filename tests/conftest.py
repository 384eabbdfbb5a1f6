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
