"""Pointwise activations ρ by name, with the conventions of neural-tangents' `stax`.

An activation is resolved once, when an `MLP` spec is built, into an `Activation`: a frozen,
hashable record (so specs stay usable as static arguments under `jax.jit`) holding the name, its
parameters and the elementwise function. Derivatives ρ' are never written by hand: they come from
`jax.jvp` of the same function, so the structured NTK path and autodiff see identical ρ'.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import erf as _erf

from ntk_lab import _checks

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "value_and_derivative"]


def _leaky_relu(x, alpha):
  return jnp.where(x >= 0, x, alpha * x)


# name -> (function of (x, alpha), needs alpha). GELU is the exact (erf) form, as NT's `stax.Gelu`.
_TABLE: dict[str, Callable] = {
    "relu": lambda x, a: jax.nn.relu(x),
    "leaky_relu": _leaky_relu,
    "abs": lambda x, a: jnp.abs(x),
    "erf": lambda x, a: _erf(x),
    "tanh": lambda x, a: jnp.tanh(x),
    "sigmoid": lambda x, a: jax.nn.sigmoid(x),
    "gelu": lambda x, a: jax.nn.gelu(x, approximate=False),
    "softplus": lambda x, a: jax.nn.softplus(x),
    "sin": lambda x, a: jnp.sin(x),
    "identity": lambda x, a: x,
}
ACTIVATIONS: tuple[str, ...] = tuple(_TABLE)


@dataclasses.dataclass(frozen=True)
class Activation:
  """A named pointwise nonlinearity ρ, or a user callable wrapped under ``name="custom"``.

  Args:
    name: one of `ACTIVATIONS`, or ``"custom"`` together with ``fn``.
    alpha: negative-side slope of ``leaky_relu`` (ρ(z) = z for z ≥ 0, αz otherwise).
    fn: the elementwise callable, for ``name="custom"`` only.

  Example:
    >>> import ntk_lab as nl
    >>> round(float(nl.Activation("leaky_relu", alpha=0.1)(-2.0)), 6)
    -0.2
  """

  name: str
  alpha: float = 0.01
  fn: Callable | None = None

  def __post_init__(self):
    if self.name == "custom":
      if not callable(self.fn):
        raise TypeError("Activation(name='custom') needs a callable `fn`, e.g. fn=jnp.cos.")
      return
    if self.name not in _TABLE:
      raise ValueError(
          f"activation: unknown name {self.name!r}; valid names are {', '.join(ACTIVATIONS)}, "
          f"or pass a callable{_checks.did_you_mean(self.name, ACTIVATIONS) or '.'}")
    if self.fn is not None:
      raise TypeError(f"Activation({self.name!r}) takes no `fn`; use name='custom' for a callable.")
    # math, not jnp: an Activation may be built while tracing (inside jit), where jnp gives tracers
    object.__setattr__(self, "alpha", _checks.number(self.alpha, "activation alpha", static=True))

  def __call__(self, x):
    if self.name == "custom":
      return self.fn(x)
    return _TABLE[self.name](x, self.alpha)


def get_activation(activation) -> Activation:
  """Resolves a name, an `Activation` or a callable into an `Activation`."""
  if isinstance(activation, Activation):
    return activation
  if isinstance(activation, str):
    return Activation(activation)
  if callable(activation):
    return Activation("custom", fn=activation)
  raise TypeError(
      f"activation: expected a name ({', '.join(ACTIVATIONS)}), an ntk_lab.Activation or a "
      f"callable, got {type(activation).__name__}.")


def value_and_derivative(act: Activation, z):
  """Returns (ρ(z), ρ'(z)) elementwise, ρ' by forward-mode autodiff of ρ itself."""
  return jax.jvp(act, (z,), (jnp.ones_like(z),))
