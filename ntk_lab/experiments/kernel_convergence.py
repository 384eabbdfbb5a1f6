"""Empirical NTK vs its infinite-width limit over widths (Jacot et al. 2018).

Per cell (width, depth, activation, n, seed): Θ_m at a random initialization and the analytic Θ∞
on the same n inputs (all seeds of a grid point in one vmapped computation); records ‖Θ_m − Θ∞‖_F/‖Θ∞‖_F and max |Θ_m − Θ∞|. The report fits the
log-log slope of the relative error against the width over all cells (theory: −1/2) with its 95 %
interval, and plots the per-width medians and every draw.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import MLP, Experiment, register

DESCRIPTION = "empirical NTK vs its infinite-width limit over widths (Jacot et al. 2018)"
OPTIONS = {}


def run_seeds(cfg, cells, options):
  """All seeds of one grid point at once: θ₀ for every seed, then one vmapped empirical NTK."""
  import jax

  import ntk_lab as nl

  net, params, x, _, _, _ = _common.setup(cfg, cells)  # the same inputs for every draw
  emp = np.asarray(jax.jit(jax.vmap(lambda p: nl.empirical_ntk(net, p, x)))(params))
  lim = np.asarray(net.kernel(x, get="ntk").ntk)
  return [
    {
      "rel_error": float(np.linalg.norm(e - lim) / np.linalg.norm(lim)),
      "max_abs_error": float(np.max(np.abs(e - lim))),
    }
    for e in emp
  ]


def report(out, cfg, options, results):
  fig, (ax,) = _common.figure(1, 1, size=(5, 4))
  fit = _common.loglog_panel(ax, results, "rel_error", "‖Θ_m − Θ∞‖_F / ‖Θ∞‖_F (theory: slope −1/2)")
  _common.savefig(fig, out / "kernel_convergence.png")
  md = (
    _common.median_table(
      results,
      [("rel_error", "median ‖Θ_m − Θ∞‖/‖Θ∞‖", ".3e"), ("max_abs_error", "median max |Θ_m − Θ∞|", ".3e")],
    )
    + "\n\n"
    + _common.slope_lines({"rel_error": fit}, {"rel_error": "‖Θ_m − Θ∞‖/‖Θ∞‖ (theory −0.5)"})
    + "\n"
  )
  (out / "kernel_convergence.md").write_text(md)
  print(md)


# Only the inputs matter (no targets, no test points, no training).
EXPERIMENT = register(
  Experiment(
    "kernel_convergence",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    keys=("data.n", "data.in_dim", "data.inputs", *MLP, "sweep.widths"),
  )
)
