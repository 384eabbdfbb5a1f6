"""The NTK's complexity measure against its bound, and the real test error (Arora et al. 2019, "Fine-grained analysis").

Per cell (n, seed): n unit-norm inputs in d = `data.in_dim` dimensions and y_i = βᵀx_i with
β ~ N(0, I/d) (both from the seed); H^∞ the two-layer ReLU NTK (Du et al. 2019). Records the
measure √(2yᵀ(H^∞)⁻¹y · tr H^∞)/n, its bound 2√2‖β‖/√n for linear targets and their ratio, and the
infinite-width NTK predictor f(x) = H^∞(x, X)(H^∞)⁻¹y on `data.n_test` fresh points: the
classification error P(sign f ≠ sign y) and the relative squared error. All seeds of an n are
one vmapped computation. The report fits the log-log slope of the measure and the test error
against n (the bound's slope is −1/2).
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import Experiment, register

DESCRIPTION = "NTK complexity √(2yᵀH⁻¹y·trH)/n vs 2√2‖β‖/√n and the real test error (Arora et al. 2019)"
OPTIONS = {}


def _draw(key, n, n_test, d):
  import jax
  import jax.numpy as jnp

  kx, kb = jax.random.split(key)
  x = jax.random.normal(kx, (n + n_test, d))
  x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
  beta = jax.random.normal(kb, (d,)) / jnp.sqrt(d)
  return x[:n], x[n:], beta


def _cell(key, n, n_test, d):
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl

  x, xt, beta = _draw(key, n, n_test, d)
  y, yt = x @ beta, xt @ beta
  measure = nl.two_layer.ntk_complexity(x, y)
  bound = 2 * jnp.sqrt(2.0) * jnp.linalg.norm(beta) / jnp.sqrt(n)
  pred = nl.two_layer.relu_h_infinity(xt, x) @ jax.scipy.linalg.solve(
    nl.two_layer.relu_h_infinity(x), y, assume_a="pos"
  )
  return {
    "measure": measure,
    "bound": bound,
    "ratio": measure / bound,
    "test_error": jnp.mean(jnp.sign(pred) != jnp.sign(yt)),
    "test_rel_mse": jnp.sum((pred - yt) ** 2) / jnp.sum(yt**2),
  }


def run_seeds(cfg, cells, options):
  import jax

  n, n_test, d = cells[0].n, cfg.data.n_test, cfg.data.in_dim
  keys = jax.numpy.stack([jax.random.PRNGKey(20_000 + c.seed) for c in cells])
  out = jax.jit(jax.vmap(lambda k: _cell(k, n, n_test, d)))(keys)
  return [{k: float(v[i]) for k, v in out.items()} for i in range(len(cells))]


def report(out, cfg, options, results):
  fig, axes = _common.figure(1, 2)
  ns = [r["n"] for r in results]
  floor = 0.5 / cfg.data.n_test  # a zero error is drawn here (log axis)
  fits = {}
  for ax, keys, title in (
    (axes[0], ("measure", "bound"), "√(2yᵀH⁻¹y·trH)/n and 2√2‖β‖/√n"),
    (axes[1], ("test_error", "test_rel_mse"), f"NTK predictor on fresh points (0 drawn at {floor:g})"),
  ):
    for key in keys:
      med = {n: max(float(np.median(v)), floor) for n, v in _common.by_width(results, key, "n").items()}
      (line,) = ax.loglog(list(med), list(med.values()), "o-", label=key)
      ax.loglog(ns, [max(r[key], floor) for r in results], ".", alpha=0.3, color=line.get_color())
      vals = np.array([r[key] for r in results])
      if len(med) > 2 and np.all(vals > 0):
        fits[key] = _common.loglog_fit(ns, vals)[:3]
    ax.set_xlabel("n")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
  _common.savefig(fig, out / "generalization_bound.png")
  worst = max(r["ratio"] for r in results)
  cols = [
    ("measure", "√(2yᵀH⁻¹y·trH)/n", ".4f"),
    ("bound", "2√2‖β‖/√n", ".4f"),
    ("ratio", "measure / bound", ".3f"),
    ("test_error", "test classification error", ".3f"),
    ("test_rel_mse", "test ‖f − y‖²/‖y‖²", ".2e"),
  ]
  labels = {
    "measure": "complexity measure (bound: −0.5)",
    "bound": "bound 2√2‖β‖/√n",
    "test_error": "test classification error",
    "test_rel_mse": "test relative squared error",
  }
  md = (
    f"Two-layer ReLU NTK, unit-norm inputs in d = {cfg.data.in_dim}, y = βᵀx; medians over seeds, "
    f"{cfg.data.n_test} test points. Largest measure/bound over all cells: {worst:.3f} "
    f"({'the bound holds' if worst <= 1 else 'the bound FAILS'}).\n\n"
    + _common.median_table(results, cols, field="n")
    + "\n\n"
    + _common.slope_lines(fits, labels)
    + "\n"
  )
  (out / "generalization_bound.md").write_text(md)
  print(md)


# The model is H^∞ of the two-layer ReLU net (no model or training keys); inputs on the sphere and
# linear targets are the setting of the bound.
EXPERIMENT = register(
  Experiment(
    "generalization_bound",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    keys=("data.n", "data.n_test", "data.in_dim", "data.inputs", "data.target", "sweep.n"),
    allowed={"data.inputs": ("sphere",), "data.target": ("linear",)},
  )
)
