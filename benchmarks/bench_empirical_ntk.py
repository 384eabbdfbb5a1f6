"""Benchmark of the empirical NTK: ntk_lab's three routes, and neural-tangents 0.6.5 side by side.

    python -m benchmarks.bench_empirical_ntk --out results          # or: make bench
    python -m benchmarks.bench_empirical_ntk --quick --no-nt        # a smaller grid

For each cell (N points, width, depth; ReLU MLP in NTK parametrization, in_dim 100, out_dim 1,
float32, x2 = None) and method, a fresh subprocess times the jit-compiled kernel (median over
`--repeats` runs after a warm-up) and records its peak resident memory. The structured route's
executed matrix-product FLOPs (`ntk_lab.structured_flops`, checked against XLA's cost analysis in
the tests) give its achieved FLOP rate, reported against the fp32 matmul rate measured in the same
run. neural-tangents runs in its own pinned environment (`make reference`) through
reference/nt_oracle.py; the ratio column is NT's best implementation over ntk_lab's structured time,
both measured in this run. Cells whose estimated time or memory is out of reach are listed as skipped
with the reason. Writes ``bench_empirical_ntk.json`` and ``bench_empirical_ntk.md``.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import sys
import time

from benchmarks._timing import CellCache, bench_parser, machine_meta, subcommand, write_report

ROOT = pathlib.Path(__file__).resolve().parents[1]
NT_PYTHON = ROOT / ".venv-nt" / "bin" / "python"
IN_DIM = 100
GRID = {"n": (256, 1000, 4000), "width": (512, 2048), "depth": (2, 3)}
QUICK = {"n": (256, 1000), "width": (512,), "depth": (2,)}
NT_CELLS = {(256, 512, 2), (256, 512, 3), (1000, 512, 2), (1000, 512, 3), (256, 2048, 2)}


def n_params(width, depth):
  widths = [IN_DIM] + [width] * depth + [1]
  return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def estimate(method, n, width, depth, rate):
  """(seconds, bytes) rough estimates, to skip cells that cannot finish here."""
  P = n_params(width, depth)
  if method == "jacobian":  # per-point Jacobians (N·P floats, twice while built) and an N²·P contraction
    return (2 * n * n * P + 6 * n * P) / (0.15 * rate), 8 * n * P
  if method == "ntvp":  # N cotangents, each a vjp and a jvp over all N points
    return 8 * n * n * P / (0.2 * rate), 4 * 32 * P + 4 * n * width * depth * 4
  return 0.0, 0


# --------------------------------------------------------------------------------- cells
def run_cell(args):
  """In a fresh process: time one (method, N, width, depth) cell and print one JSON line."""
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl
  from benchmarks._timing import median_time, peak_rss_mb, rss_mb

  net = nl.MLP((args.width,) * args.depth, activation="relu", b_std=0.1)
  params = net.init(jax.random.PRNGKey(0), IN_DIM, dtype=jnp.float32)
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, IN_DIM), jnp.float32)
  # One tile whenever it fits: the budget is the cell's memory limit, not a tiling knob.
  budget = args.max_gb * 2**30
  fn = jax.jit(lambda p, x: nl.empirical_ntk(net, p, x, method=args.method, memory_budget=budget))
  base_rss = rss_mb()
  t0 = time.perf_counter()
  jax.block_until_ready(fn(params, x))
  first = time.perf_counter() - t0
  med, times = median_time(fn, params, x, repeats=args.repeats, warmup=0)
  out = {
    "median_s": med,
    "times_s": times,
    "first_call_s": first,
    "peak_rss_mb": peak_rss_mb(),
    "baseline_rss_mb": base_rss,
  }
  stats = jax.devices()[0].memory_stats() if hasattr(jax.devices()[0], "memory_stats") else None
  if stats and "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
  if args.method == "structured":
    out["flops"] = nl.empirical.structured_flops(net, IN_DIM, args.n, memory_budget=budget)  # same tiles
  print(json.dumps(out))


def matmul_rate(repeats):
  """Median fp32 matmul FLOP/s over square sizes 2048 and 4096; the best of the two."""
  import jax
  import jax.numpy as jnp

  from benchmarks._timing import median_time

  best = 0.0
  for n in (2048, 4096):
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    t, _ = median_time(jax.jit(lambda a, b: a @ b), a, a, repeats=repeats)
    best = max(best, 2 * n**3 / t)
  return best


# -------------------------------------------------------------------------------- driver
def main(argv=None):
  parser, cell = bench_parser(
    __doc__,
    "bench_empirical_ntk",
    repeats=5,
    timeout=900,
    cells_dir="cells",
    quick_help="a small grid",
    cell_help="(internal) time one cell in this process",
  )
  for name in ("n", "width", "depth"):
    cell.add_argument(f"--{name}", type=int, required=True)
  cell.add_argument("--method", required=True)
  cell.add_argument("--max-gb", type=float, default=12.0)
  parser.add_argument("--no-nt", action="store_true", help="skip neural-tangents")
  parser.add_argument(
    "--max-seconds", type=float, default=90.0, help="skip a jacobian/ntvp cell whose estimated time is larger"
  )
  parser.add_argument("--max-gb", type=float, default=12.0, help="skip a cell whose estimate is larger")
  args = parser.parse_args(argv)
  if subcommand(args, "bench_empirical_ntk", run_cell, to_markdown):
    return None

  import jax

  rate = matmul_rate(args.repeats)
  grid = QUICK if args.quick else GRID
  print(f"fp32 matmul rate: {rate / 1e9:.1f} GFLOP/s on {jax.devices()[0].device_kind}", flush=True)
  use_nt = not args.no_nt and NT_PYTHON.exists()
  if not args.no_nt and not use_nt:
    print("neural-tangents environment not found (make reference): NT columns left empty")
  out = pathlib.Path(args.out)

  cached = CellCache(out / "cells", resume=args.resume, timeout=args.timeout, cwd=ROOT)

  records = []
  for n, width, depth in itertools.product(grid["n"], grid["width"], grid["depth"]):
    rec = {"n": n, "width": width, "depth": depth, "params": n_params(width, depth), "methods": {}}
    for method in ("structured", "jacobian", "ntvp"):
      secs, nbytes = estimate(method, n, width, depth, rate)
      if secs > args.max_seconds or nbytes > args.max_gb * 2**30:
        rec["methods"][method] = {"skipped": f"est. {secs:.0f} s, {nbytes / 2**30:.1f} GB"}
        continue
      cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_empirical_ntk",
        "cell",
        "--n",
        str(n),
        "--width",
        str(width),
        "--depth",
        str(depth),
        "--method",
        method,
        "--repeats",
        str(args.repeats),
        "--max-gb",
        str(args.max_gb),
      ]
      rec["methods"][method] = cached(f"{n}_{width}_{depth}_{method}", cmd)
    s = rec["methods"]["structured"]
    if "flops" in s:
      s["gflops_per_s"] = s["flops"] / s["median_s"] / 1e9
      s["fraction_of_matmul"] = s["flops"] / s["median_s"] / rate
    if use_nt and (n, width, depth) in NT_CELLS:
      rec["nt"] = {}
      for impl in (1, 2, 3):  # one process each: a failing implementation cannot take the others down
        cmd = [
          str(NT_PYTHON),
          str(ROOT / "reference" / "nt_oracle.py"),
          "bench",
          "--n",
          str(n),
          "--width",
          str(width),
          "--depth",
          str(depth),
          "--impl",
          str(impl),
          "--repeats",
          str(args.repeats),
        ]
        res = cached(f"{n}_{width}_{depth}_nt{impl}", cmd)
        rec["nt"][str(impl)] = res.get("results", {}).get(str(impl), res)
      ok = {k: v["median_s"] for k, v in rec["nt"].items() if "median_s" in v}
      if ok and "median_s" in s:
        best = min(ok, key=ok.get)
        rec["nt_best"] = {"impl": int(best), "median_s": ok[best], "speedup": ok[best] / s["median_s"]}
    records.append(rec)
    print(json.dumps({k: rec[k] for k in ("n", "width", "depth")}), _row_summary(rec), flush=True)

  meta = machine_meta(args.repeats, matmul_gflops_per_s=rate / 1e9)
  write_report(out, "bench_empirical_ntk", to_markdown, meta, records)


def _row_summary(rec):
  def fmt(m):
    return f"{m['median_s'] * 1e3:.1f} ms" if "median_s" in m else ("skipped" if "skipped" in m else "error")

  return " ".join(f"{k}={fmt(v)}" for k, v in rec["methods"].items())


def _cell(m):
  if "median_s" in m:
    return f"{m['median_s'] * 1e3:,.1f} ms / {m['peak_rss_mb'] / 1024:,.1f} GB"
  return "skipped: " + m["skipped"] if "skipped" in m else "failed: " + m.get("error", "?")[:40]


def _baseline_gb(records):
  base = [m["baseline_rss_mb"] for r in records for m in r["methods"].values() if "baseline_rss_mb" in m]
  return min(base) / 1024 if base else 0.0


def to_markdown(meta, records):
  from benchmarks._timing import markdown_table

  rows = []
  for r in records:
    s = r["methods"]["structured"]
    frac = f"{s['gflops_per_s']:.0f} GFLOP/s ({100 * s['fraction_of_matmul']:.0f} %)" if "flops" in s else "–"
    nt = "–"
    if "nt_best" in r:
      b = r["nt_best"]
      nt = f"{b['median_s'] * 1e3:,.0f} ms (impl {b['impl']}), **{b['speedup']:.0f}×**"
    elif "nt" in r:
      nt = "all failed"
    rows.append(
      [
        r["n"],
        r["width"],
        r["depth"],
        _cell(s),
        frac,
        _cell(r["methods"]["jacobian"]),
        _cell(r["methods"]["ntvp"]),
        nt,
      ]
    )
  header = [
    "N",
    "width",
    "depth",
    "structured: median / peak RSS",
    "structured FLOP rate (of matmul)",
    "jacobian",
    "ntvp",
    "neural-tangents best (speed-up)",
  ]
  return (
    f"Empirical NTK, ReLU MLP (NTK param., in_dim {IN_DIM}, out 1, float32, x2 = None); "
    f"median of {meta['repeats']} runs; peak RSS = the cell's process high-water mark, "
    f"of which ~{_baseline_gb(records):.1f} GB is JAX's runtime before the kernel runs. "
    f"{meta['device']} ({meta['cpus']} cores), fp32 matmul {meta['matmul_gflops_per_s']:.0f} GFLOP/s, "
    f"jax {meta['jax']}, {meta['date']}.\n\n" + markdown_table(header, rows) + "\n"
  )


if __name__ == "__main__":
  main()
