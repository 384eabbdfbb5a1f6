"""Statistics for width sweeps: log-log slope fits with confidence intervals.

Lazy-training theory predicts power laws in the width m (kernel fluctuations and weight motion
fall like m^(−1/2), Jacot et al. 2018; Lee et al. 2019; Chizat et al. 2019); `loglog_fit` measures
the exponent with its interval.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

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
    x, y: positive numbers of the same length (e.g. widths and a measured error).
    level: the confidence level of the slope's interval.

  Returns:
    `LogLogFit(slope, low, high, intercept)`; low/high are nan with fewer than three points.

  Example:
    >>> import numpy as np
    >>> from ntk_lab.stats import loglog_fit
    >>> m = np.array([64, 256, 1024, 4096])
    >>> fit = loglog_fit(m, 3.0 / np.sqrt(m))
    >>> round(fit.slope, 6), round(fit.high - fit.low, 6)  # an exact power law: no spread
    (-0.5, 0.0)
  """
  lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
  res = stats.linregress(lx, ly)
  if len(lx) < 3:
    return LogLogFit(float(res.slope), float("nan"), float("nan"), float(res.intercept))
  half = stats.t.ppf(0.5 + level / 2, len(lx) - 2) * res.stderr
  return LogLogFit(float(res.slope), float(res.slope - half), float(res.slope + half), float(res.intercept))
