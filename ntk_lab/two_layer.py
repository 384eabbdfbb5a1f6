"""Named kernels of two-layer networks f(x) = (1/√m) Σ_r a_r σ(w_rᵀx), as functions.

* G^∞(x, x') = E_w[σ(wᵀx) σ(wᵀx')] (readout layer) and
  H^∞(x, x') = xᵀx' E[a²] E_w[σ'(wᵀx) σ'(wᵀx')] (first layer); K^∞ = G^∞ + H^∞ when both train
  (Du et al. 2019, "Gradient descent provably optimizes over-parameterized neural networks").
* ReLU, readout fixed: H^∞ = xᵀx' (π − θ) / (2π), θ the angle between x and x' (θ = arccos(xᵀx')
  for unit-norm inputs; Arora et al. 2019, "Fine-grained analysis"), and its power series
  H^∞ = xᵀx'/4 + (1/2π) Σ_l (2l)! / (2^{2l} (l!)²) · (xᵀx')^{2l+2} / (2l+1)  (unit norm).
* ReLU, all weights trained: K = E[xᵀx' 1{wᵀx ≥ 0} 1{wᵀx' ≥ 0}] + E[σ(wᵀx) σ(wᵀx')].

Every kernel here is the general Gaussian expectation of `ntk_lab.quadrature` (closed form or
error-controlled quadrature, with the same accuracy control as `analytic_kernel`: node count
chosen for `quadrature_rtol`, forced counts checked with a warning, traced inputs checked inside
the program), and `ntk_complexity` is `ntk_lab.kernel_complexity` of H^∞: one implementation per
quantity.

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
from ntk_lab.activations import Activation, get_activation
from ntk_lab.complexity import kernel_complexity
from ntk_lab.quadrature import (
  MAX_NODES,
  TRACED_NODES,
  check_forced_nodes,
  check_rtol,
  check_traced_nodes,
  choose_nodes,
  gaussian_expectations,
)

__all__ = [
  "g_infinity",
  "h_infinity",
  "relu_h_infinity",
  "relu_h_infinity_series",
  "relu_ntk_all_weights",
  "ntk_complexity",
  "Series",
]


_RELU = Activation("relu")


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


def _nodes(act, k11, k22, nodes, rtol, what):
  """The quadrature node count, with `analytic_kernel`'s accuracy control: the fewest meeting
  `rtol` for these variances (`choose_nodes`); a forced count is checked (a warning when it misses
  rtol, a refusal when no count can meet it); traced variances (jit, grad) get `TRACED_NODES` or
  the forced count and the estimate runs inside the program. Unused for closed forms."""
  if nodes is not None:
    _checks.positive_int(nodes, "quadrature_nodes")
    if nodes > MAX_NODES:
      raise ValueError(
        f"quadrature_nodes: at most {MAX_NODES}, got {nodes}; leave it None to have the node "
        "count chosen for quadrature_rtol."
      )
  rtol = check_rtol(rtol, jnp.asarray(k11).dtype)
  if act.has_closed_form:
    return nodes or TRACED_NODES
  variances = jnp.concatenate([jnp.ravel(k11), jnp.ravel(k22)])
  try:
    q = np.asarray(variances)
  except _checks.TRACED:
    n = nodes or TRACED_NODES
    check_traced_nodes(act, n, variances, rtol, what=what)
    return n
  if nodes is None:
    return choose_nodes(act, q, rtol, where=f" in {what}")
  check_forced_nodes(act, q, nodes, rtol, where=f" in {what}", stacklevel=4)
  return nodes


def g_infinity(
  x1,
  x2=None,
  *,
  activation="relu",
  first_layer_std=1.0,
  quadrature_nodes: int | None = None,
  quadrature_rtol: float | None = None,
):
  """The readout-layer kernel G^∞(x, x') = E_{w ~ N(0, s²I)}[σ(wᵀx) σ(wᵀx')], (N1, N2).

  For an activation without a closed form the expectation is integrated to `quadrature_rtol`
  (None: 1e-7 in float64, 1e-5 in float32) relative to √(G^∞(x, x)·G^∞(x', x')), or the call
  raises with the estimated error; `quadrature_nodes` forces a node count (1 … 512) and warns
  when it misses the accuracy, as in `analytic_kernel`. Under `jax.jit` the estimate runs inside
  the program and raises (a `JaxRuntimeError`) when it misses the accuracy.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> nl.two_layer.g_infinity(jnp.eye(2), activation="relu").shape
    (2, 2)
  """
  act = get_activation(activation)
  g, k11, k22, s2 = _gram(x1, x2, first_layer_std)
  nodes = _nodes(act, k11, k22, quadrature_nodes, quadrature_rtol, "g_infinity")
  t, _ = gaussian_expectations(act, k11, k22, s2 * g, nodes=nodes, derivative=False)
  return t


def h_infinity(
  x1,
  x2=None,
  *,
  activation="relu",
  first_layer_std=1.0,
  a_second_moment=1.0,
  quadrature_nodes: int | None = None,
  quadrature_rtol: float | None = None,
):
  """The first-layer kernel H^∞(x, x') = xᵀx' E[a²] E_{w ~ N(0, s²I)}[σ'(wᵀx) σ'(wᵀx')], (N1, N2).

  With σ = ReLU, s = 1 and E[a²] = 1 it is the closed form `relu_h_infinity`. The accuracy of
  quadrature activations as in `g_infinity`.
  """
  act = get_activation(activation)
  g, k11, k22, s2 = _gram(x1, x2, first_layer_std)
  nodes = _nodes(act, k11, k22, quadrature_nodes, quadrature_rtol, "h_infinity")
  _, tdot = gaussian_expectations(act, k11, k22, s2 * g, nodes=nodes)
  return g * a_second_moment * tdot


def relu_h_infinity(x1, x2=None):
  """H^∞(x, x') = xᵀx' (π − θ) / (2π), ReLU with the readout fixed, w ~ N(0, I).

  For unit-norm inputs θ = arccos(xᵀx') (Arora et al. 2019, "Fine-grained analysis").

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> float(nl.two_layer.relu_h_infinity(jnp.array([[1.0, 0.0]]))[0, 0])
    0.5
  """
  return h_infinity(x1, x2, activation=_RELU)


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
  return h_infinity(x1, x2, activation=_RELU, first_layer_std=first_layer_std) + g_infinity(
    x1, x2, activation=_RELU, first_layer_std=first_layer_std
  )


def ntk_complexity(x, y) -> jax.Array:
  """The NTK's complexity measure (Arora et al. 2019, "Fine-grained analysis") √(2 yᵀ(H^∞)⁻¹y · tr H^∞) / n, H^∞ = `relu_h_infinity(x)`.

  It is `ntk_lab.kernel_complexity(relu_h_infinity(x), y, definition="trace").value`: (H^∞)⁻¹ a
  pseudo-inverse, so repeated inputs (a singular H^∞) give a finite number. It bounds the NTK's classification error (via Rademacher complexity). For unit-norm inputs and
  linear targets y_i = βᵀx_i, it is at most 2√2‖β‖/√n.

  Args:
    x: inputs (n, d) (unit norm in that bound).
    y: targets (n,) or (n, O) (yᵀH⁻¹y summed over the O columns).

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (20, 5))
    >>> x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    >>> beta = jnp.ones(5)
    >>> bool(nl.two_layer.ntk_complexity(x, x @ beta) <= 2 * jnp.sqrt(2.0) * jnp.linalg.norm(beta) / jnp.sqrt(20))
    True
  """
  x = _checks.as_inputs(x, "x")
  y = _checks.targets(y, "y", x.shape[0])
  return kernel_complexity(relu_h_infinity(x), y, definition="trace").value
