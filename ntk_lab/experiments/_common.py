"""Pieces shared by the experiments: data and models from a config cell, log-log slope fits with
confidence intervals, and Markdown tables (the benchmarks use them too)."""

from __future__ import annotations

import math

import numpy as np

from ntk_lab.stats import loglog_fit  # noqa: F401  (the experiments' slope fits)


def make_data(cfg, n: int, seed: int):
  """(x, y, x_test, y_test) from the config's data section; inputs on the unit sphere or Gaussian
  (`ntk_lab.datasets`), targets sin(2·x₁), a fixed linear map βᵀx, or a random wide tanh teacher."""
  import jax
  import jax.numpy as jnp

  from ntk_lab import datasets

  d = cfg.data
  kx, kt, kn, kb = jax.random.split(jax.random.PRNGKey(10_000 + seed), 4)
  x = (datasets.sphere if d.inputs == "sphere" else datasets.gaussian)(n + d.n_test, d.in_dim, key=kx)
  if d.target == "sin":
    y = jnp.sin(2.0 * x[:, :1])
  elif d.target == "linear":
    beta = jax.random.normal(kb, (d.in_dim, 1)) / math.sqrt(d.in_dim)
    y = x @ beta
  else:
    import ntk_lab as nl

    teacher = nl.MLP((512,), activation="tanh", b_std=0.1)
    y = teacher.apply(teacher.init(kt, d.in_dim), x)
  y = y + d.noise * jax.random.normal(kn, y.shape)
  return x[:n], y[:n], x[n:], y[n:]


def make_model(cfg, cell):
  import ntk_lab as nl

  m = cfg.model
  return nl.MLP(
    (cell.width,) * cell.depth,
    out_dim=m.out_dim,
    activation=cell.activation,
    parametrization=m.parametrization,
    W_std=m.W_std,
    b_std=m.b_std,
  )


def by_width(results, key, field="width"):
  """{width: [values over seeds and other axes]} for one result key (or grouped by another
  cell `field`, e.g. "n" or "depth")."""
  out = {}
  for r in results:
    out.setdefault(r[field], []).append(r[key])
  return dict(sorted(out.items()))


def loglog_panel(ax, results, key, title):
  """Every draw, the per-width medians and the fitted power law of `key` against the width on a
  log-log axis; returns (slope, low, high) or None with fewer than two widths."""
  widths, vals = [r["width"] for r in results], [r[key] for r in results]
  med = {w: float(np.median(v)) for w, v in by_width(results, key).items()}
  ax.loglog(widths, vals, ".", alpha=0.4, label="each draw")
  ax.loglog(list(med), list(med.values()), "o-", label="median")
  ax.set_xlabel("width m")
  ax.set_title(title, fontsize=9)
  from matplotlib.ticker import NullFormatter

  ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap over a few octaves
  if len(med) < 2:
    return None
  slope, lo, hi, icpt = loglog_fit(widths, vals)
  ws = np.array(sorted(med))
  interval = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else ""
  ax.loglog(ws, np.exp(icpt) * ws**slope, "k--", label=f"slope {slope:.2f}{interval}")
  ax.legend(fontsize=8)
  return slope, lo, hi


def check_gd_options(options, *, ints=("steps", "every"), kernel="Θ∞"):
  """ConfigError unless the options named in ``ints`` are positive integers, ``steps`` is a
  multiple of ``every`` (when both are given), and ``lr_fraction`` (the GD step as a fraction of
  2/λ_max of ``kernel``) lies in (0, 1)."""
  from ntk_lab.experiments.registry import ConfigError

  for key in ints:
    v = options[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ConfigError(f"options.{key}: must be a positive integer, got {v!r}.")
  if "every" in ints and options["steps"] % options["every"]:
    raise ConfigError(
      f"options.steps: must be a multiple of options.every ({options['every']}), got {options['steps']}."
    )
  f = options["lr_fraction"]
  if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1:
    raise ConfigError(
      f"options.lr_fraction: the GD step as a fraction of 2/λ_max({kernel}) must be in (0, 1), got {f!r}."
    )


def markdown_table(header: list[str], rows: list[list]) -> str:
  """A Markdown table: a header row, a rule, then the rows (cells through str)."""
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def median_table(results, columns, field="width", reduce=np.median):
  """Markdown table of per-width medians: columns is [(key, header, format)]; `field` picks
  another cell field for the rows, `reduce` another statistic (np.max for a worst case)."""
  groups = {k: by_width(results, k, field) for k, _, _ in columns}
  rows_of = list(groups[columns[0][0]])
  rows = [[f"{w:,}"] + [format(float(reduce(groups[k][w])), fmt) for k, _, fmt in columns] for w in rows_of]
  return markdown_table([field] + [h for _, h, _ in columns], rows)


def slope_lines(fits, labels):
  def line(k, f):
    if np.isfinite(f[1]):
      return f"- {labels[k]}: log-log slope {f[0]:.2f}, 95 % interval [{f[1]:.2f}, {f[2]:.2f}]"
    return f"- {labels[k]}: log-log slope {f[0]:.2f} (two points: no interval)"

  return "\n".join(line(k, f) for k, f in fits.items() if f is not None)


def savefig(fig, path):
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  import matplotlib.pyplot as plt

  plt.close(fig)


def figure(rows, cols, size=(4.3, 3.8)):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
  return fig, axes.ravel()


def setup(cfg, cells):
  """(net, params, x, y, x_test, y_test) for a group of cells that differ only in the seed: the
  same data for every draw (so seeds vary only the initialization), the cells' model, and θ₀ of
  every cell's seed stacked along a leading axis (for `jax.vmap`)."""
  x, y, x_test, y_test = make_data(cfg, cells[0].n, 0)
  net = make_model(cfg, cells[0])
  return net, init_seeds(net, cells, x.shape[1]), x, y, x_test, y_test


def init_seeds(net, cells, in_dim):
  """θ₀ of every cell's seed, stacked along a leading axis."""
  import jax
  import jax.numpy as jnp

  return jax.vmap(lambda k: net.init(k, in_dim))(jnp.stack([jax.random.PRNGKey(c.seed) for c in cells]))


def per_draw(fn, params, count):
  """[fn(θ₀) for each of the `count` stacked draws]: one `jax.vmap`ped call, or a plain call for
  a single draw (so one seed at a time runs exactly the unbatched program)."""
  import jax

  if count == 1:
    return [fn(jax.tree.map(lambda a: a[0], params))]
  out = jax.vmap(fn)(params)
  return [jax.tree.map(lambda a: a[i], out) for i in range(count)]


def solver_error(cfg, cells, model_of, params, x, y, summaries, summarize, keys, **options):
  """The solver's share of the fitted metrics, per cell: for the cell of the sweep's first seed,
  the largest relative change of its summary's `keys` when its gradient flow is re-solved with
  rtol and atol divided by 100 and dt0 (if set) by 10 (``summarize(trajectory)`` recomputes the
  summary); None (not computed, JSON null) for the other seeds, so the value does not depend on
  how seeds are grouped, and the runner does not mistake a missing estimate for a non-finite
  result. Options as in `flow`."""
  import jax

  import ntk_lab as nl

  tr = cfg.training
  out = []
  for i, (cell, first) in enumerate(zip(cells, summaries, strict=True)):
    if cell.seed != cfg.sweep.seeds[0]:
      out.append(None)
      continue
    p = jax.tree.map(lambda a: a[i], params)
    ref = summarize(
      nl.gradient_flow(
        model_of(p),
        p,
        x,
        y,
        times=np.linspace(0.0, tr.time, tr.n_times),
        learning_rate=cell.learning_rate,
        solver=tr.solver,
        rtol=tr.rtol / 100,
        atol=tr.atol / 100,
        error_control=tr.error_control,
        # a fixed-step solver ignores rtol/atol: its reference takes steps ten times smaller
        dt0=None if tr.dt0 is None else tr.dt0 / 10,
        **options,
      )
    )
    out.append(max(abs(first[k] - ref[k]) / abs(ref[k]) for k in keys))
  return out


def solver_error_table(results):
  """Per width, the solver's share of the fitted metrics (first seed), and the verdict against
  the 1 % budget."""
  results = [r for r in results if r.get("solver_error") is not None]
  table = median_table(
    results,
    [
      (
        "solver_error",
        "solver error (largest relative change of a fitted metric at rtol/100, atol/100)",
        ".1e",
      )
    ],
    reduce=np.nanmax,
  )
  worst = max((r["solver_error"] for r in results if np.isfinite(r["solver_error"])), default=float("nan"))
  verdict = "below" if worst < 0.01 else "ABOVE"
  return (
    f"Solver error: re-solving each width's first seed at rtol/100, atol/100 moves the fitted "
    f"metrics by at most {100 * worst:.2g} % ({verdict} the 1 % budget).\n\n" + table
  )


def flow(cfg, cells, model_of, params, x, y, **options):
  """`gradient_flow` of every seed's θ₀ (vmapped when there are several; each draw keeps its own
  adaptive steps), with the config's training section and the cells' learning rate.
  `model_of(θ₀)` is the model to train (the net, or e.g. the net centred at θ₀). Returns
  (times as numpy, [Trajectory per cell]).

  The draws advance in lockstep, so each pays for the slowest one's steps: on 2 CPU cores the
  gradient-flow experiments' full configs ran 15–40 % slower vmapped than one seed at a time (same
  results to 1e-11), which is why they set ``VMAP_SEEDS_ON_CPU = False``. On an accelerator, where
  one small solve leaves the device mostly idle, ``sweep.vmap_seeds: auto`` vmaps them (not timed
  yet: no GPU was lent to this project's sessions so far).
  """
  import ntk_lab as nl

  tr = cfg.training
  times = np.linspace(0.0, tr.time, tr.n_times)

  def one(p):
    return nl.gradient_flow(
      model_of(p),
      p,
      x,
      y,
      times=times,
      learning_rate=cells[0].learning_rate,
      solver=tr.solver,
      rtol=tr.rtol,
      atol=tr.atol,
      dt0=tr.dt0,
      error_control=tr.error_control,
      **options,
    )

  return times, per_draw(one, params, len(cells))
