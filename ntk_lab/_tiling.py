"""Blockwise evaluation of kernels over x1 × x2, under a memory budget.

`tiled` evaluates ``fn(a_block, b_block) -> (B1, B2, *rest)`` (or a pytree of such arrays) on
tiles of two per-point pytrees (raw inputs, or per-point features computed once beforehand), one
tile at a time in a `jax.lax.fori_loop`, and writes each tile straight into the (N1, N2, *rest)
output with `dynamic_update_slice`. XLA updates the loop-carried output in place, so the only
N1·N2-sized buffer is the output itself: no stack of tiles, no padding, no final slice.

The last tile of each axis is shifted back to end at N (its start is clamped), so it overlaps its
neighbour instead of running past the end; overlapping entries are written twice, with the same
value up to rounding. For a symmetric kernel (x2 = x1) only the tiles on and above the diagonal
are computed, and each is also written, transposed, below it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes of temporaries one tile may use


def leading_dim(tree) -> int:
  return jax.tree_util.tree_leaves(tree)[0].shape[0]


def choose_block(n1: int, n2: int, tile_bytes, budget: float) -> int | None:
  """None (one tile) if the whole N1 × N2 problem fits the budget, else the largest tile side B
  (a multiple of 128 where possible) whose estimated temporaries ``tile_bytes(B)`` fit."""
  if tile_bytes(max(n1, n2)) <= budget:
    return None
  lo, hi = 1, max(n1, n2)
  while lo < hi:  # largest B with tile_bytes(B) <= budget
    mid = (lo + hi + 1) // 2
    lo, hi = (mid, hi) if tile_bytes(mid) <= budget else (lo, mid - 1)
  return lo // 128 * 128 if lo >= 128 else lo


def tile_starts(n: int, block: int) -> np.ndarray:
  """Start rows of the tiles of one axis: multiples of `block`, the last clamped to n − block."""
  return np.minimum(np.arange(0, n, block), n - block)


def tiled(fn, a, b, block: int | None, *, symmetric: bool, swap_axes: tuple[int, int] | None):
  """Evaluates fn over tiles. `swap_axes`: trailing output axes exchanged when a tile is mirrored."""
  n1, n2 = leading_dim(a), leading_dim(b)
  if block is None or (block >= n1 and block >= n2):
    return fn(a, b)
  b1, b2 = min(block, n1), min(block, n2)
  s1, s2 = tile_starts(n1, b1), tile_starts(n2, b2)
  if symmetric:
    pairs = [(i, j) for i in range(len(s1)) for j in range(i, len(s1))]
  else:
    pairs = [(i, j) for i in range(len(s1)) for j in range(len(s2))]
  rows = jnp.asarray(np.array([s1[i] for i, _ in pairs], dtype=np.int32))
  cols = jnp.asarray(np.array([s2[j] for _, j in pairs], dtype=np.int32))
  shapes = jax.eval_shape(fn, _block(a, 0, b1), _block(b, 0, b2))  # a pytree of (B1, B2, *rest)
  out = jax.tree_util.tree_map(lambda s: jnp.zeros((n1, n2, *s.shape[2:]), s.dtype), shapes)

  def write(out, tile, r, c):
    return jax.lax.dynamic_update_slice(out, tile, (r, c) + (np.int32(0),) * (tile.ndim - 2))

  def mirror(tile):
    tile = jnp.swapaxes(tile, 0, 1)
    return tile if swap_axes is None else jnp.swapaxes(tile, *swap_axes)

  def body(t, out):
    r, c = rows[t], cols[t]
    tile = fn(_block(a, r, b1), _block(b, c, b2))
    if symmetric:  # the mirror first, so a diagonal tile keeps its own values
      out = jax.tree_util.tree_map(lambda o, v: write(o, mirror(v), c, r), out, tile)
    return jax.tree_util.tree_map(lambda o, v: write(o, v, r, c), out, tile)

  return jax.lax.fori_loop(0, len(pairs), body, out)


def _block(tree, start, size):
  return jax.tree_util.tree_map(lambda x: jax.lax.dynamic_slice_in_dim(x, start, size), tree)


def available_bytes(devices=None) -> int | None:
  """Memory free for a new result: the smallest free amount over `devices` (default: JAX's
  first device) from `Device.memory_stats()` (accelerators), else the host's MemAvailable from
  /proc/meminfo (CPU, Linux); None when neither is known."""
  free = []
  for d in devices or jax.devices()[:1]:
    try:
      stats = d.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory statistics raise or return None
      stats = None
    if stats and "bytes_limit" in stats:
      free.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
  if free:
    return min(free)
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def check_fits(
  what: str, n1: int, n2: int, *, out_bytes: int, temp_bytes: int, devices=None, available: int | None = None
) -> None:
  """Raises ValueError, before anything is compiled, when the (n1, n2, …) output plus one tile's
  temporaries cannot fit the memory available (`available_bytes`, or `available` if given).

  Example:
    >>> check_fits("kernel", 300_000, 300_000, out_bytes=2 * 300_000**2 * 8, temp_bytes=0,
    ...            available=64 * 2**30)
    Traceback (most recent call last):
    ...
    ValueError: kernel: the output for N1 = 300,000 × N2 = 300,000 points needs 1440.0 GB ...
  """
  free = available_bytes(devices) if available is None else available
  need = out_bytes + temp_bytes
  if free is None or need <= free:
    return
  raise ValueError(
    f"{what}: the output for N1 = {n1:,} × N2 = {n2:,} points needs {out_bytes / 1e9:.1f} GB "
    f"(+ {temp_bytes / 1e9:.2f} GB of temporaries per tile), more than the {free / 1e9:.1f} GB "
    "available. Remedies: compute it in blocks, passing x2 a slice of the points at a time "
    "(x2=x[i:j]) and keeping or reducing each block; use float32 inputs (half the bytes of "
    "float64); ask for one kernel (get='ntk'); or a smaller tile (tile_size, memory_budget) if "
    "the temporaries are what does not fit."
  )
