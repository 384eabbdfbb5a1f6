"""Lee et al. 2019 ("Wide neural networks of any depth evolve as linear models under gradient
descent"): a network, its linearization and the infinite-width model, trained side by side by
gradient descent, and the gaps between them against the width.

Per cell (width, seed): the config's MLP at θ₀ trained by full-batch gradient descent
(``optax.sgd(η)`` on ½ Σ (f − y)², ``options.steps`` steps, outputs recorded every
``options.every``), with η = ``options.lr_fraction`` × 2/λ_max(Θ∞) (`ntk_lab.max_learning_rate`).
Its linearization around θ₀ follows the discrete closed form u_k = y + (I − ηΘ̂₀)^k (u₀ − y) with
the empirical NTK Θ̂₀ (`mse_dynamics(..., discrete=True)`, which is exactly GD on the linearized
net), and the infinite-width model the same form with the analytic Θ∞ and the same u₀. Records,
on the test inputs, the RMS gaps net − linearized and net − infinite-width at their maximum over
the recorded steps and at the last step, and the relative weight motion ‖θ_T − θ₀‖/‖θ₀‖. The
report fits each against the width on a log-log scale. The paper proves sup_t ‖f_t − f_t^lin‖ =
O(1/√n), an upper bound: the measured net − linearized gap may fall faster, while the gap to the
infinite-width model, set by the fluctuation Θ̂₀ − Θ∞, falls like 1/√n.

The running maximum is taken over the recorded steps; a finer ``every`` can only raise it.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import DATA, MLP, Experiment, register

DESCRIPTION = "Lee et al. 2019: network vs linearized vs infinite-width outputs over GD, gaps vs width"
OPTIONS = {"steps": 300, "every": 10, "lr_fraction": 0.5}

PAPER = (
  "during gradient descent the network's outputs stay within O(1/√n) of its linearization's "
  "(sup_t ‖f_t − f_t^lin‖ = O(n^(−1/2)), an upper bound), and the weights move by O(1) while "
  "their norm grows with the width; with the infinite-width kernel the linear model tracks both"
)

GAPS = {
  "lin_gap": "max_k RMS(f_NN − f_lin) on test points (paper's bound: slope ≤ −0.5)",
  "inf_gap": "max_k RMS(f_NN − f_∞) on test points (Θ̂₀ − Θ∞ = O(n^(−1/2)): −0.5)",
  "weight_motion": "‖θ_T − θ₀‖/‖θ₀‖ (O(1) motion over a norm ∝ n: −1)",
}


def _rms(a, b):
  return np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=tuple(range(1, np.ndim(a)))))


def run_seeds(cfg, cells, options):
  import jax
  import optax

  import ntk_lab as nl

  _common.check_gd_options(options)
  x, y, xt, _ = _common.make_data(cfg, cells[0].n, 0)
  net = _common.make_model(cfg, cells[0])
  k_inf, kt_inf = net.kernel(x, get="ntk").ntk, net.kernel(xt, x, get="ntk").ntk
  eta = options["lr_fraction"] * float(nl.max_learning_rate(k_inf))
  out = []
  for cell in cells:
    p0 = net.init(jax.random.PRNGKey(cell.seed), x.shape[1])
    run = nl.train(
      net, p0, x, y, optimizer=optax.sgd(eta), steps=options["steps"], every=options["every"], x_test=xt
    )
    steps = run.times
    u0, u0t = net.apply(p0, x), net.apply(p0, xt)
    k_emp, kt_emp = nl.empirical_ntk(net, p0, x), nl.empirical_ntk(net, p0, xt, x)
    lin = nl.mse_dynamics(
      k_emp, y, steps, k_test_train=kt_emp, learning_rate=eta, u0_train=u0, u0_test=u0t, discrete=True
    )
    inf = nl.mse_dynamics(
      k_inf, y, steps, k_test_train=kt_inf, learning_rate=eta, u0_train=u0, u0_test=u0t, discrete=True
    )
    nn_t = np.asarray(run.test_outputs)
    lin_gap, inf_gap = _rms(nn_t, lin.test), _rms(nn_t, inf.test)
    flat = lambda p: np.concatenate([np.ravel(a) for a in jax.tree.leaves(p)])
    th0, thT = flat(p0), flat(run.final_params)
    out.append(
      {
        "steps": np.asarray(steps).tolist(),
        "learning_rate_used": eta,
        "lin_gap": float(lin_gap.max()),
        "inf_gap": float(inf_gap.max()),
        "lin_gap_final": float(lin_gap[-1]),
        "inf_gap_final": float(inf_gap[-1]),
        "lin_gap_train": float(_rms(run.train_outputs, lin.train).max()),
        "weight_motion": float(np.linalg.norm(thT - th0) / np.linalg.norm(th0)),
        "train_loss_final": float(0.5 * np.sum((np.asarray(run.train_outputs[-1]) - np.asarray(y)) ** 2)),
        "nn_test0": nn_t[:, 0, 0].tolist(),
        "lin_test0": np.asarray(lin.test[:, 0, 0]).tolist(),
        "inf_test0": np.asarray(inf.test[:, 0, 0]).tolist(),
      }
    )
  return out


def report(out, cfg, options, results):
  fig, axes = _common.figure(1, 3, size=(4.3, 3.8))
  widths = sorted({r["width"] for r in results})
  for w, style in ((widths[0], "-"), (widths[-1], "--")):
    r = next(r for r in results if r["width"] == w)
    axes[0].plot(r["steps"], r["nn_test0"], "C0" + style, label=f"network, n = {w:,}")
    axes[0].plot(r["steps"], r["lin_test0"], "C1" + style, label=f"linearized, n = {w:,}")
    axes[0].plot(r["steps"], r["inf_test0"], "k" + style, lw=0.8, label=f"n = ∞ (same f₀), n = {w:,}")
  axes[0].set_xlabel("GD step k"), axes[0].set_ylabel("f(x_test,0)")
  axes[0].set_title("one test output over training", fontsize=9)
  axes[0].legend(fontsize=6)
  fits = {
    "lin_gap": _common.loglog_panel(
      axes[1], results, "lin_gap", "max_k RMS(f_NN − f_lin), test (bound: ≤ −1/2)"
    ),
    "inf_gap": _common.loglog_panel(
      axes[2], results, "inf_gap", "max_k RMS(f_NN − f_∞), test (theory: −1/2)"
    ),
  }
  fits["weight_motion"] = (
    _common.loglog_fit([r["width"] for r in results], [r["weight_motion"] for r in results])[:3]
    if len(widths) > 1
    else None
  )
  _common.savefig(fig, out / "lee2019.png")
  cols = [
    ("lin_gap", "max RMS net − lin (test)", ".2e"),
    ("inf_gap", "max RMS net − ∞ (test)", ".2e"),
    ("lin_gap_final", "final net − lin", ".2e"),
    ("weight_motion", "‖θ_T − θ₀‖/‖θ₀‖", ".2e"),
    ("train_loss_final", "final train loss", ".2e"),
  ]
  r0 = results[0]
  md = (
    f"Lee et al. 2019. Paper: {PAPER}.\n\n"
    f"This run: depth-{r0['depth']} {r0['activation']} nets, {cfg.data.n} training / {cfg.data.n_test} "
    f"test points, {options['steps']} GD steps with η = {r0['learning_rate_used']:.3g} "
    f"({options['lr_fraction']:g} × 2/λ_max(Θ∞)), outputs every {options['every']} steps; medians "
    "over seeds.\n\n" + _common.median_table(results, cols) + "\n\n" + _common.slope_lines(fits, GAPS) + "\n"
  )
  (out / "lee2019.md").write_text(md)
  print(md)


# One seed at a time: each seed's run is one compiled lax.scan already.
def check(cfg, options):
  _common.check_gd_options(options)


# Gradient descent with the options' steps and step size: no training keys.
EXPERIMENT = register(
  Experiment(
    "lee2019",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    vmap_seeds_on_cpu=False,
    keys=(*DATA, *MLP, "sweep.widths"),
    check=check,
  )
)
