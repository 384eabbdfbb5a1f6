"""Benchmark of convolutional kernels: ntk_lab against neural-tangents, side by side in one run.

    python -m benchmarks.bench_conv --out results          # or: make bench-conv
    python -m benchmarks.bench_conv --quick --no-nt        # the 8 × 8 cells only, ntk_lab only

Infinite-width NNGP + NTK (x2 = None, float32) of
  (a) a CNN with `Flatten`: depth × [Conv(3 × 3, SAME), ReLU], Flatten, Dense — pixel-diagonal
      covariances suffice;
  (b) a CNTK with `GlobalAvgPool`: the same body, GlobalAvgPool, Dense — every pair of positions;
  (c) Myrtle-5 (Shankar et al. 2020) adapted to the input size: [Conv, ReLU] × 3, AvgPool(2, 2),
      [Conv, ReLU], AvgPool(2, 2), [Conv, ReLU], AvgPool(2, 2), Flatten, Dense,
at depths 5 and 10 on 8 × 8 × 3 and 16 × 16 × 3 inputs, each in a fresh process per library
(median of `--repeats` calls after a warm-up, peak resident memory above the process's baseline),
reported per kernel entry (time / N²). N is chosen per cell so that neural-tangents finishes in
minutes. Then the empirical NTK of a small CNN (two 3 × 3 convolutions of 32 channels, Flatten,
Dense(10)) on N = 32 inputs of 8 × 8 × 3 by each of ntk_lab's routes and NT's three
implementations. The FLOP rate of ntk_lab's kernels is reported against the measured float32
elementwise rate (a fused multiply-add sweep). Writes ``bench_conv.json`` and ``bench_conv.md``.
"""

from __future__ import annotations

import json
import sys

from benchmarks._timing import CellCache, bench_parser, machine_meta, subcommand, write_report
from benchmarks.bench_empirical_ntk import NT_PYTHON, ROOT

# (name, tree builder, per-point input shape, N)
WIDTH = 64


def _conv(padding="SAME"):
  return ["conv", WIDTH, [3, 3], None, padding, 1.4, 0.1, "ntk"]


def _body(depth):
  return [layer for _ in range(depth) for layer in (_conv(), ["act", {"activation": "relu"}])]


def cnn_flatten(depth):
  return ["serial", [*_body(depth), ["flatten"], ["dense", 1, 1.0, 0.1, "ntk"]]]


def cntk_gap(depth):
  return ["serial", [*_body(depth), ["gap"], ["dense", 1, 1.0, 0.1, "ntk"]]]


def myrtle5():
  pool = ["avgpool", [2, 2], [2, 2], "VALID"]
  return [
    "serial",
    [*_body(3), pool, *_body(1), pool, *_body(1), pool, ["flatten"], ["dense", 1, 1.0, 0.0, "ntk"]],
  ]


def analytic_cells(quick: bool):
  cells = []
  for side in (8,) if quick else (8, 16):
    for depth in (5, 10):
      cells.append(
        (f"cnn-flatten-d{depth}-{side}", cnn_flatten(depth), (side, side, 3), 256 if side == 8 else 128)
      )
      cells.append((f"cntk-gap-d{depth}-{side}", cntk_gap(depth), (side, side, 3), 32 if side == 8 else 8))
    cells.append((f"myrtle5-{side}", myrtle5(), (side, side, 3), 32 if side == 8 else 8))
  return cells


EMPIRICAL_TREE = [
  "serial",
  [
    ["conv", 32, [3, 3], None, "SAME", 1.4, 0.1, "ntk"],
    ["act", {"activation": "relu"}],
    ["conv", 32, [3, 3], None, "SAME", 1.4, 0.1, "ntk"],
    ["act", {"activation": "relu"}],
    ["flatten"],
    ["dense", 10, 1.0, 0.1, "ntk"],
  ],
]
EMPIRICAL_SHAPE, EMPIRICAL_N = (8, 8, 3), 32
METHODS = ("jacobian", "ntvp", "auto")


def build(tree):
  """ntk_lab's network for a layer tree in the oracle's format (`reference/nt_oracle.py`)."""
  import ntk_lab as nl

  L = nl.layers
  kind = tree[0]
  if kind == "serial":
    return L.serial(*(build(t) for t in tree[1]))
  if kind == "conv":
    out_chan, filt, strides, padding, w, b, param = tree[1:]
    return L.Conv(out_chan, tuple(filt), strides and tuple(strides), padding, w, b, param)
  if kind == "act":
    return L.Activation(tree[1]["activation"])
  if kind == "avgpool":
    return L.AvgPool(tuple(tree[1]), tree[2] and tuple(tree[2]), tree[3])
  if kind == "gap":
    return L.GlobalAvgPool()
  if kind == "flatten":
    return L.Flatten()
  if kind == "dense":
    return L.Dense(tree[1], tree[2], tree[3], tree[4])
  raise ValueError(f"unknown layer kind {kind!r}")


def run_cell(args):
  """In a fresh process: time one ntk_lab cell and print one JSON line."""
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl
  from benchmarks._timing import timed_cell

  net = build(json.loads(args.tree))
  shape = tuple(json.loads(args.shape))
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, *shape), jnp.float32)
  x.block_until_ready()
  if args.method is None:
    fn = lambda x: nl.analytic_kernel(net, x)  # noqa: E731 - jitted inside
  else:
    params = net.init(jax.random.PRNGKey(0), shape, dtype=jnp.float32)
    fn = lambda x: nl.empirical_ntk(net, params, x, method=args.method)  # noqa: E731
  print(json.dumps(timed_cell(fn, x, args.repeats)))


def elementwise_rate(repeats):
  """Float32 multiply-adds per second of a jitted elementwise sweep over 64 Mi entries (median)."""
  import jax
  import jax.numpy as jnp

  from benchmarks._timing import median_time

  a = jnp.linspace(0.0, 1.0, 2**26, dtype=jnp.float32)
  t, _ = median_time(jax.jit(lambda a: a * 1.0000001 + 0.5), a, repeats=repeats)
  return 2 * a.size / t


def _flops_per_entry(tree, shape):
  """Floating-point operations per pair of points of ntk_lab's rule (a count of the rule's
  elementwise work: 2 per filter offset and spatial axis of a convolution, ~40 per ReLU entry
  with its derivative, over the layout's entries)."""
  side = shape[0]
  full = any(layer[0] in ("gap", "avgpool") for layer in tree[1])
  flops, size = 0.0, side * side
  for layer in tree[1]:
    entries = size * size if full else size
    if layer[0] == "conv":
      flops += entries * (2 * 3 * 2 + 4)  # two axes × 3 offsets × (add + scale), Σ and Θ
    elif layer[0] == "act":
      flops += entries * 40
    elif layer[0] == "avgpool":
      side //= 2
      size = side * side
  return flops


def main(argv=None):
  parser, cell = bench_parser(
    __doc__,
    "bench_conv",
    repeats=3,
    timeout=1800,
    cells_dir="cells_conv",
    quick_help="8 × 8 cells only",
    cell_help="(internal) time ntk_lab for one cell in this process",
  )
  cell.add_argument("--tree", required=True)
  cell.add_argument("--shape", required=True)
  cell.add_argument("--n", type=int, required=True)
  cell.add_argument("--method", default=None)
  parser.add_argument("--no-nt", action="store_true", help="skip neural-tangents")
  args = parser.parse_args(argv)
  if subcommand(args, "bench_conv", run_cell, to_markdown):
    return None

  import pathlib

  rate = elementwise_rate(args.repeats)
  print(f"elementwise rate: {rate / 1e9:.1f} GFLOP/s", flush=True)
  use_nt = not args.no_nt and NT_PYTHON.exists()
  out = pathlib.Path(args.out)
  cached = CellCache(out / "cells_conv", resume=args.resume, timeout=args.timeout, cwd=ROOT)

  def ours(name, tree, shape, n, method=None):
    cmd = [sys.executable, "-m", "benchmarks.bench_conv", "cell", "--tree", json.dumps(tree)]
    cmd += ["--shape", json.dumps(list(shape)), "--n", str(n), "--repeats", str(args.repeats)]
    return cached(name, cmd + ([] if method is None else ["--method", method]))

  def theirs(name, tree, shape, n, mode, impl=None):
    cmd = [str(NT_PYTHON), str(ROOT / "reference" / "nt_oracle.py"), "bench-conv", "--tree", json.dumps(tree)]
    cmd += ["--shape", json.dumps(list(shape)), "--n", str(n), "--repeats", str(args.repeats), "--mode", mode]
    return cached(name, cmd + ([] if impl is None else ["--impl", str(impl)]))

  records = []
  for name, tree, shape, n in analytic_cells(args.quick):
    rec = {"cell": name, "kind": "analytic", "n": n, "shape": list(shape), "impls": {}}
    rec["impls"]["ntk_lab"] = ours(f"{name}_ntk_lab", tree, shape, n)
    if use_nt:
      rec["impls"]["nt_kernel_fn"] = theirs(f"{name}_nt", tree, shape, n, "analytic")
    m = rec["impls"]["ntk_lab"]
    if "median_s" in m:
      rec["gflop_per_s"] = _flops_per_entry(tree, shape) * n * (n + 1) / 2 / m["median_s"] / 1e9
    records.append(rec)
    print(
      json.dumps({"cell": name, **{k: v.get("median_s", v.get("error")) for k, v in rec["impls"].items()}}),
      flush=True,
    )

  rec = {
    "cell": "cnn-empirical",
    "kind": "empirical",
    "n": EMPIRICAL_N,
    "shape": list(EMPIRICAL_SHAPE),
    "impls": {},
  }
  for method in METHODS:
    rec["impls"][method] = ours(f"empirical_{method}", EMPIRICAL_TREE, EMPIRICAL_SHAPE, EMPIRICAL_N, method)
  if use_nt:
    for impl in (1, 2, 3):
      rec["impls"][f"nt_impl_{impl}"] = theirs(
        f"empirical_nt_{impl}", EMPIRICAL_TREE, EMPIRICAL_SHAPE, EMPIRICAL_N, "empirical", impl
      )
  records.append(rec)
  print(
    json.dumps(
      {"cell": "cnn-empirical", **{k: v.get("median_s", v.get("error")) for k, v in rec["impls"].items()}}
    ),
    flush=True,
  )

  meta = machine_meta(args.repeats, elementwise_gflop_per_s=rate / 1e9)
  write_report(out, "bench_conv", to_markdown, meta, records)


def _t(m, entries):
  if "median_s" not in m:
    return "failed: " + m.get("error", "?")[:60]
  extra = (m["peak_rss_mb"] - m["baseline_rss_mb"]) / 1024
  return f"{m['median_s'] * 1e3 / entries:,.3f} ms · +{extra:,.2f} GB"


def to_markdown(meta, records):
  from benchmarks._timing import markdown_table

  rows = []
  for r in records:
    if r["kind"] != "analytic":
      continue
    entries = r["n"] ** 2
    ours, nt = r["impls"]["ntk_lab"], r["impls"].get("nt_kernel_fn", {})
    speed = mem = "–"
    if "median_s" in ours and "median_s" in nt:
      speed = f"**{nt['median_s'] / ours['median_s']:.1f}×**"
      ours_mb = max(ours["peak_rss_mb"] - ours["baseline_rss_mb"], 1.0)
      mem = f"{ours_mb / max(nt['peak_rss_mb'] - nt['baseline_rss_mb'], 1.0):.2f}×"
    flops = (
      f"{r['gflop_per_s']:.1f} ({r['gflop_per_s'] / meta['elementwise_gflop_per_s']:.0%})"
      if "gflop_per_s" in r
      else "–"
    )
    rows.append(
      [
        r["cell"],
        "×".join(map(str, r["shape"])),
        r["n"],
        _t(ours, entries),
        _t(nt, entries) if nt else "–",
        speed,
        mem,
        flops,
      ]
    )
  text = (
    f"Infinite-width NNGP + NTK of convolutional networks (width-independent; ReLU, Conv 3 × 3 SAME, "
    f"σ_w 1.4, σ_b 0.1, float32, x2 = None). Each cell: time per kernel entry (median of "
    f"{meta['repeats']} calls / N²) · peak resident memory above the process's baseline. "
    f"{meta['device']} ({meta['cpus']} cores), jax {meta['jax']}, {meta['date']}; measured "
    f"elementwise rate {meta['elementwise_gflop_per_s']:.1f} GFLOP/s.\n\n"
    + markdown_table(
      [
        "network",
        "input",
        "N",
        "ntk_lab",
        "NT kernel_fn (jit)",
        "speed-up",
        "memory vs NT",
        "ntk_lab GFLOP/s (of elementwise rate)",
      ],
      rows,
    )
  )
  emp = [r for r in records if r["kind"] == "empirical"]
  if emp:
    r = emp[0]
    cells = [
      [k, f"{v['median_s']:.3f} s" if "median_s" in v else "failed: " + v.get("error", "?")[:60]]
      for k, v in r["impls"].items()
    ]
    text += (
      f"\n\nEmpirical NTK (traced over outputs) of a CNN [Conv(32, 3 × 3, SAME), ReLU] × 2, Flatten, "
      f"Dense(10), N = {r['n']} inputs of {'×'.join(map(str, r['shape']))}, float32: median of "
      f"{meta['repeats']} calls.\n\n" + markdown_table(["route", "time"], cells)
    )
  return text + "\n"


if __name__ == "__main__":
  main()
