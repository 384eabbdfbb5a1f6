"""The empirical neural tangent kernel and NNGP kernel of a finite network.

    Θ(x, x')_{ab} = Σ_p ∂f_a(x; θ)/∂θ_p · ∂f_b(x'; θ)/∂θ_p            (Jacot et al. 2018)

summed over the trainable parameters only (the Gram matrix H(t) of Du et al. 2019 when θ = θ(t)),
and the empirical NNGP K(x, x')_{ab} = f_a(x; θ) f_b(x'; θ), a one-network sample of the output
covariance. Three independent routes compute Θ:

* ``"jacobian"``: per-point Jacobians (vmapped `jax.jacrev`), contracted leaf by leaf.
* ``"ntvp"``: NTK-vector products Θ v = J₁(J₂ᵀ v), `jax.jvp` (via `jax.linearize`) of
  `jax.vjp`, for one basis vector v at a time in small batches; no Jacobian is held.
* ``"structured"``: for a network of layers each of which declares its own term
  (`ntk_lab.layers`, e.g. `Dense`: (a²⟨h, h'⟩ + β²)·⟨δ, δ'⟩), the sum of those terms, from each
  layer's inputs h and backpropagated signals δ = ∂f/∂(its output), computed once per point with
  one `jax.vjp` per output. Almost all of its work is large matrix products.

With ``diagonal=True`` each route computes only the N values at the pairs (x_i, x_i), or
(x1_i, x2_i), without an N × N array (NT's ``diagonal_axes=(0,)``).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks, _tiling
from ntk_lab.layers import Layer
from ntk_lab.layers.base import Taps
from ntk_lab.linearize import Linearized
from ntk_lab.models import Wrapper, apply_fn_of, split_trainable, trainable_merge

__all__ = ["empirical_ntk", "empirical_nngp", "structured_flops", "METHODS"]

METHODS = ("auto", "structured", "jacobian", "ntvp")


def empirical_ntk(
  model,
  params,
  x1,
  x2=None,
  *,
  method: str = "auto",
  trace_outputs: bool = True,
  diagonal: bool = False,
  per_layer: bool = False,
  tile_size: int | None = None,
  memory_budget: float = _tiling.DEFAULT_MEMORY_BUDGET,
):
  """The empirical NTK Θ(x1, x2) of a network at parameters θ.

  Args:
    model: a network of `ntk_lab.layers` (e.g. an `MLP`), a `centered` or linearized one, or any
      ``apply_fn(params, x) -> (N, O)``.
    params: the parameters θ (for a network, only its trainable layers contribute).
    x1: inputs of shape (N1, *in_shape).
    x2: inputs of shape (N2, *in_shape); ``None`` means x1, and the symmetry Θ(x, x')ᵀ = Θ(x', x)
      is used (one set of per-point features, and only the upper tiles when blocked).
    method: ``"structured"`` (networks whose trainable layers declare their term), ``"jacobian"``,
      ``"ntvp"`` or ``"auto"`` (structured where it applies, otherwise Jacobian contraction if
      its Jacobians fit ``memory_budget``, else ntvp).
    trace_outputs: if True, return the mean of the O diagonal output blocks, (1/O) Σ_a Θ_aa,
      NT's convention (for any O it estimates the same scalar kernel as the analytic limit);
      if False, the full (N1, N2, O, O) kernel.
    diagonal: if True, only Θ(x_i, x_i) for x2 None, or Θ(x1_i, x2_i) when x2 has as many points
      (NT's ``diagonal_axes=(0,)``), without forming N × N: shape (N,), or (N, O, O).
    per_layer: if True, prepend an axis with each layer's contribution Θ_l (they sum to Θ): one
      per layer with params, in the network's order (zero for frozen ones). For a plain apply_fn
      the "layers" are the top-level entries of a list/tuple/dict `params`.
    tile_size: tile side B: x1 × x2 is evaluated in B × B tiles, one at a time (with
      ``diagonal``, the Jacobian and ntvp routes take B pairs at a time). ``None`` picks one tile
      if the problem fits ``memory_budget`` bytes of temporaries, else the largest B that does.
    memory_budget: bytes of temporaries one tile may use when ``tile_size`` is None.

  Returns:
    An array of shape (N1, N2) — or (N1, N2, O, O) with ``trace_outputs=False`` — with
    ``(L, …)`` in front when ``per_layer``; with ``diagonal``, (N1,) or (N1, O, O).

  Example:
    >>> import jax, ntk_lab as nl
    >>> net = nl.MLP((128,), activation="relu", b_std=None)
    >>> params = net.init(jax.random.PRNGKey(0), 3)
    >>> x = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    >>> nl.empirical_ntk(net, params, x).shape
    (5, 5)
    >>> nl.empirical_ntk(net, params, x, x[:2], method="jacobian", per_layer=True).shape
    (2, 5, 2)
    >>> nl.empirical_ntk(net, params, x, diagonal=True).shape
    (5,)
  """
  _checks.choice(method, "method", METHODS)
  trace_outputs = _checks.boolean(trace_outputs, "trace_outputs")
  diagonal = _checks.boolean(diagonal, "diagonal")
  per_layer = _checks.boolean(per_layer, "per_layer")
  if tile_size is not None:
    tile_size = _checks.positive_int(tile_size, "tile_size")
  _checks.memory_budget(memory_budget)
  # Centring does not change Θ (f(x; θ₀) is constant in θ), so a centred model's base is used;
  # a linearized model's NTK is its base's at the expansion point, whatever θ is.
  base = model
  while isinstance(base, Wrapper):
    if isinstance(base, Linearized):
      params = base.params0
    base = base.model
  apply_fn = apply_fn_of(base)
  _checks.finite_tree(params, "params")
  net = base if isinstance(base, Layer) else None
  if net is not None:
    x1, x2 = net.check_inputs(params, x1, x2)
  else:
    x1, x2 = _general_inputs(x1, x2)
  _check_pairs(diagonal, x1, x2)
  out_shape = _output_shape(net, apply_fn, params, x1)
  if len(out_shape.shape) != 2 or out_shape.shape[0] != 1:
    raise ValueError(
      f"model: apply_fn(params, x) must return shape (N, O); for 1 point it returned "
      f"{out_shape.shape}. Wrap it, e.g. lambda p, x: f(p, x).reshape(len(x), -1)."
    )
  n_out = out_shape.shape[1]
  n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
  why_not = "it is not a network of ntk_lab layers" if net is None else _why_not_structured(net, params, x1)
  if method == "structured" and why_not:
    raise ValueError(
      f"method='structured': {why_not}. Use method='jacobian', 'ntvp' or 'auto' (which picks one)."
    )
  if method == "auto":
    method = "structured" if not why_not else _cheaper_general_method(params, n1, n2, n_out, memory_budget)
  if net is not None:
    groups = tuple(range(len(net.param_leaves())))
  else:
    groups = _top_level_groups(params)
    if per_layer and groups is None:
      raise ValueError(
        "per_layer=True: params must be a list, tuple or dict whose top-level entries are the "
        f"layers, got {type(params).__name__}."
      )
  n_terms = len(groups) if per_layer else 1
  itemsize = jnp.dtype(x1.dtype).itemsize
  if tile_size is None and diagonal:
    tile_size = _auto_pairs(method, n1, _n_params(params), n_out, itemsize, memory_budget)
  elif tile_size is None:
    tile_size = _auto_block(
      method, n1, n2, _n_params(params), n_out, trace_outputs, n_terms, itemsize, memory_budget
    )
  out_entries = (n1 if diagonal else n1 * n2) * (1 if trace_outputs else n_out * n_out) * n_terms
  _tiling.check_fits("empirical_ntk", n1, n2, temp_bytes=0, out_bytes=out_entries * itemsize)

  if method == "structured":
    if diagonal:
      out = _structured_diagonal(net, params, x1, x2, trace=trace_outputs, per_layer=per_layer)
    else:
      out = _structured(net, params, x1, x2, trace=trace_outputs, per_layer=per_layer, block=tile_size)
    return _checks.finite_result(out, "empirical_ntk", _OVERFLOW)
  theta, const = split_trainable(base, params)
  if net is not None:
    trainable = tuple(g for g, (leaf, _) in enumerate(net.param_leaves()) if leaf.trainable)
  out = _general(
    apply_fn,
    net,
    theta,
    const,
    x1,
    x2,
    method=method,
    trace=trace_outputs,
    per_layer=per_layer,
    block=tile_size,
    groups=trainable if net is not None else groups,
    n_groups=len(groups) if groups is not None else None,
    diagonal=diagonal,
  )
  return _checks.finite_result(out, "empirical_ntk", _OVERFLOW)


def _shape_key(params, x1):
  """(per-point shape, dtype, treedef, leaf shapes): what a network's traced forward pass depends on."""
  shapes, tree = jax.tree.flatten(
    jax.tree.map(lambda p: jax.ShapeDtypeStruct(jnp.shape(p), jnp.result_type(p)), params)
  )
  return tuple(x1.shape[1:]), x1.dtype, tree, tuple(shapes)


def _output_shape(net, apply_fn, params, x1):
  """The output shape of one point, traced once per network and shapes for ntk_lab networks (a
  trace per call cost ~10 ms, 10 % of a 1000-point structured NTK)."""
  if net is None:
    return jax.eval_shape(apply_fn, params, x1[:1])
  return _output_shape_for(net, *_shape_key(params, x1))


@functools.lru_cache(maxsize=256)
def _output_shape_for(net, in_shape, dtype, tree, shapes):
  x = jax.ShapeDtypeStruct((1, *in_shape), dtype)
  return jax.eval_shape(net.apply, jax.tree.unflatten(tree, shapes), x)


def _why_not_structured(net, params, x1) -> str | None:
  """Why the structured route cannot take this network (None when it can): a trainable layer
  without a term of its own, or one whose term does not apply to its inputs' shape."""
  for leaf, _ in net.param_leaves():
    if leaf.trainable and not leaf.has_ntk_term:
      return f"layer {leaf!r} declares no structured term of its own"
  return _why_not_for_shapes(net, *_shape_key(params, x1))


@functools.lru_cache(maxsize=256)
def _why_not_for_shapes(net, in_shape, dtype, tree, shapes):
  """`_why_not_structured`'s shape check, once per network and shapes (tracing the forward pass
  on every call cost milliseconds)."""
  taps = Taps()
  x = jax.ShapeDtypeStruct((1, *in_shape), dtype)
  jax.eval_shape(lambda p, x: net.forward(p, x, taps), jax.tree.unflatten(tree, shapes), x)
  for layer, h in zip(taps.layers, taps.inputs):
    if not layer.supports_ntk_term(tuple(h.shape[1:])):
      return f"layer {layer!r} has no structured term for inputs of per-point shape {tuple(h.shape[1:])}"
  return None


_OVERFLOW = (
  "Rescale the inputs (Θ grows like |x|² per layer), compute in float64, or check the "
  "activation for overflow at these pre-activations."
)


def empirical_nngp(model, params, x1, x2=None, *, trace_outputs: bool = True, diagonal: bool = False):
  """The empirical NNGP kernel K(x1, x2) = f(x1; θ) f(x2; θ)ᵀ of one network (NT's `empirical_nngp_fn`).

  Over random θ₀ its mean is the output covariance, whose infinite-width limit is the NNGP kernel
  ``analytic_kernel(...).nngp`` (the same for every output).

  Args:
    model: a network of `ntk_lab.layers` (e.g. an `MLP`), a wrapper of one (`centered`,
      linearized) or any ``apply_fn(params, x) -> (N, O)``.
    params: the parameters θ at which f is evaluated.
    x1: inputs of shape (N1, …); x2: inputs (N2, …) or None for x1.
    trace_outputs: if True, the mean over the O outputs, K = (1/O) Σ_a f_a(x1) f_a(x2) (NT's
      ``trace_axes=(-1,)``, which also divides by O); if False, every pair of outputs (…, O, O).
    diagonal: if True, only K(x_i, x_i) for x2 None, or K(x1_i, x2_i) when x2 has as many points.

  Returns:
    An array of shape (N1, N2), or (N1, N2, O, O) with ``trace_outputs=False``; with ``diagonal``,
    (N1,) or (N1, O, O).

  Example:
    >>> import jax, ntk_lab as nl
    >>> net = nl.MLP((32,), out_dim=3, activation="erf")
    >>> params = net.init(jax.random.PRNGKey(0), 2)
    >>> x = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    >>> nl.empirical_nngp(net, params, x).shape, nl.empirical_nngp(net, params, x, diagonal=True).shape
    ((4, 4), (4,))
  """
  apply_fn = apply_fn_of(model)
  root = model.root if isinstance(model, Wrapper) else model
  trace_outputs = _checks.boolean(trace_outputs, "trace_outputs")
  diagonal = _checks.boolean(diagonal, "diagonal")
  _checks.finite_tree(params, "params")
  if isinstance(root, Layer):
    x1, x2 = root.check_inputs(params, x1, x2)
  else:
    x1, x2 = _general_inputs(x1, x2)
  _check_pairs(diagonal, x1, x2)
  return _checks.finite_result(
    _nngp(apply_fn, params, x1, x2, trace_outputs, diagonal), "empirical_nngp", _OVERFLOW_NNGP
  )


_OVERFLOW_NNGP = (
  "Rescale the inputs (the outputs grow with |x| and W_std per layer), compute in float64, or check "
  "the activation for overflow at these pre-activations."
)


def _nngp(apply_fn, params, x1, x2, trace_outputs, diagonal):
  f1 = apply_fn(params, x1)
  if f1.ndim != 2 or f1.shape[0] != x1.shape[0]:
    raise ValueError(
      f"model: apply_fn(params, x) must return shape (N, O); for {x1.shape[0]} points "
      f"it returned {f1.shape}. Wrap it, e.g. lambda p, x: f(p, x).reshape(len(x), -1)."
    )
  f2 = f1 if x2 is None else apply_fn(params, x2)
  n_out = f1.shape[1]
  if diagonal:
    return jnp.sum(f1 * f2, axis=1) / n_out if trace_outputs else f1[:, :, None] * f2[:, None, :]
  if trace_outputs:
    return f1 @ f2.T / n_out
  return f1[:, None, :, None] * f2[None, :, None, :]


# ----------------------------------------------------------------------------- helpers
def _general_inputs(x1, x2):
  x1 = _checks.as_batch(x1, "x1")
  if x2 is not None:
    x2 = _checks.as_batch(x2, "x2")
    if x1.shape[1:] != x2.shape[1:]:
      raise ValueError(f"x2: per-point shape {x2.shape[1:]} differs from x1's {x1.shape[1:]}.")
  return x1, x2


def _check_pairs(diagonal, x1, x2):
  if diagonal and x2 is not None and x2.shape[0] != x1.shape[0]:
    raise ValueError(
      f"x2: diagonal=True pairs x1[i] with x2[i], so both need the same number of "
      f"points; got {x1.shape[0]} and {x2.shape[0]}. Pass x2=None for the kernel at (x_i, x_i)."
    )


def _top_level_groups(params):
  if isinstance(params, (list, tuple)):
    return tuple(range(len(params)))
  if isinstance(params, dict):
    return tuple(sorted(params))
  return None


def _n_params(params) -> int:
  return sum(int(np.prod(l.shape)) for l in jax.tree_util.tree_leaves(params))


def _cheaper_general_method(params, n1, n2, n_out, budget):
  # Jacobian contraction costs ~3·FP·O·(N1+N2) + 2·N1·N2·O·P FLOPs against ntvp's ~4·FP·O·N2·(N1+N2)
  # (FP ≈ 2P for dense layers), so it is cheaper whenever its Jacobians, O·P numbers per point, fit.
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  jac_bytes = (n1 + n2) * n_out * _n_params(params) * itemsize
  return "jacobian" if jac_bytes <= budget else "ntvp"


def _auto_block(method, n1, n2, n_params, n_out, trace, n_terms, itemsize, budget):
  """The tile side for `tile_size=None`: None if one tile fits the budget."""
  out = 1 if trace else n_out * n_out
  if method == "structured":  # two Gram blocks, their product and the running sum, per term
    tile_bytes = lambda B: B * B * itemsize * out * (4 + 2 * n_terms)
  elif method == "jacobian":  # two B-point Jacobians of O·P numbers (and jacrev's own copy)
    tile_bytes = lambda B: itemsize * (B * B * out * 2 * n_terms + 4 * B * n_out * n_params)
  else:  # ntvp
    tile_bytes = lambda B: itemsize * B * B * n_out * n_out * 3 * n_terms
  return _tiling.choose_block(n1, n2, tile_bytes, budget)


def _auto_pairs(method, n, n_params, n_out, itemsize, budget):
  """Pairs per step of the diagonal Jacobian/ntvp routes: None (all at once) if they fit the budget."""
  if method == "structured":
    return None
  per_pair = itemsize * (4 * n_out * n_params if method == "jacobian" else 3 * n_out * n_params)
  if n * per_pair <= budget:
    return None
  return max(1, int(budget // per_pair))


def structured_flops(
  model,
  in_dim: int,
  n1: int,
  n2: int | None = None,
  *,
  trace_outputs: bool = True,
  tile_size: int | None = None,
  memory_budget: float = _tiling.DEFAULT_MEMORY_BUDGET,
  itemsize: int = 4,
) -> int:
  """Matrix-product FLOPs that ``empirical_ntk(model, ..., method="structured")`` executes.

  Counts the forward pass, the backprop signals Δ_l and the per-tile Gram products (only the upper
  tiles when x2 is None and the kernel is blocked), as 2·m·n·k per (m × k)·(k × n) product.
  Elementwise work is not counted, so achieved/peak rates computed from it are conservative.
  """
  if not hasattr(model, "widths"):
    raise TypeError(f"model: structured_flops counts an ntk_lab.MLP's products, got {type(model).__name__}.")
  widths = model.widths(in_dim)
  O, L = model.out_dim, model.n_layers
  symmetric = n2 is None
  n2 = n1 if symmetric else n2
  lowest = model.trainable.index(True)
  points = n1 if symmetric else n1 + n2
  flops = sum(2 * points * a * b for a, b in zip(widths[:-1], widths[1:]))
  flops += sum(2 * points * O * widths[l + 1] * widths[l + 2] for l in range(lowest, L - 2))
  o_pairs = O if trace_outputs else O * O
  per_pair = sum(
    2 * widths[l] + (2 * o_pairs * widths[l + 1] if l < L - 1 else 0) for l in range(L) if model.trainable[l]
  )
  if tile_size is None:  # the structured tile estimate does not depend on the parameter count
    tile_size = _auto_block("structured", n1, n2, 0, O, trace_outputs, 1, itemsize, memory_budget)
  if tile_size is None or (tile_size >= n1 and tile_size >= n2):
    pairs = n1 * n2
  else:
    nb1, nb2 = -(-n1 // tile_size), -(-n2 // tile_size)
    tiles = nb1 * (nb1 + 1) // 2 if symmetric else nb1 * nb2
    pairs = tiles * tile_size * tile_size
  return int(flops + pairs * per_pair)


# ----------------------------------------------------------------------- structured
def _features(net, params, x):
  """Per-point ingredients of every trainable layer's term: its inputs h (N, *in_shape) and the
  signals δ = ∂f/∂(its output), (N, O, *out_shape), by one `jax.vjp` per output of the network
  with a zero perturbation added to each such layer's output (`Taps`)."""
  shapes = Taps()
  jax.eval_shape(lambda p, x: net.forward(p, x, shapes), params, x)
  zeros = [jnp.zeros(s.shape, s.dtype) for s in shapes.output_shapes]

  def forward(perturbations):
    taps = Taps(perturbations)
    return net.forward(params, x, taps), taps.inputs

  out, pullback, inputs = jax.vjp(forward, zeros, has_aux=True)
  n, n_out = out.shape
  basis = jnp.broadcast_to(jnp.eye(n_out, dtype=out.dtype)[:, None, :], (n_out, n, n_out))
  (signals,) = jax.vmap(pullback)(basis)  # each (O, N, *out_shape)
  return inputs, [jnp.moveaxis(d, 0, 1) for d in signals]


def _terms(net, params, f1, f2, *, trace, per_layer, paired):
  """Θ as the sum of the trainable layers' own terms (or, ``per_layer``, their stack with zeros
  where a layer is frozen)."""
  (h1, d1), (h2, d2) = f1, f2
  terms, i = [], 0
  for (leaf, _), p in zip(net.param_leaves(), net.layer_params(params)):
    if not leaf.trainable:
      terms.append(None)
      continue
    terms.append(leaf.ntk_term(p, h1[i], d1[i], h2[i], d2[i], paired=paired, trace=trace))
    i += 1
  if not per_layer:
    return sum(t for t in terms if t is not None)
  ref = next(t for t in terms if t is not None)
  return jnp.stack([jnp.zeros_like(ref) if t is None else t for t in terms], axis=1 if paired else 2)


@functools.partial(jax.jit, static_argnames=("net", "trace", "per_layer", "block"))
def _structured(net, params, x1, x2, *, trace, per_layer, block):
  feats1 = _features(net, params, x1)
  feats2 = feats1 if x2 is None else _features(net, params, x2)
  tile = functools.partial(_terms, net, params, trace=trace, per_layer=per_layer, paired=False)
  out = _tiling.tiled(
    tile, feats1, feats2, block, symmetric=x2 is None, swap_axes=None if trace else (-1, -2)
  )
  return jnp.moveaxis(out, 2, 0) if per_layer else out


@functools.partial(jax.jit, static_argnames=("net", "trace", "per_layer"))
def _structured_diagonal(net, params, x1, x2, *, trace, per_layer):
  """Θ(x1_i, x2_i) from the same per-point features: row-wise inner products instead of Grams."""
  feats1 = _features(net, params, x1)
  feats2 = feats1 if x2 is None else _features(net, params, x2)
  out = _terms(net, params, feats1, feats2, trace=trace, per_layer=per_layer, paired=True)
  return jnp.moveaxis(out, 1, 0) if per_layer else out


# --------------------------------------------------------------- jacobian and ntvp
@functools.partial(
  jax.jit,
  static_argnames=(
    "apply_fn",
    "net",
    "method",
    "trace",
    "per_layer",
    "block",
    "groups",
    "n_groups",
    "diagonal",
  ),
)
def _general(
  apply_fn, net, theta, const, x1, x2, *, method, trace, per_layer, block, groups, n_groups, diagonal=False
):
  """Θ of f(θ, x) = apply_fn(θ, x), or apply_fn(merge(θ, const), x) for a network with frozen layers.
  ``groups``: the layers (indices into the network's `param_leaves`, or top-level keys of a plain
  apply_fn's params) whose terms are computed when ``per_layer``."""
  if net is None:
    f = apply_fn
  else:
    merge = trainable_merge(net)
    f = lambda th, x: apply_fn(merge(th, const), x)
  kernel = _jacobian_kernel if method == "jacobian" else _ntvp_kernel
  if not per_layer:
    parts = [(theta, lambda th: th)]
  elif net is None:
    parts = [_restrict(theta, g) for g in groups]
  else:
    masks = [mask for _, mask in net.param_leaves()]
    parts = [_restrict_to_layer(theta, masks[g]) for g in groups]

  def tile(xa, xb):
    terms = [kernel(lambda q, x, e=embed: f(e(q), x), th_g, xa, xb, trace) for th_g, embed in parts]
    if not per_layer:
      return terms[0]
    if n_groups != len(groups):  # frozen layers contribute zero where they stand
      full = [jnp.zeros_like(terms[0])] * n_groups
      for g, t in zip(groups, terms):
        full[g] = t
      terms = full
    return jnp.stack(terms, axis=2)

  if diagonal:  # one 1 × 1 tile per pair (x1_i, x2_i), B pairs at a time

    def pair(xs):
      xa = xs[0][None]  # the same array twice for x2 None, so the Jacobian is computed once
      return tile(xa, xa if x2 is None else xs[1][None])[0, 0]

    xs = (x1, x1 if x2 is None else x2)
    out = jax.vmap(pair)(xs) if block is None else jax.lax.map(pair, xs, batch_size=block)
    return jnp.moveaxis(out, 1, 0) if per_layer else out
  out = _tiling.tiled(
    tile, x1, x1 if x2 is None else x2, block, symmetric=x2 is None, swap_axes=None if trace else (-1, -2)
  )
  return jnp.moveaxis(out, 2, 0) if per_layer else out


def _restrict_to_layer(theta, mask):
  """(θ_l, embed) for one layer of a network: its params, and a map back with the rest fixed."""
  own, rest = eqx.partition(theta, mask)
  return own, lambda th_l: eqx.combine(th_l, rest)


def _restrict(theta, g):
  """(θ_g, embed): the group-g part of θ, and a map back to a full θ with the rest held fixed."""

  def embed(th_g):
    if isinstance(theta, (list, tuple)):
      new = list(theta)
      new[g] = th_g
      return type(theta)(new) if isinstance(theta, tuple) else new
    return {**theta, g: th_g}

  return theta[g], embed


def _jacobian_kernel(f, theta, x1, x2, trace):
  def jac(x):  # leaves of shape (N, O, P_leaf)
    per_point = jax.vmap(lambda xi: jax.jacrev(lambda th: f(th, xi[None])[0])(theta))(x)
    return [l.reshape(l.shape[0], l.shape[1], -1) for l in jax.tree_util.tree_leaves(per_point)]

  J1 = jac(x1)
  J2 = J1 if x2 is x1 else jac(x2)
  n_out = J1[0].shape[1]
  if trace:
    return sum(jnp.einsum("iap,jap->ij", a, b) for a, b in zip(J1, J2)) / n_out
  return sum(jnp.einsum("iap,jbp->ijab", a, b) for a, b in zip(J1, J2))


def _ntvp_kernel(f, theta, x1, x2, trace, chunk: int = 32):
  out1, jvp1 = jax.linearize(lambda th: f(th, x1), theta)
  out2, vjp2 = jax.vjp(lambda th: f(th, x2), theta)
  n1, n_out = out1.shape
  n2 = out2.shape[0]

  def column(k):  # Θ(x1, x2)[:, :, j, b] for the basis cotangent e_{k = j·O + b}
    e = jnp.zeros((n2 * n_out,), out2.dtype).at[k].set(1).reshape(n2, n_out)
    return jvp1(vjp2(e)[0])

  cols = jax.lax.map(column, jnp.arange(n2 * n_out), batch_size=min(chunk, n2 * n_out))
  full = jnp.transpose(cols.reshape(n2, n_out, n1, n_out), (2, 0, 3, 1))  # (N1, N2, a, b)
  if trace:
    return jnp.trace(full, axis1=2, axis2=3) / n_out
  return full
