"""`Dense`: the fully-connected layer, with neural-tangents' `stax.Dense` conventions.

For an input h with n channels (its last axis), z = a·h W + β·b, where in NTK parametrization
a = σ_w/√n, β = σ_b and W, b ~ N(0, 1), and in standard parametrization a = β = 1 with
W ~ N(0, σ_w²/n), b ~ N(0, σ_b²) (Jacot et al. 2018; Sohl-Dickstein et al. 2020).

Infinite-width rule: Σ ← σ_w² Σ + σ_b², and Θ ← Σ + σ_w² Θ in NTK parametrization, or
Θ ← n·Σ_in + 1 + σ_w² Θ in standard parametrization (1 only with a bias); a layer that does not
train drops its own term, Θ ← σ_w² Θ.

Structured empirical term (inputs with one axis): its params W and b contribute
(a²⟨h, h'⟩ + β²)·⟨δ, δ'⟩, with δ = ∂f/∂z the backpropagated signal.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from ntk_lab import _checks
from ntk_lab.layers.base import KernelState, Layer, RuleContext, gram

__all__ = ["Dense", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("ntk", "standard")
W_INITS = ("normal", "rademacher")


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
  """A fully-connected layer on the last axis (NT's ``stax.Dense``).

  Args:
    out_dim: number of output units.
    W_std: σ_w ≥ 0 (σ_w = 0 passes only the bias on).
    b_std: σ_b ≥ 0, or None for a layer without bias (NT's default).
    parameterization: ``"ntk"`` or ``"standard"``.
    trainable: if False the layer computes but its params drop out of the NTK and of training.
    W_init: ``"normal"`` (N(0, 1) before scaling) or ``"rademacher"`` (±1, same variance).

  Params: ``{"W": (n_in, out_dim), "b": (out_dim,)}``, without ``"b"`` when b_std is None.

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> layer = nl.layers.Dense(4, W_std=2.0, b_std=0.1)
    >>> params = layer.init(jax.random.PRNGKey(0), 3)
    >>> params["W"].shape, params["b"].shape, layer.apply(params, jnp.ones((5, 3))).shape
    ((3, 4), (4,), (5, 4))
  """

  out_dim: int
  W_std: float = 1.0
  b_std: float | None = None
  parameterization: str = "ntk"
  trainable: bool = dataclasses.field(default=True, kw_only=True)
  W_init: str = dataclasses.field(default="normal", kw_only=True)

  has_params = True
  has_ntk_term = True

  def __post_init__(self):
    _checks.positive_int(self.out_dim, "out_dim")
    object.__setattr__(self, "W_std", _checks.nonnegative_number(self.W_std, "W_std", static=True))
    if self.b_std is not None:
      b = _checks.nonnegative_number(self.b_std, "b_std", static=True, unit=", or None for no bias")
      object.__setattr__(self, "b_std", b)
    _checks.choice(self.parameterization, "parameterization", PARAMETERIZATIONS)
    _checks.choice(self.W_init, "W_init", W_INITS)
    if not isinstance(self.trainable, bool):
      raise TypeError(f"trainable: expected True or False, got {self.trainable!r}.")

  @property
  def has_bias(self) -> bool:
    return self.b_std is not None

  def scales(self, n_in: int) -> tuple[float, float]:
    """(a, β): the multipliers of h W and of b for fan-in n_in."""
    if self.parameterization == "ntk":
      return self.W_std / math.sqrt(n_in), (self.b_std or 0.0)
    return 1.0, 1.0

  def output_shape_of(self, in_shape):
    return (*in_shape[:-1], self.out_dim)

  def init_params(self, key, in_shape, dtype):
    n_in = in_shape[-1]
    kw, kb = jax.random.split(key)
    if self.W_init == "rademacher":
      W = jax.random.rademacher(kw, (n_in, self.out_dim), dtype=dtype)
    else:
      W = jax.random.normal(kw, (n_in, self.out_dim), dtype)
    b = jax.random.normal(kb, (self.out_dim,), dtype) if self.has_bias else None
    if self.parameterization == "standard":
      W = W * (self.W_std / math.sqrt(n_in))
      b = None if b is None else b * self.b_std
    return {"W": W} if b is None else {"W": W, "b": b}

  def apply(self, params, x):
    a, beta = self.scales(x.shape[-1])
    z = (x @ params["W"]) * a if a != 1.0 else x @ params["W"]
    if "b" in params:
      z = z + beta * params["b"]
    return z

  def kernel_rule(self, state: KernelState, ctx: RuleContext) -> KernelState:
    w, b = ctx.scales(self)
    prev = state.nngp
    out = state.map_covariances(lambda k: w**2 * k + b**2)
    ntk = state.ntk
    if ntk is not None:
      if self.parameterization == "ntk":
        own = out.nngp
      else:  # dΘ = n_in·Σ_in (the weights) + 1 (the bias), the lower terms scaled by σ_w²
        own = state.width * prev + (1.0 if self.has_bias else 0.0)
      ntk = (own if self.trainable else 0.0) + w**2 * ntk
    return out.replace(ntk=ntk, width=self.out_dim, is_gaussian=True)

  def supports_ntk_term(self, in_shape) -> bool:
    return len(in_shape) == 1  # with spatial axes the term does not factor into two Grams

  def ntk_term(self, params, h1, d1, h2, d2, *, paired: bool, trace: bool):
    a, beta = self.scales(h1.shape[-1])
    t = a * a * gram(h1, h2, paired) + (beta * beta if self.has_bias else 0.0)
    dd = signal_product(d1, d2, paired=paired, trace=trace)
    return t * dd if trace else t[..., None, None] * dd


def signal_product(d1, d2, *, paired: bool, trace: bool):
  """Σ_q δ_a[q] δ'_b[q]: the traced mean (1/O) Σ_a over outputs, or every (a, b) pair."""
  n_out = d1.shape[1]
  if trace:
    return gram(d1, d2, paired) / n_out
  flat1 = d1.reshape(*d1.shape[:2], -1)
  flat2 = d2.reshape(*d2.shape[:2], -1)
  return jnp.einsum("iaq,ibq->iab", flat1, flat2) if paired else jnp.einsum("iaq,jbq->ijab", flat1, flat2)
