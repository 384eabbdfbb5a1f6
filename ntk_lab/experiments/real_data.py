"""Kernels vs trained finite networks on a real data set (scikit-learn's digits, shipped with the
package: no download).

The digits (8×8 images, 10 classes) are split once (fixed permutation) into `data.n` training and
`data.n_test` test images; pixels are centred by the training mean and each image is scaled to
norm √64 (so NTK-parametrised pre-activations have unit variance); targets are one-hot minus 0.1; ``options.corrupt`` replaces that fraction of the training labels by
random classes (`ntk_lab.datasets.digits`).

Per cell (width, seed): the MLP of the config at that width, centred (f − f(·; θ₀), so its outputs
start at 0 like the ensemble mean's), trained by gradient flow on
L = ½ Σ ‖f(x_i) − y_i‖² at rate η to `training.time`; the test accuracy (argmax) and the distance
to the infinite-width NTK predictor at every saved time. Kernel baselines on the same split: the
infinite ensemble's mean at the same times (`mse_ensemble`, kernel="ntk"), its t → ∞ limit (NTK
regression), and the NNGP posterior mean (`gp_inference`). The report plots test accuracy against
width with the kernels as horizontal lines, and the accuracy over training time.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import FLOW, MLP, Experiment, register

DESCRIPTION = "NTK/NNGP regression vs trained finite nets of growing width on scikit-learn's digits"
OPTIONS = {"dataset": "digits", "corrupt": 0.0}


def load(cfg, options):
  """(x, y, x_test, y_test, labels_test) as float arrays of the config's dtype (`datasets.digits`
  with ``normalize="unit"``, rescaled to norm √64; targets one-hot − 0.1; a fraction
  ``options.corrupt`` of the training labels replaced by random classes)."""
  from ntk_lab import datasets

  check(cfg, options)
  n, n_test = cfg.data.n, cfg.data.n_test
  d = datasets.digits(
    n_train=n, n_test=n_test, normalize="unit", labels="onehot", corrupt=float(options["corrupt"]), key=0
  )
  x, xt = np.asarray(d.x_train) * 8.0, np.asarray(d.x_test) * 8.0
  return x, np.asarray(d.y_train) - 0.1, xt, np.asarray(d.y_test) - 0.1, np.argmax(d.y_test, axis=1)


def check(cfg, options):
  """ConfigError for a data set, corruption or split the digits cannot give."""
  from ntk_lab.experiments.registry import ConfigError

  if options["dataset"] != "digits":
    raise ConfigError(
      f"options.dataset: only 'digits' (scikit-learn, no download) is supported, got {options['dataset']!r}."
    )
  corrupt = options["corrupt"]
  if isinstance(corrupt, bool) or not isinstance(corrupt, (int, float)) or not 0 <= corrupt <= 1:
    raise ConfigError(f"options.corrupt: must be a fraction in [0, 1], got {corrupt!r}.")
  n, n_test = cfg.data.n, cfg.data.n_test
  if n + n_test > 1797:
    raise ConfigError(f"data.n + data.n_test: the digits have 1797 images, asked for {n} + {n_test}.")


def _accuracy(outputs, labels):
  return float(np.mean(np.argmax(outputs, axis=-1) == labels))


def run_seeds(cfg, cells, options):
  import jax.numpy as jnp

  import ntk_lab as nl

  x, y, xt, yt, labels = (jnp.asarray(a) for a in load(cfg, options))
  net = _common.make_model(cfg, cells[0])
  params = _common.init_seeds(net, cells, x.shape[1])
  # centred (f − f(·; θ₀)): the infinite ensemble's mean is then what one wide net tracks
  times, runs = _common.flow(cfg, cells, lambda p: nl.centered(net, p), params, x, y, x_test=xt)
  k_train, k_test = net.kernel(x), net.kernel(xt, x)
  ntk_t = np.asarray(
    nl.mse_ensemble(k_train, y, times, k_test_train=k_test, learning_rate=cells[0].learning_rate).mean
  )
  ntk_inf = np.asarray(nl.mse_ensemble(k_train, y, jnp.inf, k_test_train=k_test).mean[0])
  nngp = np.asarray(nl.gp_inference(k_train.nngp, y, k_test_train=k_test.nngp, diag_reg=1e-6).mean)
  labels, y = np.asarray(labels), np.asarray(y)
  kernels = {
    "ntk_accuracy": [_accuracy(o, labels) for o in ntk_t],
    "ntk_time_accuracy": _accuracy(ntk_t[-1], labels),
    "ntk_inf_accuracy": _accuracy(ntk_inf, labels),
    "nngp_accuracy": _accuracy(nngp, labels),
  }
  out = []
  for run in runs:
    test_out = np.asarray(run.test_outputs)
    out.append(
      {
        "times": times.tolist(),
        "nn_accuracy": [_accuracy(o, labels) for o in test_out],
        "final_accuracy": _accuracy(test_out[-1], labels),
        "final_train_loss": float(0.5 * np.sum((np.asarray(run.train_outputs[-1]) - y) ** 2)),
        "gap_to_ntk": float(np.linalg.norm(test_out[-1] - ntk_t[-1]) / np.linalg.norm(ntk_t[-1])),
        **kernels,
      }
    )
  return out


def report(out, cfg, options, results):
  fig, axes = _common.figure(1, 2)
  acc = _common.by_width(results, "final_accuracy")
  r0 = results[0]
  axes[0].semilogx(list(acc), [np.median(v) for v in acc.values()], "o-", label="trained net (median)")
  axes[0].semilogx([r["width"] for r in results], [r["final_accuracy"] for r in results], ".", alpha=0.4)
  for key, style, label in (
    ("ntk_time_accuracy", "k--", f"NTK ensemble at t = {cfg.training.time:g}"),
    ("ntk_inf_accuracy", "k:", "NTK regression (t → ∞)"),
    ("nngp_accuracy", "g-.", "NNGP posterior mean"),
  ):
    axes[0].axhline(r0[key], linestyle=style[1:], color=style[0], label=label)
  axes[0].set_xlabel("width m")
  axes[0].set_title(f"digits: test accuracy ({cfg.data.n} train, {cfg.data.n_test} test)", fontsize=9)
  axes[0].legend(fontsize=8)
  curves = _common.by_width(results, "nn_accuracy")
  for w, runs in curves.items():
    axes[1].plot(r0["times"], np.median(runs, axis=0), label=f"net, m = {w}")
  axes[1].plot(r0["times"], r0["ntk_accuracy"], "k--", label="NTK ensemble")
  axes[1].set_xlabel("t")
  axes[1].set_title("test accuracy over gradient-flow time", fontsize=9)
  axes[1].legend(fontsize=8)
  _common.savefig(fig, out / "real_data.png")
  cols = [
    ("final_accuracy", "net test accuracy", ".3f"),
    ("gap_to_ntk", "‖f_NN − f_NTK‖/‖f_NTK‖ (test)", ".3f"),
    ("final_train_loss", "train loss", ".2e"),
  ]
  md = (
    f"scikit-learn digits, {cfg.data.n} training / {cfg.data.n_test} test images, depth "
    f"{r0['depth']} {r0['activation']} nets, gradient flow to t = {cfg.training.time:g}; medians over "
    f"seeds. Kernels on the same split: NTK ensemble at that time {r0['ntk_time_accuracy']:.3f}, "
    f"NTK regression (t → ∞) {r0['ntk_inf_accuracy']:.3f}, NNGP posterior mean {r0['nngp_accuracy']:.3f}.\n\n"
    + _common.median_table(results, cols)
    + "\n"
  )
  if len(acc) > 2:
    fit = _common.loglog_fit([r["width"] for r in results], [r["gap_to_ntk"] for r in results])[:3]
    md += "\n" + _common.slope_lines({"gap": fit}, {"gap": "‖f_NN − f_NTK‖/‖f_NTK‖ on test points"}) + "\n"
  (out / "real_data.md").write_text(md)
  print(md)


EXPERIMENT = register(
  Experiment(
    "real_data",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    # vmapped adaptive solves cost more on a CPU (`_common.flow`)
    vmap_seeds_on_cpu=False,
    # the digits fix the inputs (64 pixels) and the targets (10 one-hot classes)
    keys=("data.n", "data.n_test", *MLP, "model.out_dim", *FLOW, "sweep.widths"),
    allowed={"model.out_dim": (10,)},
    check=check,
  )
)
