"""Gaussian expectations of activations, to a stated accuracy (the infinite-width rule of a
pointwise nonlinearity; Jacot et al. 2018; Lee et al. 2019).

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]) the kernels need Σ = E[ρ(u)ρ(v)] and Σ̇ = E[ρ'(u)ρ'(v)].
They are the activation's closed form when its registry entry has one (`ntk_lab.activations`), and
otherwise a product rule with a stated accuracy: u = s₁z₁, v = s₂(c z₁ + √(1 − c²) z₂),
z ~ N(0, I₂), integrated over [−L, L]² (L = 9: the Gaussian mass beyond is 2e-19) by
Gauss–Legendre rules split where u = 0 (outer) and where v = 0 (inner, at z₂ = −c z₁/√(1 − c²)).
Activations have their kinks, jumps and sharpest features at 0, so each piece is smooth and the
nodes crowd where ρ changes fastest, whatever the variance. `choose_nodes` picks the smallest node
count that meets a relative accuracy on a probe grid spanning the variances and all correlations,
as estimated against the rule with twice the nodes (`quadrature_error`); if none does, it raises
with the estimate and the remedies.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab.activations import REGISTRY, Activation, _safe_sqrt, get_activation, value_and_derivative

__all__ = [
  "gaussian_expectations",
  "quadrature_error",
  "choose_nodes",
  "default_rtol",
  "CLOSED_FORMS",
]

# Names whose Σ and Σ̇ have a closed form (derived from the registry).
CLOSED_FORMS = tuple(name for name, rule in REGISTRY.items() if rule.kernel is not None)
HALF_WIDTH = 9.0  # the rules integrate z over [−9, 9]
# Nodes per half-line tried, fewest first; each is checked against twice as many, so doubling
# reuses the previous check's finer rule.
NODE_LADDER = (32, 64, 128)
MAX_NODES = 512
TRACED_NODES = 32  # nodes per half-line when the variances are traced (not known before running)


def gaussian_expectations(act: Activation, k11, k22, k12, *, nodes: int = 32, derivative: bool = True):
  """(E[ρ(u)ρ(v)], E[ρ'(u)ρ'(v)]) for (u, v) ~ N(0, [[k11, k12], [k12, k22]]), elementwise.

  The activation's closed form when it has one (`Activation.has_closed_form`), else the product
  rule described in the module docstring with `nodes` Gauss–Legendre nodes per half-line and
  dimension (`choose_nodes` picks `nodes` for a stated accuracy). Correlations are clipped to
  [−1, 1] and zero variances handled, so the results are finite (and differentiable) for
  zero-norm inputs too. Returns None for the second entry when ``derivative=False``.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> t, tdot = nl.analytic.gaussian_expectations(nl.Activation("custom", fn=jnp.tanh), 1.0, 1.0, 0.5)
    >>> round(float(t), 6), round(float(tdot), 6)
    (0.186324, 0.384747)
  """
  act = get_activation(act)
  if act.has_closed_form:
    k11, k22, k12 = jnp.broadcast_arrays(k11, k22, k12)
    return act.kernel(k11, k22, k12, derivative)
  if k11 is k12 and k22 is k12:  # the diagonal (u = v): a one-dimensional rule suffices
    k = jnp.asarray(k12)
    t, tdot = _diag_quad(act, nodes, k)
  else:
    k11, k22, k12 = jnp.broadcast_arrays(k11, k22, k12)
    # E[ρ(u)ρ(v)] is symmetric in (u, v), the product rule is not to the last bits: ordering the
    # variances makes K(x, x') and K(x', x) the same numbers (exactly symmetric kernels, tiles that
    # mirror into the same values as one whole evaluation).
    t, tdot = _quad(act, nodes, 0, jnp.minimum(k11, k22), jnp.maximum(k11, k22), k12)
  return t, (tdot if derivative else None)


# ----------------------------------------------------------------------------- quadrature
def _rule(n):
  """Gauss–Legendre nodes and weights of ∫₀¹ (numpy, float64)."""
  t, w = np.polynomial.legendre.leggauss(n)
  return (t + 1) / 2, w / 2


def _phi(z):
  return jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _derivative_of_order(act, order):
  f = act
  for _ in range(order):
    f = (lambda g: lambda z: jax.jvp(g, (z,), (jnp.ones_like(z),))[1])(f)
  return f


def _value_and_next(f, z):
  return jax.jvp(f, (z,), (jnp.ones_like(z),))


def _outer_nodes(n, dtype):
  """Nodes and weights (times φ) of ∫ g(z) φ(z) dz over [−L, 0] ∪ [0, L], 2n in all."""
  x, w = _rule(n)
  z = np.concatenate([-HALF_WIDTH * x, HALF_WIDTH * x])
  wz = np.concatenate([w, w]) * HALF_WIDTH * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
  return jnp.asarray(z, dtype), jnp.asarray(wz, dtype)


def _diag_quad(act, n, k):
  """(E[ρ(u)²], E[ρ'(u)²]) for u ~ N(0, k): the one-dimensional rule, split at u = 0."""
  z, wz = _outer_nodes(n, k.dtype)
  s = _safe_sqrt(k)[..., None]
  f, df = value_and_derivative(act, s * z)
  return jnp.sum(wz * f * f, -1), jnp.sum(wz * df * df, -1)


def _quad_impl(act, n, order, k11, k22, k12):
  """(E[f(u)f(v)], E[f'(u)f'(v)]) with f = ρ^(order), by the product rule (module docstring)."""
  f = _derivative_of_order(act, order)
  x, w = (jnp.asarray(a, k12.dtype) for a in _rule(n))
  z1, w1 = _outer_nodes(n, k12.dtype)
  s1, s2 = _safe_sqrt(k11), _safe_sqrt(k22)
  s = s1 * s2
  c = jnp.clip(k12 / jnp.where(s > 0, s, 1.0), -1.0, 1.0)
  c = jnp.where(s > 0, c, 0.0)
  r = _safe_sqrt(1 - c * c)
  L = HALF_WIDTH

  def step(acc, zw):
    z, wz = zw
    fu, du = _value_and_next(f, s1 * z)
    # v = s2(c z + r z2) crosses 0 at z2 = −c z / r: the inner line is split there, so a kink or
    # jump of ρ at 0 falls on a piece boundary instead of inside a piece.
    p = jnp.where(r > 0, jnp.clip(-c * z / jnp.where(r > 0, r, 1.0), -L, L), 0.0)[..., None]
    z2 = jnp.concatenate([-L + (p + L) * x, p + (L - p) * x], axis=-1)
    w2 = jnp.concatenate([(p + L) * w, (L - p) * w], axis=-1) * _phi(z2)
    fv, dv = _value_and_next(f, s2[..., None] * (c[..., None] * z + r[..., None] * z2))
    return (acc[0] + wz * fu * jnp.sum(w2 * fv, -1), acc[1] + wz * du * jnp.sum(w2 * dv, -1)), None

  zero = jnp.zeros_like(k12)
  out, _ = jax.lax.scan(step, (zero, zero), (z1, w1))
  return out


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _quad(act, n, order, k11, k22, k12):
  return _quad_impl(act, n, order, k11, k22, k12)


@_quad.defjvp
def _quad_jvp(act, n, order, primals, tangents):
  """Autodiff of the rule, except along k12 where a side has zero variance: there the rule's
  correlation is pinned to 0, so the k12-derivative would vanish. Price's theorem gives it,
  ∂E[f(u)f(v)]/∂k12 = E[f'(u)f'(v)] (the second output, already computed), and for that one
  E[f''(u)f''(v)] (the next order, computed only when some entry needs it)."""
  k11, k22, k12 = primals
  out, dout = jax.jvp(lambda a, b, c: _quad_impl(act, n, order, a, b, c), primals, tangents)
  flat = (k11 <= 0) | (k22 <= 0)
  t12 = jnp.where(flat, tangents[2], 0.0)
  nxt = jax.lax.cond(
    jnp.any(flat), lambda: _quad(act, n, order + 1, k11, k22, k12)[1], lambda: jnp.zeros_like(k12)
  )
  return out, (dout[0] + out[1] * t12, dout[1] + nxt * t12)


# ----------------------------------------------------------------------------- accuracy control
_PROBE_CORRELATIONS = (-1.0, -0.999, -0.99, -0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9, 0.99, 0.999, 1.0)


@functools.partial(jax.jit, static_argnames=("act", "n"))
def _probe(act, n, qs):
  """The rule with n nodes on the probe grid: variances qs × qs × `_PROBE_CORRELATIONS`, each
  (Σ, Σ̇) of shape (len(qs), len(qs), 13). Compiled once per activation and node count."""
  c = jnp.asarray(_PROBE_CORRELATIONS, qs.dtype)
  qa, qb, cc = jnp.meshgrid(qs, qs, c, indexing="ij")
  return _quad_impl(act, n, 0, qa, qb, cc * jnp.sqrt(qa * qb))


def quadrature_error(act, variances, nodes: int, *, _cache=None) -> tuple[float, float]:
  """Estimated relative error of the n-node rule for pre-activation variances in a range.

  The rule with `nodes` and with 2·`nodes` nodes is evaluated on a probe grid: the smallest,
  largest and geometric-mean variance of `variances` on each side, times 13 correlations from −1
  to 1 (the error is a smooth function of these three numbers). The estimate is the largest
  difference relative to √(Σ(x, x)·Σ(x', x')) (for Σ̇ likewise), the natural scale of a kernel
  entry by Cauchy–Schwarz. Returns (error of Σ, error of Σ̇).
  """
  act = get_activation(act)
  q = np.asarray(variances, np.float64).ravel()
  q = q[np.isfinite(q) & (q > 0)]  # a zero variance is exact: u ≡ 0
  if q.size == 0:
    return 0.0, 0.0
  lo, hi = float(q.min()), float(q.max())
  qs = np.unique([lo, math.sqrt(lo * hi) if lo > 0 else hi / 2, hi])
  dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
  qs = jnp.asarray(np.resize(qs, 3), dtype)  # always three: one compiled probe per node count
  cache = {} if _cache is None else _cache
  for n in (nodes, 2 * nodes):
    if n not in cache:
      cache[n] = _probe(act, n, qs)
  err_sigma, err_dot = _relative_difference(cache[nodes], cache[2 * nodes])
  return float(err_sigma), float(err_dot)


def _relative_difference(coarse, fine):
  """(Σ, Σ̇) errors of the coarse probe against the fine one, each relative to √(Σ(x, x)·Σ(x', x'))
  of the fine rule (the correlation-1 entries of the probe grid's diagonal)."""
  errs = []
  for a, b in zip(coarse, fine):
    diag = jnp.abs(jnp.diagonal(b[..., -1]))  # c = 1: Σ(x, x) at each variance
    scale = jnp.sqrt(jnp.outer(diag, diag))[..., None]
    errs.append(jnp.max(jnp.abs(a - b) / jnp.maximum(scale, jnp.finfo(b.dtype).tiny)))
  return tuple(errs)


def _probe_error(act, n, variances):
  """`quadrature_error` as traced arrays: (error of Σ, error of Σ̇), 0 when no variance is > 0."""
  q = variances.ravel()
  ok = jnp.isfinite(q) & (q > 0)
  some = jnp.any(ok)
  lo = jnp.where(some, jnp.min(jnp.where(ok, q, jnp.inf)), 1.0)
  hi = jnp.where(some, jnp.max(jnp.where(ok, q, 0.0)), 1.0)
  qs = jnp.stack([lo, jnp.sqrt(lo * hi), hi])
  errs = _relative_difference(_probe(act, n, qs), _probe(act, 2 * n, qs))
  return jnp.where(some, jnp.stack(errs), 0.0)


def default_rtol(dtype) -> float:
  """The stated accuracy of quadrature kernels: 1e-7 relative in float64, 1e-5 in float32."""
  return 1e-7 if jnp.dtype(dtype).itemsize >= 8 else 1e-5


def choose_nodes(act, variances, rtol: float, *, where: str = "") -> int:
  """The fewest nodes of `NODE_LADDER` whose estimated error (`quadrature_error`) is ≤ rtol on
  Σ and Σ̇; raises ValueError naming the estimate and the remedies when none is."""
  err, cache = (math.inf, math.inf), {}
  for n in NODE_LADDER:
    err = quadrature_error(act, variances, n, _cache=cache)
    if max(err) <= rtol:
      return n
  q = np.asarray(variances, np.float64)
  closed = ", ".join(name for name, rule in REGISTRY.items() if rule.kernel is not None)
  raise ValueError(
    f"activation {act.name if act.name != 'custom' else getattr(act.fn, '__name__', 'custom')}: "
    f"its Gaussian expectations{where} at pre-activation variances {q.min():.3g} … {q.max():.3g} "
    f"do not reach the relative accuracy quadrature_rtol={rtol:g} with {NODE_LADDER[-1]} nodes "
    f"(estimated error {err[0]:.1e} on Σ, {err[1]:.1e} on Σ̇). Remedies: an activation with a "
    f"closed form ({closed}; affine variants via Activation(..., scale=, inner=, shift=)); "
    f"smaller W_std, b_std or inputs (the variance sets how sharp ρ looks); or a looser "
    f"quadrature_rtol (e.g. {10 ** math.ceil(math.log10(max(err))):.0e}) if that accuracy is enough."
  )
