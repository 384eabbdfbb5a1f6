"""Infinite-width NNGP and NTK kernels of an `MLP` (seed 000 eqs 1–3 and 8).

With Σ₁(x, x') = xᵀx'/n₀ the input kernel, each layer maps (Σ, Θ) as NT's `stax` does:

* affine layer l (NTK parametrization): Σ ← σ_w² Σ + σ_b², and Θ ← Σ + σ_w² Θ when the layer
  trains (Θ ← σ_w² Θ when frozen: its own term drops out);
* activation ρ: with (u, v) ~ N(0, [[Σ(x, x), Σ(x, x')], [Σ(x, x'), Σ(x', x')]]),
  Σ ← E[ρ(u)ρ(v)] (eq 2) and Θ ← Θ · Σ̇, Σ̇ = E[ρ'(u)ρ'(v)] (eq 3).

so that the readout gives the NNGP Σ_{L+1} and the NTK Θ = Σ_j Σ_j Σ̇_{j+1} ⋯ Σ̇_L (eq 8).
The expectations are closed forms for relu, leaky_relu, abs (arc-cosine kernels), erf, sin, gelu
and identity, and Gauss–Hermite quadrature for every other activation, with ρ' by autodiff.

Large N: the per-point variances Σ(x, x) are computed once; x1 × x2 is then evaluated in tiles
written in place into the output (`_tiling`), and optionally split by rows of x1 over devices.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks, _tiling
from ntk_lab.activations import Activation, value_and_derivative

__all__ = ["Kernel", "analytic_kernel", "gaussian_expectations", "CLOSED_FORMS"]

CLOSED_FORMS = ("relu", "leaky_relu", "abs", "erf", "sin", "gelu", "identity")
MAX_NODES = 370  # numpy.polynomial.hermite.hermgauss returns NaN weights from 371 nodes on
TILE = 256  # default tile side: measured fastest on CPU for N in the thousands (see bench_analytic)


class Kernel(NamedTuple):
  """Infinite-width kernels, each (N1, N2); a field is None when it was not asked for."""

  nngp: jax.Array | None
  ntk: jax.Array | None


def analytic_kernel(model: "MLP", x1, x2=None, *, get=("nngp", "ntk"), W_std=None, b_std=None,
                    quadrature_nodes: int = 64, batch_size: int | None = None,
                    memory_budget: float = _tiling.DEFAULT_MEMORY_BUDGET,
                    devices: Sequence[jax.Device] | None = None) -> Kernel:
  """The infinite-width NNGP Σ_{L+1}(x, x') and NTK Θ(x, x') of the network `model` describes.

  Args:
    model: an `MLP` (depth, W_std, b_std or no bias, parametrization, frozen layers, readout init).
    x1: inputs (N1, in_dim); x2: inputs (N2, in_dim) or None for x1.
    get: which of ``"nngp"``, ``"ntk"`` to compute (the other field is None).
    W_std: overrides the spec's σ_w: a scalar or one value per layer (L,), and may be a traced
      array, so ``jax.grad`` of a kernel w.r.t. it works (hyperparameter fitting).
    b_std: overrides the spec's σ_b likewise (the spec must have a bias: b_std not None).
    quadrature_nodes: Gauss–Hermite nodes per dimension (1 … 370) for activations without a
      closed form. The error grows with the pre-activation variance q, as ρ' narrows to width
      ~1/√q: for tanh, Σ̇ at 64 nodes is off by 3e-9 (q = 1), 3e-4 (q = 4) and 2e-1 (q = 25),
      at 128 nodes by 4e-14, 2e-6 and 4e-2. Raise it for large W_std.
    batch_size: tile side B: x1 × x2 is evaluated in B × B tiles written into the output, one at
      a time. ``None``: 256, or less if its temporaries would not fit ``memory_budget`` bytes.
    memory_budget: bytes of temporaries one tile may use when ``batch_size`` is None.
    devices: optional devices (e.g. ``jax.devices()``) over which the rows of x1 are split with
      `jax.shard_map`; each device evaluates its rows tile by tile. None: the default device.

  Returns:
    `Kernel(nngp, ntk)`, each of shape (N1, N2), per output (the same for every output). With a
    symmetric readout initialisation f(x; θ₀) ≡ 0, so the NNGP is 0.

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> net = nl.MLP((1,), b_std=None)
    >>> k = nl.analytic_kernel(net, jnp.eye(2))
    >>> k.ntk.shape
    (2, 2)
    >>> grad = jax.grad(lambda s: nl.analytic_kernel(net, jnp.eye(2), W_std=s).ntk.sum())(1.5)
    >>> bool(jnp.isfinite(grad))
    True
  """
  # Duck-typed: mlp.py builds on this module (MLP.kernel), so this one does not import MLP.
  if not all(hasattr(model, a) for a in ("n_layers", "widths", "w_std", "b_std", "parametrization", "readout_init")):
    raise TypeError(f"model: expected an ntk_lab.MLP, got {type(model).__name__}.")
  get = _checks.kernel_fields(get)
  x1, x2 = _checks.input_pair(x1, x2)
  _checks.positive_int(quadrature_nodes, "quadrature_nodes")
  if quadrature_nodes > MAX_NODES:
    raise ValueError(f"quadrature_nodes: at most {MAX_NODES} (numpy's Gauss–Hermite weights overflow "
                     f"beyond), got {quadrature_nodes}.")
  if batch_size is not None:
    batch_size = _checks.positive_int(batch_size, "batch_size")
  _checks.memory_budget(memory_budget)
  dtype = jnp.result_type(x1.dtype, x2.dtype) if x2 is not None else x1.dtype
  w = _layer_values(W_std, "W_std", model, dtype)
  if b_std is not None and not model.has_bias:
    raise ValueError("b_std: the model has no bias (MLP(..., b_std=None)); build it with a bias "
                     "(e.g. b_std=0.0) to set or differentiate σ_b.")
  b = _layer_values(b_std, "b_std", model, dtype)
  n_dev = None
  if devices is not None:
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
      raise TypeError("devices: expected a non-empty sequence of jax.Device, e.g. jax.devices().")
    n_dev = len(devices)
  n1 = x1.shape[0]
  n2 = n1 if x2 is None else x2.shape[0]
  if batch_size is None:
    # Small tiles keep each tile's elementwise temporaries in cache (XLA materialises several per
    # layer); a larger single pass is slower, not faster. The budget caps them for quadrature.
    per_entry = 16 + (0 if model.activation.name in CLOSED_FORMS else 6 * quadrature_nodes)
    rows = n1 if n_dev is None else -(-n1 // n_dev)
    fit = _tiling.choose_block(rows, n2, lambda B: B * B * per_entry * dtype.itemsize, memory_budget)
    batch_size = min(fit or TILE, TILE) if max(rows, n2) > TILE else fit
  mesh = None if devices is None else jax.sharding.Mesh(np.array(devices), ("points",))
  out = _kernel(model, x1, x2, w, b, nodes=quadrature_nodes, get=get, block=batch_size, mesh=mesh)
  nngp, ntk = out.get("nngp"), out.get("ntk")
  if nngp is not None and model.readout_init == "symmetric":  # f(x; θ₀) ≡ 0: no output variance
    nngp = jnp.zeros_like(nngp)
  return _checks.finite_result(Kernel(nngp, ntk), "analytic_kernel", OVERFLOW)


OVERFLOW = ("Rescale the inputs (the kernels grow like |x|² per layer), compute in float64, or use "
            "a smaller W_std/b_std.")


def _layer_values(value, name, model, dtype):
  """σ_w or σ_b of every layer as a (L,) array: the spec's, or `value` (scalar or (L,))."""
  L = model.n_layers
  if value is None:
    if name == "W_std":
      value = [model.w_std(l) for l in range(L)]
    else:
      value = (model.b_std or 0.0) if model.has_bias else 0.0
  try:
    arr = jnp.asarray(value, dtype)
  except TypeError as e:
    raise TypeError(f"{name}: expected a number or one per layer, got {type(value).__name__}.") from e
  if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != L):
    raise ValueError(f"{name}: expected a scalar or {L} values (one per layer), got shape "
                     f"{tuple(arr.shape)}.")
  # Overrides obey the constructor's rules (σ_w > 0, σ_b ≥ 0, finite), now or at run time.
  if value is not None:
    _checks.layer_values(arr, name, strict=name == "W_std")
  return jnp.broadcast_to(arr, (L,))


@functools.partial(jax.jit, static_argnames=("model", "nodes", "get", "block", "mesh"))
def _kernel(model, x1, x2, w, b, *, nodes, get, block, mesh):
  q1, diag = _diagonal(model, x1, w, b, nodes, get)
  a = (x1, q1)
  c = a if x2 is None else (x2, _diagonal(model, x2, w, b, nodes, get)[0])
  tile = functools.partial(_tile, model, w=w, b=b, nodes=nodes, get=get)
  if mesh is None:
    out = _tiling.tiled(tile, a, c, block, symmetric=x2 is None, swap_axes=None)
  else:  # rows of x1 split over devices; each device runs the tiled evaluation of its rows
    n1, n_dev = x1.shape[0], mesh.devices.size
    pad = -n1 % n_dev
    a = jax.tree_util.tree_map(lambda v: jnp.pad(v, [(0, pad)] + [(0, 0)] * (v.ndim - 1)), a)
    rows = jax.P("points")

    def local(a_local, c_all):
      return _tiling.tiled(tile, a_local, c_all, block, symmetric=False, swap_axes=None)

    # check_vma=False: the tiles' loop carry starts as replicated zeros and becomes per-device.
    out = jax.shard_map(local, mesh=mesh, in_specs=(rows, jax.P()), out_specs=rows,
                        check_vma=False)(a, c)
    if pad:
      out = jax.tree_util.tree_map(lambda v: v[:n1], out)
  if x2 is None:
    # A point paired with itself: its pointwise value, with cos θ = 1 exactly. In the tiles, the
    # rounding of xᵀx against |x|² leaves cos θ = 1 − ε, which arccos turns into θ ≈ √(2ε).
    i = jnp.arange(x1.shape[0])
    out = {k: v.at[i, i].set(diag[k]) for k, v in out.items()}
  return out


def _diagonal(model, x, w, b, nodes, get):
  """Pointwise pass: the variances Σ_l(x, x) after each affine layer l < L (what the tiles'
  Gaussians need), and the kernels' diagonals {"nngp": Σ(x, x), "ntk": Θ(x, x)}, each (N,)."""
  d = x.shape[1]
  var = jnp.sum(x * x, axis=1) / d
  ntk = jnp.zeros_like(var)
  variances = []
  for l in range(model.n_layers):
    prev = var
    var = w[l] ** 2 * var + b[l] ** 2
    ntk = _ntk_step(model, l, ntk, var, prev, w, d)
    if l < model.n_layers - 1:
      variances.append(var)
      var, tdot = gaussian_expectations(model.activation, var, var, var, nodes=nodes)
      ntk = ntk * tdot
  return variances, {"nngp": var, "ntk": ntk}


def _ntk_step(model, l, ntk, cov, prev, w, d):
  """Θ after affine layer l: its own term (if it trains) plus σ_w² times the layers below."""
  if model.parametrization == "ntk":
    own = cov
  else:  # standard: dΘ = n_in·Σ_in (weights) + 1 (bias), and the lower terms scaled by σ_w²
    own = model.widths(d)[l] * prev + (1.0 if model.has_bias else 0.0)
  return (own if model.trainable[l] else 0.0) + w[l] ** 2 * ntk


def _tile(model, a, c, *, w, b, nodes, get):
  (xa, qa), (xc, qc) = a, c
  d = xa.shape[1]
  want_ntk = "ntk" in get
  cov = xa @ xc.T / d
  ntk = jnp.zeros_like(cov)
  for l in range(model.n_layers):
    prev = cov
    cov = w[l] ** 2 * cov + b[l] ** 2
    if want_ntk:
      ntk = _ntk_step(model, l, ntk, cov, prev, w, d)
    if l < model.n_layers - 1:
      cov, tdot = gaussian_expectations(model.activation, qa[l][:, None], qc[l][None, :], cov,
                                        nodes=nodes, derivative=want_ntk)
      if want_ntk:
        ntk = ntk * tdot
  out = {}
  if "nngp" in get:
    out["nngp"] = cov
  if want_ntk:
    out["ntk"] = ntk
  return out


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
  if name == "gelu":
    return _gelu(k11, k22, k12, derivative)
  if name == "identity":
    return k12, (jnp.ones_like(k12) if derivative else None)
  return _gauss_hermite(act, k11, k22, k12, nodes, derivative)


def _safe_sqrt(x):
  # sqrt with a finite gradient at 0 (the gradient there is set to 0).
  safe = jnp.where(x > 0, x, 1.0)
  return jnp.where(x > 0, jnp.sqrt(safe), 0.0)


# Abramowitz & Stegun 4.4.46: arccos(a) = √(1 − a) · Σ_k A_k a^k on [0, 1], |error| ≤ 2e-8.
_ACOS_COEFFS = (1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046, 0.0308918810,
                -0.0170881256, 0.0066700901, -0.0012624911)


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


def _gelu(k11, k22, k12, derivative):
  """ρ(x) = x Φ(x). With s = (1 + k11)(1 + k22) and δ² = s − k12² (≥ 1 + k11 + k22 > 0):

      E[ρ(u)ρ(v)] = k12/4 + (k12·arcsin(k12/√s) + (k12² + k11·k22·δ²) / (s·δ)) / (2π)

  (Tsuchida et al. 2020; NT's `stax.Gelu`). Σ̇ = E[ρ'(u)ρ'(v)] = ∂/∂k12 E[ρ(u)ρ(v)] by Price's
  theorem, which autodiff gives exactly.
  """
  def t_of(c):
    s = (1 + k11) * (1 + k22)
    delta2 = s - c * c
    delta = jnp.sqrt(delta2)
    return c / 4 + (c * jnp.arctan2(c, delta) + (c * c + k11 * k22 * delta2) / (s * delta)) / (2 * math.pi)
  if not derivative:
    return t_of(k12), None
  return jax.jvp(t_of, (k12,), (jnp.ones_like(k12),))


def _gauss_hermite(act, k11, k22, k12, nodes, derivative):
  """Tensor-product Gauss–Hermite rule for E[g(u)g(v)], in a form symmetric in the two points:
  u = s1(α z1 + β z2), v = s2(α z1 − β z2) with α = √((1 + c)/2), β = √((1 − c)/2), z ~ N(0, I₂).
  Exchanging the points maps z2 to −z2, which leaves the (symmetric) rule unchanged, so the kernel
  matrix stays symmetric although the rule is not exact."""
  t, w = np.polynomial.hermite.hermgauss(nodes)
  z = jnp.asarray(t * math.sqrt(2), k12.dtype)  # nodes of ∫ φ(z) dz after z = √2 t
  w = jnp.asarray(w / math.sqrt(math.pi), k12.dtype)
  s1, s2 = _safe_sqrt(k11), _safe_sqrt(k22)
  c = jnp.clip(k12 / jnp.where(s1 * s2 > 0, s1 * s2, 1.0), -1.0, 1.0)
  alpha, beta = _safe_sqrt((1 + c) / 2), _safe_sqrt((1 - c) / 2)
  # Sum over z1 in a scan, so memory stays at N1·N2·nodes.
  def step(acc, zw):
    z1, w1 = zw
    common, diff = (alpha * z1)[..., None], beta[..., None] * z  # (..., nodes)
    fu, du = value_and_derivative(act, s1[..., None] * (common + diff))
    fv, dv = value_and_derivative(act, s2[..., None] * (common - diff))
    acc_t = acc[0] + w1 * jnp.sum(w * fu * fv, axis=-1)
    acc_d = acc[1] + w1 * jnp.sum(w * du * dv, axis=-1) if derivative else acc[1]
    return (acc_t, acc_d), None
  zero = jnp.zeros_like(k12)
  (t_out, d_out), _ = jax.lax.scan(step, (zero, zero), (z, w))
  return t_out, (d_out if derivative else None)
