"""Blockwise evaluation of kernels over x1 × x2, under a memory budget.

`tiled` evaluates ``fn(a_block, b_block) -> (B, B, *rest)`` on square tiles of two per-point
pytrees (raw inputs, or per-point features computed once beforehand), sequentially with
`jax.lax.map` so only one tile's temporaries are alive at a time, and assembles the (N1, N2, *rest)
result. For a symmetric kernel (x2 = x1) it computes only the tiles on and above the diagonal and
mirrors the rest.
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
  lo, hi = 8, max(n1, n2)
  while lo < hi:  # largest B with tile_bytes(B) <= budget
    mid = (lo + hi + 1) // 2
    lo, hi = (mid, hi) if tile_bytes(mid) <= budget else (lo, mid - 1)
  return lo // 128 * 128 if lo >= 128 else lo


def tiled(fn, a, b, block: int | None, *, symmetric: bool, swap_axes: tuple[int, int] | None):
  """Evaluates fn over tiles. `swap_axes`: trailing output axes exchanged when a tile is mirrored."""
  n1, n2 = leading_dim(a), leading_dim(b)
  if block is None or (block >= n1 and block >= n2):
    return fn(a, b)
  nb1, nb2 = -(-n1 // block), -(-n2 // block)
  a_pad = _pad(a, nb1 * block)
  b_pad = a_pad if symmetric else _pad(b, nb2 * block)
  if symmetric:
    pairs = [(i, j) for i in range(nb1) for j in range(i, nb1)]
  else:
    pairs = [(i, j) for i in range(nb1) for j in range(nb2)]
  I, J = (jnp.asarray(np.array(v, dtype=np.int32)) for v in zip(*pairs))

  def one(ij):
    i, j = ij
    return fn(_block(a_pad, i, block), _block(b_pad, j, block))

  tiles = jax.lax.map(one, (I, J))  # (T, B, B, *rest)
  rest = tiles.shape[3:]
  if symmetric:
    out = jnp.zeros((nb1, nb1, block, block, *rest), tiles.dtype)
    mirrored = jnp.swapaxes(tiles, 1, 2)
    if swap_axes is not None:
      mirrored = jnp.swapaxes(mirrored, *swap_axes)
    out = out.at[J, I].set(mirrored).at[I, J].set(tiles)  # diagonal tiles keep their own values
  else:
    out = tiles.reshape(nb1, nb2, block, block, *rest)
  out = jnp.swapaxes(out, 1, 2).reshape(nb1 * block, nb2 * block, *rest)
  return out[:n1, :n2]


def _pad(tree, n):
  def pad(x):
    return jnp.pad(x, [(0, n - x.shape[0])] + [(0, 0)] * (x.ndim - 1))
  return jax.tree_util.tree_map(pad, tree)


def _block(tree, i, block):
  return jax.tree_util.tree_map(lambda x: jax.lax.dynamic_slice_in_dim(x, i * block, block), tree)
