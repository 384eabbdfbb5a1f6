"""Pieces shared by the experiments: data and models from a config cell, log-log slope fits with
confidence intervals, and the per-width table."""

from __future__ import annotations

import math

import numpy as np


def make_data(cfg, n: int, seed: int):
  """(x, y, x_test, y_test) from the config's data section; inputs on the unit sphere (seeds 002,
  003) or Gaussian, targets sin(2·x₁), a fixed linear map βᵀx, or a random wide tanh teacher."""
  import jax
  import jax.numpy as jnp

  d = cfg.data
  kx, kt, kn, kb = jax.random.split(jax.random.PRNGKey(10_000 + seed), 4)
  x = jax.random.normal(kx, (n + d.n_test, d.in_dim))
  if d.inputs == "sphere":
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
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
  return nl.MLP((cell.width,) * cell.depth, out_dim=m.out_dim, activation=cell.activation,
                parametrization=m.parametrization, W_std=m.W_std, b_std=m.b_std)


def loglog_fit(x, y, level: float = 0.95):
  """Least-squares slope of log y on log x with its `level` confidence interval (Student t)."""
  from scipy import stats

  lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
  n = len(lx)
  res = stats.linregress(lx, ly)
  if n < 3:
    return res.slope, float("nan"), float("nan"), res.intercept
  half = stats.t.ppf(0.5 + level / 2, n - 2) * res.stderr
  return res.slope, res.slope - half, res.slope + half, res.intercept


def by_width(results, key):
  """{width: [values over seeds and other axes]} for one result key."""
  out = {}
  for r in results:
    out.setdefault(r["width"], []).append(r[key])
  return dict(sorted(out.items()))
