"""Residual decay against the exp(−2λ̄t) bound (Du et al. 2019).

Per cell: the centred network f̂ = f − f(·; θ₀) (so u(0) = 0) trained by gradient flow at rate η;
records ‖y − u(t)‖² and the empirical NTK's λ_min(K(t)) at every saved time. With
λ̄ = min_t λ_min(K(t)) over the saved times, the convergence theorem of Du et al. 2019 states
‖y − u(t)‖² ≤ ‖y‖² exp(−2ηλ̄t). The cell records the worst ratio of the two sides over t (≤ 1
where the bound holds), the fitted exponential rate of the residual against 2ηλ̄, and the bound
with the infinite-width λ_min(H^∞) instead (the infinite-width statement, where the kernel is constant). The
ratios are taken over t > 0 (at t = 0 both sides are ‖y‖²).
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import DATA, FLOW, MLP, Experiment, register

# no test points: data.n_test is not used
NO_TEST = tuple(k for k in DATA if k != "data.n_test")


DESCRIPTION = "residual decay vs the exp(−2λ_min t) bound (Du et al. 2019)"
OPTIONS = {}


def run_seeds(cfg, cells, options):
  import jax.numpy as jnp

  import ntk_lab as nl

  net, params, x, y, _, _ = _common.setup(cfg, cells)
  times, runs = _common.flow(
    cfg, cells, lambda p: nl.centered(net, p), params, x, y, observe=["residual", "ntk_eigs"]
  )
  lam_inf = float(np.linalg.eigvalsh(np.asarray(net.kernel(x, get="ntk").ntk))[0])
  eta, y2 = cells[0].learning_rate, float(jnp.sum(y**2))
  out = [_summary(times, run, lam_inf, eta, y2) for run in runs]
  err = _common.solver_error(
    cfg,
    cells,
    lambda p: nl.centered(net, p),
    params,
    x,
    y,
    out,
    lambda run: _summary(times, run, lam_inf, eta, y2),
    ["worst_ratio", "fitted_rate", "lambda_bar"],
    observe=["residual", "ntk_eigs"],
  )
  return [dict(s, solver_error=e) for s, e in zip(out, err, strict=True)]


def _summary(times, run, lam_inf, eta, y2):
  res2 = np.asarray(run.observables["residual"]) ** 2
  lam_bar = float(np.min(run.observables["ntk_min_eig"]))
  bound = y2 * np.exp(-2 * eta * lam_bar * times)
  rate = -np.polyfit(times[1:], np.log(res2[1:]), 1)[0]  # fitted d/dt of −log ‖y − u‖²
  return {
    "lambda_bar": lam_bar,
    "lambda_min_limit": lam_inf,
    "worst_ratio": float(np.max(res2[1:] / bound[1:])),
    "fitted_rate": float(rate),
    "bound_rate": 2 * eta * lam_bar,
    "worst_ratio_limit": float(np.max(res2[1:] / (y2 * np.exp(-2 * eta * lam_inf * times[1:])))),
    "times": times.tolist(),
    "residual2": res2.tolist(),
    "bound": bound.tolist(),
  }


def report(out, cfg, options, results):
  fig, axes = _common.figure(1, 2)
  ax = axes[0]
  for w, runs in _common.by_width(results, "residual2").items():
    (line,) = ax.semilogy(results[0]["times"], np.median(np.array(runs), axis=0), label=f"‖y − u‖², m = {w}")
    bounds = np.median(np.array(_common.by_width(results, "bound")[w]), axis=0)
    ax.semilogy(results[0]["times"], bounds, "--", color=line.get_color())
  ax.set_xlabel("t")
  ax.set_title("‖y − u(t)‖² (solid) and ‖y‖² exp(−2ηλ̄t) (dashed), medians", fontsize=9)
  ax.legend(fontsize=8)
  _common.loglog_panel(axes[1], results, "worst_ratio", "max_{t>0} ‖y − u‖² / bound (≤ 1: holds)")
  _common.savefig(fig, out / "convergence_rate.png")
  worst = max(r["worst_ratio"] for r in results)
  cols = [
    ("lambda_bar", "λ̄ = min_t λ_min(K(t))", ".3e"),
    ("lambda_min_limit", "λ_min(H^∞)", ".3e"),
    ("worst_ratio", "max_{t>0} LHS/RHS", ".3f"),
    ("fitted_rate", "fitted decay rate", ".3e"),
    ("bound_rate", "2ηλ̄", ".3e"),
    ("worst_ratio_limit", "max_{t>0} LHS/RHS with λ_min(H^∞)", ".3f"),
  ]
  md = (
    f"Centred network, gradient flow to t = {cfg.training.time:g}, {cfg.data.n} points; medians over "
    f"seeds. Worst ratio over all cells: {worst:.3f} "
    f"({'the bound holds' if worst <= 1 + 1e-6 else 'the bound FAILS'} with λ̄ from the saved "
    "times).\n\n" + _common.median_table(results, cols) + "\n\n" + _common.solver_error_table(results) + "\n"
  )
  (out / "convergence_rate.md").write_text(md)
  print(md)


EXPERIMENT = register(
  Experiment(
    "convergence_rate",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    # vmapped adaptive solves cost more on a CPU (`_common.flow`)
    vmap_seeds_on_cpu=False,
    keys=(*NO_TEST, *MLP, *FLOW, "sweep.widths"),
  )
)
