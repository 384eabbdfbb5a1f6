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
