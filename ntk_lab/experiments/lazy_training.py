"""Lazy training: weight movement and kernel drift against width under gradient flow (Jacot et al.
2018; Du et al. 2019; Lee et al. 2019; Chizat et al. 2019).

Per cell: gradient flow on the MSE loss to `training.time`; records sup_t of the relative weight
change ‖W_l(t) − W_l(0)‖/‖W_l(0)‖ of every layer, of the largest single-unit move
max_r ‖w_r(t) − w_r(0)‖ (Du et al. 2019; for the readout, max_r |a_r(t) − a_r(0)|) and of the kernel
drift ‖K(t) − K(0)‖/‖K(0)‖. Theory: all → 0 as the width grows, at rate width^(−1/2). The report
fits each log-log slope with its 95 % interval.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import DATA, FLOW, MLP, Experiment, register

# no test points: data.n_test is not used
NO_TEST = tuple(k for k in DATA if k != "data.n_test")


DESCRIPTION = "weight movement and kernel drift vs width under gradient flow (lazy training)"
OPTIONS = {}


def run_seeds(cfg, cells, options):
  net, params, x, y, _, _ = _common.setup(cfg, cells)
  observe = ["weight_change", "unit_change", "kernel_drift", "loss"]
  _, runs = _common.flow(cfg, cells, lambda p: net, params, x, y, observe=observe)
  out = [_summary(run) for run in runs]
  fitted = [k for k in out[0] if k != "final_loss_ratio"]
  err = _common.solver_error(cfg, cells, lambda p: net, params, x, y, out, _summary, fitted, observe=observe)
  return [dict(s, solver_error=e) for s, e in zip(out, err, strict=True)]


def _summary(run):
  obs = {k: np.asarray(v) for k, v in run.observables.items()}
  out = {
    "kernel_drift": float(obs["kernel_drift"].max()),
    "final_loss_ratio": float(obs["loss"][-1] / obs["loss"][0]),
  }
  for l in range(obs["weight_change"].shape[1]):
    out[f"weight_change_{l + 1}"] = float(obs["weight_change"][:, l].max())
    out[f"unit_change_{l + 1}"] = float(obs["unit_change"][:, l].max())
  return out


def report(out, cfg, options, results):
  layers = sorted(int(k.rsplit("_", 1)[1]) for k in results[0] if k.startswith("weight_change_"))
  metrics = {"kernel_drift": "sup_t ‖K(t) − K(0)‖/‖K(0)‖"}
  for l in layers:
    metrics[f"weight_change_{l}"] = f"sup_t ‖W_{l}(t) − W_{l}(0)‖/‖W_{l}(0)‖"
    metrics[f"unit_change_{l}"] = (
      f"sup_t max_r |a_r(t) − a_r(0)| (layer {l})"
      if l == layers[-1]
      else f"sup_t max_r ‖w_r(t) − w_r(0)‖ (layer {l})"
    )
  cols = 3
  fig, axes = _common.figure(-(-len(metrics) // cols), cols)
  fits = {k: _common.loglog_panel(ax, results, k, label) for ax, (k, label) in zip(axes, metrics.items())}
  for ax in axes[len(metrics) :]:
    ax.axis("off")
  _common.savefig(fig, out / "lazy_training.png")
  md = (
    f"Gradient flow to t = {cfg.training.time:g}, {cfg.data.n} points, {cfg.model.activation}, "
    f"depth {cfg.model.depth}; medians over seeds (theory: every column → 0 like width^(−1/2)).\n\n"
    + _common.median_table(results, [(k, label, ".3e") for k, label in metrics.items()])
    + "\n\n"
    + _common.slope_lines(fits, metrics)
    + "\n\n"
    + _common.solver_error_table(results)
    + "\n"
  )
  (out / "lazy_training.md").write_text(md)
  print(md)


EXPERIMENT = register(
  Experiment(
    "lazy_training",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    # vmapped adaptive solves cost more on a CPU (`_common.flow`)
    vmap_seeds_on_cpu=False,
    keys=(*NO_TEST, *MLP, *FLOW, "sweep.widths"),
  )
)
