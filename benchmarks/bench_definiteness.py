"""How negative rounding makes the eigenvalues of a positive semi-definite kernel: the measurement
behind the kernel check's tolerance (`ntk_lab._checks.kernel_tolerance`).

    python -m benchmarks.bench_definiteness --out results           # N = 10 … 2000
    python -m benchmarks.bench_definiteness --out results --sizes 10 100 400

For kernels the library computes (exactly PSD in exact arithmetic) at N points, in float32 and in
float64, the kernel is built in that dtype and diagonalised by `jnp.linalg.eigh` in that dtype,
as `mse_dynamics` does; the table reports λ_min/λ_max, in units of eps and of √N·eps, and the
tolerance τ(N) the check uses. Kernels (all rank-deficient or nearly so, where rounding shows):

* relu NTK: analytic NTK of a 2-hidden-layer ReLU MLP (closed form), Gaussian inputs in 5-D;
* relu near-duplicates: 3-hidden-layer ReLU NTK with half the inputs repeated 1e-6 apart;
* tanh NTK: analytic NTK of a 2-hidden-layer tanh MLP (quadrature, stated accuracy 1e-5 in
  float32, 1e-7 in float64), inputs in 2-D (a fast-decaying spectrum);
* gram: ΦΦᵀ with Φ of N × N/4 Gaussian features (rank N/4);
* empirical NTK: a width-64 tanh MLP's finite-width NTK on 2-D inputs (rank ≤ its 257 parameters).

Then genuinely indefinite kernels (spectrum linspace(−f, 1), f = 1 %, 0.1 %) are checked to be
refused at every N.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import machine_meta, markdown_table


def kernels(n, dtype):
  import ntk_lab as nl

  key = jax.random.PRNGKey
  x5 = jax.random.normal(key(0), (n, 5), dtype)
  x2 = jax.random.normal(key(1), (n, 2), dtype)
  h = (n + 1) // 2
  dup = jnp.concatenate([x5[:h], x5[:h] + 1e-6 * jax.random.normal(key(2), (h, 5), dtype)])[:n]
  phi = jax.random.normal(key(3), (n, max(n // 4, 1)), dtype)
  small = nl.MLP((64,), activation="tanh", b_std=0.1)
  return {
    "relu NTK": lambda: nl.MLP((512, 512), activation="relu", b_std=0.1).kernel(x5, get="ntk").ntk,
    "relu near-duplicates": lambda: (
      nl.MLP((512,) * 3, activation="relu", b_std=0.1).kernel(dup, get="ntk").ntk
    ),
    "tanh NTK (quadrature)": lambda: (
      nl.MLP((512, 512), activation="tanh", b_std=0.1).kernel(x2, get="ntk").ntk
    ),
    "gram rank N/4": lambda: phi @ phi.T,
    "empirical NTK": lambda: nl.empirical_ntk(small, small.init(key(4), 2, dtype=dtype), x2),
  }


def relative_lambda_min(K):
  lam = np.asarray(jnp.linalg.eigvalsh((K + K.T) / 2), np.float64)
  return lam[0] / lam[-1]


def indefinite_refused(n, fraction, dtype):
  import ntk_lab as nl

  q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))
  K = jnp.asarray((q * np.linspace(-fraction, 1.0, n)) @ q.T, dtype)
  try:
    nl.max_learning_rate(K)
  except ValueError:
    return True
  return False


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="results")
  parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100, 300, 1000, 2000])
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  from ntk_lab import _checks

  rows, refusals = [], []
  for dtype in (jnp.float32, jnp.float64):
    eps = float(jnp.finfo(dtype).eps)
    for n in args.sizes:
      for name, build in kernels(n, dtype).items():
        t0 = time.perf_counter()
        K = build()
        assert K.dtype == dtype, (name, K.dtype)
        rel = relative_lambda_min(K)
        rows.append(
          {
            "dtype": jnp.dtype(dtype).name,
            "n": n,
            "kernel": name,
            "lambda_min_rel": rel,
            "in_eps": rel / eps,
            "in_sqrt_n_eps": rel / (math.sqrt(n) * eps),
            "tolerance": _checks.kernel_tolerance(n, dtype),
            "seconds": time.perf_counter() - t0,
          }
        )
        print(rows[-1], flush=True)
      for f in (1e-2, 1e-3):
        refusals.append(
          {"dtype": jnp.dtype(dtype).name, "n": n, "fraction": f, "refused": indefinite_refused(n, f, dtype)}
        )
  summary = {}
  for dt in ("float32", "float64"):
    mine = [r for r in rows if r["dtype"] == dt]
    worst = min(mine, key=lambda r: r["lambda_min_rel"])
    worst_sqrt = min(mine, key=lambda r: r["in_sqrt_n_eps"])
    margin = min(r["tolerance"] / max(-r["lambda_min_rel"], 1e-300) for r in mine)
    summary[dt] = {
      "most_negative": worst["lambda_min_rel"],
      "at": f"{worst['kernel']}, N={worst['n']}",
      "most_negative_in_sqrt_n_eps": worst_sqrt["in_sqrt_n_eps"],
      "smallest_margin": margin,
    }
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  meta = machine_meta(1)
  (out / "bench_definiteness.json").write_text(
    json.dumps({"meta": meta, "rows": rows, "refusals": refusals, "summary": summary}, indent=1)
  )
  g = lambda v: f"{v:.3g}"
  table = markdown_table(
    ["dtype", "N", "kernel", "λ_min/λ_max", "in eps", "in √N·eps", "τ(N)"],
    [
      [
        r["dtype"],
        r["n"],
        r["kernel"],
        g(r["lambda_min_rel"]),
        g(r["in_eps"]),
        g(r["in_sqrt_n_eps"]),
        g(r["tolerance"]),
      ]
      for r in rows
    ],
  )
  lines = [
    "# How negative rounding makes a PSD kernel's eigenvalues",
    "",
    "`python -m benchmarks.bench_definiteness --out results --sizes "
    + " ".join(map(str, args.sizes))
    + "`: kernels that are positive semi-definite in exact arithmetic, built and diagonalised "
    "(`jnp.linalg.eigh`) in the dtype shown; λ_min/λ_max < 0 is rounding (and, for the tanh "
    "kernel, quadrature error). τ(N) = max(100·√N·eps, 1e-9) is the kernel check's tolerance. "
    + "Machine: "
    + ", ".join(f"{k} {v}" for k, v in meta.items())
    + ".",
    "",
    "## Summary",
    "",
  ]
  for dt, s in summary.items():
    lines.append(
      f"* {dt}: most negative λ_min/λ_max {s['most_negative']:.3g} ({s['at']}); at most "
      f"{-s['most_negative_in_sqrt_n_eps']:.3g}·√N·eps; τ is at least {s['smallest_margin']:.3g}× the "
      "measured value in every row."
    )
  bad = [r for r in refusals if not r["refused"]]
  lines.append(
    "* Indefinite kernels with λ_min = −1 % and −0.1 % of λ_max: "
    + ("refused at every N and dtype." if not bad else f"NOT refused: {bad}.")
  )
  lines += ["", "## All rows", "", table, ""]
  (out / "bench_definiteness.md").write_text("\n".join(lines))
  print("\n".join(lines[:12]))


if __name__ == "__main__":
  main()
