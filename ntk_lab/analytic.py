"""Infinite-width NNGP and NTK kernels of an `MLP` (Jacot et al. 2018; Lee et al. 2019).

With Σ₁(x, x') = xᵀx'/n₀ the input kernel, each layer maps (Σ, Θ) as neural-tangents' `stax` does:

* affine layer l (NTK parametrization): Σ ← σ_w² Σ + σ_b², and Θ ← Σ + σ_w² Θ when the layer
  trains (Θ ← σ_w² Θ when frozen: its own term drops out);
* activation ρ: with (u, v) ~ N(0, [[Σ(x, x), Σ(x, x')], [Σ(x, x'), Σ(x', x')]]),
  Σ ← E[ρ(u)ρ(v)] and Θ ← Θ · Σ̇, Σ̇ = E[ρ'(u)ρ'(v)];

so that the readout gives the NNGP Σ_{L+1} and the NTK Θ = Σ_j Σ_j Σ̇_{j+1} ⋯ Σ̇_L.

The expectations are the activation's closed form when its registry entry has one
(`ntk_lab.activations`), and otherwise a product rule with a stated accuracy: u = s₁z₁,
v = s₂(c z₁ + √(1 − c²) z₂), z ~ N(0, I₂), integrated over [−L, L]² (L = 9: the Gaussian mass
beyond is 2e-19) by Gauss–Legendre rules split where u = 0 (outer) and where v = 0 (inner, at
z₂ = −c z₁/√(1 − c²)). Activations have their kinks, jumps and sharpest features at 0, so each
piece is smooth and the nodes crowd where ρ changes fastest, whatever the variance. Before a
kernel is computed, the variances of every layer are computed pointwise and the node count of each
layer is the smallest that meets `quadrature_rtol` (default 1e-7 in float64, 1e-5 in float32,
relative to √(Σ(x, x)Σ(x', x'))) on a probe grid spanning those variances and all correlations,
as estimated against the rule with twice the nodes; if none does, the call raises with the
estimate and the remedies.

Large N: the per-point variances Σ(x, x) are computed once; x1 × x2 is then evaluated in tiles
written in place into the output (`_tiling`), and optionally split by rows of x1 over devices.
The output and a tile's temporaries are checked against the memory available before compiling.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks, _tiling
from ntk_lab.quadrature import (
  CLOSED_FORMS,
  MAX_NODES,
  TRACED_NODES,
  _probe_error,
  choose_nodes,
  default_rtol,
  gaussian_expectations,
  quadrature_error,
)

if TYPE_CHECKING:  # mlp.py builds on this module (MLP.kernel): no import at run time
  from ntk_lab.mlp import MLP

__all__ = [
  "Kernel",
  "analytic_kernel",
  "gaussian_expectations",
  "quadrature_error",
  "choose_nodes",
  "default_rtol",
  "CLOSED_FORMS",
]

TILE = 256  # default tile side: measured fastest on CPU for N in the thousands (see bench_analytic)


class Kernel(NamedTuple):
  """Infinite-width kernels, each (N1, N2); a field is None when it was not asked for."""

  nngp: jax.Array | None
  ntk: jax.Array | None


def analytic_kernel(
  model: MLP,
  x1,
  x2=None,
  *,
  get=("nngp", "ntk"),
  W_std=None,
  b_std=None,
  diagonal: bool = False,
  quadrature_nodes: int | None = None,
  quadrature_rtol: float | None = None,
  tile_size: int | None = None,
  memory_budget: float = _tiling.DEFAULT_MEMORY_BUDGET,
  devices: Sequence[jax.Device] | None = None,
) -> Kernel:
  """The infinite-width NNGP Σ_{L+1}(x, x') and NTK Θ(x, x') of the network `model` describes.

  Args:
    model: an `MLP` (depth, W_std, b_std or no bias, parametrization, frozen layers, readout init).
    x1: inputs (N1, in_dim); x2: inputs (N2, in_dim) or None for x1.
    get: which of ``"nngp"``, ``"ntk"`` to compute (the other field is None).
    W_std: overrides the spec's σ_w: a scalar or one value per layer (L,), and may be a traced
      array, so ``jax.grad`` of a kernel w.r.t. it works (hyperparameter fitting).
    b_std: overrides the spec's σ_b likewise (the spec must have a bias: b_std not None; layers
      without a bias stay without).
    diagonal: if True, only the diagonal: Σ(x_i, x_i) and Θ(x_i, x_i) for x2 None, or the pairs
      (x1_i, x2_i) when x2 has as many points, each of shape (N,), in O(N) memory (NT's
      ``diagonal_axes=(0,)``); ``tile_size`` and ``devices`` do not apply then.
    quadrature_nodes: for activations without a closed form, Gauss–Legendre nodes per half-line
      and dimension (1 … 512; the rule evaluates ρ at 4·n² points per entry). None: per layer,
      the fewest that meet ``quadrature_rtol`` (module docstring); a number forces it, and a
      warning names the estimated error when that misses ``quadrature_rtol``. When the inputs,
      W_std or b_std are traced (jit, grad), the variances are not known beforehand: None then
      means 32 nodes, and the same estimate runs inside the program, raising (a
      ``JaxRuntimeError`` under jit) when it misses ``quadrature_rtol``.
    quadrature_rtol: the accuracy quadrature kernels must meet, relative to
      √(Σ(x, x)·Σ(x', x')) on Σ and Σ̇ of every layer. None: 1e-7 in float64, 1e-5 in float32.
      If no node count up to 128 meets it, the call raises with the estimated error.
    tile_size: tile side B: x1 × x2 is evaluated in B × B tiles written into the output, one at
      a time. ``None``: 256, or less if its temporaries would not fit ``memory_budget`` bytes.
    memory_budget: bytes of temporaries one tile may use when ``tile_size`` is None.
    devices: optional devices (e.g. ``jax.devices()``) over which the rows of x1 are split with
      `jax.shard_map`; each device evaluates its rows tile by tile. None: the default device.

  Returns:
    `Kernel(nngp, ntk)`, each of shape (N1, N2) — (N1,) with ``diagonal`` — per output (the same
    for every output). With a symmetric readout initialisation f(x; θ₀) ≡ 0, so the NNGP is 0.

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> net = nl.MLP((1,), b_std=None)
    >>> k = nl.analytic_kernel(net, jnp.eye(2))
    >>> k.ntk.shape
    (2, 2)
    >>> grad = jax.grad(lambda s: nl.analytic_kernel(net, jnp.eye(2), W_std=s).ntk.sum())(1.5)
    >>> bool(jnp.isfinite(grad))
    True
    >>> nl.analytic_kernel(net, jnp.eye(3), diagonal=True).ntk.shape
    (3,)
  """
  # Duck-typed: mlp.py builds on this module (MLP.kernel), so this one does not import MLP.
  if not all(
    hasattr(model, a)
    for a in (
      "n_layers",
      "widths",
      "W_std_of",
      "b_std_of",
      "parametrization_of",
      "activation_of",
      "readout_init",
    )
  ):
    raise TypeError(f"model: expected an ntk_lab.MLP, got {type(model).__name__}.")
  get = _checks.kernel_fields(get)
  x1, x2 = _checks.input_pair(x1, x2)
  if quadrature_nodes is not None:
    _checks.positive_int(quadrature_nodes, "quadrature_nodes")
    if quadrature_nodes > MAX_NODES:
      raise ValueError(
        f"quadrature_nodes: at most {MAX_NODES}, got {quadrature_nodes}; leave it None "
        "to have the node count chosen for quadrature_rtol."
      )
  if quadrature_rtol is not None and not (
    isinstance(quadrature_rtol, (int, float, np.floating)) and 0 < quadrature_rtol < 1
  ):
    raise ValueError(f"quadrature_rtol: must be a number in (0, 1), e.g. 1e-6, got {quadrature_rtol!r}.")
  if tile_size is not None:
    tile_size = _checks.positive_int(tile_size, "tile_size")
  _checks.memory_budget(memory_budget)
  dtype = jnp.result_type(x1.dtype, x2.dtype) if x2 is not None else x1.dtype
  w = _layer_values(W_std, "W_std", model, dtype)
  if b_std is not None and not model.has_bias:
    raise ValueError(
      "b_std: the model has no bias (MLP(..., b_std=None)); build it with a bias "
      "(e.g. b_std=0.0) to set or differentiate σ_b."
    )
  b = _layer_values(b_std, "b_std", model, dtype)
  # Layers without a bias keep σ_b = 0 whatever the override (they have no b to scale).
  b = b * jnp.asarray([model.b_std_of(l) is not None for l in range(model.n_layers)], dtype)
  if diagonal and x2 is not None and x2.shape[0] != x1.shape[0]:
    raise ValueError(
      f"x2: diagonal=True pairs x1[i] with x2[i], so both need the same number of "
      f"points; got {x1.shape[0]} and {x2.shape[0]}. Pass x2=None for Θ(x_i, x_i)."
    )
  closed = all(model.activation_of(l).has_closed_form for l in range(model.n_layers - 1))
  if diagonal:
    nodes = _nodes(model, x1, x2, w, b, dtype, closed, quadrature_rtol, quadrature_nodes)
    return _as_kernel(model, _kernel_diagonal(model, x1, x2, w, b, nodes=nodes, get=get))
  n_dev = None
  if devices is not None:
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
      raise TypeError("devices: expected a non-empty sequence of jax.Device, e.g. jax.devices().")
    n_dev = len(devices)
  n1 = x1.shape[0]
  n2 = n1 if x2 is None else x2.shape[0]
  out_bytes = len(get) * n1 * n2 * dtype.itemsize
  # The output alone first: refused before the node choice below compiles anything.
  _tiling.check_fits("analytic_kernel", n1, n2, out_bytes=out_bytes, temp_bytes=0, devices=devices)
  nodes = _nodes(model, x1, x2, w, b, dtype, closed, quadrature_rtol, quadrature_nodes)
  # Temporaries per kernel entry: a few per layer, and for quadrature the inner nodes of one
  # outer step (the scan holds one at a time).
  per_entry = 16 + 16 * max(nodes, default=0)
  if tile_size is None:
    # Small tiles keep each tile's elementwise temporaries in cache (XLA materialises several per
    # layer); a larger single pass is slower, not faster. The budget caps them for quadrature.
    rows = n1 if n_dev is None else -(-n1 // n_dev)
    fit = _tiling.choose_block(rows, n2, lambda B: B * B * per_entry * dtype.itemsize, memory_budget)
    tile_size = min(fit or TILE, TILE) if max(rows, n2) > TILE else fit
  block = min(tile_size or max(n1, n2), max(n1, n2))
  _tiling.check_fits(
    "analytic_kernel",
    n1,
    n2,
    out_bytes=out_bytes,
    temp_bytes=block * block * per_entry * dtype.itemsize,
    devices=devices,
  )
  mesh = None if devices is None else jax.sharding.Mesh(np.array(devices), ("points",))
  out = _kernel(model, x1, x2, w, b, nodes=nodes, get=get, block=tile_size, mesh=mesh)
  return _as_kernel(model, out)


def _as_kernel(model, out) -> Kernel:
  nngp, ntk = out.get("nngp"), out.get("ntk")
  if nngp is not None and model.readout_init == "symmetric":  # f(x; θ₀) ≡ 0: no output variance
    nngp = jnp.zeros_like(nngp)
  return _checks.finite_result(Kernel(nngp, ntk), "analytic_kernel", OVERFLOW)


OVERFLOW = (
  "Rescale the inputs (the kernels grow like |x|² per layer), compute in float64, or use "
  "a smaller W_std/b_std."
)


def _nodes(model, x1, x2, w, b, dtype, closed, quadrature_rtol, quadrature_nodes):
  """Quadrature nodes per hidden layer (0 for a closed-form layer: none are used there)."""
  if closed:
    return (0,) * (model.n_layers - 1)
  rtol = default_rtol(dtype) if quadrature_rtol is None else float(quadrature_rtol)
  return _layer_nodes(model, x1, x2, w, b, rtol, quadrature_nodes)


def _layer_nodes(model, x1, x2, w, b, rtol, forced):
  """Node count of each hidden layer's expectations: from the layer's pre-activation variances
  over x1 and x2 when they are concrete (`choose_nodes`), else ``forced`` or `TRACED_NODES`."""
  n_hidden = model.n_layers - 1
  try:
    xs = [np.asarray(v) for v in ((x1, w, b) if x2 is None else (x1, x2, w, b))]
  except _checks.TRACED:
    nodes = (forced or TRACED_NODES,) * n_hidden
    _check_traced_rule(model, x1, x2, w, b, nodes, rtol)
    return nodes
  x = jnp.asarray(np.concatenate(xs[:-2]))
  # The variances only place the probe grid, so a fixed, ample node count serves for them.
  variances = _layer_variances(model, x, w, b, nodes=(TRACED_NODES,) * n_hidden)
  nodes = []
  for l, q in enumerate(variances):
    where = f" in hidden layer {l + 1}" if n_hidden > 1 else ""
    act = model.activation_of(l)
    if act.has_closed_form:
      nodes.append(0)
      continue
    if forced is None:
      nodes.append(choose_nodes(act, q, rtol, where=where))
      continue
    err = quadrature_error(act, q, forced)
    if max(err) > rtol:
      warnings.warn(
        f"quadrature_nodes={forced}{where}: estimated relative error {err[0]:.1e} on Σ and "
        f"{err[1]:.1e} on Σ̇, above quadrature_rtol={rtol:g}; leave quadrature_nodes None to "
        "have enough chosen.",
        stacklevel=3,
      )
    nodes.append(forced)
  return tuple(nodes)


def _check_traced_rule(model, x1, x2, w, b, nodes, rtol):
  """Traced inputs or scales (jit, grad): the node count cannot follow the variances, so the
  estimate of `quadrature_error` runs inside the program, on the variances it computes, and a host
  callback raises when a layer misses ``rtol``."""
  layers = [l for l in range(model.n_layers - 1) if not model.activation_of(l).has_closed_form]
  if not layers:
    return
  x = x1 if x2 is None else jnp.concatenate([x1, x2])
  args = jax.tree.map(jax.lax.stop_gradient, (x, w, b))
  variances = _layer_variances(model, *args, nodes=nodes)
  errs = jnp.stack([_probe_error(model.activation_of(l), nodes[l], variances[l]) for l in layers])
  jax.debug.callback(
    functools.partial(_raise_traced_rule, layers=tuple(layers), nodes=nodes, rtol=rtol), errs
  )


def _raise_traced_rule(errs, *, layers, nodes, rtol):
  errs = np.asarray(errs)
  for l, (e_sigma, e_dot) in zip(layers, errs):
    if max(e_sigma, e_dot) > rtol:
      raise ValueError(
        f"analytic_kernel under jit/grad: the {nodes[l]}-node quadrature rule of hidden layer "
        f"{l + 1} has estimated relative error {e_sigma:.1e} on Σ and {e_dot:.1e} on Σ̇, above "
        f"quadrature_rtol={rtol:g}. The node count of traced inputs or scales is fixed before "
        "running: pass quadrature_nodes= (up to 512; choose_nodes(activation, variances, rtol) "
        "gives one for known variances), or compute the kernel outside jit."
      )


@functools.partial(jax.jit, static_argnames=("model", "nodes"))
def _layer_variances(model, x, w, b, *, nodes):
  return _diagonal(model, x, w, b, nodes, ("nngp",))[0]


def _layer_values(value, name, model, dtype):
  """σ_w or σ_b of every layer as a (L,) array: the spec's, or `value` (scalar or (L,))."""
  L = model.n_layers
  if value is None:
    if name == "W_std":
      value = [model.W_std_of(l) for l in range(L)]
    else:
      value = [model.b_std_of(l) or 0.0 for l in range(L)]
  try:
    arr = jnp.asarray(value, dtype)
  except TypeError as e:
    raise TypeError(f"{name}: expected a number or one per layer, got {type(value).__name__}.") from e
  if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != L):
    raise ValueError(
      f"{name}: expected a scalar or {L} values (one per layer), got shape {tuple(arr.shape)}."
    )
  # Overrides obey the constructor's rules (σ_w ≥ 0, σ_b ≥ 0, finite), now or at run time.
  if value is not None:
    _checks.layer_values(arr, name, strict=False)  # σ_w = 0 is a valid layer (as in the MLP spec)
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
    out = jax.shard_map(local, mesh=mesh, in_specs=(rows, jax.P()), out_specs=rows, check_vma=False)(a, c)
    if pad:
      out = jax.tree_util.tree_map(lambda v: v[:n1], out)
  if x2 is None:
    # A point paired with itself: its pointwise value, with cos θ = 1 exactly. In the tiles, the
    # rounding of xᵀx against |x|² leaves cos θ = 1 − ε, which arccos turns into θ ≈ √(2ε).
    i = jnp.arange(x1.shape[0])
    out = {k: v.at[i, i].set(diag[k]) for k, v in out.items()}
  return out


@functools.partial(jax.jit, static_argnames=("model", "nodes", "get"))
def _kernel_diagonal(model, x1, x2, w, b, *, nodes, get):
  """The kernels at the pairs (x1_i, x2_i), or (x_i, x_i) when x2 is None: each (N,)."""
  q1, diag = _diagonal(model, x1, w, b, nodes, get)
  if x2 is None:
    return {k: diag[k] for k in get}
  q2 = _diagonal(model, x2, w, b, nodes, get)[0]
  return _tile(model, (x1, q1), (x2, q2), w=w, b=b, nodes=nodes, get=get, paired=True)


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
      var, tdot = gaussian_expectations(model.activation_of(l), var, var, var, nodes=nodes[l])
      ntk = ntk * tdot
  return variances, {"nngp": var, "ntk": ntk}


def _ntk_step(model, l, ntk, cov, prev, w, d):
  """Θ after affine layer l: its own term (if it trains) plus σ_w² times the layers below."""
  if model.parametrization_of(l) == "ntk":
    own = cov
  else:  # standard: dΘ = n_in·Σ_in (weights) + 1 (bias), and the lower terms scaled by σ_w²
    own = model.widths(d)[l] * prev + (1.0 if model.b_std_of(l) is not None else 0.0)
  return (own if model.trainable[l] else 0.0) + w[l] ** 2 * ntk


def _tile(model, a, c, *, w, b, nodes, get, paired=False):
  """The kernels of every pair in a × c, or (``paired``) of the pairs (a_i, c_i) only."""
  (xa, qa), (xc, qc) = a, c
  d = xa.shape[1]
  want_ntk = "ntk" in get
  cov = jnp.sum(xa * xc, axis=1) / d if paired else xa @ xc.T / d
  ntk = jnp.zeros_like(cov)
  for l in range(model.n_layers):
    prev = cov
    cov = w[l] ** 2 * cov + b[l] ** 2
    if want_ntk:
      ntk = _ntk_step(model, l, ntk, cov, prev, w, d)
    if l < model.n_layers - 1:
      ka, kc = (qa[l], qc[l]) if paired else (qa[l][:, None], qc[l][None, :])
      cov, tdot = gaussian_expectations(
        model.activation_of(l), ka, kc, cov, nodes=nodes[l], derivative=want_ntk
      )
      if want_ntk:
        ntk = ntk * tdot
  out = {}
  if "nngp" in get:
    out["nngp"] = cov
  if want_ntk:
    out["ntk"] = ntk
  return out
