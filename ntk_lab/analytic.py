"""Infinite-width NNGP and NTK kernels of an `MLP` (seed 000 eqs 1–3 and 8).

With Σ₁(x, x') = xᵀx'/n₀ the input kernel, each layer maps (Σ, Θ) as NT's `stax` does:

* affine layer l (NTK parametrization): Σ ← σ_w² Σ + σ_b², and Θ ← Σ + σ_w² Θ when the layer
  trains (Θ ← σ_w² Θ when frozen: its own term drops out);
* activation ρ: with (u, v) ~ N(0, [[Σ(x, x), Σ(x, x')], [Σ(x, x'), Σ(x', x')]]),
  Σ ← E[ρ(u)ρ(v)] (eq 2) and Θ ← Θ · Σ̇, Σ̇ = E[ρ'(u)ρ'(v)] (eq 3).

so that the readout gives the NNGP Σ_{L+1} and the NTK Θ = Σ_j Σ_j Σ̇_{j+1} ⋯ Σ̇_L (eq 8).
The expectations are closed forms for relu, leaky_relu, abs (arc-cosine kernels), erf, sin and
identity, and Gauss–Hermite quadrature for every other activation, with ρ' by autodiff.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks
from ntk_lab.activations import Activation, value_and_derivative
from ntk_lab.mlp import MLP

__all__ = ["Kernel", "analytic_kernel", "gaussian_expectations", "CLOSED_FORMS"]

CLOSED_FORMS = ("relu", "leaky_relu", "abs", "erf", "sin", "identity")


class Kernel(NamedTuple):
  """Infinite-width kernels, each (N1, N2); a field is None when it was not asked for."""

  nngp: jax.Array | None
  ntk: jax.Array | None


def analytic_kernel(model: MLP, x1, x2=None, *, get=("nngp", "ntk"), quadrature_nodes: int = 64) -> Kernel:
  """The infinite-width NNGP and NTK of the network that `model` describes.

  Args:
    model: an `MLP` (depth, W_std, b_std or no bias, parametrization, frozen layers, readout init).
    x1: inputs (N1, in_dim); x2: inputs (N2, in_dim) or None for x1.
    get: which of ``"nngp"``, ``"ntk"`` to return.
    quadrature_nodes: Gauss–Hermite nodes per dimension for activations without a closed form.

  Returns:
    `Kernel(nngp, ntk)`, each of shape (N1, N2), per output (the same for every output).

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> k = nl.analytic_kernel(nl.MLP((1,), b_std=None), jnp.eye(2))
    >>> k.ntk.shape
    (2, 2)
  """
  if not isinstance(model, MLP):
    raise TypeError(f"model: expected an ntk_lab.MLP, got {type(model).__name__}.")
  get = (get,) if isinstance(get, str) else tuple(get)
  for g in get:
    _checks.choice(g, "get", ("nngp", "ntk"))
  x1 = _checks.as_inputs(x1, "x1")
  x2 = None if x2 is None else _checks.as_inputs(x2, "x2", x1.shape[1])
  _checks.positive_int(quadrature_nodes, "quadrature_nodes")
  nngp, ntk = _kernel(model, x1, x2, quadrature_nodes)
  if model.readout_init == "symmetric":  # f(x; θ₀) ≡ 0: the outputs at init have no variance
    nngp = jnp.zeros_like(nngp)
  return Kernel(nngp if "nngp" in get else None, ntk if "ntk" in get else None)


@functools.partial(jax.jit, static_argnames=("model", "nodes"))
def _kernel(model, x1, x2, nodes):
  xb = x1 if x2 is None else x2
  d = x1.shape[1]
  var1 = jnp.sum(x1 * x1, axis=1) / d
  var2 = jnp.sum(xb * xb, axis=1) / d
  cov = x1 @ xb.T / d
  ntk = jnp.zeros_like(cov)
  widths = model.widths(d)
  for l in range(model.n_layers):
    w2 = model.w_std(l) ** 2
    b2 = (model.b_std or 0.0) ** 2 if model.has_bias else 0.0
    prev_cov = cov
    var1, var2, cov = w2 * var1 + b2, w2 * var2 + b2, w2 * cov + b2
    if model.parametrization == "ntk":
      own = cov
    else:  # standard: dΘ = n_in·Σ_in (weights) + 1 (bias), and the lower terms scaled by σ_w²
      own = widths[l] * prev_cov + (1.0 if model.has_bias else 0.0)
    ntk = (own if model.trainable[l] else 0.0) + w2 * ntk
    if l < model.n_layers - 1:
      t, tdot = gaussian_expectations(model.activation, var1[:, None], var2[None, :], cov, nodes=nodes)
      v1, _ = gaussian_expectations(model.activation, var1, var1, var1, nodes=nodes, derivative=False)
      if x2 is None:  # the same points on both sides: their variances are the same too
        v2 = v1
      else:
        v2, _ = gaussian_expectations(model.activation, var2, var2, var2, nodes=nodes, derivative=False)
      cov, ntk, var1, var2 = t, ntk * tdot, v1, v2
  return cov, ntk


def gaussian_expectations(act: Activation, k11, k22, k12, *, nodes: int = 64, derivative: bool = True):
  """(E[ρ(u)ρ(v)], E[ρ'(u)ρ'(v)]) for (u, v) ~ N(0, [[k11, k12], [k12, k22]]), elementwise.

  Closed forms for the activations in `CLOSED_FORMS`, else Gauss–Hermite quadrature with `nodes`²
  points. Correlations are clipped to [−1, 1] and zero variances handled, so the results are finite
  (and differentiable) for zero-norm inputs too. Returns None for the second entry when
  ``derivative=False``.
  """
  k11, k22, k12 = jnp.broadcast_arrays(k11, k22, k12)
  name = act.name
  if name in ("relu", "leaky_relu", "abs"):
    a, b = {"relu": (0.0, 1.0), "leaky_relu": (act.alpha, 1.0), "abs": (-1.0, 1.0)}[name]
    return _ab_relu(a, b, k11, k22, k12, derivative)
  if name == "erf":
    p = (1 + 2 * k11) * (1 + 2 * k22)
    t = 2 / math.pi * jnp.arcsin(jnp.clip(2 * k12 / jnp.sqrt(p), -1, 1))
    return t, (4 / math.pi / jnp.sqrt(p - 4 * k12**2) if derivative else None)
  if name == "sin":
    e = jnp.exp(-(k11 + k22) / 2)
    return e * jnp.sinh(k12), (e * jnp.cosh(k12) if derivative else None)
  if name == "identity":
    return k12, (jnp.ones_like(k12) if derivative else None)
  return _gauss_hermite(act, k11, k22, k12, nodes, derivative)


def _safe_sqrt(x):
  # sqrt with a finite gradient at 0 (the gradient there is set to 0).
  safe = jnp.where(x > 0, x, 1.0)
  return jnp.where(x > 0, jnp.sqrt(safe), 0.0)


def _safe_arccos(c):
  # arccos with finite gradients at c = ±1 (where the true derivative is infinite).
  inside = jnp.abs(c) < 1
  return jnp.where(inside, jnp.arccos(jnp.where(inside, c, 0.0)), jnp.where(c > 0, 0.0, math.pi))


def _ab_relu(a, b, k11, k22, k12, derivative):
  """ρ(x) = a·min(x, 0) + b·max(x, 0): arc-cosine kernels (Cho & Saul)."""
  s = _safe_sqrt(k11 * k22)
  c = jnp.clip(k12 / jnp.where(s > 0, s, 1.0), -1.0, 1.0)
  c = jnp.where(s > 0, c, 0.0)  # a zero-variance side: u ≡ 0, and ρ(0) = 0 whatever θ is
  theta = _safe_arccos(c)
  sin = _safe_sqrt(1 - c * c)
  t = s * ((a * a + b * b) * (sin + (math.pi - theta) * c) - 2 * a * b * (sin - theta * c)) / (2 * math.pi)
  if not derivative:
    return t, None
  tdot = ((a * a + b * b) * (math.pi - theta) + 2 * a * b * theta) / (2 * math.pi)
  return t, tdot


def _gauss_hermite(act, k11, k22, k12, nodes, derivative):
  t, w = np.polynomial.hermite.hermgauss(nodes)
  z = jnp.asarray(t * math.sqrt(2), k12.dtype)  # nodes of ∫ φ(z) dz after z = √2 t
  w = jnp.asarray(w / math.sqrt(math.pi), k12.dtype)
  s1, s2 = _safe_sqrt(k11), _safe_sqrt(k22)
  c = jnp.clip(k12 / jnp.where(s1 * s2 > 0, s1 * s2, 1.0), -1.0, 1.0)
  r = _safe_sqrt(1 - c * c)
  # u = s1·z1, v = s2·(c·z1 + r·z2); sum over z1 in a scan so memory stays at N1·N2·nodes.
  def step(acc, zw):
    z1, w1 = zw
    u = s1 * z1
    v = s2[..., None] * (c[..., None] * z1 + r[..., None] * z)  # (..., nodes)
    fu, du = value_and_derivative(act, u)
    fv, dv = value_and_derivative(act, v)
    acc_t = acc[0] + w1 * fu * jnp.sum(w * fv, axis=-1)
    acc_d = acc[1] + w1 * du * jnp.sum(w * dv, axis=-1) if derivative else acc[1]
    return (acc_t, acc_d), None
  zero = jnp.zeros_like(k12)
  (t_out, d_out), _ = jax.lax.scan(step, (zero, zero), (z, w))
  return t_out, (d_out if derivative else None)
