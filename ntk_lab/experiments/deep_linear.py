"""Factor-level gradient flow vs the end-to-end dynamics of a balanced deep linear net (Arora et al. 2018).

Per cell (depth, width, seed): N = depth + 1 factors (depth hidden layers of `width` units, as for
the MLPs), balanced at initialisation (`deep_linear.balanced_init`, end-to-end entries
N(0, init_scale²/d_0)), trained by gradient flow on ℓ(W) = ‖W X − Y‖²_F / (2n) with a random linear
teacher Y = M X (d_0 = `data.in_dim`, d_N = `model.out_dim`, n = `data.n`). The same end-to-end
matrix is integrated with the end-to-end ODE Ẇ = −Σ_i [WWᵀ]^{(i−1)/N} ∇ℓ(W) [WᵀW]^{(N−i)/N}
(and, for d_N = 1, its rank-one form). Records both loss curves, the largest relative gap
‖W_factors(t) − W_e2e(t)‖/‖W_factors(t)‖ over t, the balancedness at the end (conserved by the
flow) and the singular values of W(t) (deeper nets learn them one at a time from a small init).
All seeds of a grid point are one vmapped solve.
"""

from __future__ import annotations

import numpy as np

from ntk_lab.experiments import _common
from ntk_lab.experiments.registry import Experiment, register

DESCRIPTION = (
  "factor-level gradient flow vs end-to-end dynamics of balanced deep linear nets (Arora et al. 2018)"
)
OPTIONS = {"init_scale": 0.1}


def _problem(cfg):
  import jax

  d0, dn, n = cfg.data.in_dim, cfg.model.out_dim, cfg.data.n
  kx, km = jax.random.split(jax.random.PRNGKey(50_000))
  x = jax.random.normal(kx, (d0, n))
  # a teacher with spread-out singular values 1, 2, …, so the incremental learning is visible
  u, _, vt = np.linalg.svd(np.asarray(jax.random.normal(km, (dn, d0))), full_matrices=False)
  teacher = (u * np.arange(len(u), 0, -1.0)) @ vt
  y = teacher @ x
  return x, y, lambda w: 0.5 * jax.numpy.sum((w @ x - y) ** 2) / n


def run_seeds(cfg, cells, options):
  import jax
  import jax.numpy as jnp

  from ntk_lab import deep_linear as dl

  cell = cells[0]
  x, _, loss = _problem(cfg)
  dims = (cfg.data.in_dim,) + (cell.width,) * cell.depth + (cfg.model.out_dim,)
  depth = len(dims) - 1
  times = jnp.linspace(0.0, cfg.training.time, cfg.training.n_times)
  tol = {"rtol": cfg.training.rtol, "atol": cfg.training.atol}

  def one(key):
    fs0 = dl.balanced_init(key, dims, scale=options["init_scale"])
    fac = dl.flow(lambda f: dl.factor_velocity(loss, f), fs0, times, **tol)
    w_fac = jax.vmap(dl.end_to_end)(fac)
    w_e2e = dl.flow(lambda w: dl.end_to_end_velocity(loss, w, depth), dl.end_to_end(fs0), times, **tol)
    out = {"w_fac": w_fac, "w_e2e": w_e2e, "balance": dl.balancedness([f[-1] for f in fac])}
    if cfg.model.out_dim == 1:
      out["w_rank1"] = dl.flow(
        lambda w: dl.rank_one_velocity(loss, w, depth), dl.end_to_end(fs0), times, **tol
      )
    return out

  keys = jnp.stack([jax.random.PRNGKey(c.seed) for c in cells])
  res = jax.jit(jax.vmap(one))(keys)
  results = []
  for i in range(len(cells)):
    w_fac, w_e2e = np.asarray(res["w_fac"][i]), np.asarray(res["w_e2e"][i])
    norms = np.linalg.norm(w_fac, axis=(1, 2))
    row = {
      "factors": depth,
      "times": np.asarray(times).tolist(),
      "loss_factors": [float(loss(w)) for w in w_fac],
      "loss_e2e": [float(loss(w)) for w in w_e2e],
      "rel_gap": float(np.max(np.linalg.norm(w_fac - w_e2e, axis=(1, 2)) / norms)),
      "balancedness_end": float(res["balance"][i]),
      "singular_values": np.linalg.svd(w_fac, compute_uv=False).tolist(),
    }
    if "w_rank1" in res:
      row["rel_gap_rank1"] = float(
        np.max(np.linalg.norm(w_fac - np.asarray(res["w_rank1"][i]), axis=(1, 2)) / norms)
      )
    row["final_loss"] = row["loss_factors"][-1]
    results.append(row)
  return results


def report(out, cfg, options, results):
  fig, axes = _common.figure(1, 3)
  first = {}
  for r in results:
    first.setdefault(r["factors"], r)
  for n_fac, r in first.items():
    (line,) = axes[0].semilogy(r["times"], r["loss_factors"], label=f"N = {n_fac} factors")
    axes[0].semilogy(r["times"], r["loss_e2e"], "--", color=line.get_color())
  axes[0].set_title("ℓ(W(t)): factor-level GF (solid), end-to-end ODE (dashed)", fontsize=9)
  axes[0].set_xlabel("t")
  axes[0].legend(fontsize=8)
  gaps = _common.by_width(results, "rel_gap", "factors")
  axes[1].semilogy(list(gaps), [max(v) for v in gaps.values()], "o-")
  axes[1].set_title("max_t ‖W_factors − W_e2e‖/‖W‖ (worst seed)", fontsize=9)
  axes[1].set_xlabel("number of factors N")
  deepest = first[max(first)]
  axes[2].plot(deepest["times"], deepest["singular_values"])
  axes[2].set_title(f"singular values of W(t), N = {max(first)} (incremental learning)", fontsize=9)
  axes[2].set_xlabel("t")
  _common.savefig(fig, out / "deep_linear.png")
  cols = [
    ("rel_gap", "max_t relative gap (worst seed)", ".1e"),
    ("balancedness_end", "balancedness at t_end (worst)", ".1e"),
    ("final_loss", "ℓ(W(t_end)) (worst)", ".2e"),
  ]
  if "rel_gap_rank1" in results[0]:
    cols.insert(1, ("rel_gap_rank1", "rank-one form: gap (worst)", ".1e"))
  md = (
    f"Balanced deep linear nets, d_0 = {cfg.data.in_dim}, hidden {results[0]['width']}, d_N = "
    f"{cfg.model.out_dim}, n = {cfg.data.n}, init scale {options['init_scale']:g}, gradient flow to "
    f"t = {cfg.training.time:g} at rtol {cfg.training.rtol:g}.\n\n"
    + _common.median_table(results, cols, field="factors", reduce=np.max)
    + "\n"
  )
  (out / "deep_linear.md").write_text(md)
  print(md)


def check(cfg, options):
  from ntk_lab.experiments.registry import ConfigError

  s = options["init_scale"]
  if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s < float("inf"):
    raise ConfigError(f"options.init_scale: must be a finite number > 0, got {s!r}.")


def memory(cfg):
  """Bytes of one draw's factors, their end-to-end product and the inputs (float64)."""
  d0, w, dn, depth, n = cfg.data.in_dim, cfg.model.width, cfg.model.out_dim, cfg.model.depth, cfg.data.n
  dims = (d0,) + (w,) * depth + (dn,)
  return 8 * (sum(a * b for a, b in zip(dims, dims[1:])) + d0 * dn + (d0 + dn) * n)


# Linear factors solved by their own ODE (`deep_linear.flow`): no activation, parametrization or
# solver keys; the report compares depths.
EXPERIMENT = register(
  Experiment(
    "deep_linear",
    DESCRIPTION,
    OPTIONS,
    run_seeds,
    report,
    keys=(
      "data.n",
      "data.in_dim",
      "model.width",
      "model.depth",
      "model.out_dim",
      "training.time",
      "training.n_times",
      "training.rtol",
      "training.atol",
      "sweep.depths",
    ),
    check=check,
    memory=memory,
  )
)
