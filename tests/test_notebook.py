"""experiments/notebooks/tour.ipynb runs top to bottom (so it never rots), in one namespace as a
kernel would, and its numbers are what the markdown says."""

import json
import pathlib

import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "notebooks" / "tour.ipynb"


@pytest.mark.slow  # ~40 s on 2 cores; CI runs it with `make test-slow`
def test_tour_notebook_executes():
  import jax
  import matplotlib

  matplotlib.use("Agg")
  nb = json.loads(NOTEBOOK.read_text())
  assert nb["nbformat"] == 4
  code = [c for c in nb["cells"] if c["cell_type"] == "code"]
  assert code and all(not c["outputs"] for c in code)  # committed without outputs
  namespace = {"__name__": "__main__"}
  with jax.enable_x64(True):
    for i, cell in enumerate(code):
      exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}[{i}]", "exec"), namespace)
  import jax.numpy as jnp

  assert float(jnp.max(jnp.abs(namespace["theta"] - namespace["theta_jac"]))) < 1e-10
  assert float(namespace["rel"]) < 0.2
  assert float(namespace["run"].observables["loss"][-1]) < 0.1 * float(
    namespace["run"].observables["loss"][0]
  )
  assert len(namespace["fig"].axes) == 2
  # the data-set and discrete-predictor sections
  assert namespace["digits"].x_train.shape == (120, 64)
  assert float(namespace["c_random"]) > 1.5 * float(namespace["c_true"])
  assert float(namespace["gd_gap"]) < 1e-9
  assert float(namespace["convention_gap"]) <= 1e-12  # mean-reduced at η = sum-reduced at η/y.size
  import matplotlib.pyplot as plt

  plt.close("all")
