"""The layer model against the code before it, in one run: the structured empirical NTK and the
infinite-width kernels of the same MLPs, timed by the current `ntk_lab` and by the last commit
before the layer model (`PREVIOUS`, extracted with ``git archive`` into a temporary folder and
imported in the cell's own process). Cells alternate between the two versions, so both see the
same machine conditions, over several rounds; each cell is the median over rounds of the median of
several calls after a warm-up (compilation).

    python -m benchmarks.bench_layers --out results            # the table (N ≥ 1000)
    python -m benchmarks.bench_layers cell --version new --kind structured --n 1000 --width 512

Writes ``bench_layers.json`` and ``bench_layers.md`` with the ratio new/old time per cell; the
layer model must keep ≥ 0.95× the old speed (ratio ≤ 1/0.95) on every cell with N ≥ 1000.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREVIOUS = "7f26445"  # the last commit before the layer model
IN_DIM, DEPTH = 100, 3
CELLS = [
  ("structured", 1000, 512),
  ("structured", 1000, 1024),
  ("structured", 2000, 1024),
  ("structured", 4000, 512),
  ("analytic-relu", 2000, 0),
  ("analytic-relu", 5000, 0),
  ("analytic-erf", 5000, 0),
]


def previous_tree(directory: pathlib.Path) -> pathlib.Path:
  tree = directory / f"ntk_lab_{PREVIOUS}"
  tree.mkdir(parents=True, exist_ok=True)
  archive = subprocess.run(["git", "archive", PREVIOUS, "ntk_lab"], cwd=ROOT, capture_output=True, check=True)
  subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
  return tree


def cell(args):
  """In a fresh process: one timing, printed as one JSON line."""
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl

  repeats = args.repeats
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, IN_DIM), jnp.float32)
  if args.kind == "structured":
    net = nl.MLP((args.width,) * DEPTH, activation="relu", b_std=0.1)
    params = net.init(jax.random.PRNGKey(0), IN_DIM, dtype=jnp.float32)
    jitted = jax.jit(lambda x: nl.empirical_ntk(net, params, x, method="structured"))
    fn = lambda: nl.empirical_ntk(net, params, x, method="structured")
  else:
    act = args.kind.split("-")[1]
    net = nl.MLP((512,) * DEPTH, activation=act, b_std=0.1)
    jitted = jax.jit(lambda x: nl.analytic_kernel(net, x).ntk)
    fn = lambda: nl.analytic_kernel(net, x)
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  times.sort()
  # The compiled program of the same call under jit, whose XLA cost analysis counts FLOPs and bytes
  # accessed: machine-independent, so it tells a real change of work from timing noise.
  cost = jitted.lower(x).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  print(
    json.dumps(
      {
        "median_s": times[len(times) // 2],
        "best_s": times[0],
        "times": times,
        "flops": float(cost.get("flops", float("nan"))),
        "bytes": float(cost.get("bytes accessed", float("nan"))),
        "library": nl.__file__,
      }
    )
  )


def run(kind, n, width, version, previous, repeats):
  env_path = str(previous) if version == "old" else str(ROOT)
  cmd = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {env_path!r}); sys.path.insert(1, {str(ROOT)!r}); "
    "from benchmarks.bench_layers import main; main()",
    "cell",
    "--version",
    version,
    "--kind",
    kind,
    "--n",
    str(n),
    "--width",
    str(width),
    "--repeats",
    str(repeats),
  ]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
  if out.returncode != 0:
    raise RuntimeError(out.stderr[-2000:])
  record = json.loads(out.stdout.strip().splitlines()[-1])
  want = str(previous) if version == "old" else str(ROOT)
  assert record["library"].startswith(want), (record["library"], want)
  return record


def to_markdown(meta, records):
  lines = [
    f"Layer model against commit {meta['previous']} (same run, cells alternating; float32, MLP depth "
    f"{DEPTH}, input dimension {IN_DIM}; analytic kernels of width-independent MLPs; per cell the "
    f"median over {meta.get('rounds', 1)} alternating rounds of the median of {meta['repeats']} "
    f"calls after a warm-up; the fastest calls: the minimum over all calls of each version; FLOPs and "
    f"bytes accessed: XLA's cost analysis of the same call compiled under `jax.jit`). {meta['machine']}",
    "",
    "| kernel | N | width | before (s) | layer model (s) | speed, before = 1 | speed, fastest calls | "
    "FLOPs, before = 1 | bytes accessed, before = 1 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for r in records:
    width = r["width"] or "—"
    lines.append(
      f"| {r['kind']} | {r['n']} | {width} | {r['old']:.3f} | {r['new']:.3f} | {r['old'] / r['new']:.2f}× "
      f"| {r['old_best'] / r['new_best']:.2f}× | {r['new_flops'] / r['old_flops']:.3f} | {r['new_bytes'] / r['old_bytes']:.3f} |"
    )
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command")
  c = sub.add_parser("cell")
  c.add_argument("--version", choices=("old", "new"), required=True)
  c.add_argument("--kind", required=True)
  c.add_argument("--n", type=int, required=True)
  c.add_argument("--width", type=int, default=0)
  c.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", default="results")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--rounds", type=int, default=3, help="alternating old/new processes per cell")
  parser.add_argument("--machine", default="2-core CPU", help="a line describing the machine conditions")
  args = parser.parse_args(argv)
  if args.command == "cell":
    return cell(args)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  records = []
  with tempfile.TemporaryDirectory() as tmp:
    previous = previous_tree(pathlib.Path(tmp))
    for kind, n, width in CELLS:
      # `rounds` alternating pairs of processes, the median of their medians: a burst of load from
      # another process lands on one round, not on one version.
      olds, news = [], []
      for _ in range(args.rounds):
        olds.append(run(kind, n, width, "old", previous, args.repeats))
        news.append(run(kind, n, width, "new", previous, args.repeats))
      old = statistics.median(r["median_s"] for r in olds)
      new = statistics.median(r["median_s"] for r in news)
      # the fastest call of each version over all rounds: load from other processes only ever
      # slows a call down, so the minimum is the least disturbed reading of the same program
      old_best, new_best = min(r["best_s"] for r in olds), min(r["best_s"] for r in news)
      records.append(
        {
          "kind": kind,
          "n": n,
          "width": width,
          "old": old,
          "new": new,
          "old_best": old_best,
          "new_best": new_best,
          "old_rounds": [r["median_s"] for r in olds],
          "new_rounds": [r["median_s"] for r in news],
          "old_flops": olds[0]["flops"],
          "new_flops": news[0]["flops"],
          "old_bytes": olds[0]["bytes"],
          "new_bytes": news[0]["bytes"],
        }
      )
      print(
        f"{kind} N={n} width={width}: before {old:.3f} s, layer model {new:.3f} s ({old / new:.2f}×; "
        f"fastest calls {old_best / new_best:.2f}×)",
        flush=True,
      )
  meta = {"previous": PREVIOUS, "repeats": args.repeats, "rounds": args.rounds, "machine": args.machine}
  (out / "bench_layers.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
  (out / "bench_layers.md").write_text(to_markdown(meta, records))


if __name__ == "__main__":
  main()
