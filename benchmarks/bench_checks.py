"""What the value checks cost: finite params, finite results and the kernel-matrix check, against
the public call they guard.

    python -m benchmarks.bench_checks --out results            # writes bench_checks.{json,md}
    python -m benchmarks.bench_checks --out results --quick    # smaller cells

For each cell the public call (which runs its checks) and the checks alone are timed, both as plain
calls (the checks read concrete values) and under `jax.jit` (the checks become host callbacks);
median over `--repeats` runs after a warm-up, float32 for the kernels (the benchmarks' dtype),
float64 for the closed-form dynamics. The ratio column is checks / call.

* empirical NTK (structured, ReLU MLP, in_dim 100): `_checks.finite_tree(params)` (one fused
  isfinite reduction per leaf, O(P)) and `_checks.finite_result(Θ)` (O(N²)).
* mse_dynamics: `_checks.kernel_defects` (max |K − Kᵀ|, O(N²), the eigenvalues come from the
  eigendecomposition the dynamics need anyway) and the host-side comparison.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import machine_meta, markdown_table, median_time


def entk_cells(quick):
  return [(256, 512, 2), (1000, 512, 2)] if quick else [(256, 512, 2), (1000, 512, 2), (1000, 2048, 3)]


def mse_cells(quick):
  return [200, 800] if quick else [200, 800, 2000]


def bench_entk(n, width, depth, repeats):
  import ntk_lab as nl
  from ntk_lab import _checks

  net = nl.MLP((width,) * depth, activation="relu", b_std=0.1)
  params = net.init(jax.random.PRNGKey(0), 100, dtype=jnp.float32)
  x = jax.random.normal(jax.random.PRNGKey(1), (n, 100), jnp.float32)
  call = lambda p, x: nl.empirical_ntk(net, p, x, method="structured")
  kernel = call(params, x)

  def checks(p, k):
    _checks.finite_tree(p, "params")
    _checks.finite_result(k, "empirical_ntk", "")
    return k[0, 0]

  t_call, _ = median_time(call, params, x, repeats=repeats)
  t_chk, _ = median_time(checks, params, kernel, repeats=repeats)
  t_call_jit, _ = median_time(jax.jit(call), params, x, repeats=repeats)
  t_chk_jit, _ = median_time(jax.jit(checks), params, kernel, repeats=repeats)
  n_params = sum(a.size for a in jax.tree.leaves(params))
  return {
    "what": "empirical_ntk",
    "cell": f"N={n}, width={width}, depth={depth}, P={n_params}",
    "call_s": t_call,
    "checks_s": t_chk,
    "call_jit_s": t_call_jit,
    "checks_jit_s": t_chk_jit,
  }


def bench_mse(n, repeats):
  import ntk_lab as nl
  from ntk_lab import _checks

  phi = jax.random.normal(jax.random.PRNGKey(0), (n, 2 * n)) / np.sqrt(2 * n)
  K = phi @ phi.T
  y = jax.random.normal(jax.random.PRNGKey(1), (n,))
  times = jnp.array([0.1, 1.0, 10.0])
  call = lambda K, y: nl.mse_dynamics(K, y, times).train
  lam = jnp.linalg.eigvalsh(K)

  defects_of = jax.jit(_checks.kernel_defects)  # as inside mse_dynamics' compiled core

  def checks(K, lam):
    defects = defects_of(K, lam, 0.0)
    _checks.check_kernel(defects, "k_train_train", K.shape[0], K.dtype)
    return defects[0]

  t_call, _ = median_time(call, K, y, repeats=repeats)
  t_chk, _ = median_time(checks, K, lam, repeats=repeats)
  t_call_jit, _ = median_time(jax.jit(call), K, y, repeats=repeats)
  t_chk_jit, _ = median_time(jax.jit(checks), K, lam, repeats=repeats)
  return {
    "what": "mse_dynamics",
    "cell": f"N={n}, float64",
    "call_s": t_call,
    "checks_s": t_chk,
    "call_jit_s": t_call_jit,
    "checks_jit_s": t_chk_jit,
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="results")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  rows = [bench_entk(*c, args.repeats) for c in entk_cells(args.quick)]
  rows += [bench_mse(n, args.repeats) for n in mse_cells(args.quick)]
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  meta = machine_meta(args.repeats)
  (out / "bench_checks.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
  ms = lambda s: f"{1e3 * s:.3g}"
  pct = lambda a, b: f"{100 * a / b:.2g} %"
  table = markdown_table(
    [
      "call",
      "cell",
      "call (ms)",
      "checks (ms)",
      "checks/call",
      "jit call (ms)",
      "jit checks (ms)",
      "jit checks/call",
    ],
    [
      [
        r["what"],
        r["cell"],
        ms(r["call_s"]),
        ms(r["checks_s"]),
        pct(r["checks_s"], r["call_s"]),
        ms(r["call_jit_s"]),
        ms(r["checks_jit_s"]),
        pct(r["checks_jit_s"], r["call_jit_s"]),
      ]
      for r in rows
    ],
  )
  text = (
    "# Cost of the value checks\n\n"
    "`python -m benchmarks.bench_checks --out results`: the public call (checks included) and "
    "its checks alone, median of "
    f"{args.repeats} runs after a warm-up; plain calls and under `jax.jit` (checks as host "
    "callbacks). Machine: " + ", ".join(f"{k} {v}" for k, v in meta.items()) + ".\n\n" + table + "\n"
  )
  (out / "bench_checks.md").write_text(text)
  print(text)


if __name__ == "__main__":
  main()
