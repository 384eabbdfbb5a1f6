"""Shankar, Fang, Guo, Fridovich-Keil, Schmidt, Ragan-Kelley & Recht 2020 ("Neural Kernels Without
Tangents"): the NNGP and NTK kernels of the Myrtle networks, by kernel regression on small
training sets.

The paper: kernels built from the Myrtle architectures (3×3 convolutions, ReLU and 2×2 average
pooling; their compositional kernels are the networks' NNGPs) classify CIFAR-10 well — 90 % with
the whole training set — and on small training sets these kernels without tangents outperform the
NTKs of the same architectures (and trained networks outperform both; no network is trained
here).

Here: scikit-learn's digits as 8×8×1 images, Myrtle-d for d in ``sweep.depths`` (5, 7, 10) adapted
to 8×8 inputs (`_convnets`: stages at 8×8, 4×4 and 2×2, then one 2×2 pool to 1×1, Flatten and
Dense; σ_w = ``model.W_std`` on every layer, NTK parametrization), and per cell (d, n, seed) the
test accuracy of kernel regression on the seed's random training subset of size n (nested over
n; class-balanced with ``options.balanced``), targets one-hot − 0.1 and the ridge
``options.ridge``·mean(diag K): the NNGP posterior mean (`gp_inference`) and the NTK regression
(`mse_ensemble` at t = ∞). Each depth's kernels are computed once, on the union of every seed's
largest subset and the test images, and sliced for each cell.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common, _convnets
from ntk_lab.experiments.registry import Experiment, register

DESCRIPTION = (
  "Shankar et al. 2020: NNGP vs NTK regression of Myrtle-5/7/10 kernels on small subsets of digits"
)
OPTIONS = {"ridge": 1e-4, "balanced": True}

PAPER = (
  "the kernels of the Myrtle networks (3×3 convolutions, ReLU, 2×2 average pooling) classify "
  "CIFAR-10 well (90 % on the whole training set), and on small training sets these kernels "
  "without tangents (compositional kernels: the networks' NNGPs) outperform the NTKs of the same "
  "architectures, while trained networks outperform both (Shankar et al. 2020)"
)


def check(cfg, options):
  """ConfigError for options out of range and training sizes the digits cannot give."""
  _convnets.check_options(options)
  _convnets.check_sizes(cfg, options["balanced"])


def run_seeds(cfg, cells, options):
  check(cfg, options)
  kern = _convnets.config_kernels(cfg, "myrtle", options["balanced"])
  out = []
  for cell in cells:
    acc = _convnets.kernel_accuracies(kern, _convnets.subset_rows(kern, cell.seed, cell.n), options["ridge"])
    out.append({"nngp_accuracy": acc["nngp"], "ntk_accuracy": acc["ntk"], "kernel_points": len(kern["x"])})
  return out


def report(out, cfg, options, results):
  depths = sorted({r["depth"] for r in results})
  fig, axes = _common.figure(1, 2, size=(4.6, 3.9))
  ns = sorted({r["n"] for r in results})
  rows, ahead, total = [], 0, 0
  for i, d in enumerate(depths):
    mine = [r for r in results if r["depth"] == d]
    stats = {key: _convnets.by_n(mine, key) for key in ("nngp_accuracy", "ntk_accuracy")}
    diff = _convnets.by_n([{**r, "diff": r["nngp_accuracy"] - r["ntk_accuracy"]} for r in mine], "diff")
    for key, style, label in (("nngp_accuracy", "o-", "NNGP"), ("ntk_accuracy", "s--", "NTK")):
      x = list(stats[key])
      mean = np.array([s[0] for s in stats[key].values()])
      sd = np.array([s[1] for s in stats[key].values()])
      axes[0].plot(x, mean, style, color=f"C{i}", label=f"Myrtle-{d} {label}")
      axes[0].fill_between(x, mean - sd, mean + sd, color=f"C{i}", alpha=0.12)
    x = list(diff)
    axes[1].errorbar(
      x,
      [100 * s[0] for s in diff.values()],
      [100 * s[1] for s in diff.values()],
      fmt="o-",
      color=f"C{i}",
      capsize=3,
      label=f"Myrtle-{d}",
    )
    for n in stats["nngp_accuracy"]:
      seeds = len(_common.by_width(mine, "nngp_accuracy", "n")[n])
      fmt = lambda s: f"{s[0]:.3f} ± {s[1]:.3f}"
      rows.append(
        [
          f"Myrtle-{d}",
          n,
          seeds,
          fmt(stats["nngp_accuracy"][n]),
          fmt(stats["ntk_accuracy"][n]),
          f"{100 * diff[n][0]:+.1f} ± {100 * diff[n][1]:.1f}",
        ]
      )
      ahead += diff[n][0] >= 0
      total += 1
  for ax in axes:
    _convnets.size_axis(ax, ns)
    ax.legend(fontsize=7)
  axes[0].set_ylabel("test accuracy")
  axes[0].set_title(
    f"digits 8×8: kernel regression, mean ± sd over {len(cfg.sweep.seeds)} subsets", fontsize=9
  )
  axes[1].axhline(0.0, color="k", lw=0.8)
  axes[1].set_ylabel("NNGP − NTK test accuracy (points)")
  axes[1].set_title("kernels without tangents vs with them", fontsize=9)
  _common.savefig(fig, out / "myrtle.png")
  table = _common.markdown_table(["network", "n", "subsets", "NNGP", "NTK", "NNGP − NTK (points)"], rows)
  md = (
    f'Shankar et al. 2020, "Neural Kernels Without Tangents". Paper: {PAPER}.\n\n'
    f"This run: {_convnets.setting(cfg, options, results[0]['kernel_points'])}; Myrtle networks "
    f"adapted to 8×8 (stages at 8×8, 4×4, 2×2), σ_w = {cfg.model.W_std:g}. Test accuracy, mean ± sd "
    f"over subsets. The NNGP "
    f"is at least as accurate as the NTK (in the mean) in {ahead} of {total} settings.\n\n" + table + "\n"
  )
  (out / "myrtle.md").write_text(md)
  print(md)


EXPERIMENT = register(
  Experiment(
    "myrtle",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    # kernels only, sliced per cell: nothing to vmap
    vmap_seeds_on_cpu=False,
    # the digits fix the inputs and the outputs; Myrtle-d exists for d = 5, 7, 10, and only its
    # kernels are computed, so there is no width
    keys=("data.n", "data.n_test", "model.depth", "model.W_std", "model.b_std", "sweep.n", "sweep.depths"),
    allowed={"model.depth": tuple(_convnets.MYRTLE_BLOCKS)},
    check=check,
    memory=_convnets.memory,
  )
)
