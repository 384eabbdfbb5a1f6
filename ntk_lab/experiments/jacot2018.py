"""Jacot, Gabriel & Hongler 2018 ("Neural tangent kernel", Fig. 1): the NTK of finite ReLU nets on
the unit circle at initialization and after training, against its infinite-width limit.

Setting (the paper's, as far as it is stated there): depth-4 ReLU nets (three hidden layers of
width n, four weight layers) in NTK parametrization with W ~ N(0, 1) and bias scale β = 0.1
(``model.b_std``), inputs x = (cos γ, sin γ) on the unit circle, the kernel row
Θ(x₀, x(γ)) with x₀ = (1, 0) for γ ∈ [−π, π), several random initializations per width, at
initialization and after gradient descent on a few points of the circle.

Per cell (width, seed): Θ at θ₀ and after ``options.steps`` GD steps (``optax.sgd``; the loss
½ Σ (f − y)² on ``data.n`` random points of the circle with targets y = x₁x₂, step
``options.lr_fraction`` × 2/λ_max(Θ∞) on them), and the analytic Θ∞ on the same grid. Records the
curves, ‖Θ_init − Θ∞‖/‖Θ∞‖ and the kernel's motion during training ‖Θ_trained − Θ_init‖/‖Θ∞‖. The
report draws every curve (the paper's figure), and tabulates per width the spread over seeds, the
seed mean against the limit, and the motion.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import MLP, Experiment, register

DESCRIPTION = "Jacot et al. 2018 Fig. 1: NTK of depth-4 ReLU nets on the circle, init vs trained vs limit"
OPTIONS = {"angles": 64, "steps": 200, "lr_fraction": 0.5}

PAPER = (
  "the NTKs of the width-10,000 nets lie on the limiting kernel and hardly move during "
  "training; at width 500 they scatter around it and move visibly during training"
)


def data(cfg, options):
  """(x₀, circle grid, γ, training inputs, targets)."""
  import jax
  import jax.numpy as jnp

  from ntk_lab import datasets

  gamma = -np.pi + 2 * np.pi * np.arange(options["angles"]) / options["angles"]
  grid = jnp.stack([jnp.cos(jnp.asarray(gamma)), jnp.sin(jnp.asarray(gamma))], axis=1)
  x = datasets.circle(cfg.data.n, key=jax.random.PRNGKey(10_000))
  y = x[:, :1] * x[:, 1:]
  return jnp.array([[1.0, 0.0]]), grid, gamma, x, y


def run_seeds(cfg, cells, options):
  import jax
  import optax

  import ntk_lab as nl

  _common.check_gd_options(options, ints=("angles", "steps"))
  x0, grid, _, x, y = data(cfg, options)
  net = _common.make_model(cfg, cells[0])
  limit = np.asarray(net.kernel(x0, grid, get="ntk").ntk[0])
  eta = options["lr_fraction"] * float(nl.max_learning_rate(net.kernel(x, get="ntk").ntk))
  row = jax.jit(lambda p: nl.empirical_ntk(net, p, x0, grid, method="structured")[0])
  out = []
  for cell in cells:
    p0 = net.init(jax.random.PRNGKey(cell.seed), 2)
    init = np.asarray(row(p0))
    run = nl.train(net, p0, x, y, optimizer=optax.sgd(eta), steps=options["steps"], every=options["steps"])
    trained = np.asarray(row(run.final_params))
    scale = np.linalg.norm(limit)
    out.append(
      {
        "gamma_grid": options["angles"],
        "theta_init": init.tolist(),
        "theta_trained": trained.tolist(),
        "theta_limit": limit.tolist(),
        "rel_dev_init": float(np.linalg.norm(init - limit) / scale),
        "rel_dev_trained": float(np.linalg.norm(trained - limit) / scale),
        "kernel_motion": float(np.linalg.norm(trained - init) / scale),
        "learning_rate_used": eta,
        "loss_init": float(0.5 * np.sum((np.asarray(run.train_outputs[0]) - np.asarray(y)) ** 2)),
        "loss_final": float(0.5 * np.sum((np.asarray(run.train_outputs[-1]) - np.asarray(y)) ** 2)),
      }
    )
    del p0, run
  return out


def summary(results):
  """Per width: seed spread, seed-mean error, median deviation and motion (dicts of floats)."""
  rows = {}
  for w, rs in _common.by_width(results, "theta_init").items():
    init = np.array(rs)
    trained = np.array(_common.by_width(results, "theta_trained")[w])
    limit = np.array(results[0]["theta_limit"])
    scale = np.linalg.norm(limit)
    spread = (
      float(np.mean(init.std(axis=0, ddof=1)) / np.mean(np.abs(limit))) if len(init) > 1 else float("nan")
    )
    rows[w] = {
      "seeds": len(init),
      "spread": spread,
      "mean_vs_limit": float(np.linalg.norm(init.mean(axis=0) - limit) / scale),
      "dev_init": float(np.median(_common.by_width(results, "rel_dev_init")[w])),
      "motion": float(np.median(_common.by_width(results, "kernel_motion")[w])),
      "mean_trained_vs_limit": float(np.linalg.norm(trained.mean(axis=0) - limit) / scale),
    }
  return rows


def _beta(cfg):
  b = cfg.model.b_std
  return "no biases" if b is None else f"β = {b:g}"


def report(out, cfg, options, results):
  gamma = -np.pi + 2 * np.pi * np.arange(options["angles"]) / options["angles"]
  widths = sorted({r["width"] for r in results})
  fig, axes = _common.figure(1, 2, size=(5.2, 4.0))
  colors = dict(zip(widths, ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple")))
  for w in widths:
    rs = [r for r in results if r["width"] == w]
    for i, r in enumerate(rs):
      axes[0].plot(
        gamma,
        r["theta_init"],
        color=colors.get(w),
        lw=0.8,
        alpha=0.7,
        label=f"n = {w:,}, t = 0" if i == 0 else None,
      )
      axes[0].plot(
        gamma,
        r["theta_trained"],
        color=colors.get(w),
        lw=0.8,
        ls="--",
        alpha=0.7,
        label=f"n = {w:,}, after {options['steps']} GD steps" if i == 0 else None,
      )
  axes[0].plot(gamma, results[0]["theta_limit"], "k-", lw=1.6, label="n → ∞ (analytic)")
  axes[0].set_xlabel("γ"), axes[0].set_ylabel("Θ(x₀, x(γ))")
  axes[0].set_title(
    f"NTK on the circle, depth {results[0]['depth'] + 1}, {results[0]['activation']}, {_beta(cfg)}",
    fontsize=9,
  )
  axes[0].legend(fontsize=7)
  rows = summary(results)
  axes[1].loglog(widths, [rows[w]["dev_init"] for w in widths], "o-", label="‖Θ_init − Θ∞‖/‖Θ∞‖ (median)")
  axes[1].loglog(
    widths, [rows[w]["motion"] for w in widths], "s-", label="‖Θ_trained − Θ_init‖/‖Θ∞‖ (median)"
  )
  axes[1].loglog(widths, [rows[w]["mean_vs_limit"] for w in widths], "^-", label="seed mean vs limit")
  axes[1].set_xlabel("width n"), axes[1].legend(fontsize=7)
  axes[1].set_title("deviation, motion and seed-mean error against width", fontsize=9)
  _common.savefig(fig, out / "jacot2018.png")
  fmt = lambda v: f"{v:.3f}" if np.isfinite(v) else "– (one seed)"
  table = _common.markdown_table(
    [
      "width",
      "seeds",
      "spread over seeds (mean sd / mean Θ∞)",
      "median ‖Θ_init − Θ∞‖/‖Θ∞‖",
      "seed mean vs Θ∞",
      "median motion ‖Θ_T − Θ_0‖/‖Θ∞‖",
    ],
    [
      [
        f"{w:,}",
        str(r["seeds"]),
        fmt(r["spread"]),
        f"{r['dev_init']:.3f}",
        f"{r['mean_vs_limit']:.3f}",
        f"{r['motion']:.3f}",
      ]
      for w, r in rows.items()
    ],
  )
  md = (
    f"Jacot et al. 2018, Fig. 1. Paper: {PAPER}.\n\n"
    f"This run: depth-{results[0]['depth'] + 1} {results[0]['activation']} nets ({_beta(cfg)}), "
    f"Θ(x₀, x(γ)) on "
    f"{options['angles']} angles, {options['steps']} GD steps (η = {results[0]['learning_rate_used']:.3g}, "
    f"{options['lr_fraction']:g} × 2/λ_max(Θ∞)) on {cfg.data.n} circle points, y = x₁x₂.\n\n" + table + "\n"
  )
  lo, hi = widths[0], widths[-1]
  if lo != hi and np.isfinite(rows[lo]["spread"]):
    md += (
      f"\nFrom width {lo:,} to {hi:,} the spread falls by {rows[lo]['spread'] / rows[hi]['spread']:.1f}× "
      f"and the motion during training by {rows[lo]['motion'] / rows[hi]['motion']:.1f}× (both O(1/√n) "
      f"in theory: {np.sqrt(hi / lo):.1f}×).\n"
    )
  (out / "jacot2018.md").write_text(md)
  print(md)


def check(cfg, options):
  _common.check_gd_options(options, ints=("angles", "steps"))


# One seed at a time: a vmapped width-10,000 net would hold every seed's parameters at once. The
# inputs are the circle (no data keys but n) and training is gradient descent with the options'
# steps and step size (no training keys).
EXPERIMENT = register(
  Experiment(
    "jacot2018",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    vmap_seeds_on_cpu=False,
    keys=("data.n", *MLP, "sweep.widths"),
    check=check,
  )
)
