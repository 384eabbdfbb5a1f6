"""Shared timing helpers for experiments and benchmarks: medians over repeated runs after warm-up."""

from __future__ import annotations

import statistics
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


def markdown_table(header: list[str], rows: list[list]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


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
