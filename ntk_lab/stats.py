"""Statistics for width sweeps: log-log slope fits with confidence intervals.

Lazy-training theory predicts power laws in the width m (kernel fluctuations and weight motion
fall like m^(−1/2), Jacot et al. 2018; Lee et al. 2019; Chizat et al. 2019); `loglog_fit` measures
the exponent with its interval.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ntk_lab import _checks

__all__ = ["LogLogFit", "loglog_fit"]


class LogLogFit(NamedTuple):
  """A least-squares fit log y = slope · log x + intercept, with a Student-t interval
  [low, high] for the slope (nan with fewer than three points)."""

  slope: float
  low: float
  high: float
  intercept: float


def loglog_fit(x, y, level: float = 0.95) -> LogLogFit:
  """Fits log y against log x by least squares.

  Args:
    x, y: positive, finite numbers of the same length, at least two (e.g. widths and a measured
      error), with at least two distinct x.
    level: the confidence level of the slope's interval, in (0, 1).

  Returns:
    `LogLogFit(slope, low, high, intercept)`; low/high are nan with fewer than three points.

  Raises:
    ValueError: a point that is zero, negative, NaN or infinite (its log is not a real number;
      the message names the points), lengths that differ, fewer than two points, all x equal, or a
      level outside (0, 1).

  Example:
    >>> import numpy as np
    >>> from ntk_lab.stats import loglog_fit
    >>> m = np.array([64, 256, 1024, 4096])
    >>> fit = loglog_fit(m, 3.0 / np.sqrt(m))
    >>> round(fit.slope, 6), round(fit.high - fit.low, 6)  # an exact power law: no spread
    (-0.5, 0.0)
    >>> loglog_fit([1, 2, 4], [1.0, 0.0, -2.0])
    Traceback (most recent call last):
    ...
    ValueError: y: a log-log fit needs positive, finite values; y[1] = 0.0, y[2] = -2.0 are not (drop or floor those points before fitting).
  """
  level = _checks.number(level, "level", low=0.0, static=True)
  if level >= 1:
    raise ValueError(f"level: must be a confidence level in (0, 1), got {level!r}.")
  lx, ly = _positive(x, "x"), _positive(y, "y")
  if len(lx) != len(ly):
    raise ValueError(f"x, y: must have the same length, got {len(lx)} and {len(ly)}.")
  if len(lx) < 2:
    raise ValueError(f"x, y: a fit needs at least two points, got {len(lx)}.")
  if np.all(lx == lx[0]):
    raise ValueError(f"x: every point has the same x ({np.exp(lx[0]):g}); a slope needs two distinct x.")
  from scipy import stats  # here: importing scipy.stats takes seconds, and few callers fit

  res = stats.linregress(lx, ly)
  if len(lx) < 3:
    return LogLogFit(float(res.slope), float("nan"), float("nan"), float(res.intercept))
  half = stats.t.ppf(0.5 + level / 2, len(lx) - 2) * res.stderr
  return LogLogFit(float(res.slope), float(res.slope - half), float(res.slope + half), float(res.intercept))


def _positive(values, name: str) -> np.ndarray:
  """log(values) as a 1-D float array; refuses (naming them) points whose log is not real."""
  try:
    arr = np.asarray(values, dtype=float)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{name}: expected a sequence of numbers, got {values!r:.80}.") from e
  if arr.ndim != 1:
    raise ValueError(f"{name}: expected a 1-D sequence of numbers, got shape {arr.shape}.")
  bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
  if len(bad):
    named = ", ".join(f"{name}[{i}] = {float(arr[i])!r}" for i in bad[:5]) + (
      f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    )
    raise ValueError(
      f"{name}: a log-log fit needs positive, finite values; {named} "
      f"{'is' if len(bad) == 1 else 'are'} not (drop or floor those points before fitting)."
    )
  return np.log(arr)
