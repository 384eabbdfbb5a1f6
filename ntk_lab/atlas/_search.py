"""Adversarial counterexample search for the atlas's inequalities.

`worst_case` maximises a ratio LHS/RHS over a box of hypotheses: random points first (with the
corners of the box, where the edges of the hypotheses lie: n = 1, m = 1, extreme scales), then a
Nelder–Mead local search (scipy) on the continuous coordinates from the best few points, the integer
ones held fixed. A ratio above 1 is a counterexample; the result records the worst ratio and where
it was found.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def worst_case(ratio, space, *, seed=0, n_random=200, n_starts=3, maxiter=200):
  """Largest ``ratio(**point)`` over `space`.

  Args:
    ratio: a function of keyword arguments returning a float (LHS/RHS; nan counts as −∞).
    space: name → (low, high, kind), kind "log" (positive, searched in log10), "lin" or "int"
      (searched in log2 when low ≥ 1, so that 1 and 2 are as likely as 500 and 1000).
    seed: for the random points.
    n_random: random points (the 2^k corners of the box come on top when k ≤ 8).
    n_starts: best points the local search starts from.
    maxiter: Nelder–Mead iterations per start.

  Returns:
    {"worst ratio": float, "where": {name: value}, "evaluations": int}.

  Example:
    >>> r = worst_case(lambda a, n: a * n / (1 + a * n), {"a": (1e-3, 1e3, "log"), "n": (1, 100, "int")},
    ...                n_random=20)
    >>> round(r["worst ratio"], 3), r["where"]["n"]
    (1.0, 100)
  """
  import scipy.optimize

  names = list(space)
  rng = np.random.default_rng(seed)
  cont = [k for k in names if space[k][2] != "int"]

  def to_point(u):  # u ∈ [0, 1]^k → a point of the box
    out = {}
    for k, v in zip(names, u):
      lo, hi, kind = space[k]
      v = min(max(float(v), 0.0), 1.0)
      if kind == "log":
        out[k] = 10 ** (math.log10(lo) + v * (math.log10(hi) - math.log10(lo)))
      elif kind == "int":
        out[k] = (
          int(round(2 ** (math.log2(lo) + v * (math.log2(hi) - math.log2(lo)))))
          if lo >= 1
          else int(round(lo + v * (hi - lo)))
        )
      else:
        out[k] = lo + v * (hi - lo)
    return out

  seen = []

  def value(u):
    point = to_point(u)
    r = float(ratio(**point))
    r = r if math.isfinite(r) else -math.inf
    seen.append((r, point))
    return r

  us = (
    [np.array(c, float) for c in itertools.product((0.0, 1.0), repeat=len(names))] if len(names) <= 8 else []
  )
  us += list(rng.uniform(size=(n_random, len(names))))
  scored = sorted(((value(u), i) for i, u in enumerate(us)), reverse=True)
  for _, i in scored[:n_starts]:
    if not cont:
      break
    u0 = us[i]
    idx = [names.index(k) for k in cont]

    def neg(v, u0=u0, idx=idx):
      u = u0.copy()
      u[idx] = np.clip(v, 0, 1)
      return -value(u)

    scipy.optimize.minimize(
      neg,
      u0[idx],
      method="Nelder-Mead",
      options={"maxiter": maxiter, "xatol": 1e-6, "fatol": 1e-12, "initial_simplex": None},
    )
  worst, where = max(seen, key=lambda s: s[0])
  return {"worst ratio": worst, "where": where, "evaluations": len(seen)}
