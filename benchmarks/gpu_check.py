"""One-command GPU check: reduced, GPU-sized cells of every benchmark and two width sweeps.

    make gpu-check                                        # on a CUDA machine: installs, then runs
    python -m benchmarks.gpu_check --out results/gpu_check
    python -m benchmarks.gpu_check --cpu-smoke --out /tmp/smoke   # the same code paths, tiny cells

Sections, each in its own subprocess under its own time cap (a slow or failing section cannot
take the others' time; what it finished before the cap is kept):

* ``empirical_ntk``: cells of benchmarks/bench_empirical_ntk.py (its ``run_cell``; structured,
  jacobian and ntvp routes; a cell whose estimated time exceeds the cap is skipped with the estimate);
* ``analytic``: cells of benchmarks/bench_analytic.py (ReLU NNGP + NTK over N, one quadrature cell);
* ``training``: cells of benchmarks/bench_training.py (gradient flow and optax GD over widths);
* ``conv``: cells of benchmarks/bench_conv.py (infinite-width CNTK with global average pooling,
  CNN with `Flatten` and Myrtle-5 on 16 × 16 × 3 images; the empirical NTK of a small CNN);
* ``kernel_convergence`` and ``nn_vs_ntk``: the runner's sweeps (configs/*.yaml, via
  ``python -m ntk_lab run … --set …``) up to width 2^16.

Writes ``gpu_check.json`` and ``gpu_check.md`` in ``--out`` after every section (so an interrupted
check leaves the sections finished so far), naming the device (``jax.devices()[0].device_kind``).
Sized to finish within 8 minutes on an H100/H200-class GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTIONS = ("empirical_ntk", "analytic", "training", "conv", "kernel_convergence", "nn_vs_ntk")
SWEEP_WIDTHS = [2**10, 2**12, 2**14, 2**16]

# What each section runs, and its time cap in seconds: on a GPU (caps sum to 450 s, under the
# 480 s budget with start-up; a section starting late gets what is left), and in the CPU smoke
# mode (seconds of work each; the caps there only guard a stuck process on a loaded machine).
GPU = {
  "empirical_ntk": {
    "cap_s": 90,
    "repeats": 3,
    "max_seconds": 20.0,
    "max_gb": 60.0,
    "rate_sizes": [4096, 8192],
    "cells": [
      ["structured", 4000, 2048, 3],
      ["structured", 16000, 4096, 3],
      ["jacobian", 1000, 512, 2],
      ["jacobian", 4000, 1024, 2],
      ["ntvp", 1000, 512, 2],
      ["ntvp", 2000, 1024, 2],
    ],
  },
  "analytic": {"cap_s": 60, "repeats": 3, "sizes": [1000, 5000, 20000, 40000], "quad": ["tanh", 1000]},
  "training": {"cap_s": 90, "repeats": 1, "n": 256, "gd_steps": 1000, "widths": [1024, 16384, 65536]},
  # [network, depth, image side, N]; then [route, N] of the empirical CNN NTK
  "conv": {
    "cap_s": 50,
    "repeats": 3,
    "cells": [["cntk_gap", 5, 16, 256], ["cnn_flatten", 10, 16, 1000], ["myrtle5", 5, 16, 256]],
    "empirical": [["jacobian", 256], ["ntvp", 256]],
  },
  # float64 (the config's dtype; TF32 matmuls would blur the width^(-1/2) error), one seed: the
  # 2^16 × 2^16 hidden layer alone is 34 GB.
  "kernel_convergence": {
    "cap_s": 80,
    "set": [f"sweep.widths={SWEEP_WIDTHS}", "sweep.seeds=[0]"],
  },
  # one hidden layer: gradient flow holds ~10 copies of θ, too many at 2^16 × 2^16.
  "nn_vs_ntk": {
    "cap_s": 80,
    "set": ["model.depth=1", "sweep.widths=[1024, 8192, 65536]", "sweep.seeds=[0, 1]"],
  },
}
SMOKE = {
  "empirical_ntk": {
    "cap_s": 300,
    "repeats": 1,
    "max_seconds": 30.0,
    "max_gb": 1.0,
    "rate_sizes": [256],
    "cells": [["structured", 64, 64, 2], ["jacobian", 16, 16, 1], ["ntvp", 16, 16, 1]],
  },
  "analytic": {"cap_s": 300, "repeats": 1, "sizes": [64], "quad": ["tanh", 8]},
  "training": {"cap_s": 300, "repeats": 1, "n": 16, "gd_steps": 20, "widths": [32]},
  "conv": {"cap_s": 300, "repeats": 1, "cells": [["cntk_gap", 2, 6, 4]], "empirical": [["auto", 4]]},
  "kernel_convergence": {
    "cap_s": 300,
    "set": ["sweep.widths=[16, 32]", "sweep.seeds=[0]", "data.n=8"],
  },
  "nn_vs_ntk": {
    "cap_s": 300,
    "set": [
      "model.depth=1",
      "sweep.widths=[16]",
      "sweep.seeds=[0]",
      "data.n=8",
      "data.n_test=8",
      "training.time=1.0",
      "training.n_times=5",
    ],
  },
}
METRIC = {"kernel_convergence": "rel_error", "nn_vs_ntk": "final_gap"}


# ------------------------------------------------------------------ in the section subprocess
def _captured(fn, args) -> dict:
  """Runs a benchmark's ``run_cell(args)`` (which prints one JSON line) and returns that line."""
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    fn(args)
  lines = [l for l in buf.getvalue().splitlines() if l.startswith("{")]
  return json.loads(lines[-1])


def _matmul_rate(sizes, repeats):
  """The best median fp32 matmul FLOP/s over square `sizes` (as bench_empirical_ntk.matmul_rate)."""
  import jax
  import jax.numpy as jnp

  from benchmarks._timing import median_time

  best = 0.0
  for n in sizes:
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    t, _ = median_time(jax.jit(lambda a, b: a @ b), a, a, repeats=repeats)
    best = max(best, 2 * n**3 / t)
  return best


def _cells_empirical(spec):
  """Yields (cell, thunk) pairs: the thunk times the cell and returns its measurements."""
  from benchmarks import bench_empirical_ntk as bench

  rate = _matmul_rate(spec["rate_sizes"], spec["repeats"])
  yield {"matmul_gflops_per_s": rate / 1e9}, dict
  for method, n, width, depth in spec["cells"]:
    cell = {"method": method, "n": n, "width": width, "depth": depth, "params": bench.n_params(width, depth)}
    secs, nbytes = bench.estimate(method, n, width, depth, rate)
    if secs > spec["max_seconds"] or nbytes > spec["max_gb"] * 2**30:
      yield {**cell, "skipped": f"est. {secs:.0f} s, {nbytes / 2**30:.1f} GB"}, dict
      continue
    args = argparse.Namespace(
      n=n, width=width, depth=depth, method=method, repeats=spec["repeats"], max_gb=spec["max_gb"]
    )

    def timed(args=args):
      res = _captured(bench.run_cell, args)
      if "flops" in res:
        res["gflops_per_s"] = res["flops"] / res["median_s"] / 1e9
        res["fraction_of_matmul"] = res["flops"] / res["median_s"] / rate
      return res

    yield cell, timed


def _cells_analytic(spec):
  from benchmarks import bench_analytic as bench

  for n in spec["sizes"]:

    def timed(n=n):
      res = _captured(
        bench.run_cell, argparse.Namespace(n=n, qact=None, qnodes=None, repeats=spec["repeats"])
      )
      return {**res, "output_gb_per_s": 2 * n * n * 4 / res["median_s"] / 1e9}

    yield {"kernel": "relu, float32", "n": n}, timed
  act, n = spec["quad"]  # last: the quadrature cell switches this process to float64
  args = argparse.Namespace(n=n, qact=act, qnodes=None, repeats=spec["repeats"])
  yield {"kernel": f"{act} (quadrature), float64", "n": n}, lambda: _captured(bench.run_cell, args)


def _cells_training(spec):
  from benchmarks import bench_training as bench

  # The benchmark's problem size is module-level; the check sets its own (N points, GD steps).
  bench.N, bench.GD_STEPS = spec["n"], spec["gd_steps"]
  bench.WIDTHS = (256,)  # its compile-vs-reuse table runs at this width (only if it is a cell)
  for width in spec["widths"]:
    args = argparse.Namespace(width=width, repeats=spec["repeats"])
    yield (
      {"width": width, "n": spec["n"], "gd_steps": spec["gd_steps"]},
      lambda args=args: _captured(bench.run_cell, args),
    )


def _cells_conv(spec):
  import json as _json

  from benchmarks import bench_conv as bench

  trees = {
    "cntk_gap": bench.cntk_gap,
    "cnn_flatten": bench.cnn_flatten,
    "myrtle5": lambda depth: bench.myrtle5(),
  }
  for name, depth, side, n in spec["cells"]:
    args = argparse.Namespace(
      tree=_json.dumps(trees[name](depth)),
      shape=f"[{side}, {side}, 3]",
      n=n,
      method=None,
      repeats=spec["repeats"],
    )

    def timed(args=args, n=n):
      res = _captured(bench.run_cell, args)
      return {**res, "ms_per_entry": res["median_s"] * 1e3 / n**2}

    yield {"network": f"{name}, depth {depth}", "input": f"{side}×{side}×3", "n": n}, timed
  for method, n in spec["empirical"]:
    args = argparse.Namespace(
      tree=_json.dumps(bench.EMPIRICAL_TREE),
      shape=_json.dumps(list(bench.EMPIRICAL_SHAPE)),
      n=n,
      method=method,
      repeats=spec["repeats"],
    )
    yield (
      {"network": f"empirical CNN NTK, {method}", "input": "8×8×3", "n": n},
      lambda args=args: _captured(bench.run_cell, args),
    )


CELLS = {
  "empirical_ntk": _cells_empirical,
  "analytic": _cells_analytic,
  "training": _cells_training,
  "conv": _cells_conv,
}


def run_section(name: str, spec: dict, log: pathlib.Path):
  """Runs one section's cells in this process, appending one JSON line per cell to `log`."""
  with log.open("a") as f:
    for cell, thunk in CELLS[name](spec):
      t0 = time.perf_counter()
      try:
        rec = {**cell, **thunk()}
      except Exception as e:  # one failing cell (out of memory, …) is recorded; the next ones run
        rec = {**cell, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
      rec["wall_s"] = time.perf_counter() - t0
      f.write(json.dumps(rec) + "\n")
      f.flush()


# ------------------------------------------------------------------------------ the driver
def _sub_env(smoke: bool) -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  if smoke:
    env["JAX_PLATFORMS"] = "cpu"
  else:  # one process at a time: it may use most of the GPU's memory (the widest sweep cell needs it)
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.92")
  return env


def _run(cmd, timeout, env):
  """(status, stderr tail): 'ok', 'time cap' or 'failed'."""
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
  except subprocess.TimeoutExpired:
    return "time cap", ""
  if proc.returncode != 0:
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return "failed", tail[0][:300]
  return "ok", ""


def bench_section(name, spec, out, env, timeout):
  log = out / "sections" / f"{name}.jsonl"
  log.unlink(missing_ok=True)
  cmd = [sys.executable, "-m", "benchmarks.gpu_check", "section", name, json.dumps(spec), str(log)]
  status, err = _run(cmd, timeout, env)
  cells = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
  return status, err, cells


def sweep_section(name, spec, out, env, timeout):
  run_dir = out / "sections" / name
  shutil.rmtree(run_dir, ignore_errors=True)  # a check times every cell afresh: no resumed cells
  config = ROOT / "configs" / f"{name}.yaml"
  cmd = [sys.executable, "-m", "ntk_lab", "run", str(config), "--out", str(run_dir)]
  for item in spec["set"]:
    cmd += ["--set", item]
  status, err = _run(cmd, timeout, env)
  by_width = {}
  for path in sorted((run_dir / "cells").glob("*.json")):
    rec = json.loads(path.read_text())
    by_width.setdefault(rec["width"], []).append(rec)
  cells = [
    {
      "width": w,
      "seeds": len(recs),
      "seconds_per_cell": statistics.median(r["seconds"] for r in recs),
      METRIC[name]: statistics.median(r[METRIC[name]] for r in recs),
    }
    for w, recs in sorted(by_width.items())
  ]
  return status, err, cells


def _memory_gb(device):
  """The device's memory in GB as JAX reports it (None where it does not, e.g. on the CPU)."""
  try:
    stats = device.memory_stats() or {}
  except Exception:  # not every backend implements memory_stats
    return None
  limit = stats.get("bytes_limit")
  return None if limit is None else limit / 1e9


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="results/gpu_check")
  parser.add_argument(
    "--cpu-smoke", action="store_true", help="tiny cells on the CPU: the same code paths in under a minute"
  )
  parser.add_argument(
    "--budget-s",
    type=float,
    default=None,
    help="total time (default 480; smoke 1200, generous for loaded CI machines)",
  )
  parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
  sub = parser.add_subparsers(dest="cmd")
  sec = sub.add_parser("section", help="(internal) run one section's cells in this process")
  sec.add_argument("name", choices=tuple(CELLS))
  sec.add_argument("spec")
  sec.add_argument("log")
  args = parser.parse_args(argv)
  if args.cmd == "section":
    run_section(args.name, json.loads(args.spec), pathlib.Path(args.log))
    return 0

  smoke = args.cpu_smoke
  if smoke:
    os.environ["JAX_PLATFORMS"] = "cpu"
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the driver only asks for the device
  import jax

  device = jax.devices()[0]
  if not smoke and device.platform != "gpu":
    print(
      f"gpu_check: error: no GPU found (JAX's default device is {device.platform}: {device.device_kind}); "
      'install JAX for CUDA (pip install -U "jax[cuda12]"), or run --cpu-smoke.',
      file=sys.stderr,
    )
    return 2
  budget = args.budget_s or (1200.0 if smoke else 480.0)
  specs = SMOKE if smoke else GPU
  out = pathlib.Path(args.out)
  (out / "sections").mkdir(parents=True, exist_ok=True)
  env = _sub_env(smoke)
  report = {
    "meta": {
      "device": device.device_kind,
      "platform": device.platform,
      "devices": len(jax.devices()),
      "memory_gb": _memory_gb(device),
      "jax": jax.__version__,
      "mode": "cpu-smoke" if smoke else "gpu",
      "budget_s": budget,
      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    },
    "sections": {},
  }
  start = time.perf_counter()
  for name in args.only:
    spec = specs[name]
    left = budget - (time.perf_counter() - start)
    entry = {"cap_s": spec["cap_s"], "spec": spec}
    t0 = time.perf_counter()
    if left < 5:
      entry.update(status="skipped", note=f"the total budget of {budget:.0f} s is spent", cells=[])
    else:
      timeout = min(spec["cap_s"], left)
      runner = sweep_section if name in METRIC else bench_section
      status, err, cells = runner(name, spec, out, env, timeout)
      note = {"time cap": f"stopped at its time cap of {timeout:.0f} s; the cells finished are kept"}.get(
        status, err
      )
      entry.update(status=status, note=note, cells=cells)
    entry["wall_s"] = time.perf_counter() - t0
    report["sections"][name] = entry
    report["meta"]["wall_s"] = time.perf_counter() - start
    _write(out, report)
    print(f"{name}: {entry['status']} in {entry['wall_s']:.1f} s ({len(entry['cells'])} cells)", flush=True)
  print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
  return 0


def _write(out, report):
  for path, text in (
    (out / "gpu_check.json", json.dumps(report, indent=2)),
    (out / "gpu_check.md", to_markdown(report)),
  ):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------- report
def _ms(s):
  return f"{s * 1e3:,.1f} ms" if s is not None else "–"


def _fmt(v, spec=".3g"):
  return "–" if v is None else format(v, spec)


TABLES = {
  "empirical_ntk": (
    ["method", "N", "width", "depth", "median", "first call", "FLOP rate (of matmul)", "note"],
    lambda c: [
      c.get("method"),
      c.get("n"),
      c.get("width"),
      c.get("depth"),
      _ms(c.get("median_s")),
      _ms(c.get("first_call_s")),
      f"{c['gflops_per_s']:,.0f} GFLOP/s ({100 * c['fraction_of_matmul']:.0f} %)"
      if "gflops_per_s" in c
      else "–",
      c.get("skipped") or c.get("error") or "",
    ],
  ),
  "analytic": (
    ["kernel", "N", "median", "first call", "output GB/s", "note"],
    lambda c: [
      c.get("kernel"),
      c.get("n"),
      _ms(c.get("median_s")),
      _ms(c.get("first_call_s")),
      _fmt(c.get("output_gb_per_s"), ".1f"),
      c.get("error", ""),
    ],
  ),
  "training": (
    ["width", "N", "gradient flow", "accepted / rejected", "L(t)/L(0)", "GD steps/s", "note"],
    lambda c: [
      c.get("width"),
      c.get("n"),
      f"{c['flow_s']:.2f} s" if "flow_s" in c else "–",
      f"{c['num_accepted_steps']:,} / {c['num_rejected_steps']:,}" if "num_accepted_steps" in c else "–",
      _fmt(c.get("loss_ratio"), ".1e"),
      _fmt(c.get("gd_steps_per_s"), ",.0f"),
      c.get("error", ""),
    ],
  ),
  "conv": (
    ["network", "input", "N", "median", "per entry", "first call", "note"],
    lambda c: [
      c.get("network"),
      c.get("input"),
      c.get("n"),
      _ms(c.get("median_s")),
      f"{c['ms_per_entry']:.4f} ms" if "ms_per_entry" in c else "–",
      _ms(c.get("first_call_s")),
      c.get("error", ""),
    ],
  ),
  "kernel_convergence": (
    ["width", "seeds", "seconds per cell", "median ‖Θ_m − Θ∞‖/‖Θ∞‖"],
    lambda c: [c["width"], c["seeds"], f"{c['seconds_per_cell']:.2f}", f"{c['rel_error']:.3e}"],
  ),
  "nn_vs_ntk": (
    ["width", "seeds", "seconds per cell", "median final ‖u_NN − u_NTK‖"],
    lambda c: [c["width"], c["seeds"], f"{c['seconds_per_cell']:.2f}", f"{c['final_gap']:.3e}"],
  ),
}


def _table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
  return "\n".join(lines)


def to_markdown(report) -> str:
  m = report["meta"]
  text = (
    f"# GPU check: {m['device']}\n\n"
    f"Device {m['device']} ({m['platform']}, {m['devices']} device(s)"
    + (f", {m['memory_gb']:.0f} GB" if m.get("memory_gb") else "")
    + f"), jax {m['jax']}, mode {m['mode']}, "
    f"{m['date']}; {m.get('wall_s', 0):.0f} s of a {m['budget_s']:.0f} s budget.\n\n"
  )
  summary = [
    [name, s["status"], f"{s['wall_s']:.1f} s", f"{s['cap_s']} s", len(s["cells"]), s.get("note") or ""]
    for name, s in report["sections"].items()
  ]
  text += _table(["section", "status", "wall", "cap", "cells", "note"], summary) + "\n"
  for name, s in report["sections"].items():
    text += f"\n## {name}\n\n"
    if name not in TABLES:
      text += (s.get("note") or s["status"]) + "\n"
      continue
    header, row = TABLES[name]
    cells = [c for c in s["cells"] if "matmul_gflops_per_s" not in c]
    rate = next((c["matmul_gflops_per_s"] for c in s["cells"] if "matmul_gflops_per_s" in c), None)
    if rate is not None:
      text += f"fp32 matmul rate measured here: {rate:,.0f} GFLOP/s.\n\n"
    if name in METRIC and s["status"] != "ok" and s.get("note"):
      text += f"{s['note']}\n\n"
    text += (_table(header, [row(c) for c in cells]) if cells else "no cells finished") + "\n"
  return text


if __name__ == "__main__":
  sys.exit(main())
