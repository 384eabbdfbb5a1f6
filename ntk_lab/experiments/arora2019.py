"""Arora, Du, Hu, Li & Wang 2019 ("Fine-grained analysis of optimization and generalization for
overparameterized two-layer neural networks"): true vs partly vs fully random labels.

The paper's model: a two-layer ReLU net f(x) = (1/√m) Σ_r a_r σ(w_rᵀx) with the readout a fixed,
unit-norm inputs, trained by gradient descent on ½ Σ (f − y)² from a small initialization. Its
training residual follows the eigen-projections of y on H^∞ (`ntk_lab.relu_h_infinity`),

    ‖y − u(k)‖ ≈ √(Σ_i (1 − ηλ_i)^{2k} (v_iᵀy)²),

so labels aligned with the top eigenvectors (true labels) are fitted fast and random labels slowly,
and the test error is bounded through the complexity √(2yᵀ(H^∞)⁻¹y/n), which grows with the
fraction of random labels.

Here: two classes of scikit-learn's digits (``options.classes``) with ±1 labels, ``data.n``
training and ``data.n_test`` test images (`ntk_lab.datasets.digits`, unit norm), a fraction p of the
training labels replaced by random ones for each p in ``options.corrupt``. Per cell (width m, seed):
the MLP of width m with its readout fixed (``trainable="hidden"``, inputs scaled to norm √d so its
NTK is H^∞ of the unit inputs), centred (f − f(·; θ₀), the small-initialization limit u(0) = 0),
trained by ``optax.sgd(η)`` for ``options.steps`` steps, η = ``options.lr_fraction`` × 2/λ_max(H^∞).
Records per p: the complexity measure (`kernel_complexity`, definition "arora2019"), the residual
‖y − u(k)‖ against the eigen-projection prediction (`mse_dynamics(..., discrete=True)` with H^∞),
and the test accuracy (against the true test labels) of the net and of the kernel predictor.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import Experiment, register

DESCRIPTION = (
  "Arora et al. 2019: true vs random labels on digits: complexity, loss vs H^∞ prediction, accuracy"
)
OPTIONS = {"classes": [3, 5], "corrupt": [0.0, 0.2, 0.5, 1.0], "steps": 1000, "every": 20, "lr_fraction": 0.5}

PAPER = (
  "with more random labels gradient descent fits the training set more slowly, the loss curves "
  "follow the eigen-projection prediction √(Σ(1 − ηλ_i)^{2k}(v_iᵀy)²), the complexity "
  "√(2yᵀ(H^∞)⁻¹y/n) grows, and so does the test error (the measure tracks the generalization gap)"
)


def check(cfg, options):
  """ConfigError for options out of range and a split the two classes cannot give (the model keys
  are fixed by the contract's allowed values)."""
  from ntk_lab import datasets
  from ntk_lab.experiments.registry import ConfigError

  _common.check_gd_options(options, kernel="H^∞")
  c = options["corrupt"]
  if (
    not isinstance(c, list)
    or not c
    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in c)
  ):
    raise ConfigError(f"options.corrupt: must be a non-empty list of fractions in [0, 1], got {c!r}.")
  try:
    datasets.digits(
      classes=tuple(options["classes"]), n_train=cfg.data.n, n_test=cfg.data.n_test, labels="pm1", key=0
    )
  except (TypeError, ValueError) as e:
    raise ConfigError(f"options.classes / data.n / data.n_test: {e}") from None


def _accuracy(out, labels):
  return float(np.mean(np.sign(np.asarray(out)[:, 0]) == np.asarray(labels)[:, 0]))


def run_seeds(cfg, cells, options):
  import jax
  import jax.numpy as jnp
  import optax

  import ntk_lab as nl
  from ntk_lab import datasets

  check(cfg, options)
  clean = datasets.digits(
    classes=tuple(options["classes"]), n_train=cfg.data.n, n_test=cfg.data.n_test, labels="pm1", key=0
  )
  x, xt = clean.x_train, clean.x_test
  d = x.shape[1]
  H, Ht = nl.two_layer.relu_h_infinity(x), nl.two_layer.relu_h_infinity(xt, x)
  eta = options["lr_fraction"] * float(nl.max_learning_rate(H))
  lam, V = np.linalg.eigh(np.asarray(H))
  top = V[:, -max(1, len(lam) // 10) :]  # the top 10 % of H^∞'s eigenvectors
  m = cfg.model  # the paper's net: the contract allows only its depth, σ, scale and no biases
  net = nl.MLP(
    (m.width,) * m.depth,
    activation=m.activation,
    parametrization=m.parametrization,
    W_std=m.W_std,
    b_std=m.b_std,
    trainable="hidden",
  )
  out = []
  for cell in cells:
    p0 = net.init(jax.random.PRNGKey(cell.seed), d)
    res = {
      "corrupt": [],
      "complexity": [],
      "complexity_trace": [],
      "top_projection": [],
      "residual": [],
      "predicted": [],
      "test_accuracy": [],
      "kernel_test_accuracy": [],
      "train_accuracy": [],
      "prediction_error": [],
      "learning_rate_used": eta,
    }
    for p in options["corrupt"]:
      y = datasets.digits(
        classes=tuple(options["classes"]),
        n_train=cfg.data.n,
        n_test=cfg.data.n_test,
        labels="pm1",
        corrupt=float(p),
        key=0,
      ).y_train
      run = nl.train(
        nl.centered(net, p0),
        p0,
        x * jnp.sqrt(d),
        y,
        optimizer=optax.sgd(eta),
        steps=options["steps"],
        every=options["every"],
        x_test=xt * jnp.sqrt(d),
      )
      pred = nl.mse_dynamics(H, y, run.times, k_test_train=Ht, learning_rate=eta, discrete=True)
      actual = np.linalg.norm(np.asarray(run.train_outputs - y[None]), axis=(1, 2))
      predicted = np.linalg.norm(np.asarray(pred.train - y[None]), axis=(1, 2))
      ynorm = float(jnp.linalg.norm(y))
      res["corrupt"].append(float(p))
      res["complexity"].append(float(nl.kernel_complexity(H, y, definition="arora2019").value))
      res["complexity_trace"].append(float(nl.kernel_complexity(H, y, definition="trace").value))
      res["top_projection"].append(float(np.sum((top.T @ np.asarray(y)) ** 2) / ynorm**2))
      res["residual"].append((actual / ynorm).tolist())
      res["predicted"].append((predicted / ynorm).tolist())
      res["prediction_error"].append(float(np.max(np.abs(actual - predicted)) / ynorm))
      res["test_accuracy"].append(_accuracy(run.test_outputs[-1], clean.y_test))
      res["kernel_test_accuracy"].append(_accuracy(pred.test[-1], clean.y_test))
      res["train_accuracy"].append(_accuracy(run.train_outputs[-1], y))
    res["steps"] = np.asarray(run.times).tolist()
    out.append(res)
  return out


def _median(results, key, width):
  return np.median([r[key] for r in results if r["width"] == width], axis=0)


def report(out, cfg, options, results):
  widths = sorted({r["width"] for r in results})
  wide = widths[-1]
  r0 = next(r for r in results if r["width"] == wide)
  corrupt = r0["corrupt"]
  fig, axes = _common.figure(1, 3, size=(4.3, 3.8))
  for i, p in enumerate(corrupt):
    axes[0].semilogy(r0["steps"], _median(results, "residual", wide)[i], f"C{i}-", label=f"p = {p:g}: net")
    axes[0].semilogy(r0["steps"], r0["predicted"][i], f"C{i}--", lw=0.9, label=f"p = {p:g}: H^∞ prediction")
  axes[0].set_xlabel("GD step k"), axes[0].set_ylabel("‖y − u(k)‖ / ‖y‖")
  axes[0].set_title(f"training residual, m = {wide:,} (dashed: eigen-projections)", fontsize=9)
  axes[0].legend(fontsize=6)
  axes[1].plot(corrupt, r0["complexity"], "o-", label="√(2yᵀH⁻¹y/n) (Arora et al.)")
  axes[1].plot(corrupt, r0["complexity_trace"], "s--", label="√(2yᵀH⁻¹y·tr H)/n")
  axes[1].set_xlabel("fraction p of random labels"), axes[1].set_title("complexity measure", fontsize=9)
  axes[1].legend(fontsize=7)
  for w in widths:
    axes[2].plot(corrupt, _median(results, "test_accuracy", w), "o-", label=f"net, m = {w:,}")
  axes[2].plot(corrupt, r0["kernel_test_accuracy"], "k--", label="H^∞ predictor, same step")
  axes[2].set_xlabel("fraction p of random labels"), axes[2].set_ylabel("test accuracy (true labels)")
  axes[2].set_title(f"after {options['steps']} steps", fontsize=9)
  axes[2].legend(fontsize=7)
  _common.savefig(fig, out / "arora2019.png")
  rows = []
  for i, p in enumerate(corrupt):
    rows.append(
      [
        f"{p:g}",
        f"{r0['complexity'][i]:.3f}",
        f"{r0['complexity_trace'][i]:.3f}",
        f"{r0['top_projection'][i]:.3f}",
        f"{_median(results, 'residual', wide)[i][-1]:.3f}",
        f"{r0['predicted'][i][-1]:.3f}",
        f"{_median(results, 'prediction_error', wide)[i]:.3f}",
        f"{_median(results, 'train_accuracy', wide)[i]:.3f}",
        f"{_median(results, 'test_accuracy', wide)[i]:.3f}",
        f"{r0['kernel_test_accuracy'][i]:.3f}",
      ]
    )
  table = _common.markdown_table(
    [
      "random labels p",
      "√(2yᵀH⁻¹y/n)",
      "√(2yᵀH⁻¹y·tr H)/n",
      "‖P_top y‖²/‖y‖²",
      "final ‖y − u‖/‖y‖ (net)",
      "predicted",
      "max gap net − prediction",
      "train accuracy",
      "test accuracy (net)",
      "test accuracy (H^∞)",
    ],
    rows,
  )
  md = (
    f'Arora et al. 2019, "Fine-grained analysis". Paper: {PAPER}.\n\n'
    f"This run: digits {options['classes'][0]} vs {options['classes'][1]} (±1), {cfg.data.n} training / "
    f"{cfg.data.n_test} test images (unit norm), two-layer ReLU nets with the readout fixed, width "
    f"{wide:,} in the table (medians over seeds), {options['steps']} GD steps with "
    f"η = {r0['learning_rate_used']:.3g} ({options['lr_fraction']:g} × 2/λ_max(H^∞)). ‖P_top y‖²/‖y‖²: "
    "the share of the labels on H^∞'s top 10 % eigenvectors.\n\n" + table + "\n"
  )
  (out / "arora2019.md").write_text(md)
  print(md)


# One seed at a time: each corruption level is its own compiled training run.
# The paper's setting: a two-layer ReLU net without biases whose NTK is H^∞ (unit weights' scale,
# NTK parametrization), trained by gradient descent with the options' steps and step size. H^∞ is
# that net's kernel only, so the model keys are restricted to it rather than honoured freely.
EXPERIMENT = register(
  Experiment(
    "arora2019",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    vmap_seeds_on_cpu=False,
    keys=(
      "data.n",
      "data.n_test",
      "model.width",
      "model.depth",
      "model.activation",
      "model.parametrization",
      "model.W_std",
      "model.b_std",
      "sweep.widths",
    ),
    allowed={
      "model.depth": (1,),
      "model.activation": ("relu",),
      "model.parametrization": ("ntk",),
      "model.W_std": (1.0,),
      "model.b_std": (None,),
    },
    check=check,
  )
)
