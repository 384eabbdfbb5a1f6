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

The window is fixed, so the estimate also covers what lies outside it: the mass T of ρ(u)² (and
ρ'(u)²) over the strips L ≤ |z| ≤ 2L, by a one-dimensional rule at each probe variance, relative
to E[ρ(u)²], is added to the difference of the two rules. It is the truncation error of the
diagonal Σ(x, x) (correlation 1, where a growing ρ loses the most) and, through Cauchy–Schwarz
over the strips, the estimate for the other entries. For tanh-like activations it is ~1e-19;
for fast-growing ones (eᶻ at a large variance, e^{bz²}) it is what makes the call refuse, and
more nodes do not reduce it. Where the integrand does not decay from |z| = L to 2L (it falls by
less than `GROWTH_DROP`) the expectation may not exist at all (e^{bz²} has E[ρ(u)²] finite only
for 4b·k < 1): the estimate is then infinite and every call refuses.
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks
from ntk_lab.activations import REGISTRY, Activation, _safe_sqrt, get_activation, value_and_derivative

__all__ = [
  "gaussian_expectations",
  "quadrature_error",
  "choose_nodes",
  "default_rtol",
  "check_rtol",
  "check_forced_nodes",
  "check_traced_nodes",
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
# The truncation estimate: one-dimensional rules over the strips L ≤ |z| ≤ 2L, TAIL_NODES
# Gauss–Legendre nodes each, at the probe's three variances (a few hundred evaluations of ρ).
TAIL_NODES = 32
# Beyond the window the Gaussian factor falls by e^{−3L²/2} = 1e-53 from |z| = L to 2L; an
# integrand that falls by less than this factor is growing faster than e^{z²/2}·(…) allows.
GROWTH_DROP = 1e-3


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


def _tail_nodes(m, dtype):
  """Nodes and weights (times φ) over the strips [−2L, −L] ∪ [L, 2L], m per strip."""
  x, w = _rule(m)
  z = np.concatenate([-HALF_WIDTH * (1 + x), HALF_WIDTH * (1 + x)])
  wz = np.concatenate([w, w]) * HALF_WIDTH * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
  return jnp.asarray(z, dtype), jnp.asarray(wz, dtype)


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
  # A zero-variance side is u ≡ 0: its values are ρ(0), but its derivatives are taken in the limit
  # of a vanishing variance (at correlation 0, as the closed forms have it), so a kink at 0 counts
  # with the mean of its one-sided slopes (relu: ½) instead of autodiff's choice at 0 (relu: 0).
  eps = jnp.sqrt(jnp.finfo(k12.dtype).tiny)  # normal even times the smallest node
  f0 = f(jnp.zeros((), k12.dtype))
  s1d, s2d = jnp.where(s1 > 0, s1, eps), jnp.where(s2 > 0, s2, eps)[..., None]

  def step(acc, zw):
    z, wz = zw
    fu, du = _value_and_next(f, s1d * z)
    fu = jnp.where(s1 > 0, fu, f0)
    # v = s2(c z + r z2) crosses 0 at z2 = −c z / r: the inner line is split there, so a kink or
    # jump of ρ at 0 falls on a piece boundary instead of inside a piece.
    p = jnp.where(r > 0, jnp.clip(-c * z / jnp.where(r > 0, r, 1.0), -L, L), 0.0)[..., None]
    z2 = jnp.concatenate([-L + (p + L) * x, p + (L - p) * x], axis=-1)
    w2 = jnp.concatenate([(p + L) * w, (L - p) * w], axis=-1) * _phi(z2)
    fv, dv = _value_and_next(f, s2d * (c[..., None] * z + r[..., None] * z2))
    fv = jnp.where(s2[..., None] > 0, fv, f0)
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


def _probe_grid(qs):
  c = jnp.asarray(_PROBE_CORRELATIONS, qs.dtype)
  qa, qb, cc = jnp.meshgrid(qs, qs, c, indexing="ij")
  return qa, qb, cc * jnp.sqrt(qa * qb)


@functools.partial(jax.jit, static_argnames=("act", "n"))
def _probe(act, n, qs):
  """The rule with n nodes on the probe grid: variances qs × qs × `_PROBE_CORRELATIONS`, each
  (Σ, Σ̇) of shape (len(qs), len(qs), 13). Compiled once per activation and node count."""
  return _quad_impl(act, n, 0, *_probe_grid(qs))


@functools.partial(jax.jit, static_argnames=("act",))
def _probe_tail(act, qs):
  """What the window misses, at each probe variance q: (∫ρ(√q z)²φ(z)dz, ∫ρ'(√q z)²φ(z)dz) over
  the strips L ≤ |z| ≤ 2L, each (len(qs),), and whether the integrand of E[ρ(u)²] or E[ρ'(u)²]
  fails to decay from |z| = L to 2L at some q (a scalar bool)."""
  s = jnp.sqrt(qs)[:, None]
  z, wz = _tail_nodes(TAIL_NODES, qs.dtype)
  f, df = value_and_derivative(act, s * z)
  tail = (jnp.sum(wz * f * f, -1), jnp.sum(wz * df * df, -1))
  # log of max(|ρ|, |ρ'|)²·φ at z = ±L and ±2L: NaN or +inf (overflow) at 2L count as growth (the
  # comparison below is False for them); an integrand that is 0 at ±L is left to the tail mass.
  edge = jnp.asarray([-HALF_WIDTH, HALF_WIDTH], qs.dtype)

  def log_integrand(zz):
    val, der = value_and_derivative(act, s * zz)
    return 2 * jnp.log(jnp.maximum(jnp.abs(val), jnp.abs(der))) - 0.5 * zz * zz

  at_edge, at_far = log_integrand(edge), log_integrand(2 * edge)
  decays = at_far < at_edge + math.log(GROWTH_DROP)
  growing = jnp.any((at_edge > -jnp.inf) & ~decays) | jnp.any(jnp.isnan(at_edge))
  return tail, growing


def _probe_variances(variances):
  """The probe grid's three variances (smallest, geometric mean, largest of the positive finite
  ones), as a NumPy array, or None when there is none (a zero variance is exact: u ≡ 0)."""
  q = np.asarray(variances, np.float64).ravel()
  q = q[np.isfinite(q) & (q > 0)]
  if q.size == 0:
    return None
  lo, hi = float(q.min()), float(q.max())
  return np.resize(np.unique([lo, math.sqrt(lo * hi) if lo > 0 else hi / 2, hi]), 3)


def _estimates(act, variances, nodes, cache):
  """(error of Σ, error of Σ̇, truncation of Σ, truncation of Σ̇, growing) as Python numbers;
  `cache` keeps the probes of one variance range across node counts."""
  qs = _probe_variances(variances)
  if qs is None:
    return 0.0, 0.0, 0.0, 0.0, False
  dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
  qs = jnp.asarray(qs, dtype)  # always three: one compiled probe per node count
  for n in (nodes, 2 * nodes):
    if n not in cache:
      cache[n] = _probe(act, n, qs)
  if "tail" not in cache:
    cache["tail"] = _probe_tail(act, qs)
  tail, growing = cache["tail"]
  errs = _relative_errors(cache[nodes], cache[2 * nodes], tail, growing)
  return (*(float(e) for e in errs), bool(growing))


def quadrature_error(act, variances, nodes: int, *, _cache=None) -> tuple[float, float]:
  """Estimated relative error of the n-node rule for pre-activation variances in a range.

  The rule with `nodes` and with 2·`nodes` nodes is evaluated on a probe grid: the smallest,
  largest and geometric-mean variance of `variances` on each side, times 13 correlations from −1
  to 1 (the error is a smooth function of these three numbers). The estimate is the largest
  difference relative to √(Σ(x, x)·Σ(x', x')) (for Σ̇ likewise), the natural scale of a kernel
  entry by Cauchy–Schwarz, plus the truncation: the integrand's mass over the strips beyond the
  window, L ≤ |z| ≤ 2L (module docstring). Returns (error of Σ, error of Σ̇).

  Raises:
    ValueError: when the integrand does not decay beyond the window (the expectation may not
      exist: no node count and no accuracy can be met), naming the activation, the variances and
      the remedies.
  """
  act = get_activation(act)
  e_sigma, e_dot, _, _, growing = _estimates(act, variances, nodes, {} if _cache is None else _cache)
  if growing:
    raise ValueError(_diverging_message(act, variances))
  return e_sigma, e_dot


def _relative_errors(coarse, fine, tail, growing):
  """(Σ, Σ̇) errors of the coarse probe against the fine one plus the truncation, then the
  truncation alone, each relative to √(Σ(x, x)·Σ(x', x')) of the fine rule (the correlation-1
  entries of the probe grid's diagonal): four numbers, infinite when `growing`.

  The truncation of an entry is estimated as √(T(x)·T(x')) / √(Σ(x, x)·Σ(x', x')), T the mass of
  ρ² (ρ'² for Σ̇) beyond the window: exact on the diagonal (correlation 1, both sides reaching
  out together), where a growing ρ loses the most (by Cauchy–Schwarz over the strips)."""
  total, trunc = [], []
  for a, b, t in zip(coarse, fine, tail):
    diag = jnp.abs(jnp.diagonal(b[..., -1]))  # c = 1: Σ(x, x) at each variance
    tiny = jnp.finfo(b.dtype).tiny
    scale = jnp.maximum(jnp.sqrt(jnp.outer(diag, diag))[..., None], tiny)
    cut = jnp.max(jnp.abs(t) / jnp.maximum(diag, tiny))
    total.append(jnp.max(jnp.abs(a - b) / scale) + cut)
    trunc.append(cut)
  errs = jnp.stack(total + trunc)
  return jnp.where(growing | jnp.isnan(errs), jnp.inf, errs)


def _probe_errors(act, n, variances):
  """`_estimates` as traced arrays: (error of Σ, error of Σ̇, truncation of Σ, truncation of Σ̇),
  0 when no variance is > 0 and infinite when the integrand grows beyond the window."""
  q = variances.ravel()
  ok = jnp.isfinite(q) & (q > 0)
  some = jnp.any(ok)
  lo = jnp.where(some, jnp.min(jnp.where(ok, q, jnp.inf)), 1.0)
  hi = jnp.where(some, jnp.max(jnp.where(ok, q, 0.0)), 1.0)
  qs = jnp.stack([lo, jnp.sqrt(lo * hi), hi])
  errs = _relative_errors(_probe(act, n, qs), _probe(act, 2 * n, qs), *_probe_tail(act, qs))
  return jnp.where(some, errs, 0.0)


def _probe_error(act, n, variances):
  """`quadrature_error` as traced arrays: (error of Σ, error of Σ̇), 0 when no variance is > 0,
  infinite when the integrand grows beyond the window."""
  return _probe_errors(act, n, variances)[:2]


def default_rtol(dtype) -> float:
  """The stated accuracy of quadrature kernels: 1e-7 relative in float64, 1e-5 in float32."""
  return 1e-7 if jnp.dtype(dtype).itemsize >= 8 else 1e-5


def check_rtol(quadrature_rtol, dtype) -> float:
  """`quadrature_rtol` validated (a number in (0, 1)), or `default_rtol` for None."""
  if quadrature_rtol is None:
    return default_rtol(dtype)
  if isinstance(quadrature_rtol, bool) or not (
    isinstance(quadrature_rtol, (int, float, np.floating)) and 0 < quadrature_rtol < 1
  ):
    raise ValueError(f"quadrature_rtol: must be a number in (0, 1), e.g. 1e-6, got {quadrature_rtol!r}.")
  return float(quadrature_rtol)


def _name(act):
  if act.name != "custom":
    return act.name
  return f"{getattr(act.fn, '__name__', 'custom')} (a callable)"


def _range(variances):
  q = np.asarray(variances, np.float64)
  return f"{np.nanmin(q):.3g} … {np.nanmax(q):.3g}"


def _remedies(act):
  closed = ", ".join(CLOSED_FORMS)
  return (
    f"an activation with a closed form ({closed}; affine variants via Activation(..., scale=, "
    "inner=, shift=); eᶻ and e^{bz²} are Activation('exp') and Activation('gaussian', "
    "params=(b,))); smaller W_std, b_std or inputs (the variance sets how far ρ reaches)"
  )


def _looser(err):
  worst = max(err)
  if not (0 < worst < 1):  # nothing below 1 would hold (or the estimate overflowed)
    return ""
  loose = 10 ** math.ceil(math.log10(worst))
  return f"; or a looser quadrature_rtol (e.g. {loose:.0e}) if that accuracy is enough"


def _diverging_message(act, variances):
  return (
    f"activation {_name(act)}: at pre-activation variances {_range(variances)} the integrand of its "
    "Gaussian expectations does not decay beyond the quadrature window |z| ≤ 9 (it falls by less "
    f"than {GROWTH_DROP:g} from |z| = 9 to 18): E[ρ(u)²] or E[ρ'(u)²] may be infinite, and no "
    f"node count or quadrature_rtol makes the rule right (estimated error inf). Remedies: "
    f"{_remedies(act)}."
  )


def _truncation_message(act, variances, rtol, trunc, where=""):
  return (
    f"activation {_name(act)}: its Gaussian expectations{where} at pre-activation variances "
    f"{_range(variances)} have mass beyond the quadrature window |z| ≤ 9: estimated truncation "
    f"error {trunc[0]:.1e} on Σ, {trunc[1]:.1e} on Σ̇, above quadrature_rtol={rtol:g}, and more "
    f"nodes do not reduce it (ρ grows too fast for these variances). Remedies: {_remedies(act)}"
    f"{_looser(trunc)}."
  )


def choose_nodes(act, variances, rtol: float, *, where: str = "") -> int:
  """The fewest nodes of `NODE_LADDER` whose estimated error (`quadrature_error`, truncation
  included) is ≤ rtol on Σ and Σ̇; raises ValueError naming the estimate and the remedies when
  none is, at once when the truncation alone exceeds rtol (more nodes cannot help then)."""
  act = get_activation(act)
  err, cache = (math.inf, math.inf), {}
  for n in NODE_LADDER:
    e_sigma, e_dot, t_sigma, t_dot, growing = _estimates(act, variances, n, cache)
    if growing:
      raise ValueError(_diverging_message(act, variances))
    if max(t_sigma, t_dot) > rtol:
      raise ValueError(_truncation_message(act, variances, rtol, (t_sigma, t_dot), where))
    err = (e_sigma, e_dot)
    if max(err) <= rtol:
      return n
  raise ValueError(
    f"activation {_name(act)}: its Gaussian expectations{where} at pre-activation variances "
    f"{_range(variances)} do not reach the relative accuracy quadrature_rtol={rtol:g} with "
    f"{NODE_LADDER[-1]} nodes (estimated error {err[0]:.1e} on Σ, {err[1]:.1e} on Σ̇). Remedies: "
    f"{_remedies(act)}{_looser(err)}."
  )


def check_forced_nodes(act, variances, nodes: int, rtol: float, *, where: str = "", stacklevel: int = 3):
  """A node count the caller forced, against rtol at concrete variances (as `analytic_kernel`
  does): warns with the estimate when the rule misses rtol, saying so when the truncation is what
  misses it (no node count helps then); raises when the integrand grows beyond the window."""
  act = get_activation(act)
  e_sigma, e_dot, t_sigma, t_dot, growing = _estimates(act, variances, nodes, {})
  if growing:
    raise ValueError(_diverging_message(act, variances))
  if max(e_sigma, e_dot) <= rtol:
    return
  if max(t_sigma, t_dot) > rtol:
    fix = (
      f"most of it is mass beyond the quadrature window |z| ≤ 9 ({t_sigma:.1e} on Σ, {t_dot:.1e} on "
      f"Σ̇), which more nodes do not reduce: {_remedies(act)}."
    )
  else:
    fix = "leave quadrature_nodes None to have enough chosen."
  warnings.warn(
    f"quadrature_nodes={nodes}{where}: estimated relative error {e_sigma:.1e} on Σ and {e_dot:.1e} "
    f"on Σ̇, above quadrature_rtol={rtol:g}; {fix}",
    stacklevel=stacklevel,
  )


def check_traced_nodes(act, nodes: int, variances, rtol: float, *, what: str):
  """Traced variances (jit, grad): the node count was fixed before running, so the estimate of
  `_probe_error` (truncation included) runs inside the program on `variances`, and a host callback
  raises when it misses rtol (a `JaxRuntimeError` under jit). `what` names the caller."""
  act = get_activation(act)
  if act.has_closed_form:
    return
  errs = _probe_errors(act, nodes, jax.lax.stop_gradient(variances))
  _checks.host_check(functools.partial(_raise_traced, act=act, nodes=nodes, rtol=rtol, what=what), errs)


def _raise_traced(errs, *, act, nodes, rtol, what):
  e_sigma, e_dot, t_sigma, t_dot = (float(e) for e in np.asarray(errs))
  if max(e_sigma, e_dot) <= rtol:
    return
  if max(t_sigma, t_dot) > rtol:
    fix = (
      "the mass beyond the quadrature window |z| ≤ 9 is too large (estimated truncation error "
      f"{t_sigma:.1e} on Σ, {t_dot:.1e} on Σ̇; infinite: the integrand does not decay, the "
      f"expectation may not exist), which no node count reduces. Remedies: {_remedies(act)}."
    )
  else:
    fix = (
      "The node count of traced inputs or scales is fixed before running: pass quadrature_nodes= "
      f"(up to {MAX_NODES}; choose_nodes(activation, variances, rtol) gives one for known "
      "variances), or compute the kernel outside jit."
    )
  raise ValueError(
    f"{what} under jit/grad: the {nodes}-node quadrature rule of activation {_name(act)} has "
    f"estimated relative error {e_sigma:.1e} on Σ and {e_dot:.1e} on Σ̇, above "
    f"quadrature_rtol={rtol:g}. {fix}"
  )
