"""Pointwise activations ρ: one registry in which each activation carries its function and, when
it has one, its kernel rule (the Gaussian expectations Σ and Σ̇ in closed form).

An activation is resolved once, when an `MLP` spec is built, into an `Activation`: a frozen,
hashable record (so specs stay usable as static arguments under `jax.jit`) holding the registered
name, its parameters, an optional affine wrap ρ̃(z) = scale·ρ(inner·z) + shift, or a user callable.
Derivatives ρ' are never written by hand: they come from `jax.jvp` of the same function, so the
structured NTK path and autodiff see identical ρ'.

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]) a kernel rule returns

    Σ = E[ρ(u)ρ(v)],      Σ̇ = E[ρ'(u)ρ'(v)]

in closed form (neural-tangents' `stax` conventions). An activation without a rule (tanh, sigmoid,
softplus, any callable) is integrated numerically, to a stated accuracy (`ntk_lab.analytic`).
`register_activation` adds a name (with or without a rule) to the same registry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erf as _erf

from ntk_lab import _checks

__all__ = [
  "Activation",
  "ActivationRule",
  "ACTIVATIONS",
  "REGISTRY",
  "get_activation",
  "register_activation",
  "value_and_derivative",
]


class ActivationRule(NamedTuple):
  """A registry entry.

  Attributes:
    fn: ``fn(z, params) -> ρ(z)`` elementwise.
    kernel: ``kernel(params, k11, k22, k12, derivative) -> (Σ, Σ̇ or None)``, elementwise over
      broadcast arrays, or None (numerical integration).
    mean: ``mean(params, k) -> E[ρ(u)]`` for u ~ N(0, k), or None; an affine variant with a
      shift c ≠ 0 keeps its closed form only when the mean is known.
    defaults: the parameters used when none are given.
    param_names: what the parameters mean, for messages and docs.
  """

  fn: Callable
  kernel: Callable | None = None
  mean: Callable | None = None
  defaults: tuple = ()
  param_names: tuple[str, ...] = ()


REGISTRY: dict[str, ActivationRule] = {}


def register_activation(
  name: str,
  fn: Callable,
  *,
  kernel: Callable | None = None,
  mean: Callable | None = None,
  defaults: tuple = (),
  param_names: tuple[str, ...] = (),
) -> None:
  """Adds (or replaces) an activation in the registry; see `ActivationRule` for the signatures.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> nl.activations.register_activation("cube", lambda z, p: z ** 3)
    >>> float(nl.Activation("cube")(2.0))
    8.0
  """
  if not isinstance(name, str) or not name or name == "custom":
    raise ValueError(f"name: must be a non-empty string other than 'custom', got {name!r}.")
  if not callable(fn) or (kernel is not None and not callable(kernel)):
    raise TypeError("fn (and kernel, when given): must be callable.")
  REGISTRY[name] = ActivationRule(fn, kernel, mean, tuple(defaults), tuple(param_names))


# ----------------------------------------------------------------------------- closed forms
def _safe_sqrt(x):
  # sqrt with a finite gradient at 0 (the gradient there is set to 0).
  safe = jnp.where(x > 0, x, 1.0)
  return jnp.where(x > 0, jnp.sqrt(safe), 0.0)


# Abramowitz & Stegun 4.4.46: arccos(a) = √(1 − a) · Σ_k A_k a^k on [0, 1], |error| ≤ 2e-8.
_ACOS_COEFFS = (
  1.5707963050,
  -0.2145988016,
  0.0889789874,
  -0.0501743046,
  0.0308918810,
  -0.0170881256,
  0.0066700901,
  -0.0012624911,
)


def _safe_arccos(c):
  """arccos on [−1, 1] with finite gradients at c = ±1 (where the true derivative is infinite).

  In float64, `jnp.arccos`. In float32 and below, a degree-7 polynomial times √(1 − |c|): its
  2e-8 absolute error is below float32's own resolution of θ, and it is several times faster than
  XLA's arccos, which dominates the cost of arc-cosine kernels otherwise."""
  if jnp.finfo(c.dtype).bits >= 64:
    inside = jnp.abs(c) < 1
    return jnp.where(inside, jnp.arccos(jnp.where(inside, c, 0.0)), jnp.where(c > 0, 0.0, math.pi))
  a = jnp.abs(c)
  poly = jnp.asarray(_ACOS_COEFFS[-1], c.dtype)
  for coef in _ACOS_COEFFS[-2::-1]:
    poly = poly * a + coef
  r = _safe_sqrt(1 - a) * poly
  return jnp.where(c < 0, math.pi - r, r)


def _angle(k11, k22, k12):
  """(√(k11·k22), cos θ, θ), with cos θ = 0 where a side has zero variance."""
  s = _safe_sqrt(k11 * k22)
  c = jnp.clip(k12 / jnp.where(s > 0, s, 1.0), -1.0, 1.0)
  c = jnp.where(s > 0, c, 0.0)
  return s, c, _safe_arccos(c)


def _abrelu_kernel(p, k11, k22, k12, derivative):
  """ρ(z) = a·min(z, 0) + b·max(z, 0): the arc-cosine kernels (Cho & Saul 2009)."""
  a, b = p
  s, c, theta = _angle(k11, k22, k12)
  sin = _safe_sqrt(1 - c * c)
  # Terms with a zero coefficient (ReLU: a = 0) are left out rather than multiplied by 0, which
  # XLA may not simplify away (0·x is NaN for infinite x): they cost as much as the rest.
  t = _terms((a * a + b * b, lambda: sin + (math.pi - theta) * c), (-2 * a * b, lambda: sin - theta * c))
  t = s * t / (2 * math.pi)
  tdot = _terms((a * a + b * b, lambda: math.pi - theta), (2 * a * b, lambda: theta)) / (2 * math.pi)
  return _price_at_zero_variance(t, tdot, s, k12), (tdot if derivative else None)


def _terms(*pairs):
  """Σ coefficient · term(), skipping the terms whose coefficient is a Python zero."""
  out = [coef * term() if coef != 1 else term() for coef, term in pairs if not _is_zero(coef)]
  return sum(out[1:], out[0]) if out else 0.0


def _is_zero(v):
  return isinstance(v, (int, float)) and v == 0


@jax.custom_jvp
def _price_at_zero_variance(t, tdot, s, k12):
  """Σ (= t, unchanged), whose derivative along k12 is Σ̇ where a side has zero variance (s = 0).

  There the angle is pinned (cos θ = 0), so autodiff of a kinked form would see no dependence on
  k12 at all. The kernel is not differentiable there (positively homogeneous in that input);
  ntk_lab's gradient is Price's theorem, ∂Σ/∂k12 = Σ̇, with Σ̇ at cos θ = 0: E[ρ'(u)]E[ρ'(v)], the
  mean of the one-sided slopes of ρ at 0 times E[ρ'(v)]. For one hidden layer this is the
  symmetric derivative (the central finite difference) exactly (docs/kernels.md). A custom JVP
  rather than a zero-valued term added to Σ: evaluating the kernel then costs nothing extra."""
  del tdot, s, k12
  return t


@_price_at_zero_variance.defjvp
def _price_jvp(primals, tangents):
  t, tdot, s, k12 = primals
  dt, _, _, dk12 = tangents
  return t, dt + jnp.where(s > 0, 0.0, dk12 * tdot)


def _erf_kernel(p, k11, k22, k12, derivative):
  q = (1 + 2 * k11) * (1 + 2 * k22)
  t = 2 / math.pi * jnp.arcsin(jnp.clip(2 * k12 / jnp.sqrt(q), -1, 1))
  return t, (4 / math.pi / jnp.sqrt(q - 4 * k12**2) if derivative else None)


def _sin_kernel(p, k11, k22, k12, derivative):
  """ρ(z) = sin(z + φ): Σ = ½e^{−(k11+k22)/2}(e^{k12} − e^{−k12} cos 2φ), Σ̇ likewise with +."""
  (phase,) = p
  e = jnp.exp(-(k11 + k22) / 2)
  c2 = math.cos(2 * phase)
  t = e * (jnp.exp(k12) - jnp.exp(-k12) * c2) / 2
  return t, (e * (jnp.exp(k12) + jnp.exp(-k12) * c2) / 2 if derivative else None)


def _gelu_kernel(p, k11, k22, k12, derivative):
  """ρ(z) = z Φ(z). With s = (1 + k11)(1 + k22) and δ² = s − k12² (≥ 1 + k11 + k22 > 0):

      E[ρ(u)ρ(v)] = k12/4 + (k12·arcsin(k12/√s) + (k12² + k11·k22·δ²) / (s·δ)) / (2π)

  (Tsuchida et al. 2020). Σ̇ = ∂Σ/∂k12 by Price's theorem, which autodiff gives exactly."""

  def t_of(c):
    s = (1 + k11) * (1 + k22)
    delta2 = s - c * c
    delta = jnp.sqrt(delta2)
    return c / 4 + (c * jnp.arctan2(c, delta) + (c * c + k11 * k22 * delta2) / (s * delta)) / (2 * math.pi)

  if not derivative:
    return t_of(k12), None
  return jax.jvp(t_of, (k12,), (jnp.ones_like(k12),))


def _identity_kernel(p, k11, k22, k12, derivative):
  return k12, (jnp.ones_like(k12) if derivative else None)


def _sign_kernel(p, k11, k22, k12, derivative):
  """E[sign u sign v] = (2/π) arcsin(cos θ); sign(0) = 0 on a zero-variance side. Σ̇ = 0: ρ' = 0
  almost everywhere (autodiff's and neural-tangents' convention)."""
  s, c, theta = _angle(k11, k22, k12)
  t = jnp.where(s > 0, 1 - 2 * theta / math.pi, 0.0)
  return t, (jnp.zeros_like(t) if derivative else None)


# Cho & Saul's J_n(θ) for the rectified monomials ρ(z) = z^n·1[z ≥ 0]:
# E[ρ(u)ρ(v)] = (k11·k22)^{n/2} J_n(θ) / (2π).
def _j(n, theta, c):
  sin = jnp.sin(theta)
  pt = math.pi - theta
  if n == 0:
    return pt
  if n == 1:
    return sin + pt * c
  if n == 2:
    return 3 * sin * c + pt * (1 + 2 * c * c)
  return 15 * sin - 11 * sin**3 + pt * (9 * sin * sin * c + 15 * c**3)


def _rect_monomial_kernel(p, k11, k22, k12, derivative):
  """ρ(z) = z^n for z ≥ 0, else 0 (n = 0: the step 1[z ≥ 0]; n = 1: ReLU). Σ̇ = n²·(n−1 form);
  for n = 0, Σ̇ = 0 (ρ' = 0 almost everywhere, as autodiff and neural-tangents have it)."""
  (n,) = p
  s, c, theta = _angle(k11, k22, k12)
  t = s**n * _j(n, theta, c) / (2 * math.pi)
  if n == 0:  # a zero-variance side is u ≡ 0, where the step is 1: Σ = E[1[v ≥ 0]]
    zero1, zero2 = k11 <= 0, k22 <= 0
    t = jnp.where(zero1 & zero2, 1.0, jnp.where(zero1 | zero2, 0.5, t))
  if n == 1:  # ReLU: the kink's convention at a zero-variance side (`_price_at_zero_variance`)
    return _abrelu_kernel((0.0, 1.0), k11, k22, k12, derivative)
  if not derivative:
    return t, None
  if n == 0:
    return t, jnp.zeros_like(t)
  return t, n * n * s ** (n - 1) * _j(n - 1, theta, c) / (2 * math.pi)


def _moment(i, j, k11, k22, k12):
  """E[u^i v^j] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]), a polynomial in the k's (Isserlis)."""
  total = 0.0
  for m in range(min(i, j) + 1):  # m = number of u–v pairings
    if (i - m) % 2 or (j - m) % 2:
      continue
    a, b = (i - m) // 2, (j - m) // 2
    coef = (
      math.factorial(i)
      * math.factorial(j)
      / (math.factorial(m) * math.factorial(a) * math.factorial(b) * 2 ** (a + b))
    )
    total = total + coef * k12**m * k11**a * k22**b
  return total


def _poly_kernel(p, k11, k22, k12, derivative):
  """ρ(z) = Σ_i p_i z^i: Σ = Σ_ij p_i p_j E[u^i v^j] and Σ̇ the same for ρ', exact polynomials."""

  def expect(coefs):
    total = jnp.zeros_like(k12)
    for i, ci in enumerate(coefs):
      for j, cj in enumerate(coefs):
        if ci and cj:
          total = total + ci * cj * _moment(i, j, k11, k22, k12)
    return total

  if not derivative:
    return expect(p), None
  return expect(p), expect(tuple(i * c for i, c in enumerate(p))[1:])


def _poly_fn(z, p):
  # Horner, from a zeros array: shape and dtype follow z even for no coefficients (ρ ≡ 0).
  out = jnp.zeros_like(z)
  for c in reversed(p):
    out = out * z + c
  return out


def _poly_mean(p, k):
  return sum(c * _moment(i, 0, k, k, k) for i, c in enumerate(p) if c and i % 2 == 0) + 0 * k


def _rbf_kernel(p, k11, k22, k12, derivative):
  """ρ(z) = √2 sin(√(2γ) z + π/4): Σ = exp(−γ(k11 + k22 − 2 k12)), Σ̇ = 2γΣ (an RBF kernel)."""
  (gamma,) = p
  t = jnp.exp(-gamma * (k11 + k22 - 2 * k12))
  return t, (2 * gamma * t if derivative else None)


def _gaussian_kernel(p, k11, k22, k12, derivative):
  """ρ(z) = exp(b z²) (b < 0 a bump): Σ = 1/√D, D = (1 − 2b k11)(1 − 2b k22) − 4b² k12², and
  Σ̇ = 4b² k12 / D^{3/2} (finite while 1 − 2b·k > 0)."""
  (b,) = p
  det = (1 - 2 * b * k11) * (1 - 2 * b * k22) - 4 * b * b * k12**2
  t = 1 / jnp.sqrt(det)
  return t, (4 * b * b * k12 * t**3 if derivative else None)


def _exp_kernel(p, k11, k22, k12, derivative):
  t = jnp.exp((k11 + k22) / 2 + k12)
  return t, (t if derivative else None)


def _monomial_fn(z, p):
  return z ** p[0]


def _check_degree(p, top):
  if len(p) != 1 or not isinstance(p[0], int) or isinstance(p[0], bool) or not 0 <= p[0] <= top:
    raise ValueError(f"params: expected (degree,) with an integer degree 0 … {top}, got {p!r}.")


_SQRT_2PI = math.sqrt(2 * math.pi)
_RECT_MEANS = (0.5, 1 / _SQRT_2PI, 0.5, 2 / _SQRT_2PI)  # E[z^n 1[z ≥ 0]], z ~ N(0, 1)

for _name, _rule in {
  "relu": ActivationRule(
    lambda z, p: jax.nn.relu(z),
    lambda p, *k: _abrelu_kernel((0.0, 1.0), *k),
    lambda p, k: jnp.sqrt(k / (2 * math.pi)),
  ),
  "leaky_relu": ActivationRule(
    lambda z, p: jnp.where(z >= 0, z, p[0] * z),
    lambda p, *k: _abrelu_kernel((p[0], 1.0), *k),
    lambda p, k: (1 - p[0]) * jnp.sqrt(k / (2 * math.pi)),
    (0.01,),
    ("alpha",),
  ),
  "abs": ActivationRule(
    lambda z, p: jnp.abs(z),
    lambda p, *k: _abrelu_kernel((-1.0, 1.0), *k),
    lambda p, k: jnp.sqrt(2 * k / math.pi),
  ),
  "abrelu": ActivationRule(
    lambda z, p: p[0] * jnp.minimum(z, 0) + p[1] * jnp.maximum(z, 0),
    _abrelu_kernel,
    lambda p, k: (p[1] - p[0]) * jnp.sqrt(k / (2 * math.pi)),
    (0.0, 1.0),
    ("a", "b"),
  ),
  "erf": ActivationRule(lambda z, p: _erf(z), _erf_kernel, lambda p, k: 0 * k),
  "tanh": ActivationRule(lambda z, p: jnp.tanh(z), None, lambda p, k: 0 * k),
  "sigmoid": ActivationRule(lambda z, p: jax.nn.sigmoid(z), None, lambda p, k: 0 * k + 0.5),
  # GELU is the exact (erf) form, as neural-tangents' `stax.Gelu`.
  "gelu": ActivationRule(
    lambda z, p: jax.nn.gelu(z, approximate=False),
    _gelu_kernel,
    lambda p, k: k / jnp.sqrt(2 * math.pi * (1 + k)),
  ),
  "softplus": ActivationRule(lambda z, p: jax.nn.softplus(z)),
  "sin": ActivationRule(
    lambda z, p: jnp.sin(z + p[0]),
    _sin_kernel,
    lambda p, k: jnp.exp(-k / 2) * math.sin(p[0]),
    (0.0,),
    ("phase",),
  ),
  "cos": ActivationRule(
    lambda z, p: jnp.cos(z + p[0]),
    lambda p, *k: _sin_kernel((p[0] + math.pi / 2,), *k),
    lambda p, k: jnp.exp(-k / 2) * math.cos(p[0]),
    (0.0,),
    ("phase",),
  ),
  "identity": ActivationRule(lambda z, p: z, _identity_kernel, lambda p, k: 0 * k),
  "sign": ActivationRule(lambda z, p: jnp.sign(z), _sign_kernel, lambda p, k: 0 * k),
  "step": ActivationRule(
    lambda z, p: jnp.where(z >= 0, jnp.ones_like(z), jnp.zeros_like(z)),
    lambda p, *k: _rect_monomial_kernel((0,), *k),
    lambda p, k: 0 * k + 0.5,
  ),
  "rectified_monomial": ActivationRule(
    lambda z, p: jnp.where(z >= 0, z ** p[0], jnp.zeros_like(z)),
    _rect_monomial_kernel,
    lambda p, k: _RECT_MEANS[p[0]] * k ** (p[0] / 2),
    (1,),
    ("degree",),
  ),
  "monomial": ActivationRule(
    _monomial_fn,
    lambda p, *k: _poly_kernel((0,) * p[0] + (1,), *k),
    lambda p, k: _poly_mean((0,) * p[0] + (1,), k),
    (2,),
    ("degree",),
  ),
  "polynomial": ActivationRule(
    _poly_fn,
    _poly_kernel,
    _poly_mean,
    (0.0, 1.0),
    ("coefficients",),
  ),
  "rbf": ActivationRule(
    lambda z, p: math.sqrt(2) * jnp.sin(math.sqrt(2 * p[0]) * z + math.pi / 4),
    _rbf_kernel,
    lambda p, k: jnp.exp(-p[0] * k),
    (1.0,),
    ("gamma",),
  ),
  "gaussian": ActivationRule(
    lambda z, p: jnp.exp(p[0] * z * z),
    _gaussian_kernel,
    lambda p, k: 1 / jnp.sqrt(1 - 2 * p[0] * k),
    (-1.0,),
    ("b",),
  ),
  "exp": ActivationRule(lambda z, p: jnp.exp(z), _exp_kernel, lambda p, k: jnp.exp(k / 2)),
}.items():
  REGISTRY[_name] = _rule

# The registry's names, for choices (config) and parametrised tests.
ACTIVATIONS: tuple[str, ...] = tuple(REGISTRY)
_DEGREE_LIMITS = {"rectified_monomial": 3, "monomial": 5}


def _is_number(v):
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclasses.dataclass(frozen=True)
class Activation:
  """A pointwise nonlinearity ρ̃(z) = scale·ρ(inner·z) + shift, ρ a registered name or a callable.

  Args:
    name: a registered name (`ACTIVATIONS`), or ``"custom"`` together with ``fn``.
    alpha: negative-side slope of ``leaky_relu`` (ρ(z) = z for z ≥ 0, αz otherwise).
    fn: the elementwise callable, for ``name="custom"`` only (integrated numerically).
    params: the name's parameters, a tuple: ``abrelu`` (a, b) for a·min(z, 0) + b·max(z, 0);
      ``rectified_monomial`` (degree 0–3,); ``monomial`` (degree 0–5,); ``polynomial``
      (p₀, p₁, …) for Σ pᵢ zⁱ; ``sin``/``cos`` (phase,); ``rbf`` (γ,); ``gaussian`` (b,) for
      exp(b z²). None (not given): the registered defaults. Given, they are used as given: for
      ``polynomial`` an empty sequence is the empty sum, ρ ≡ 0 (neural-tangents'
      ``Polynomial(coef=[])``); a name that takes parameters refuses an empty one.
    scale, inner, shift: the affine wrap a·ρ(b·z) + c. A closed form stays closed under it (Σ
      rescales, and a shift needs E[ρ], which every built-in with a closed form provides).

  Example:
    >>> import ntk_lab as nl
    >>> round(float(nl.Activation("leaky_relu", alpha=0.1)(-2.0)), 6)
    -0.2
    >>> float(nl.Activation("abrelu", params=(-0.5, 2.0), scale=3.0, shift=1.0)(-2.0))
    4.0
  """

  name: str
  alpha: float = 0.01
  fn: Callable | None = None
  params: tuple | None = None
  scale: float = 1.0
  inner: float = 1.0
  shift: float = 0.0

  def __post_init__(self):
    # math, not jnp: an Activation may be built while tracing (inside jit), where jnp gives tracers
    # One number policy (`_checks.number`): NumPy scalars become floats, so the spec stays hashable.
    for field in ("alpha", "scale", "inner", "shift"):
      object.__setattr__(
        self, field, _checks.number(getattr(self, field), f"activation {field}", static=True)
      )
    if self.name == "custom":
      if not callable(self.fn):
        raise TypeError("Activation(name='custom') needs a callable `fn`, e.g. fn=jnp.cos.")
      return
    if self.name not in REGISTRY:
      raise ValueError(
        f"activation: unknown name {self.name!r}; valid names are {', '.join(REGISTRY)}, "
        f"or pass a callable{_checks.did_you_mean(self.name, tuple(REGISTRY)) or '.'}"
      )
    if self.fn is not None:
      raise TypeError(f"Activation({self.name!r}) takes no `fn`; use name='custom' for a callable.")
    rule = REGISTRY[self.name]
    if self.params is None:
      return
    try:
      p = tuple(self.params)
    except TypeError:
      raise TypeError(
        f"activation params: expected a tuple of numbers, got {type(self.params).__name__}."
      ) from None
    if self.name == "leaky_relu":
      if p and p != (self.alpha,):
        raise ValueError("activation params: leaky_relu takes its slope as alpha=…, not params.")
      object.__setattr__(self, "params", None)
      return
    # Without parameters, () and None are the same spec (equal, one compiled program).
    object.__setattr__(self, "params", None if not p and not rule.defaults else p)
    if self.name in _DEGREE_LIMITS:
      _check_degree(p, _DEGREE_LIMITS[self.name])
    elif self.name == "polynomial":
      if not all(_is_number(c) for c in p):
        raise ValueError(f"activation params: polynomial coefficients must be finite numbers, got {p!r}.")
    elif p != () or rule.defaults:
      if len(p) != len(rule.defaults) or not all(_is_number(v) for v in p):
        names = ", ".join(rule.param_names) or "none"
        unset = f"; leave params unset for the defaults {rule.defaults}" if rule.defaults else ""
        raise ValueError(
          f"activation params: {self.name} takes {len(rule.defaults)} number(s) ({names}), got {p!r}{unset}."
        )

  @property
  def rule(self) -> ActivationRule | None:
    """The registry entry (None for a custom callable)."""
    return None if self.name == "custom" else REGISTRY[self.name]

  @property
  def resolved_params(self) -> tuple:
    if self.name == "leaky_relu":
      return (self.alpha,)
    return self.rule.defaults if self.params is None else self.params

  @property
  def has_closed_form(self) -> bool:
    """Whether Σ and Σ̇ have a closed form (else they are integrated numerically)."""
    rule = self.rule
    return rule is not None and rule.kernel is not None and (self.shift == 0 or rule.mean is not None)

  def kernel(self, k11, k22, k12, derivative: bool = True):
    """(Σ, Σ̇) in closed form for the affine wrap: with K' = inner²·K,
    Σ = scale²·Σ_ρ(K') + scale·shift·(E ρ(u') + E ρ(v')) + shift², Σ̇ = scale²·inner²·Σ̇_ρ(K')."""
    rule, p = self.rule, self.resolved_params
    b2 = self.inner**2
    k11, k22, k12 = (b2 * k if b2 != 1 else k for k in (k11, k22, k12))
    t, tdot = rule.kernel(p, k11, k22, k12, derivative)
    a, c = self.scale, self.shift
    if a != 1:
      t = a * a * t
    if c != 0:
      t = t + a * c * (rule.mean(p, k11) + rule.mean(p, k22)) + c * c
    if tdot is not None and a * a * b2 != 1:
      tdot = a * a * b2 * tdot
    return t, tdot

  def __call__(self, x):
    if self.name == "custom":
      return self.fn(x)
    y = REGISTRY[self.name].fn(x if self.inner == 1 else self.inner * x, self.resolved_params)
    if self.scale != 1:
      y = self.scale * y
    return y if self.shift == 0 else y + self.shift


def get_activation(activation) -> Activation:
  """Resolves a name, an `Activation` or a callable into an `Activation`."""
  if isinstance(activation, Activation):
    return activation
  if isinstance(activation, str):
    return Activation(activation)
  if callable(activation):
    return Activation("custom", fn=activation)
  raise TypeError(
    f"activation: expected a name ({', '.join(REGISTRY)}), an ntk_lab.Activation or a "
    f"callable, got {type(activation).__name__}."
  )


def value_and_derivative(act: Activation, z):
  """Returns (ρ(z), ρ'(z)) elementwise, ρ' by forward-mode autodiff of ρ itself."""
  return jax.jvp(act, (z,), (jnp.ones_like(z),))
