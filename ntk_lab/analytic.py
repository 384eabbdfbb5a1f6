"""Infinite-width NNGP and NTK kernels of a network of layers (Jacot et al. 2018; Lee et al. 2019).

With Σ(x, x') = xᵀx'/n₀ the input kernel and Θ = 0, each layer maps the `KernelState` (Σ, Θ and
the per-point variances) by its own rule (`ntk_lab.layers`), as neural-tangents' `stax` does:

* `Dense` (NTK parametrization): Σ ← σ_w² Σ + σ_b², and Θ ← Σ + σ_w² Θ when the layer trains
  (Θ ← σ_w² Θ when frozen: its own term drops out);
* `Activation` ρ: with (u, v) ~ N(0, [[Σ(x, x), Σ(x, x')], [Σ(x, x'), Σ(x', x')]]),
  Σ ← E[ρ(u)ρ(v)] and Θ ← Θ · Σ̇, Σ̇ = E[ρ'(u)ρ'(v)];

so that an MLP's readout gives the NNGP Σ_{L+1} and the NTK Θ = Σ_j Σ_j Σ̇_{j+1} ⋯ Σ̇_L.

The expectations are the activation's closed form when its registry entry has one, and otherwise
a quadrature with a stated accuracy (`ntk_lab.quadrature`). Before a kernel is computed, the
network's rules run once on the points paired with themselves, recording the pre-activation
variances of every nonlinearity; each gets the fewest nodes that meet `quadrature_rtol` (default
1e-7 in float64, 1e-5 in float32, relative to √(Σ(x, x)Σ(x', x'))) over those variances, or the
call raises with the estimate and the remedies.

Large N: x1 × x2 is evaluated in tiles written in place into the output (`_tiling`), and
optionally split by rows of x1 over devices. The output and a tile's temporaries are checked
against the memory available before compiling.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks, _tiling
from ntk_lab.layers import KernelState, Layer, RuleContext
from ntk_lab.quadrature import (
  CLOSED_FORMS,
  MAX_NODES,
  TRACED_NODES,
  check_forced_nodes,
  check_traced_nodes,
  choose_nodes,
  default_rtol,
  gaussian_expectations,
  quadrature_error,
)

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
  model: Layer,
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
  """The infinite-width NNGP Σ(x, x') and NTK Θ(x, x') of a network of layers.

  Args:
    model: a network of `ntk_lab.layers` — an `MLP`, ``nl.layers.serial(...)``, a residual block,
      a CNN or CNTK (`Conv`, pooling, `LayerNorm`) — each of whose layers has an infinite-width
      rule, and whose output is one vector per point (a convolutional network ends in `Flatten`
      or `GlobalAvgPool` and a `Dense` readout).
    x1: inputs (N1, in_dim), or (N1, L, C) sequences and (N1, H, W, C) images, channels last;
      x2: inputs of the same per-point shape (N2, …) or None for x1. Convolutional kernels keep
      the covariances of every pair of positions when a pooling layer mixes them, else those of
      equal positions only; tiles of pairs of points are then sized to fit ``memory_budget``.
    get: which of ``"nngp"``, ``"ntk"`` to compute (the other field is None).
    W_std: overrides the spec's σ_w: a scalar or one value per weighted layer (each `Dense`, in
      the network's order; L for an MLP), and may be a traced array, so ``jax.grad`` of a kernel
      w.r.t. it works (hyperparameter fitting).
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
  plan = _plan(
    model,
    x1,
    x2,
    get,
    W_std,
    b_std,
    diagonal,
    quadrature_nodes,
    quadrature_rtol,
    tile_size,
    memory_budget,
    devices,
  )
  if diagonal:
    out = _kernel_diagonal(model, plan.x1, plan.x2, plan.w, plan.b, nodes=plan.nodes, get=plan.get)
  else:
    out = _kernel(
      model,
      plan.x1,
      plan.x2,
      plan.w,
      plan.b,
      nodes=plan.nodes,
      get=plan.get,
      block=plan.tile_size,
      mesh=plan.mesh,
    )
  return _checks.finite_result(Kernel(out.get("nngp"), out.get("ntk")), "analytic_kernel", OVERFLOW)


class _Plan(NamedTuple):
  """What `analytic_kernel` will run: checked inputs, σ_w/σ_b per weighted layer, quadrature
  nodes per nonlinearity, the tile side and the device mesh."""

  x1: jax.Array
  x2: jax.Array | None
  get: tuple
  w: jax.Array
  b: jax.Array
  nodes: tuple
  tile_size: int | None
  mesh: jax.sharding.Mesh | None


def _plan(
  model,
  x1,
  x2,
  get,
  W_std,
  b_std,
  diagonal,
  quadrature_nodes,
  quadrature_rtol,
  tile_size,
  memory_budget,
  devices,
) -> _Plan:
  if not isinstance(model, Layer):
    raise TypeError(
      f"model: expected a network of ntk_lab layers (ntk_lab.MLP, ntk_lab.layers.serial(...)), "
      f"got {type(model).__name__}; a plain apply_fn has no infinite-width rule."
    )
  get = _checks.kernel_fields(get)
  diagonal = _checks.boolean(diagonal, "diagonal")
  x1, x2 = _checks.point_pair(x1, x2)
  _check_network_takes(model, x1)
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
  weighted = [leaf for leaf, _ in model.param_leaves() if hasattr(leaf, "W_std")]
  w = _layer_values(W_std, "W_std", [leaf.W_std for leaf in weighted], dtype)
  has_bias = [getattr(leaf, "b_std", None) is not None for leaf in weighted]
  if b_std is not None and not any(has_bias):
    raise ValueError(
      "b_std: the model has no bias (MLP(..., b_std=None)); build it with a bias "
      "(e.g. b_std=0.0) to set or differentiate σ_b."
    )
  b = _layer_values(b_std, "b_std", [leaf.b_std or 0.0 for leaf in weighted], dtype)
  # Layers without a bias keep σ_b = 0 whatever the override (they have no b to scale).
  b = b * jnp.asarray(has_bias, dtype)
  if diagonal and x2 is not None and x2.shape[0] != x1.shape[0]:
    raise ValueError(
      f"x2: diagonal=True pairs x1[i] with x2[i], so both need the same number of "
      f"points; got {x1.shape[0]} and {x2.shape[0]}. Pass x2=None for Θ(x_i, x_i)."
    )
  acts = [leaf.nonlinearity for leaf in model.leaves() if leaf.nonlinearity is not None]
  rtol = default_rtol(dtype) if quadrature_rtol is None else float(quadrature_rtol)

  def nodes():
    if all(act.has_closed_form for act in acts):
      return (0,) * len(acts)
    return _layer_nodes(model, acts, x1, x2, w, b, rtol, quadrature_nodes)

  if diagonal:
    return _Plan(x1, x2, get, w, b, nodes(), None, None)
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
  node_counts = nodes()
  # Temporaries per kernel entry: a few per layer, and for quadrature the inner nodes of one
  # outer step (the scan holds one at a time); each as many times as the layout has positions.
  per_entry = (16 + 16 * max(node_counts, default=0)) * _positions(model, x1)
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
  return _Plan(x1, x2, get, w, b, node_counts, tile_size, mesh)


def _check_network_takes(model, x1):
  """Refuses, naming the layer, a network that cannot take inputs of this shape, or whose
  output has spatial axes left (the kernels here are those of one output vector per point)."""
  try:
    out = model.output_shape_of(tuple(x1.shape[1:]))
  except (TypeError, ValueError, IndexError) as e:
    raise ValueError(
      f"x1: the network cannot take inputs of per-point shape {tuple(x1.shape[1:])}: {e}"
    ) from e
  if isinstance(out, tuple) and len(out) > 1:
    raise ValueError(
      f"model: its output has per-point shape {out}, with spatial axes; end the network with "
      "Flatten() or GlobalAvgPool() (and a Dense readout) so each point has one output vector."
    )


def _positions(model, x1) -> int:
  """The number of spatial entries per pair of points in the kernels' layout (1 for vectors)."""
  size = math.prod(x1.shape[1:-1])
  return size * size if _full_layout(model) else size


OVERFLOW = (
  "Rescale the inputs (the kernels grow like |x|² per layer), compute in float64, or use "
  "a smaller W_std/b_std."
)


def _layer_nodes(model, acts, x1, x2, w, b, rtol, forced):
  """Node count of each nonlinearity's expectations: from its pre-activation variances over x1
  and x2 when they are concrete (`choose_nodes`), else ``forced`` or `TRACED_NODES`."""
  n_acts = len(acts)
  try:
    xs = [np.asarray(v) for v in ((x1, w, b) if x2 is None else (x1, x2, w, b))]
  except _checks.TRACED:
    nodes = tuple(0 if act.has_closed_form else (forced or TRACED_NODES) for act in acts)
    _check_traced_rule(model, acts, x1, x2, w, b, nodes, rtol)
    return nodes
  x = jnp.asarray(np.concatenate(xs[:-2]))
  # The variances only place the probe grid, so a fixed, ample node count serves for them.
  variances = _layer_variances(model, x, w, b, nodes=(TRACED_NODES,) * n_acts)
  nodes = []
  for l, (act, q) in enumerate(zip(acts, variances)):
    where = f" in hidden layer {l + 1}" if n_acts > 1 else ""
    if act.has_closed_form:
      nodes.append(0)
      continue
    if forced is None:
      nodes.append(choose_nodes(act, q, rtol, where=where))
      continue
    check_forced_nodes(act, q, forced, rtol, where=where, stacklevel=6)
    nodes.append(forced)
  return tuple(nodes)


def _check_traced_rule(model, acts, x1, x2, w, b, nodes, rtol):
  """Traced inputs or scales (jit, grad): the node count cannot follow the variances, so the
  estimate of `quadrature_error` runs inside the program, on the variances it computes, and a host
  callback raises when a nonlinearity misses ``rtol``."""
  layers = [l for l, act in enumerate(acts) if not act.has_closed_form]
  if not layers:
    return
  x = x1 if x2 is None else jnp.concatenate([x1, x2])
  args = jax.tree.map(jax.lax.stop_gradient, (x, w, b))
  variances = _layer_variances(model, *args, nodes=nodes)
  for l in layers:
    check_traced_nodes(acts[l], nodes[l], variances[l], rtol, what="analytic_kernel")


@functools.partial(jax.jit, static_argnames=("model", "nodes"))
def _layer_variances(model, x, w, b, *, nodes):
  """The pre-activation variances Σ(x, x) of every nonlinearity, in the network's order."""
  ctx = RuleContext(W_std=w, b_std=b, nodes=nodes, record=True)
  model.kernel_rule(_input_state(x, None, same=True, ntk=False, full=_full_layout(model)), ctx)
  return [v for layer, v in zip(ctx.recorded_by, ctx.variances) if layer.nonlinearity is not None]


def _layer_values(value, name, own, dtype):
  """σ_w or σ_b of every weighted layer as a (L,) array: the layers' own (`own`), or `value`
  (scalar or (L,))."""
  L = len(own)
  arr_value = own if value is None else value
  try:
    arr = jnp.asarray(arr_value, dtype)
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


def _input_state(xa, xc, *, paired=False, same=False, ntk=True, full=False) -> KernelState:
  """The state of the inputs: Σ(x, x') = Σ_c x[p, c] x'[p', c] / C over the channels (the last
  axis) at each pair of positions (p, p') the layout keeps (`KernelState`), Θ = 0."""
  spatial, channels = xa.ndim - 2, xa.shape[-1]

  def cov(a, c, pairs):
    if spatial == 0:
      return jnp.sum(a * c, axis=-1) / channels if pairs else a @ c.T / channels
    letters = "defghijk"[:spatial]
    first = "a" + letters
    second = ("a" if pairs else "b") + (letters.upper() if full else letters)
    batch = "a" if pairs else "ab"
    out = batch + ("".join(p + p.upper() for p in letters) if full else letters)
    return jnp.einsum(f"{first}z,{second}z->{out}", a, c) / channels

  def own(v):
    return cov(v, v, True)

  var_a = own(xa)
  kw = dict(width=channels, spatial=spatial, full=full and spatial > 0)
  if same:
    return KernelState(
      var_a, jnp.zeros_like(var_a) if ntk else None, None, None, paired=True, same=True, **kw
    )
  var_c = own(xc)
  nngp = cov(xa, xc, paired)
  return KernelState(nngp, jnp.zeros_like(nngp) if ntk else None, var_a, var_c, paired=paired, **kw)


def _full_layout(model) -> bool:
  """Whether the kernels need every pair of positions: when some layer mixes positions (pooling)."""
  return any(getattr(leaf, "mixes_positions", False) for leaf in model.leaves())


def _rule(model, state, w, b, nodes, get):
  return _fields(model.kernel_rule(state, RuleContext(W_std=w, b_std=b, nodes=nodes)), get)


def _fields(out, get):
  if isinstance(out, (list, tuple)):
    raise ValueError(
      f"model: the network ends in {len(out)} branches; join them (e.g. FanInSum()) so it has one output."
    )
  return {k: getattr(out, k) for k in get}


def _pointwise(model, x, w, b, nodes, get):
  """The points with themselves: the kernels' diagonals, and the input variances of every
  nonlinearity (which the tiles take instead of recomputing them)."""
  ctx = RuleContext(W_std=w, b_std=b, nodes=nodes, record=True)
  out = model.kernel_rule(_input_state(x, None, same=True, ntk="ntk" in get, full=_full_layout(model)), ctx)
  return _fields(out, get), ctx.variances


def _pointwise_in_batches(model, x, w, b, nodes, get, block):
  """`_pointwise`, for inputs with spatial axes in batches of ``block`` points: a point's own
  covariances over pairs of positions take as much memory as a tile entry does."""
  if x.ndim <= 2 or block is None or block >= x.shape[0]:
    return _pointwise(model, x, w, b, nodes, get)

  def one(point):
    out = _pointwise(model, point[None], w, b, nodes, get)
    return jax.tree_util.tree_map(lambda v: v[0], out)

  return jax.lax.map(one, x, batch_size=block)


@functools.partial(jax.jit, static_argnames=("model", "nodes", "get", "block", "mesh"))
def _kernel(model, x1, x2, w, b, *, nodes, get, block, mesh):
  diag, q1 = _pointwise_in_batches(model, x1, w, b, nodes, get, block)
  a = (x1, q1)
  c = a if x2 is None else (x2, _pointwise_in_batches(model, x2, w, b, nodes, get, block)[1])

  def tile(a, c):
    (xa, qa), (xc, qc) = a, c
    ctx = RuleContext(W_std=w, b_std=b, nodes=nodes, known=(qa, qc))
    state = _input_state(xa, xc, ntk="ntk" in get, full=_full_layout(model))
    return _fields(model.kernel_rule(state, ctx), get)

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
  if x2 is None:
    state = _input_state(x1, None, same=True, ntk="ntk" in get, full=_full_layout(model))
  else:
    state = _input_state(x1, x2, paired=True, ntk="ntk" in get, full=_full_layout(model))
  return _rule(model, state, w, b, nodes, get)
