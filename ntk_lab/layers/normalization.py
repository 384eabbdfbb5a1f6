"""`LayerNorm`: normalisation over the channels of each position (NT's ``stax.LayerNorm``).

Infinite-width rule (channels → ∞, Gaussian inputs of mean zero): each position's mean over the
channels tends to 0 and its variance to Σ(x, x)[p, p], so Σ(x, x')[p, p'] and Θ(x, x')[p, p']
are both divided by √((ε + Σ(x, x)[p, p]) · (ε + Σ(x', x')[p', p'])) (Ba et al. 2016 for the
layer; the rule as neural-tangents computes it). It has no params.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from ntk_lab import _checks
from ntk_lab.layers.base import KernelState, Layer, RuleContext

__all__ = ["LayerNorm"]


@dataclasses.dataclass(frozen=True)
class LayerNorm(Layer):
  """(x − mean) / √(ε + variance) over the channel axis of each point and position.

  Args:
    axis: the axis normalised over: -1, the channels (the only one with an infinite-width limit
      of this form; neural-tangents also allows spatial axes besides it).
    eps: ε > 0 added to the variance.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> nl.layers.LayerNorm().apply((), jnp.array([[1.0, 3.0]]))
    Array([[-1.,  1.]], dtype=float64)
  """

  axis: int = -1
  eps: float = 1e-12

  def __post_init__(self):
    if self.axis != -1:
      raise ValueError(
        f"axis: LayerNorm normalises over the channels, axis=-1; got {self.axis!r}. (Normalising "
        "over spatial axes too has no kernel here yet.)"
      )
    object.__setattr__(self, "eps", _checks.number(self.eps, "eps", low=0.0, strict=True, static=True))

  def apply(self, params, x):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(self.eps + var)

  def kernel_rule(self, state: KernelState, ctx: RuleContext) -> KernelState:
    if not state.is_gaussian:
      raise ValueError(
        "LayerNorm: its infinite-width rule holds for Gaussian inputs of mean zero — the output of "
        "a Dense or Conv layer; put it right after one (not after a nonlinearity)."
      )
    if state.same:
      p = state.pixel_variances(state.nngp)
      ctx.record_variances(self, p)
      k11, k22 = state.variances()
      norm = jnp.sqrt((self.eps + k11) * (self.eps + k22))
      return state.replace(nngp=state.nngp / norm, ntk=None if state.ntk is None else state.ntk / norm)
    known = ctx.next_known()
    if known is None:
      p1, p2 = state.pixel_variances(state.var1), state.pixel_variances(state.var2)
      var1, var2 = self._own(state, state.var1), self._own(state, state.var2)
    else:
      p1, p2 = known
      var1 = var2 = None
    k11, k22 = state.broadcast_pixels(p1, p2)
    norm = jnp.sqrt((self.eps + k11) * (self.eps + k22))
    ntk = None if state.ntk is None else state.ntk / norm
    return state.replace(nngp=state.nngp / norm, ntk=ntk, var1=var1, var2=var2)

  def _own(self, state, own):
    k11, k22 = state.own_state(own).variances()
    return own / jnp.sqrt((self.eps + k11) * (self.eps + k22))
