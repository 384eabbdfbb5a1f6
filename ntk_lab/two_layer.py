"""Named kernels of two-layer networks f(x) = (1/√m) Σ_r a_r σ(w_rᵀx), as functions.

* G^∞(x, x') = E_w[σ(wᵀx) σ(wᵀx')] (readout layer) and
  H^∞(x, x') = xᵀx' E[a²] E_w[σ'(wᵀx) σ'(wᵀx')] (first layer); K^∞ = G^∞ + H^∞ when both train
  (Du et al. 2019, "Gradient descent provably optimizes over-parameterized neural networks").
* ReLU, readout fixed: H^∞ = xᵀx' (π − θ) / (2π), θ the angle between x and x' (θ = arccos(xᵀx')
  for unit-norm inputs; Arora et al. 2019, "Fine-grained analysis"), and its power series
  H^∞ = xᵀx'/4 + (1/2π) Σ_l (2l)! / (2^{2l} (l!)²) · (xᵀx')^{2l+2} / (2l+1)  (unit norm).
* ReLU, all weights trained: K = E[xᵀx' 1{wᵀx ≥ 0} 1{wᵀx' ≥ 0}] + E[σ(wᵀx) σ(wᵀx')].

Here w ~ N(0, s² I_d) (`first_layer_std` = s). Gradients are taken w.r.t. w and a themselves, as in
those papers, so these differ from `analytic_kernel` of the matching `MLP((m,), W_std=(s√d, σ_a))` only
by the parametrization's constants: H^∞ = Θ_hidden / s² (with σ_a² = E[a²]) and G^∞ = Θ_readout / σ_a².
Each input is (N, d); each output (N1, N2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks
from ntk_lab.activations import get_activation
from ntk_lab.quadrature import choose_nodes, default_rtol, gaussian_expectations

__all__ = [
  "g_infinity",
  "h_infinity",
  "relu_h_infinity",
  "relu_h_infinity_series",
  "relu_ntk_all_weights",
  "ntk_complexity",
  "Series",
]


class Series(NamedTuple):
  """A truncated series: its value and a bound on |value − limit|, entrywise (N1, N2)."""

  value: jax.Array
  error_bound: jax.Array


def _gram(x1, x2, first_layer_std):
  x1, x2 = _checks.input_pair(x1, x2)
  x2 = x1 if x2 is None else x2
  s2 = jnp.asarray(first_layer_std, x1.dtype) ** 2
  k11 = s2 * jnp.sum(x1 * x1, 1)[:, None]
  k22 = s2 * jnp.sum(x2 * x2, 1)[None, :]
  return x1 @ x2.T, k11, k22, s2


def _nodes(act, k11, k22, nodes):
  """The quadrature node count: as given, or the fewest meeting the default accuracy for these
  variances (`ntk_lab.quadrature.choose_nodes`); 32 when they are traced. Unused for closed forms."""
  if nodes is not None or act.has_closed_form:
    return nodes or 32
  try:
    q = np.concatenate([np.ravel(k11), np.ravel(k22)])
  except _checks.TRACED:
    return 32
  return choose_nodes(act, q, default_rtol(jnp.asarray(k11).dtype))


def g_infinity(x1, x2=None, *, activation="relu", first_layer_std=1.0, quadrature_nodes: int | None = None):
  """The readout-layer kernel G^∞(x, x') = E_{w ~ N(0, s²I)}[σ(wᵀx) σ(wᵀx')], (N1, N2).

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> nl.two_layer.g_infinity(jnp.eye(2), activation="relu").shape
    (2, 2)
  """
  act = get_activation(activation)
  g, k11, k22, s2 = _gram(x1, x2, first_layer_std)
  t, _ = gaussian_expectations(
    act, k11, k22, s2 * g, nodes=_nodes(act, k11, k22, quadrature_nodes), derivative=False
  )
  return t


def h_infinity(
  x1,
  x2=None,
  *,
  activation="relu",
  first_layer_std=1.0,
  a_second_moment=1.0,
  quadrature_nodes: int | None = None,
):
  """The first-layer kernel H^∞(x, x') = xᵀx' E[a²] E_{w ~ N(0, s²I)}[σ'(wᵀx) σ'(wᵀx')], (N1, N2).

  With σ = ReLU, s = 1 and E[a²] = 1 it is the closed form `relu_h_infinity`.
  """
  act = get_activation(activation)
  g, k11, k22, s2 = _gram(x1, x2, first_layer_std)
  _, tdot = gaussian_expectations(act, k11, k22, s2 * g, nodes=_nodes(act, k11, k22, quadrature_nodes))
  return g * a_second_moment * tdot


def _angle(g, k11, k22):
  """θ = arccos(g / √(k11·k22)), with θ = π/2 when a side is 0 (then g = 0 anyway)."""
  s = jnp.sqrt(k11 * k22)
  c = jnp.clip(g / jnp.where(s > 0, s, 1.0), -1.0, 1.0)
  return jnp.arccos(jnp.where(s > 0, c, 0.0))


def relu_h_infinity(x1, x2=None):
  """H^∞(x, x') = xᵀx' (π − θ) / (2π), ReLU with the readout fixed, w ~ N(0, I).

  For unit-norm inputs θ = arccos(xᵀx') (Arora et al. 2019, "Fine-grained analysis").

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> float(nl.two_layer.relu_h_infinity(jnp.array([[1.0, 0.0]]))[0, 0])
    0.5
  """
  g, k11, k22, _ = _gram(x1, x2, 1.0)
  return g * (math.pi - _angle(g, k11, k22)) / (2 * math.pi)


def relu_h_infinity_series(x1, x2=None, *, terms: int) -> Series:
  """H^∞ for unit-norm inputs as its power series in z = xᵀx', truncated.

      H^∞ = z/4 + (1/2π) Σ_{l<terms} c_l z^{2l+2} / (2l+1),   c_l = (2l)! / (2^{2l} (l!)²),

  from arccos(z) = π/2 − Σ_l c_l z^{2l+1}/(2l+1). The remainder R = (1/2π) Σ_{l≥L} c_l z^{2l+2}/(2l+1),
  L = `terms`, is bounded using c_l ≤ c_L (c_l decreases) and c_L ≤ 1/√(πL):
  R ≤ c_L z^{2L+2} / ((2L+1)(1 − z²)) / (2π) for |z| < 1, and, for any |z| ≤ 1,
  R ≤ (1/2π) Σ_{l≥L} 1/(√(πl)(2l+1)) ≤ (1/2π) (1/√π) (L^{−3/2}/2 + L^{−1/2});
  `error_bound` is the smaller of the two.

  Args:
    x1, x2: unit-norm inputs (N, d) (x2 None for x1); checked to 1e-6.
    terms: L ≥ 1, the number of series terms kept.
  """
  terms = _checks.positive_int(terms, "terms")
  g, k11, k22, _ = _gram(x1, x2, 1.0)
  norms = jnp.concatenate([k11.ravel(), k22.ravel()])
  try:
    unit = bool(jnp.all(jnp.abs(norms - 1) <= 1e-6))
  except jax.errors.ConcretizationTypeError:
    unit = True  # under jit: the caller's responsibility
  if not unit:
    raise ValueError(
      "x1/x2: the series is for unit-norm inputs; normalise them "
      "(x / |x|) or use relu_h_infinity for any inputs."
    )
  z = jnp.clip(g, -1.0, 1.0)
  l = np.arange(terms)
  c = np.exp(np.cumsum(np.concatenate([[0.0], np.log((2 * l[1:] - 1) / (2 * l[1:]))])))  # c_l
  coef = jnp.asarray(c / (2 * l + 1), z.dtype)
  powers = z[..., None] ** (2 * l + 2)
  value = z / 4 + jnp.sum(coef * powers, -1) / (2 * math.pi)
  L = terms
  c_L = float(c[-1] * (2 * L - 1) / (2 * L))
  z2 = z * z
  geometric = jnp.where(
    z2 < 1, c_L * z2 ** (L + 1) / ((2 * L + 1) * jnp.where(z2 < 1, 1 - z2, 1.0)), jnp.inf
  ) / (2 * math.pi)
  uniform = (0.5 * L**-1.5 + L**-0.5) / math.sqrt(math.pi) / (2 * math.pi)
  return Series(value, jnp.minimum(geometric, uniform))


def relu_ntk_all_weights(x1, x2=None, *, first_layer_std=1.0):
  """The ReLU NTK of a two-layer net with both layers trained: K(x, x') = E[xᵀx' 1{wᵀx ≥ 0} 1{wᵀx' ≥ 0}] + E[σ(wᵀx) σ(wᵀx')], w ~ N(0, s²I).

  In closed form (arc-cosine kernels, θ the angle between x and x'):
  K = xᵀx' (π − θ)/(2π) + s² |x||x'| (sin θ + (π − θ) cos θ)/(2π).
  """
  g, k11, k22, s2 = _gram(x1, x2, first_layer_std)
  theta = _angle(s2 * g, k11, k22)
  norms = jnp.sqrt(k11 * k22)  # s²|x||x'|
  return (g * (math.pi - theta) + norms * (jnp.sin(theta) + (math.pi - theta) * jnp.cos(theta))) / (
    2 * math.pi
  )


def ntk_complexity(x, y) -> jax.Array:
  """The NTK's complexity measure (Arora et al. 2019, "Fine-grained analysis") √(2 yᵀ(H^∞)⁻¹y · tr H^∞) / n, H^∞ = `relu_h_infinity(x)`.

  It bounds the NTK's classification error (via Rademacher complexity). For unit-norm inputs and
  linear targets y_i = βᵀx_i, it is at most 2√2‖β‖/√n.

  Args:
    x: inputs (n, d) (unit norm in that bound).
    y: targets (n,) or (n, 1).

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (20, 5))
    >>> x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    >>> beta = jnp.ones(5)
    >>> bool(nl.two_layer.ntk_complexity(x, x @ beta) <= 2 * jnp.sqrt(2.0) * jnp.linalg.norm(beta) / jnp.sqrt(20))
    True
  """
  x = _checks.as_inputs(x, "x")
  y = jnp.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.shape != (x.shape[0],):
    raise ValueError(f"y: expected shape ({x.shape[0]},) or ({x.shape[0]}, 1) to match x, got {y.shape}.")
  h = relu_h_infinity(x)
  c = jax.scipy.linalg.cho_factor(h)
  quad = y @ jax.scipy.linalg.cho_solve(c, y)
  return jnp.sqrt(2 * quad * jnp.trace(h)) / x.shape[0]
