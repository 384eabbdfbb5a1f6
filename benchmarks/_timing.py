"""Shared helpers for experiments and benchmarks: medians over repeated runs after warm-up, memory
readings, Markdown tables, and resumable benchmark cells run as subprocesses."""

from __future__ import annotations

import json
import statistics
import subprocess
import time

import jax


def median_time(fn, *args, repeats: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
  """Median wall time of ``fn(*args)`` (blocking on its result) over `repeats` runs after warm-up."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def timed_cell(fn, x, repeats: int) -> dict:
  """A benchmark cell's measurements of ``fn(x)``: the first call (compilation included), the
  median of `repeats` more, and the peak resident memory above the memory before the first call."""
  base = rss_mb()
  t0 = time.perf_counter()
  jax.block_until_ready(fn(x))
  first = time.perf_counter() - t0
  med, times = median_time(fn, x, repeats=repeats, warmup=0)
  return {
    "median_s": med,
    "times_s": times,
    "first_call_s": first,
    "peak_rss_mb": peak_rss_mb(),
    "baseline_rss_mb": base,
  }


def markdown_table(header: list[str], rows: list[list]) -> str:
  """The experiments' Markdown table (imported when called: a benchmark cell may run against
  another version of the library, see `bench_analytic`'s previous-rule baseline)."""
  from ntk_lab.experiments._common import markdown_table as table

  return table(header, rows)


def _proc_status_mb(field: str) -> float | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024  # kB
  except OSError:
    return None
  return None


def rss_mb() -> float:
  """This process's resident memory now (MiB); Linux /proc, else the high-water mark."""
  now = _proc_status_mb("VmRSS")
  return now if now is not None else peak_rss_mb()


def peak_rss_mb() -> float:
  """This process's resident high-water mark (MiB). VmHWM, because ru_maxrss survives execve and
  so reports the parent's peak in a subprocess that never reaches it."""
  hwm = _proc_status_mb("VmHWM")
  if hwm is not None:
    return hwm
  import resource

  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CellCache:
  """Runs benchmark cells as subprocesses that print one JSON line, keeping each result in
  ``DIR/NAME.json`` (written then renamed, so an interrupted run leaves no partial file). With
  ``resume=True`` a cell whose file exists is not run again."""

  def __init__(self, directory, *, resume: bool, timeout: float, cwd):
    self.directory, self.resume, self.timeout, self.cwd = directory, resume, timeout, cwd
    directory.mkdir(parents=True, exist_ok=True)

  def __call__(self, name: str, cmd: list[str], *, cwd=None, env=None) -> dict:
    path = self.directory / f"{name}.json"
    if self.resume and path.exists():
      return json.loads(path.read_text())
    res = self.run(cmd, cwd=cwd, env=env)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res))
    tmp.replace(path)
    return res

  def run(self, cmd: list[str], *, cwd=None, env=None) -> dict:
    """The last JSON line the command prints, or {"error": …} if it fails or times out; `cwd`
    (default: the cache's) is where it runs, and so which `ntk_lab` a ``-m`` command imports;
    `env` replaces the environment."""
    try:
      proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=self.timeout, cwd=cwd or self.cwd, env=env
      )
    except subprocess.TimeoutExpired:
      return {"error": f"timed out after {self.timeout} s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
      tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
      return {"error": f"exit {proc.returncode}: {tail[0][:200]}"}
    return json.loads(lines[-1])


def write_report(directory, stem: str, to_markdown, meta=None, cells=None) -> str:
  """Writes ``STEM.md`` (from ``to_markdown(meta, cells)``) in `directory` and prints it. With
  meta and cells given, first saves them as ``STEM.json``; without, re-reads that file (the
  scripts' ``report DIR``, which re-makes the table from saved results)."""
  path = directory / f"{stem}.json"
  if meta is None:
    data = json.loads(path.read_text())
    meta, cells = data["meta"], data["cells"]
  else:
    path.write_text(json.dumps({"meta": meta, "cells": cells}, indent=2))
  md = to_markdown(meta, cells)
  (directory / f"{stem}.md").write_text(md)
  print(md)
  return md


def bench_parser(
  doc: str, stem: str, *, repeats: int, timeout: int, cells_dir: str, quick_help: str, cell_help: str
):
  """The benchmarks' shared command line: ``report DIR``, an internal ``cell`` subcommand (whose
  parser is returned for the script's own cell arguments), and --out/--repeats/--quick/--timeout/
  --resume on the driver. Returns (parser, cell_parser)."""
  import argparse

  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  sub = parser.add_subparsers(dest="cmd")
  report = sub.add_parser("report", help=f"re-make the Markdown table from DIR/{stem}.json")
  report.add_argument("dir")
  cell = sub.add_parser("cell", help=cell_help)
  cell.add_argument("--repeats", type=int, default=repeats)
  parser.add_argument("--out", default="results")
  parser.add_argument("--repeats", type=int, default=repeats)
  parser.add_argument("--quick", action="store_true", help=quick_help)
  parser.add_argument("--timeout", type=int, default=timeout, help="per-cell subprocess time limit")
  parser.add_argument(
    "--resume",
    action="store_true",
    help=f"reuse the per-cell results already in OUT/{cells_dir} (a rerun redoes only the rest)",
  )
  return parser, cell


def subcommand(args, stem: str, run_cell, to_markdown) -> bool:
  """Runs the ``cell`` or ``report`` subcommand if one was given; True if it did."""
  if args.cmd == "cell":
    run_cell(args)
    return True
  if args.cmd == "report":
    import pathlib

    write_report(pathlib.Path(args.dir), stem, to_markdown)
    return True
  return False


def machine_meta(repeats: int, **measured) -> dict:
  """What a benchmark report records about the machine and the run, plus its measured rates."""
  import os
  import platform

  device = jax.devices()[0]
  return {
    **measured,
    "device": device.device_kind,
    "platform": device.platform,
    "jax": jax.__version__,
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
    "repeats": repeats,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
  }
