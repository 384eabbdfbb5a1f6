"""Shared pieces of the claim checks: log-log slope fits with intervals, random instances."""

from __future__ import annotations

import numpy as np

from ntk_lab.stats import loglog_fit

__all__ = ["loglog_fit", "slope_text", "vanishes", "rel", "sphere"]  # loglog_fit: the checks' fits


def slope_text(fit) -> str:
  return f"{fit[0]:.2f} [{fit[1]:.2f}, {fit[2]:.2f}]"


def vanishes(fit) -> bool:
  """A quantity → 0 along the sweep: the whole 95 % interval of its log-log slope is below 0."""
  return bool(np.isfinite(fit[2]) and fit[2] < 0)


def rel(a, b) -> float:
  """max |a − b| / max(|b|, tiny)."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def sphere(key, n, d, scale=1.0):
  import jax
  import jax.numpy as jnp

  x = jax.random.normal(key, (n, d))
  return scale * x / jnp.linalg.norm(x, axis=1, keepdims=True)
