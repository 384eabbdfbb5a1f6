"""ntk_lab's empirical NTK against neural-tangents 0.6.5's, from committed golden files.

The golden file holds NT's answers (implementations 1–3, traced and full) for a grid of small MLPs
over every activation, both parametrizations, with and without biases, b_std = 0 and out_dim > 1,
N1 ≠ N2. Regenerate it with `make golden` (needs the pinned NT environment, `make reference`).
"""

import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import rel_err

GOLDEN = np.load(pathlib.Path(__file__).parent / "golden" / "nt_empirical_ntk.npz")
CASES = range(int(GOLDEN["n_cases"]))


def load(i):
  spec = json.loads(str(GOLDEN[f"case{i}_spec"]))
  act = spec["activation"]
  activation = nl.Activation(act, alpha=spec["alpha"]) if act == "leaky_relu" else act
  net = nl.MLP(
    tuple(spec["hidden"]),
    out_dim=spec["out_dim"],
    activation=activation,
    parametrization=spec["parametrization"],
    W_std=spec["W_std"],
    b_std=spec["b_std"],
  )
  params = []
  for l in range(net.n_layers):
    layer = {"W": jnp.asarray(GOLDEN[f"case{i}_W{l}"])}
    if f"case{i}_b{l}" in GOLDEN:
      layer["b"] = jnp.asarray(GOLDEN[f"case{i}_b{l}"])
    params.append(layer)
  return spec, net, params, jnp.asarray(GOLDEN[f"case{i}_x1"]), jnp.asarray(GOLDEN[f"case{i}_x2"])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["structured", "jacobian", "ntvp"])
def test_matches_neural_tangents(case, method):
  spec, net, params, x1, x2 = load(case)
  for name, trace in (("trace", True), ("full", False)):
    ours = nl.empirical_ntk(net, params, x1, x2, method=method, trace_outputs=trace)
    for impl in (1, 2, 3):
      theirs = GOLDEN[f"case{case}_ntk_{name}_{impl}"]
      assert ours.shape == theirs.shape
      assert rel_err(ours, theirs) <= 1e-10, (spec, name, impl, rel_err(ours, theirs))
