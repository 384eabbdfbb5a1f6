"""Benchmark of the infinite-width kernels: ntk_lab's analytic_kernel vs neural-tangents' kernel_fn.

    python -m benchmarks.bench_analytic --out results          # or: make bench-analytic
    python -m benchmarks.bench_analytic --quick --no-nt        # N = 1000 only

For N ∈ {1000, 5000, 20000} inputs (in_dim 100, float32, x2 = None) and a depth-3 ReLU MLP (NTK
parametrization, W_std 1, b_std 0.1), a fresh subprocess per cell and implementation times the NNGP
and NTK together (median over `--repeats` runs after a warm-up) and records peak resident memory
above the process's baseline (JAX runtime and inputs, measured before the kernel runs). Compared:
ntk_lab (`analytic_kernel`, default 2 GiB tile budget); NT's jitted `kernel_fn`; and `nt.batch`
(kernel_fn over 1000 × 1000 blocks). Memory traffic: the kernels' output, 2·N²·4 bytes, must be
written at least once; output bytes per second is reported against the copy rate (read + write)
measured in the same run. Writes ``bench_analytic.json`` and ``bench_analytic.md``.

Quadrature kernels (`--quadrature`, N = 1000 by default): a depth-3 MLP with tanh, softplus and a
callable erf (no name, so integrated numerically), W_std 1.5, b_std 0.1, float64, x2 = None, timed
at the default accuracy (node counts chosen per layer; the first call includes that choice) and
with the node count forced to 32 (the cost of the rule alone: 64 × 64 evaluations per entry), and
beside them the rule these kernels replaced, measured in the same run: a fixed 64-node
Gauss–Hermite product rule without an error estimate (ntk_lab at commit `PREVIOUS`, extracted with
``git archive`` and imported in the cell's process; also 64 × 64 evaluations per entry).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile
import time

from benchmarks._timing import CellCache, bench_parser, machine_meta, subcommand, write_report
from benchmarks.bench_empirical_ntk import NT_PYTHON, ROOT

IN_DIM, DEPTH = 100, 3
SIZES = (1000, 5000, 20000)
IMPLS = ("ntk_lab", "nt_kernel_fn", "nt_batch")
QUAD_ACTIVATIONS = ("tanh", "softplus", "erf_callable")
PREVIOUS = "194c2bc"  # the last commit with the fixed 64-node Gauss–Hermite rule (the old default)


def previous_tree(directory: pathlib.Path) -> pathlib.Path | None:
  """`ntk_lab` at commit `PREVIOUS`, extracted under `directory` (None without git history)."""
  import subprocess

  tree = directory / f"ntk_lab_{PREVIOUS}"
  if (tree / "ntk_lab" / "__init__.py").exists():
    return tree
  tree.mkdir(parents=True, exist_ok=True)
  archive = subprocess.run(["git", "archive", PREVIOUS, "ntk_lab"], cwd=ROOT, capture_output=True)
  if archive.returncode != 0:
    return None
  subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
  return tree


def quad_cell(args):
  """In a fresh process: time a quadrature kernel (activation args.qact) for one N, one JSON line."""
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl
  from benchmarks._timing import median_time

  jax.config.update("jax_enable_x64", True)
  act = nl.Activation("custom", fn=jax.scipy.special.erf) if args.qact == "erf_callable" else args.qact
  net = nl.MLP((512,) * DEPTH, activation=act, W_std=1.5, b_std=0.1)
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, IN_DIM), jnp.float64)
  kw = {} if args.qnodes is None else {"quadrature_nodes": args.qnodes}
  fn = lambda x: nl.analytic_kernel(net, x, **kw)  # noqa: E731 - jitted inside
  t0 = time.perf_counter()
  jax.block_until_ready(fn(x))
  first = time.perf_counter() - t0
  med, times = median_time(fn, x, repeats=args.repeats, warmup=0)
  print(json.dumps({"median_s": med, "times_s": times, "first_call_s": first}))


def run_cell(args):
  """In a fresh process: time ntk_lab's analytic kernel for one N and print one JSON line."""
  if args.qact:
    return quad_cell(args)
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl
  from benchmarks._timing import timed_cell

  net = nl.MLP((512,) * DEPTH, activation="relu", b_std=0.1)
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, IN_DIM), jnp.float32)
  x.block_until_ready()
  fn = lambda x: nl.analytic_kernel(net, x)  # noqa: E731 - jitted inside
  print(json.dumps(timed_cell(fn, x, args.repeats)))


def copy_rate(repeats):
  """Bytes per second read + written by a jitted copy of a 512 MiB float32 array (median)."""
  import jax
  import jax.numpy as jnp

  from benchmarks._timing import median_time

  a = jnp.ones((2**27,), jnp.float32)
  t, _ = median_time(jax.jit(lambda a: a * 1.0000001), a, repeats=repeats)
  return 2 * a.nbytes / t


def main(argv=None):
  parser, cell = bench_parser(
    __doc__,
    "bench_analytic",
    repeats=3,
    timeout=1800,
    cells_dir="cells_analytic",
    quick_help="N = 1000 only",
    cell_help="(internal) time ntk_lab for one N in this process",
  )
  cell.add_argument("--n", type=int, required=True)
  cell.add_argument("--qact", default=None, help="(internal) time this quadrature activation")
  cell.add_argument("--qnodes", type=int, default=None, help="(internal) force the node count")
  parser.add_argument("--no-nt", action="store_true", help="skip neural-tangents")
  parser.add_argument("--quadrature", action="store_true", help="also time quadrature kernels")
  parser.add_argument("--quad-n", type=int, default=1000, help="N of the quadrature timings")
  parser.add_argument("--sizes", type=int, nargs="+", default=None, help="N of the ReLU table")
  args = parser.parse_args(argv)
  if subcommand(args, "bench_analytic", run_cell, to_markdown):
    return None

  rate = copy_rate(args.repeats)
  print(f"copy rate: {rate / 1e9:.1f} GB/s", flush=True)
  use_nt = not args.no_nt and NT_PYTHON.exists()
  if not args.no_nt and not use_nt:
    print("neural-tangents environment not found (make reference): NT columns left empty")
  out = pathlib.Path(args.out)
  cached = CellCache(out / "cells_analytic", resume=args.resume, timeout=args.timeout, cwd=ROOT)

  records = []
  for n in (1000,) if args.quick else tuple(args.sizes or SIZES):
    rec = {"n": n, "output_bytes": 2 * n * n * 4, "impls": {}}
    rec["impls"]["ntk_lab"] = cached(
      f"{n}_ntk_lab",
      [
        sys.executable,
        "-m",
        "benchmarks.bench_analytic",
        "cell",
        "--n",
        str(n),
        "--repeats",
        str(args.repeats),
      ],
    )
    if use_nt:
      for impl, flag in (("nt_kernel_fn", "kernel_fn"), ("nt_batch", "batch")):
        cmd = [
          str(NT_PYTHON),
          str(ROOT / "reference" / "nt_oracle.py"),
          "bench-analytic",
          "--n",
          str(n),
          "--depth",
          str(DEPTH),
          "--impl",
          flag,
          "--repeats",
          str(args.repeats),
        ]
        rec["impls"][impl] = cached(f"{n}_{impl}", cmd)
    for m in rec["impls"].values():
      if "median_s" in m:
        m["output_gb_per_s"] = rec["output_bytes"] / m["median_s"] / 1e9
        m["extra_mb"] = m["peak_rss_mb"] - m["baseline_rss_mb"]
    ours = rec["impls"]["ntk_lab"].get("median_s")
    nt_times = {k: v["median_s"] for k, v in rec["impls"].items() if k != "ntk_lab" and "median_s" in v}
    if ours and nt_times:
      best = min(nt_times, key=nt_times.get)
      rec["nt_best"] = {"impl": best, "median_s": nt_times[best], "speedup": nt_times[best] / ours}
    records.append(rec)
    print(
      json.dumps({"n": n, **{k: v.get("median_s", v.get("error")) for k, v in rec["impls"].items()}}),
      flush=True,
    )

  if args.quadrature:
    scratch = tempfile.TemporaryDirectory(prefix="ntk_lab_previous_")  # removed at exit
    previous = previous_tree(pathlib.Path(scratch.name))
    for act in QUAD_ACTIVATIONS:
      rec = {"quadrature": act, "n": args.quad_n, "impls": {}}
      for tag, nodes in (("default", None), ("nodes_32", 32), ("previous_gh64", None)):
        if tag == "previous_gh64" and previous is None:
          rec["impls"][tag] = {"error": f"no git history: commit {PREVIOUS} not found"}
          continue
        cmd = [
          sys.executable,
          "-m",
          "benchmarks.bench_analytic",
          "cell",
          "--n",
          str(args.quad_n),
          "--repeats",
          str(args.repeats),
          "--qact",
          act,
        ] + ([] if nodes is None else ["--qnodes", str(nodes)])
        # the previous rule runs with the extracted tree as working directory: `-m` imports from it
        # (and finds `benchmarks` through PYTHONPATH)
        cwd = previous if tag == "previous_gh64" else None
        env = dict(os.environ, PYTHONPATH=str(ROOT)) if cwd else None
        rec["impls"][tag] = cached(f"quad_{act}_{args.quad_n}_{tag}", cmd, cwd=cwd, env=env)
      records.append(rec)
      print(
        json.dumps(
          {"quadrature": act, **{k: v.get("median_s", v.get("error")) for k, v in rec["impls"].items()}}
        ),
        flush=True,
      )

  meta = machine_meta(args.repeats, copy_gb_per_s=rate / 1e9)
  write_report(out, "bench_analytic", to_markdown, meta, records)


def _cell(m, out_bytes):
  if "median_s" not in m:
    return "failed: " + m.get("error", "?")[:60]
  return (
    f"{m['median_s']:,.2f} s · +{m['extra_mb'] / 1024:,.1f} GB "
    f"({m['extra_mb'] * 2**20 / out_bytes:.1f}× output) · {m['output_gb_per_s']:.2f} GB/s"
  )


def to_markdown(meta, records):
  from benchmarks._timing import markdown_table

  quad = [r for r in records if "quadrature" in r]
  records = [r for r in records if "quadrature" not in r]
  impls = [i for i in IMPLS if any(i in r["impls"] for r in records)]
  rows = []
  for r in records:
    row = [f"{r['n']:,}", f"{r['output_bytes'] / 2**30:.2f} GB"]
    row += [_cell(r["impls"][i], r["output_bytes"]) if i in r["impls"] else "–" for i in impls]
    b = r.get("nt_best")
    row.append(f"**{b['speedup']:.1f}×** (vs {b['impl']})" if b else "–")
    rows.append(row)
  names = {
    "ntk_lab": "ntk_lab analytic_kernel",
    "nt_kernel_fn": "NT kernel_fn (jit)",
    "nt_batch": "NT nt.batch(1000)",
  }
  header = ["N", "output (nngp + ntk)"] + [names[i] for i in impls] + ["speed-up vs NT's best"]
  return (
    f"Infinite-width NNGP + NTK, depth-{DEPTH} ReLU MLP (NTK param., b_std 0.1), in_dim {IN_DIM}, "
    f"float32, x2 = None. Each cell: median of {meta['repeats']} runs · peak RSS above the process "
    f"baseline (and as a multiple of the output's size) · output bytes written per second, against a "
    f"measured copy rate of {meta['copy_gb_per_s']:.1f} GB/s (read + write). {meta['device']} "
    f"({meta['cpus']} cores), jax {meta['jax']}, {meta['date']}.\n\n"
    + markdown_table(header, rows)
    + "\n"
    + (_quad_markdown(quad) if quad else "")
  )


def _quad_markdown(quad):
  from benchmarks._timing import markdown_table

  def t(m, key="median_s"):
    return f"{m[key]:,.2f} s" if key in m else "failed: " + m.get("error", "?")[:60]

  rows = [
    [
      r["quadrature"],
      f"{r['n']:,}",
      t(r["impls"]["default"]),
      t(r["impls"]["default"], "first_call_s"),
      t(r["impls"]["nodes_32"]),
      t(r["impls"]["previous_gh64"]) if "previous_gh64" in r["impls"] else "–",
      _ratio(r["impls"]["default"], r["impls"].get("previous_gh64", {})),
    ]
    for r in quad
  ]
  cond = f" Conditions: {quad[0]['conditions']}." if quad[0].get("conditions") else ""
  return (
    "\nQuadrature kernels: depth-3 MLP, W_std 1.5, b_std 0.1, in_dim 100, float64, x2 = None; "
    "median of repeated calls (node counts chosen once per call, included) and the first call "
    f"(compilation included).{cond}\n\n"
    + markdown_table(
      [
        "activation",
        "N",
        "default accuracy (1e-7)",
        "first call",
        "32 nodes forced",
        "previous: 64-node Gauss–Hermite, no estimate",
        "default / previous",
      ],
      rows,
    )
    + "\n"
  )


def _ratio(new, old):
  if "median_s" not in new or "median_s" not in old:
    return "–"
  return f"{new['median_s'] / old['median_s']:.2f}×"


if __name__ == "__main__":
  main()
