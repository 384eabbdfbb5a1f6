"""Shared pieces of the claim checks: log-log slope fits with intervals, random instances."""

from __future__ import annotations

import numpy as np


def loglog_fit(x, y, level: float = 0.95):
  """Least-squares slope of log y on log x: (slope, low, high, intercept), the interval a
  Student-t `level` interval (nan with fewer than three points)."""
  from scipy import stats

  lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
  res = stats.linregress(lx, ly)
  if len(lx) < 3:
    return res.slope, float("nan"), float("nan"), res.intercept
  half = stats.t.ppf(0.5 + level / 2, len(lx) - 2) * res.stderr
  return res.slope, res.slope - half, res.slope + half, res.intercept


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
