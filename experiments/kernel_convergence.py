"""Empirical NTK vs its infinite-width limit over widths (seed 000 eq 8; seed 002 d).

Per cell (width, depth, activation, n, seed): Θ_m at a random initialization and the analytic Θ∞
on the same n inputs; records ‖Θ_m − Θ∞‖_F/‖Θ∞‖_F and max |Θ_m − Θ∞|. The report fits the
log-log slope of the relative error against the width over all cells (theory: −1/2) with its 95 %
interval, and plots the per-width medians and every draw.
"""

from __future__ import annotations

import numpy as np

from experiments import _common

DESCRIPTION = "empirical NTK vs its infinite-width limit over widths (seed 000 eq 8, 002 d)"
OPTIONS = {}


def run_cell(cfg, cell, options):
  import jax

  import ntk_lab as nl

  x, _, _, _ = _common.make_data(cfg, cell.n, 0)  # the same inputs for every draw
  net = _common.make_model(cfg, cell)
  params = net.init(jax.random.PRNGKey(cell.seed), x.shape[1])
  emp = np.asarray(nl.empirical_ntk(net, params, x))
  lim = np.asarray(net.kernel(x, get="ntk").ntk)
  return {"rel_error": float(np.linalg.norm(emp - lim) / np.linalg.norm(lim)),
          "max_abs_error": float(np.max(np.abs(emp - lim)))}


def report(out, cfg, options, results):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from experiments._timing import markdown_table

  widths = [r["width"] for r in results]
  errs = [r["rel_error"] for r in results]
  med = {w: float(np.median(v)) for w, v in _common.by_width(results, "rel_error").items()}
  slope, lo, hi, icpt = _common.loglog_fit(widths, errs)
  fig, ax = plt.subplots(figsize=(5, 4))
  ax.loglog(widths, errs, ".", alpha=0.4, label="each draw")
  ax.loglog(list(med), list(med.values()), "o-", label="median")
  ws = np.array(sorted(med))
  ax.loglog(ws, np.exp(icpt) * ws**slope, "k--", label=f"fit: slope {slope:.2f} [{lo:.2f}, {hi:.2f}]")
  ax.set_xlabel("width m")
  ax.set_ylabel("‖Θ_m − Θ∞‖_F / ‖Θ∞‖_F")
  ax.set_title("empirical NTK → its limit (theory: slope −1/2)")
  ax.legend()
  fig.tight_layout()
  fig.savefig(out / "kernel_convergence.png", dpi=120)
  plt.close(fig)
  rows = [[f"{w:,}", f"{v:.3e}", len(_common.by_width(results, "rel_error")[w])] for w, v in med.items()]
  md = (markdown_table(["width", "median ‖Θ_m − Θ∞‖/‖Θ∞‖", "draws"], rows) +
        f"\n\nlog-log slope {slope:.3f}, 95 % interval [{lo:.3f}, {hi:.3f}] (theory −0.5)\n")
  (out / "kernel_convergence.md").write_text(md)
  print(md)
