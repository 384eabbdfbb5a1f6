"""Arora, Du, Li, Salakhutdinov, Wang & Yu 2020 ("Harnessing the Power of Infinitely Wide Deep
Nets on Small-data Tasks"): the CNTK against the trained CNN on small training sets.

The paper: on CIFAR-10 subsets of 10 to 640 images, classification with the convolutional NTK
beats a trained ResNet-34 by 1–3 % at every size.

Here: scikit-learn's digits as 8×8×1 images (`_convnets.split`: ``data.n_test`` held out, the rest
the pool), and for each seed nested random training subsets of every size n of ``sweep.n`` drawn
from the pool (class-balanced with ``options.balanced``). The network: ``model.depth`` blocks
Conv 3×3 ``SAME`` + ReLU, global average pooling and a Dense readout of 10 outputs, σ_w =
``model.W_std`` and σ_b = ``model.b_std`` on every layer, NTK parametrization. Per cell (n, seed):

* the CNTK: kernel regression with the infinite-width NTK of that network, the t → ∞ mean of the
  infinite ensemble trained by gradient flow (`mse_ensemble`), on targets one-hot − 0.1 with the
  ridge ``options.ridge``·mean(diag K); and the CNN-GP, the NNGP posterior mean (`gp_inference`);
* the same network at width ``model.width``, initialised from the seed, centred with
  ``options.centered`` (f − f(·; θ₀), `nl.centered`: its outputs start at 0, as the infinite
  ensemble's mean does) and trained by full-batch gradient descent with momentum
  (``optax.sgd(η, momentum=options.momentum)`` on ½ Σ (f − y)², ``options.steps`` steps, test
  accuracy every ``options.every``), η = ``options.lr_fraction`` × 2/λ_max(Θ∞) of the subset
  (within the heavy-ball bound 2(1 + β)/λ_max for any momentum β).

Test accuracy (argmax of the ten outputs) on the held-out images for all three. The kernels are
computed once per run, on the union of every seed's largest subset and the test images
(`_convnets.run_kernels`), and sliced for each cell.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common, _convnets
from ntk_lab.experiments.registry import Experiment, register

DESCRIPTION = "Arora et al. 2020: CNTK (and CNN-GP) regression vs the trained CNN on small subsets of digits"
OPTIONS = {
  "steps": 300,
  "every": 30,
  "lr_fraction": 0.7,
  "momentum": 0.9,
  "centered": True,
  "ridge": 1e-4,
  "balanced": True,
}

PAPER = (
  "on CIFAR-10 subsets of 10 to 640 training images, the convolutional NTK beats a trained "
  "ResNet-34 by 1–3 % in test accuracy at every size (Arora et al. 2020)"
)


def check(cfg, options):
  """ConfigError for options out of range and training sizes the digits cannot give."""
  from ntk_lab.experiments.registry import ConfigError

  _common.check_gd_options(options)
  beta = options["momentum"]
  if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
    raise ConfigError(f"options.momentum: the heavy-ball β must be in [0, 1), got {beta!r}.")
  if not isinstance(options["centered"], bool):
    raise ConfigError(f"options.centered: must be true or false, got {options['centered']!r}.")
  _convnets.check_options(options)
  _convnets.check_sizes(cfg, options["balanced"])


def run_seeds(cfg, cells, options):
  import jax
  import jax.numpy as jnp
  import optax

  import ntk_lab as nl

  check(cfg, options)
  kern = _convnets.config_kernels(cfg, "gap", options["balanced"])
  m = cfg.model
  net = _convnets.network("gap", m.depth, m.width, m.W_std, m.b_std)
  dtype = kern["k"].ntk.dtype
  x_test = jnp.asarray(kern["x"][kern["test"]], dtype)
  labels_test = kern["labels"][kern["test"]]
  out = []
  for cell in cells:
    rows = _convnets.subset_rows(kern, cell.seed, cell.n)
    labels = kern["labels"][rows]
    y = jnp.asarray(_convnets.targets(labels), dtype)
    eta = options["lr_fraction"] * float(nl.max_learning_rate(kern["k"].ntk[np.ix_(rows, rows)]))
    params = net.init(jax.random.PRNGKey(cell.seed), (8, 8, 1), dtype=dtype)
    run = nl.train(
      nl.centered(net, params) if options["centered"] else net,
      params,
      jnp.asarray(kern["x"][rows], dtype),
      y,
      optimizer=optax.sgd(eta, momentum=options["momentum"] or None),
      steps=options["steps"],
      every=options["every"],
      x_test=x_test,
    )
    final = np.asarray(run.train_outputs[-1])
    kernels = _convnets.kernel_accuracies(kern, rows, options["ridge"])
    curve = [_convnets.accuracy(o, labels_test) for o in np.asarray(run.test_outputs)]
    out.append(
      {
        "ntk_accuracy": kernels["ntk"],
        "nngp_accuracy": kernels["nngp"],
        "net_accuracy": curve[-1],
        "net_train_accuracy": _convnets.accuracy(final, labels),
        "net_train_residual": float(np.sum((final - np.asarray(y)) ** 2) / np.sum(np.asarray(y) ** 2)),
        "learning_rate_used": eta,
        "kernel_points": len(kern["x"]),
        "steps": np.asarray(run.times).tolist(),
        "net_accuracy_curve": curve,
      }
    )
  return out


CURVES = (
  ("ntk_accuracy", "CNTK regression", "C0", "o-"),
  ("nngp_accuracy", "CNN-GP posterior mean", "C2", "s--"),
  ("net_accuracy", "trained CNN", "C1", "^-"),
)


def report(out, cfg, options, results):
  m = cfg.model
  fig, axes = _common.figure(1, 2, size=(4.6, 3.9))
  for key, label, color, style in CURVES:
    stats = _convnets.by_n(results, key)
    ns, mean, sd = (
      list(stats),
      np.array([s[0] for s in stats.values()]),
      np.array([s[1] for s in stats.values()]),
    )
    axes[0].semilogx(
      ns, mean, style, color=color, label=label if key != "net_accuracy" else f"{label}, width {m.width}"
    )
    axes[0].fill_between(ns, mean - sd, mean + sd, color=color, alpha=0.15)
  _convnets.size_axis(axes[0], sorted({r["n"] for r in results}))
  axes[0].set_ylabel("test accuracy")
  axes[0].set_title(
    f"digits 8×8, depth-{m.depth} CNN with GAP: mean ± sd over {len(cfg.sweep.seeds)} subsets", fontsize=9
  )
  axes[0].legend(fontsize=7)
  r0 = results[0]
  for i, (n, runs) in enumerate(_common.by_width(results, "net_accuracy_curve", "n").items()):
    axes[1].plot(r0["steps"], np.mean(runs, axis=0), "-", color=f"C{i}", label=f"n = {n}")
    axes[1].axhline(_convnets.by_n(results, "ntk_accuracy")[n][0], color=f"C{i}", ls=":", lw=0.9)
  axes[1].set_xlabel("GD step")
  axes[1].set_ylabel("test accuracy (mean over subsets)")
  axes[1].set_title("trained CNN over training (dotted: its CNTK regression)", fontsize=9)
  axes[1].legend(fontsize=7)
  _common.savefig(fig, out / "cntk_small_data.png")

  stats = {key: _convnets.by_n(results, key) for key, *_ in CURVES}
  gaps = _convnets.by_n([{**r, "gap": r["ntk_accuracy"] - r["net_accuracy"]} for r in results], "gap")
  train_acc, residual = (
    _convnets.by_n(results, "net_train_accuracy"),
    _convnets.by_n(results, "net_train_residual"),
  )
  counts = {n: len(v) for n, v in _common.by_width(results, "ntk_accuracy", "n").items()}
  fmt = lambda s: f"{s[0]:.3f} ± {s[1]:.3f}"
  rows = [
    [
      n,
      counts[n],
      fmt(stats["ntk_accuracy"][n]),
      fmt(stats["nngp_accuracy"][n]),
      fmt(stats["net_accuracy"][n]),
      f"{100 * gaps[n][0]:+.1f} ± {100 * gaps[n][1]:.1f}",
      f"{train_acc[n][0]:.3f}",
      f"{residual[n][0]:.2e}",
    ]
    for n in stats["ntk_accuracy"]
  ]
  table = _common.markdown_table(
    [
      "n",
      "subsets",
      "CNTK",
      "CNN-GP",
      f"trained CNN (width {m.width})",
      "CNTK − CNN (points)",
      "CNN train accuracy",
      "CNN ‖f − y‖²/‖y‖² (train)",
    ],
    rows,
  )
  ahead = sum(gaps[n][0] >= 0 for n in gaps)
  md = (
    f'Arora et al. 2020, "Harnessing the Power of Infinitely Wide Deep Nets on Small-data Tasks". '
    f"Paper: {PAPER}.\n\n"
    f"This run: {_convnets.setting(cfg, options, r0['kernel_points'])}; depth-{m.depth} CNN (Conv "
    f"3×3 SAME + ReLU, global average pooling, Dense), σ_w = {m.W_std:g}; the CNN at width {m.width}"
    f"{' (centred: f − f(·; θ₀))' if options['centered'] else ''} trained by "
    f"{options['steps']} full-batch GD steps with momentum {options['momentum']:g}, "
    f"η = {options['lr_fraction']:g} × 2/λ_max(Θ∞). Test accuracy, mean ± sd over subsets. "
    f"The CNTK is ahead of the trained CNN (in the mean) at {ahead} of {len(gaps)} sizes.\n\n" + table + "\n"
  )
  (out / "cntk_small_data.md").write_text(md)
  print(md)


EXPERIMENT = register(
  Experiment(
    "cntk_small_data",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    # one seed at a time: each seed trains on its own subset (one compiled lax.scan per size)
    vmap_seeds_on_cpu=False,
    # the digits fix the inputs (8×8×1) and the outputs (10); the network is the ReLU CNN with
    # global average pooling in NTK parametrization, whose NTK is the CNTK the paper uses
    keys=("data.n", "data.n_test", "model.width", "model.depth", "model.W_std", "model.b_std", "sweep.n"),
    check=check,
    memory=_convnets.memory,
  )
)
