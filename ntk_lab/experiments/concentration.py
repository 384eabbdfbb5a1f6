"""Tails of |K − K^(m)| over random draws against Hoeffding-type concentration bounds.

Setting: σ β-smooth with |σ'| ≤ L, w_k ~ N(0, s²I) i.i.d.,
K(x, x') = E_w[xᵀx' σ'(wᵀx) σ'(wᵀx')] and K^(m)(x, x') = (1/m) Σ_k xᵀx' σ'(w_kᵀx) σ'(w_kᵀx'). Printed:
  (a) P(|K(x, x') − K^(m)(x, x')| > t) ≤ exp(−t²m / (2|xᵀx'|²L⁴)),
  (b) P(‖H − H^(m)‖ > t) ≤ n² exp(−t²m / (2n²L⁴)) for ‖x_i‖ ≤ 1 (H_ij = K(x_i, x_j)).
Hoeffding's inequality for the summands, which lie in [−|xᵀx'|L², |xᵀx'|L²], gives (a) with a
factor 2 (a two-sided bound); (b) follows from (a) by a union bound over the n² entries at t/n,
so also with a factor 2. Both variants are checked; (b) is checked for the spectral norm and for
the Frobenius norm (the stronger statement).

Per cell (width m, seed): `options.draws` independent draws of w_1 … w_m (vmapped), n inputs of norm
`options.input_scale` on the sphere (norm 1 is the seed's case). K comes from `h_infinity`
(closed form for erf/sin/gelu, quadrature otherwise). Tails are recorded on a grid of the bound's
natural scale, t = τ |xᵀx'| L² / √m for (a) and t = τ n L² / √m for (b), where the printed bounds
are exp(−τ²/2) and n² exp(−τ²/2) whatever m is. A bound is *violated* at τ when the
Clopper–Pearson lower confidence limit of the empirical tail (level 1 − 0.05/#τ, Bonferroni over
the grid) exceeds it.
"""

from __future__ import annotations

import math

import numpy as np

from ntk_lab.concentration import TAUS, deviations, lipschitz_derivative, tail_check  # noqa: F401
from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import Experiment, register

DESCRIPTION = "tails of |K − K^(m)| over draws vs Hoeffding-type concentration bounds"
OPTIONS = {"draws": 2000, "input_scale": 1.0}


def run_seeds(cfg, cells, options):
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl

  cell = cells[0]
  n, d, m = cell.n, cfg.data.in_dim, cell.width
  x = jax.random.normal(jax.random.PRNGKey(30_000), (n, d))
  x = options["input_scale"] * x / jnp.linalg.norm(x, axis=1, keepdims=True)
  check(cfg, options)
  act = nl.activations.get_activation(cell.activation)
  lip = lipschitz_derivative(act)
  w_std = float(cfg.model.W_std)
  kernel = nl.two_layer.h_infinity(x, activation=act, first_layer_std=w_std)
  c = abs(float(x[0] @ x[1]))
  printed = np.exp(-(TAUS**2) / 2)
  out = []
  for cl in cells:
    dev = deviations(
      act,
      x,
      m,
      jax.random.PRNGKey(40_000 + cl.seed),
      draws=options["draws"],
      first_layer_std=w_std,
      kernel=kernel,
    )
    row = {"L": lip, "xx": c, "max_dev_pair": float(dev["entries"][:, 0, 1].max())}
    pair = dev["entries"][:, 0, 1]
    for name, samples, scale, bound in (
      ("a", pair, c * lip**2 / math.sqrt(m), printed),
      ("b_op", dev["op"], n * lip**2 / math.sqrt(m), n**2 * printed),
      ("b_fro", dev["fro"], n * lip**2 / math.sqrt(m), n**2 * printed),
    ):
      tail, ratio, excess, tau = tail_check(samples, scale, bound)
      _, _, excess2, _ = tail_check(samples, scale, 2 * bound)
      row.update(
        {
          f"tail_{name}": tail.tolist(),
          f"ratio_{name}": ratio,
          f"excess_{name}": excess,
          f"tau_{name}": tau,
          f"excess_{name}_x2": excess2,
          f"violated_{name}": excess > 0,
          f"violated_{name}_x2": excess2 > 0,
        }
      )
    out.append(row)
  return out


def report(out, cfg, options, results):
  fig, axes = _common.figure(1, 2)
  n = results[0]["n"]
  for ax, name, bound, label in (
    (axes[0], "a", np.exp(-(TAUS**2) / 2), "(a) |K − K^(m)|(x₀, x₁), t = τ|xᵀx'|L²/√m"),
    (axes[1], "b_op", n**2 * np.exp(-(TAUS**2) / 2), "(b) ‖H − H^(m)‖₂, t = τnL²/√m"),
  ):
    for w, tails in _common.by_width(results, f"tail_{name}").items():
      ax.semilogy(TAUS, np.maximum(np.mean(tails, axis=0), 1e-5), label=f"m = {w}")
    ax.semilogy(TAUS, np.minimum(bound, 1.5), "k--", label="printed bound")
    ax.semilogy(TAUS, np.minimum(2 * bound, 1.5), "k:", label="× 2 (Hoeffding, two-sided)")
    ax.set_ylim(1e-4, 2)
    ax.set_xlabel("τ")
    ax.set_title(label, fontsize=9)
    ax.legend(fontsize=7)
  _common.savefig(fig, out / "concentration.png")
  cols = [
    ("ratio_a", "(a) max_τ tail / printed bound", ".3f"),
    ("ratio_b_op", "(b) ‖·‖₂: max_τ tail / bound", ".3f"),
    ("ratio_b_fro", "(b) ‖·‖_F: max_τ tail / bound", ".3f"),
    ("max_dev_pair", "largest deviation at (x₀, x₁)", ".3e"),
  ]
  verdicts = []
  for key, text in (
    ("a", "(a) as printed"),
    ("a_x2", "(a) with factor 2"),
    ("b_op", "(b) spectral"),
    ("b_fro", "(b) Frobenius"),
    ("b_fro_x2", "(b) Frobenius with factor 2"),
  ):
    bad = [r for r in results if r[f"violated_{key}"]]
    verdicts.append(
      f"- {text}: "
      + (
        f"VIOLATED in {len(bad)} cells, e.g. m = {bad[0]['width']} (excess {bad[0]['excess_' + key]:.3f})"
        if bad
        else "holds in every cell"
      )
    )
  r0 = results[0]
  md = (
    f"σ = {r0['activation']}, L = sup|σ'| = {r0['L']:.4f}, n = {n}, inputs of norm "
    f"{options['input_scale']:g}, |x₀ᵀx₁| = {r0['xx']:.3f}, {options['draws']} draws per seed. "
    "Worst cell per width of the largest ratio of the empirical tail to the printed bound over τ "
    "(> 1 is a violation when significant: Clopper–Pearson lower limit above the bound).\n\n"
    + _common.median_table(results, cols, reduce=np.max)
    + "\n\n"
    + "\n".join(verdicts)
    + "\n"
  )
  (out / "concentration.md").write_text(md)
  print(md)


def check(cfg, options):
  """ConfigError for a σ the bounds do not cover and for options out of range."""
  from ntk_lab.experiments.registry import ConfigError

  if cfg.model.activation in NONSMOOTH:
    raise ConfigError(
      f"model.activation: the bounds need a smooth σ with bounded σ', got "
      f"{cfg.model.activation!r}; use erf, tanh, sigmoid, gelu, softplus or sin."
    )
  draws = options["draws"]
  if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
    raise ConfigError(f"options.draws: must be an integer ≥ 2 (draws per seed), got {draws!r}.")
  scale = options["input_scale"]
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
    raise ConfigError(f"options.input_scale: must be a finite number > 0 (the inputs' norm), got {scale!r}.")


NONSMOOTH = ("relu", "leaky_relu", "abs")

# Random features of the first layer: the width, σ and its weights' scale; inputs on the sphere.
EXPERIMENT = register(
  Experiment(
    "concentration",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    keys=(
      "data.n",
      "data.in_dim",
      "data.inputs",
      "model.width",
      "model.activation",
      "model.W_std",
      "sweep.widths",
    ),
    allowed={"data.inputs": ("sphere",)},
    check=check,
  )
)
