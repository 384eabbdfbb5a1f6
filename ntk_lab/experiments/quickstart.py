"""Quickstart: wide nets against their infinite-width kernel, at init and along gradient flow.

Per cell (width, seed): the empirical NTK's relative distance to the analytic limit at
initialization (Jacot et al. 2018), then gradient flow on the MSE loss to `training.time`,
recording the loss, the relative kernel drift ‖K(t) − K(0)‖/‖K(0)‖, the relative weight change of
the first layer and the test-point gap ‖u_NN(t) − u_NTK(t)‖ to the infinite-width NTK predictor
(Lee et al. 2019). The report fits log-log slopes against the width with 95 % intervals (lazy
training bounds each by width^(−1/2); for a smooth activation the kernel's drift falls like 1/width)
and writes ``quickstart.png`` and ``quickstart.md``, with the solver's share of each metric.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import DATA, FLOW, MLP, Experiment, register

DESCRIPTION = "small default sweep: kernel error, kernel drift and NN-vs-NTK gap against width"
OPTIONS = {}


def run_seeds(cfg, cells, options):
  import ntk_lab as nl

  net, params, x, y, xt, yt = _common.setup(cfg, cells)
  emp = [np.asarray(e) for e in _common.per_draw(lambda p: nl.empirical_ntk(net, p, x), params, len(cells))]
  lim = np.asarray(net.kernel(x, get="ntk").ntk)
  observe = ["loss", "kernel_drift", "weight_change", "ntk_gap"]
  times, runs = _common.flow(cfg, cells, lambda p: net, params, x, y, x_test=xt, observe=observe)
  out = [_summary(times, e, lim, run, yt) for e, run in zip(emp, runs, strict=True)]
  err = _common.solver_error(
    cfg,
    cells,
    lambda p: net,
    params,
    x,
    y,
    out,
    lambda run: _summary(times, emp[0], lim, run, yt),
    [k for k, _ in METRICS[1:]],
    x_test=xt,
    observe=observe,
  )
  return [dict(s, solver_error=e) for s, e in zip(out, err, strict=True)]


def _summary(times, emp, lim, run, yt):
  obs = {k: np.asarray(v) for k, v in run.observables.items()}
  return {
    "kernel_error": float(np.linalg.norm(emp - lim) / np.linalg.norm(lim)),
    "final_loss": float(obs["loss"][-1]),
    "test_mse": float(np.mean((np.asarray(run.test_outputs[-1]) - np.asarray(yt)) ** 2)),
    "kernel_drift": float(obs["kernel_drift"][-1]),
    "weight_change": float(obs["weight_change"][-1, 0]),
    "ntk_gap_test": float(np.max(obs["ntk_gap_test"])),
    "solver_steps": int(run.stats["num_steps"]),
    "times": times.tolist(),
    "loss_curve": obs["loss"].tolist(),
    "gap_curve": obs["ntk_gap_test"].tolist(),
  }


METRICS = (
  ("kernel_error", "‖Θ_m(0) − Θ∞‖/‖Θ∞‖"),
  ("kernel_drift", "‖K(T) − K(0)‖/‖K(0)‖"),
  ("weight_change", "‖W₁(T) − W₁(0)‖/‖W₁(0)‖"),
  ("ntk_gap_test", "max_t ‖u_NN − u_NTK‖ (test)"),
)


def report(out, cfg, options, results):
  fig, axes = _common.figure(2, 3)
  fits = {key: _common.loglog_panel(ax, results, key, label) for ax, (key, label) in zip(axes, METRICS)}
  t = results[0]["times"]
  for ax, key, title in (
    (axes[4], "loss_curve", "training loss L(t)"),
    (axes[5], "gap_curve", "‖u_NN(t) − u_NTK(t)‖ on test points"),
  ):
    for w, runs in _common.by_width(results, key).items():
      ax.plot(t, np.median(np.array(runs), axis=0), label=f"m = {w}")
    ax.set_yscale("log" if key == "loss_curve" else "linear")  # the gap starts at exactly 0
    ax.set_xlabel("t")
    ax.set_title(title + " (median over seeds)", fontsize=9)
    ax.legend(fontsize=8)
  _common.savefig(fig, out / "quickstart.png")
  table = _common.median_table(
    results, [(k, label, ".3e") for k, label in METRICS] + [("test_mse", "test MSE", ".3e")]
  )
  md = (
    f"Medians over seeds; gradient flow to t = {cfg.training.time:g} on {cfg.data.n} points "
    f"({cfg.model.activation}, depth {cfg.model.depth}).\n\n"
    + table
    + "\n\n"
    + _common.slope_lines(fits, dict(METRICS))
    + "\n\n"
    + _common.solver_error_table(results)
    + "\n"
  )
  (out / "quickstart.md").write_text(md)
  print(md)


EXPERIMENT = register(
  Experiment(
    "quickstart",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    # vmapped adaptive solves cost more on a CPU (`_common.flow`)
    vmap_seeds_on_cpu=False,
    keys=(*DATA, *MLP, *FLOW, "sweep.widths"),
  )
)
