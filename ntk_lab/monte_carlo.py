"""Monte Carlo estimates of the NNGP and NTK from finite networks (Lee et al. 2019; Jacot et al. 2018).

Over independent draws θ₀ ~ p(θ₀) of an `MLP`'s parameters,

    Σ̂(x, x') = (1/S) Σ_s (1/O) Σ_a f_a(x; θ_s) f_a(x'; θ_s),      Θ̂(x, x') = (1/S) Σ_s Θ_{θ_s}(x, x'),

with Θ_θ the empirical NTK (traced over the O outputs, NT's `monte_carlo_kernel_fn` convention).
As the widths grow both converge to `analytic_kernel`; for one hidden layer their expectations
equal it at every width (each is an average of i.i.d. per-neuron terms). The entrywise standard
errors come with the estimate, so a comparison can use a tolerance that follows from S.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntk_lab import _checks
from ntk_lab.empirical import empirical_ntk
from ntk_lab.layers import Layer

__all__ = ["MonteCarloKernel", "monte_carlo_kernel"]


class MonteCarloKernel(NamedTuple):
  """Sample means (N1, N2) and their standard errors (N1, N2); None for what was not asked for."""

  nngp: jax.Array | None
  ntk: jax.Array | None
  nngp_stderr: jax.Array | None
  ntk_stderr: jax.Array | None
  n_samples: int


def monte_carlo_kernel(
  model: Layer, key, x1, x2=None, *, n_samples: int, get=("nngp", "ntk"), samples_per_step: int = 1
) -> MonteCarloKernel:
  """Estimates the NNGP and NTK of `model` by averaging over `n_samples` random initialisations.

  Args:
    model: a network of `ntk_lab.layers` (e.g. an `MLP`); its `init` draws the samples (so width,
      parametrization and readout init all matter).
    key: a `jax.random` key; sample s uses ``jax.random.fold_in(key, s)``.
    x1: inputs (N1, *in_shape); x2: inputs (N2, *in_shape) or None for x1.
    n_samples: S ≥ 2, the number of networks drawn.
    get: which of ``"nngp"``, ``"ntk"`` to estimate.
    samples_per_step: networks evaluated at once (vmapped); more is faster, with memory for that
      many parameter sets.

  Returns:
    `MonteCarloKernel(nngp, ntk, nngp_stderr, ntk_stderr, n_samples)`, arrays of shape (N1, N2);
    stderr = sample standard deviation / √S, entrywise.

  Example:
    >>> import jax, ntk_lab as nl
    >>> net = nl.MLP((256,), activation="erf", b_std=0.1)
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (3, 2))
    >>> mc = nl.monte_carlo_kernel(net, jax.random.PRNGKey(1), x, n_samples=8)
    >>> mc.ntk.shape, mc.ntk_stderr.shape
    ((3, 3), (3, 3))
  """
  if not isinstance(model, Layer):
    raise TypeError(
      "model: expected a network of ntk_lab layers (e.g. ntk_lab.MLP; its init draws the samples), "
      f"got {type(model).__name__}."
    )
  get = _checks.kernel_fields(get)
  n_samples = _checks.positive_int(n_samples, "n_samples")
  if n_samples < 2:
    raise ValueError("n_samples: needs at least 2 samples for a standard error, got 1.")
  samples_per_step = _checks.positive_int(samples_per_step, "samples_per_step")
  x1, x2 = _checks.point_pair(x1, x2)
  step = min(samples_per_step, n_samples)
  moments = _moments(model, key, x1, x2, n_samples=n_samples, step=step, get=get)
  out = {}
  for g in ("nngp", "ntk"):
    if g not in get:
      out[g], out[g + "_stderr"] = None, None
      continue
    mean, m2 = moments[g]
    out[g], out[g + "_stderr"] = mean, jnp.sqrt(m2 / (n_samples - 1) / n_samples)
  return _checks.finite_result(
    MonteCarloKernel(n_samples=n_samples, **out),
    "monte_carlo_kernel",
    "Rescale the inputs, compute in float64, or use a smaller W_std/b_std.",
  )


@functools.partial(jax.jit, static_argnames=("model", "n_samples", "step", "get"))
def _moments(model, key, x1, x2, *, n_samples, step, get):
  """Running mean and sum of squared deviations M2 over the draws, merged one vmapped batch at a
  time (Chan et al.'s pairwise update), which stays accurate in float32 where Σx² − S·mean² would
  cancel."""
  in_shape = tuple(x1.shape[1:])
  xb = x1 if x2 is None else x2

  def one(s):
    params = model.init_params(jax.random.fold_in(key, s), in_shape, x1.dtype)
    out = {}
    if "nngp" in get:
      f1 = model.apply(params, x1)
      f2 = f1 if x2 is None else model.apply(params, xb)
      out["nngp"] = f1 @ f2.T / f1.shape[1]
    if "ntk" in get:
      out["ntk"] = empirical_ntk(model, params, x1, x2, method="auto")
    return out

  def body(carry, idx):
    count, acc = carry
    batch = jax.vmap(one)(idx)
    valid = (idx < n_samples).astype(x1.dtype)  # the last step may run past S
    m = jnp.sum(valid)
    new_count = count + m
    merged = {}
    for g, (mean, m2) in acc.items():
      w = valid[:, None, None]
      b_mean = jnp.sum(w * batch[g], 0) / m
      b_m2 = jnp.sum(w * (batch[g] - b_mean) ** 2, 0)
      delta = b_mean - mean
      merged[g] = (mean + delta * m / new_count, m2 + b_m2 + delta**2 * count * m / new_count)
    return (new_count, merged), None

  zero = jnp.zeros((x1.shape[0], xb.shape[0]), x1.dtype)
  steps = -(-n_samples // step)
  idx = jnp.arange(steps * step).reshape(steps, step)
  init = (jnp.zeros((), x1.dtype), {g: (zero, zero) for g in get})
  (_, acc), _ = jax.lax.scan(body, init, idx)
  return acc
