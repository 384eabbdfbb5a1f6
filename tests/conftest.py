"""Test set-up: float64 everywhere unless a test asks for float32 explicitly.

Exact identities are checked in float64 at 1e-10 relative; float32 runs use `TOL[float32]`.
"""

import os

# The suite is compile-bound: most tests compile small programs and run them once. LLVM's
# optimisation of XLA's CPU code is most of that compile time; at level 0 the suite runs about a
# third faster (measured on 2 cores), with IEEE semantics unchanged (matrix products call the same
# libraries). Read when the backend starts, so set before any test touches jax; a user's own
# XLA_FLAGS are kept (and win, coming last).
os.environ["XLA_FLAGS"] = " ".join(
  f for f in ("--xla_backend_optimization_level=0", os.environ.get("XLA_FLAGS", "")) if f
)

import jax  # noqa: E402

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


# Parametrised grids thinned in the default suite (`make test`, under 10 minutes on 2 cores): a
# greedy cover keeps the fewest cases in which every value of every parameter appears at least
# once, and marks the others `slow`, so `make test-slow` (which CI runs) still runs the whole grid.
# A grid of one parameter keeps every k-th case instead (k given).
THINNED = {
  "test_closed_forms_against_error_controlled_quadrature": 2,
  "test_matches_neural_tangents": 2,
  "test_diagonal_is_the_diagonal_of_the_full_kernel": "cover",
  "test_blocking_gives_identical_results": "cover",
  "test_gradients_wrt_W_std_and_b_std_match_finite_differences": "cover",
  "test_routes_agree_outputs_and_depths": "cover",
  "test_blocked_evaluation_matches_whole": "cover",
  "test_seed001_g_and_h_infinity_against_the_recursion": "cover",
  "test_analytic_diagonal_is_the_diagonal_of_the_full_kernel": "cover",
  "test_per_layer_analytic_kernel_is_the_monte_carlo_mean": 3,
  "test_every_error_control_reaches_the_tight_solution": 3,
  "test_linearized_flow_is_the_closed_form": 2,
  "test_analytic_kernel_is_the_monte_carlo_mean": 3,
}


def _thin(items, how):
  if isinstance(how, int):  # keeps cases 0, k, 2k, …
    return [item for i, item in enumerate(items) if i % how]
  covered, slow = set(), []
  for item in items:
    levels = {(name, repr(value)) for name, value in item.callspec.params.items()}
    if levels <= covered:
      slow.append(item)
    covered |= levels
  return slow


@pytest.hookimpl(tryfirst=True)  # before `-m 'not slow'` deselects by marker
def pytest_collection_modifyitems(config, items):
  groups = {}
  for item in items:
    name = getattr(item, "originalname", None)
    if name in THINNED and hasattr(item, "callspec"):
      groups.setdefault((item.module.__name__, name), []).append(item)
  for (_, name), group in groups.items():
    for item in _thin(group, THINNED[name]):
      item.add_marker(pytest.mark.slow)
