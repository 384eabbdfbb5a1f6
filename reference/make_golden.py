"""Regenerates tests/golden/nt_*.npz: NT's empirical and infinite-width kernels for grids of MLPs.

    make golden        # needs `make reference` (the pinned neural-tangents environment)

ntk_lab draws the params and inputs (float64); NT computes the kernels in its own interpreter
through reference/nt_oracle.py; the golden file keeps inputs, params and NT's answers, so the default
test run checks ntk_lab against NT without TensorFlow.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import ntk_lab as nl  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
NT_PYTHON = ROOT / ".venv-nt" / "bin" / "python"
OUT = ROOT / "tests" / "golden" / "nt_empirical_ntk.npz"
OUT_ANALYTIC = ROOT / "tests" / "golden" / "nt_analytic.npz"

# (hidden, out_dim, activation, alpha, parametrization, W_std, b_std)
CASES = [
  ((6,), 1, "relu", None, "ntk", 1.0, None),
  ((5, 4), 2, "relu", None, "ntk", 1.4, 0.3),
  ((5, 4), 2, "relu", None, "standard", 1.4, 0.0),
  ((7,), 3, "leaky_relu", 0.2, "ntk", 0.9, 0.5),
  ((4, 4, 3), 2, "abs", None, "standard", 1.2, 0.2),
  ((6,), 2, "erf", None, "ntk", 1.7, 0.0),
  ((5, 5), 1, "gelu", None, "standard", 1.0, None),
  ((6,), 2, "sin", None, "ntk", 1.1, 0.4),
  ((3, 4), 2, "identity", None, "ntk", 1.0, 0.2),
  ((6,), 2, "tanh", None, "standard", 1.3, 0.1),
  ((5,), 1, "sigmoid", None, "ntk", 2.0, 0.6),
  ((5, 3), 2, "softplus", None, "ntk", 1.0, None),
]


# Infinite-width kernels: (hidden, activation, alpha, parametrization, W_std, b_std, trainable)
ANALYTIC_CASES = [
  ((), "relu", None, "ntk", 1.0, 0.0, "all"),
  ((64,), "relu", None, "ntk", 1.0, None, "all"),
  ((64, 64, 64), "relu", None, "ntk", 1.5, 0.2, "all"),
  ((32, 32), "relu", None, "standard", 1.2, 0.3, "all"),
  ((64, 64, 64, 64), "leaky_relu", 0.1, "ntk", 1.3, 0.1, "all"),
  ((32,), "abs", None, "standard", 0.9, None, "all"),
  ((64, 64), "erf", None, "ntk", 1.7, 0.5, "all"),
  ((16, 16, 16, 16), "erf", None, "standard", 1.1, 0.0, "all"),
  ((64,), "gelu", None, "ntk", 1.0, 0.1, "all"),
  ((64, 64, 64), "sin", None, "ntk", 0.8, 0.3, "all"),
  ((64, 64), "identity", None, "standard", 1.4, 0.2, "all"),
  ((64, 64), "tanh", None, "ntk", 1.6, 0.2, "all"),
  ((64,), "sigmoid", None, "ntk", 2.0, None, "all"),
  ((64, 64, 64), "softplus", None, "ntk", 1.0, 0.4, "all"),
]


def run_oracle(mode, spec, arrays):
  with tempfile.TemporaryDirectory() as tmp:
    inp, out = pathlib.Path(tmp) / "in.npz", pathlib.Path(tmp) / "out.npz"
    np.savez(inp, spec=json.dumps(spec), **arrays)
    subprocess.run(
      [str(NT_PYTHON), str(ROOT / "reference" / "nt_oracle.py"), mode, str(inp), str(out)],
      check=True,
      capture_output=True,
    )
    return dict(np.load(out))


def make_analytic():
  golden = {}
  for i, (hidden, act, alpha, par, w_std, b_std, _) in enumerate(ANALYTIC_CASES):
    spec = {
      "hidden": list(hidden),
      "out_dim": 1,
      "activation": act,
      "alpha": alpha or 0.01,
      "parametrization": par,
      "W_std": w_std,
      "b_std": b_std,
    }
    arrays = {
      "x1": np.array(jax.random.normal(jax.random.PRNGKey(400 + i), (5, 4))),
      "x2": np.asarray(jax.random.normal(jax.random.PRNGKey(500 + i), (3, 4))),
    }
    arrays["x1"][0] = 0.0  # a zero-norm input: its finite limit is part of the contract
    golden[f"case{i}_spec"] = np.asarray(json.dumps(spec))
    for k, v in {**arrays, **run_oracle("analytic", spec, arrays)}.items():
      golden[f"case{i}_{k}"] = v
    print(f"analytic case {i}: {spec}")
  golden["n_cases"] = np.asarray(len(ANALYTIC_CASES))
  np.savez_compressed(OUT_ANALYTIC, **golden)
  print(f"wrote {OUT_ANALYTIC}")


def main():
  if not NT_PYTHON.exists():
    sys.exit(f"{NT_PYTHON} not found: run `make reference` first.")
  golden = {}
  for i, (hidden, out_dim, act, alpha, par, w_std, b_std) in enumerate(CASES):
    activation = nl.Activation(act, alpha=alpha) if alpha is not None else act
    net = nl.MLP(
      hidden, out_dim=out_dim, activation=activation, parametrization=par, W_std=w_std, b_std=b_std
    )
    params = net.init(jax.random.PRNGKey(100 + i), 3)
    x1 = np.asarray(jax.random.normal(jax.random.PRNGKey(200 + i), (4, 3)))
    x2 = np.asarray(jax.random.normal(jax.random.PRNGKey(300 + i), (3, 3)))
    spec = {
      "hidden": list(hidden),
      "out_dim": out_dim,
      "activation": act,
      "alpha": alpha or 0.01,
      "parametrization": par,
      "W_std": w_std,
      "b_std": b_std,
    }
    arrays = {"x1": x1, "x2": x2}
    for l, p in enumerate(params):
      arrays[f"W{l}"] = np.asarray(p["W"])
      if "b" in p:
        arrays[f"b{l}"] = np.asarray(p["b"])
    nt_out = run_oracle("empirical", spec, arrays)
    golden[f"case{i}_spec"] = np.asarray(json.dumps(spec))
    for k, v in {**arrays, **nt_out}.items():
      golden[f"case{i}_{k}"] = v
    print(f"case {i}: {spec}")
  golden["n_cases"] = np.asarray(len(CASES))
  OUT.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(OUT, **golden)
  print(f"wrote {OUT}")
  make_analytic()


if __name__ == "__main__":
  main()
