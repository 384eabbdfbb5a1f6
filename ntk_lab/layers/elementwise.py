"""`Activation`: a pointwise nonlinearity as a layer, and neural-tangents' names for the common ones.

Infinite-width rule: with (u, v) ~ N(0, [[Σ(x, x), Σ(x, x')], [Σ(x, x'), Σ(x', x')]]),
Σ ← E[ρ(u)ρ(v)] and Θ ← Θ·E[ρ'(u)ρ'(v)] (Jacot et al. 2018; Lee et al. 2019): the activation's
closed form when it has one, else error-controlled quadrature (`ntk_lab.quadrature`). It has no
params, so no term of its own in the NTK.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ntk_lab.activations import Activation as _Activation
from ntk_lab.activations import get_activation
from ntk_lab.layers.base import KernelState, Layer, RuleContext
from ntk_lab.quadrature import TRACED_NODES, gaussian_expectations

__all__ = [
  "Activation",
  "ABRelu",
  "Abs",
  "Cos",
  "Erf",
  "Exp",
  "Gaussian",
  "Gelu",
  "LeakyRelu",
  "Monomial",
  "Polynomial",
  "Rbf",
  "RectifiedMonomial",
  "Relu",
  "Sign",
  "Sin",
]


@dataclasses.dataclass(frozen=True)
class Activation(Layer):
  """ρ applied elementwise: a registered name (``"relu"``, ``"erf"``, ``"tanh"``, …), an
  `ntk_lab.Activation` (parameters, affine wrap) or any elementwise callable.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> nl.layers.Activation("relu").apply((), jnp.array([[-1.0, 2.0]]))
    Array([[0., 2.]], dtype=float64)
  """

  activation: Any

  def __post_init__(self):
    object.__setattr__(self, "activation", get_activation(self.activation))

  @property
  def nonlinearity(self) -> _Activation:
    return self.activation

  def apply(self, params, x):
    return self.activation(x)

  def kernel_rule(self, state: KernelState, ctx: RuleContext) -> KernelState:
    if not state.is_gaussian:
      raise ValueError(
        f"Activation({self.activation.name!r}): its infinite-width rule takes Gaussian "
        "expectations, so its input must be Gaussian in the limit — the output of a Dense or "
        "Conv layer (or a sum of such); put one before it."
      )
    nodes = ctx.nodes(TRACED_NODES)
    want_ntk = state.ntk is not None
    act = self.activation
    if state.same:  # the points with themselves
      ctx.record_variances(self, state.pixel_variances(state.nngp))
      t, tdot = _own_expectations(act, state, state.nngp, nodes, want_ntk)
      return state.replace(nngp=t, ntk=state.ntk * tdot if want_ntk else None, is_gaussian=False)
    known = ctx.next_known()
    if known is None:
      k11, k22 = state.variances()
      var1 = _own_expectations(act, state, state.var1, nodes, False)[0]
      var2 = var1 if state.var2 is state.var1 else _own_expectations(act, state, state.var2, nodes, False)[0]
    else:  # the variances were computed per point beforehand; no need to carry them on
      k11, k22 = state.broadcast_pixels(*known)
      var1 = var2 = None
    t, tdot = gaussian_expectations(act, k11, k22, state.nngp, nodes=nodes, derivative=want_ntk)
    return state.replace(
      nngp=t, ntk=state.ntk * tdot if want_ntk else None, var1=var1, var2=var2, is_gaussian=False
    )


def _own_expectations(act, state, own, nodes, derivative):
  """E[ρ(u)ρ(u')] (and E[ρ'ρ']) over a point's own pairs of positions, ``own`` its covariances.

  Pixel-diagonal (or no spatial axes): Σ(x, x) is the variance, and the one-dimensional rule
  serves. With every pair of positions, the variances at the two positions differ."""
  if not state.full:
    return gaussian_expectations(act, own, own, own, nodes=nodes, derivative=derivative)
  k11, k22 = state.own_state(own).variances()
  return gaussian_expectations(act, k11, k22, own, nodes=nodes, derivative=derivative)


# ------------------------------------------------------------------ neural-tangents' names
def Relu() -> Activation:
  """max(z, 0) (NT's ``stax.Relu``)."""
  return Activation("relu")


def LeakyRelu(alpha: float) -> Activation:
  """z for z ≥ 0, αz otherwise (NT's ``stax.LeakyRelu``)."""
  return Activation(_Activation("leaky_relu", alpha=alpha))


def Abs() -> Activation:
  """|z| (NT's ``stax.Abs``)."""
  return Activation("abs")


def ABRelu(a: float, b: float) -> Activation:
  """a·min(z, 0) + b·max(z, 0) (NT's ``stax.ABRelu``)."""
  return Activation(_Activation("abrelu", params=(a, b)))


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Activation:
  """a·erf(b·z) + c (NT's ``stax.Erf``)."""
  return Activation(_Activation("erf", scale=a, inner=b, shift=c))


def Gelu() -> Activation:
  """z·Φ(z), the exact GELU (NT's ``stax.Gelu(approximate=False)``)."""
  return Activation("gelu")


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Activation:
  """a·sin(b·z + c) (NT's ``stax.Sin``)."""
  return Activation(_Activation("sin", params=(c,), scale=a, inner=b))


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Activation:
  """a·cos(b·z + c) (NT's ``stax.Cos``)."""
  return Activation(_Activation("cos", params=(c,), scale=a, inner=b))


def Sign() -> Activation:
  """sign(z) (NT's ``stax.Sign``)."""
  return Activation("sign")


def Exp(a: float = 1.0, b: float = 1.0) -> Activation:
  """a·exp(b·z) (NT's ``stax.Exp``)."""
  return Activation(_Activation("exp", scale=a, inner=b))


def Gaussian(a: float = 1.0, b: float = -1.0) -> Activation:
  """a·exp(b·z²) (NT's ``stax.Gaussian``)."""
  return Activation(_Activation("gaussian", params=(b,), scale=a))


def Rbf(gamma: float = 1.0) -> Activation:
  """√2·sin(√(2γ)·z + π/4), whose NNGP is the RBF kernel exp(−γ|x − x'|²) (NT's ``stax.Rbf``)."""
  return Activation(_Activation("rbf", params=(gamma,)))


def Monomial(degree: int) -> Activation:
  """z^degree (NT's ``stax.Monomial``)."""
  return Activation(_Activation("monomial", params=(degree,)))


def RectifiedMonomial(degree: int) -> Activation:
  """z^degree for z ≥ 0, else 0 (NT's ``stax.RectifiedMonomial``)."""
  return Activation(_Activation("rectified_monomial", params=(degree,)))


def Polynomial(coef) -> Activation:
  """Σ_i coef[i]·z^i (NT's ``stax.Polynomial``)."""
  return Activation(_Activation("polynomial", params=tuple(coef)))
