"""Finite networks against their infinite-width NTK predictor over training (Lee et al. 2019).

Per cell: gradient flow on the MSE loss; records ‖u_NN(t) − u_NTK(t)‖ on training and test points,
where u_NTK is the closed-form gradient-flow predictor of the infinite-width NTK started from the
network's own u(0). The seed's observation: the gap first grows, then shrinks, and wider networks
stay closer. The report plots the median gap curves per width (train and test), the peak gap
against width with its fitted log-log slope, and tabulates peak and final gaps and the time of
the peak.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import DATA, FLOW, MLP, Experiment, register

DESCRIPTION = "‖u_NN(t) − u_NTK(t)‖ over training for several widths, train and test (Lee et al. 2019)"
OPTIONS = {}


def run_seeds(cfg, cells, options):
  net, params, x, y, xt, _ = _common.setup(cfg, cells)
  times, runs = _common.flow(cfg, cells, lambda p: net, params, x, y, x_test=xt, observe=["ntk_gap"])
  out = [_summary(times, run) for run in runs]
  err = _common.solver_error(
    cfg,
    cells,
    lambda p: net,
    params,
    x,
    y,
    out,
    lambda run: _summary(times, run),
    ["peak_gap", "peak_gap_test"],
    x_test=xt,
    observe=["ntk_gap"],
  )
  return [dict(s, solver_error=e) for s, e in zip(out, err, strict=True)]


def _summary(times, run):
  train, test = np.asarray(run.observables["ntk_gap"]), np.asarray(run.observables["ntk_gap_test"])
  return {
    "peak_gap": float(train.max()),
    "final_gap": float(train[-1]),
    "peak_time": float(times[int(train.argmax())]),
    "peak_gap_test": float(test.max()),
    "final_gap_test": float(test[-1]),
    "times": times.tolist(),
    "gap": train.tolist(),
    "gap_test": test.tolist(),
  }


def report(out, cfg, options, results):
  fig, axes = _common.figure(1, 3)
  t = results[0]["times"]
  for ax, key, where in ((axes[0], "gap", "training"), (axes[1], "gap_test", "test")):
    for w, runs in _common.by_width(results, key).items():
      ax.plot(t, np.median(np.array(runs), axis=0), label=f"m = {w}")
    ax.set_xlabel("t")
    ax.set_title(f"‖u_NN(t) − u_NTK(t)‖ on {where} points (median)", fontsize=9)
    ax.legend(fontsize=8)
  fit = _common.loglog_panel(axes[2], results, "peak_gap", "peak training gap max_t ‖u_NN − u_NTK‖")
  _common.savefig(fig, out / "nn_vs_ntk.png")
  cols = [
    ("peak_gap", "peak gap (train)", ".3e"),
    ("peak_time", "t of the peak", ".3g"),
    ("final_gap", "final gap (train)", ".3e"),
    ("peak_gap_test", "peak gap (test)", ".3e"),
    ("final_gap_test", "final gap (test)", ".3e"),
  ]
  md = (
    f"Gradient flow to t = {cfg.training.time:g}, {cfg.data.n} training and {cfg.data.n_test} test "
    f"points; medians over seeds.\n\n"
    + _common.median_table(results, cols)
    + "\n\n"
    + _common.slope_lines({"peak_gap": fit}, {"peak_gap": "peak training gap"})
    + "\n\n"
    + _common.solver_error_table(results)
    + "\n"
  )
  (out / "nn_vs_ntk.md").write_text(md)
  print(md)


EXPERIMENT = register(
  Experiment(
    "nn_vs_ntk",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    # vmapped adaptive solves cost more on a CPU (`_common.flow`)
    vmap_seeds_on_cpu=False,
    keys=(*DATA, *MLP, *FLOW, "sweep.widths"),
  )
)
