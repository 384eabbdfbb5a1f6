"""The empirical neural tangent kernel and NNGP kernel of a finite network.

    Θ(x, x')_{ab} = Σ_p ∂f_a(x; θ)/∂θ_p · ∂f_b(x'; θ)/∂θ_p            (Jacot et al. 2018)

summed over the trainable parameters only (the Gram matrix H(t) of Du et al. 2019 when θ = θ(t)),
and the empirical NNGP K(x, x')_{ab} = f_a(x; θ) f_b(x'; θ), a one-network sample of the output
covariance. Three independent routes compute Θ:

* ``"jacobian"``: per-point Jacobians (vmapped `jax.jacrev`), contracted leaf by leaf.
* ``"ntvp"``: NTK-vector products Θ v = J₁(J₂ᵀ v), `jax.jvp` (via `jax.linearize`) of
  `jax.vjp`, for one basis vector v at a time in small batches; no Jacobian is held.
* ``"structured"``: for an `MLP`, the layerwise closed form (the chain rule per layer)
  Θ = Σ_l (c_W,l · H_{l−1}H'_{l−1}ᵀ + c_b,l) ⊙ (Δ_l Δ'_lᵀ), from activations H and backprop
  signals Δ computed once per point. Almost all of its work is large matrix products.

With ``diagonal=True`` each route computes only the N values at the pairs (x_i, x_i), or
(x1_i, x2_i), without an N × N array (NT's ``diagonal_axes=(0,)``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks, _tiling
from ntk_lab.linearize import Linearized
from ntk_lab.mlp import MLP, Wrapper, apply_fn_of

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
    model: an `MLP`, a `centered` model, or any ``apply_fn(params, x) -> (N, O)``.
    params: the parameters θ (for an MLP, only its trainable layers contribute).
    x1: inputs of shape (N1, in_dim).
    x2: inputs of shape (N2, in_dim); ``None`` means x1, and the symmetry Θ(x, x')ᵀ = Θ(x', x)
      is used (one set of per-point features, and only the upper tiles when blocked).
    method: ``"structured"`` (MLPs only), ``"jacobian"``, ``"ntvp"`` or ``"auto"`` (structured
      for an MLP, otherwise Jacobian contraction if its Jacobians fit ``memory_budget``, else ntvp).
    trace_outputs: if True, return the mean of the O diagonal output blocks, (1/O) Σ_a Θ_aa,
      NT's convention (for any O it estimates the same scalar kernel as the analytic limit);
      if False, the full (N1, N2, O, O) kernel.
    diagonal: if True, only Θ(x_i, x_i) for x2 None, or Θ(x1_i, x2_i) when x2 has as many points
      (NT's ``diagonal_axes=(0,)``), without forming N × N: shape (N,), or (N, O, O).
    per_layer: if True, prepend an axis with each layer's contribution Θ_l (they sum to Θ). For a
      plain apply_fn the "layers" are the top-level entries of a list/tuple/dict `params`.
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
  is_mlp = isinstance(base, MLP)
  if method == "structured" and not is_mlp:
    raise ValueError(
      "method='structured' needs an ntk_lab.MLP (or ntk_lab.centered(MLP, params0)); got "
      f"{type(base).__name__}. Use method='jacobian', 'ntvp' or 'auto' for a general apply_fn."
    )

  if is_mlp:
    in_dim = base.check_params(params)
    x1, x2 = _checks.input_pair(x1, x2, in_dim)
  else:
    x1, x2 = _general_inputs(x1, x2)
  _check_pairs(diagonal, x1, x2)
  out_shape = jax.eval_shape(apply_fn, params, x1[:1])
  if len(out_shape.shape) != 2 or out_shape.shape[0] != 1:
    raise ValueError(
      f"model: apply_fn(params, x) must return shape (N, O); for 1 point it returned "
      f"{out_shape.shape}. Wrap it, e.g. lambda p, x: f(p, x).reshape(len(x), -1)."
    )
  n_out = out_shape.shape[1]

  n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
  if method == "auto":
    method = "structured" if is_mlp else _cheaper_general_method(params, n1, n2, n_out, memory_budget)
  if per_layer and not is_mlp and _top_level_groups(params) is None:
    raise ValueError(
      "per_layer=True: params must be a list, tuple or dict whose top-level entries are the "
      f"layers, got {type(params).__name__}."
    )
  if tile_size is None and diagonal:
    tile_size = _auto_pairs(method, n1, _n_params(params), n_out, jnp.dtype(x1.dtype).itemsize, memory_budget)
  elif tile_size is None:
    n_terms = (base.n_layers if is_mlp else len(_top_level_groups(params))) if per_layer else 1
    tile_size = _auto_block(
      method,
      n1,
      n2,
      _n_params(params),
      n_out,
      trace_outputs,
      n_terms,
      jnp.dtype(x1.dtype).itemsize,
      memory_budget,
    )
  _tiling.check_fits(
    "empirical_ntk",
    n1,
    n2,
    temp_bytes=0,
    out_bytes=n1
    * n2
    * jnp.dtype(x1.dtype).itemsize
    * (1 if trace_outputs else n_out * n_out)
    * (base.n_layers if per_layer and is_mlp else 1),
  )

  if method == "structured":
    if diagonal:
      out = _structured_diagonal(base, params, x1, x2, trace=trace_outputs, per_layer=per_layer)
    else:
      out = _structured(base, params, x1, x2, trace=trace_outputs, per_layer=per_layer, block=tile_size)
    return _checks.finite_result(out, "empirical_ntk", _OVERFLOW)
  if is_mlp:
    theta, const = base.split(params)
    groups = tuple(i for i, t in enumerate(base.trainable) if t)
    n_groups = base.n_layers
  else:
    theta, const = params, None
    groups = _top_level_groups(params) if per_layer else None
    n_groups = None if groups is None else len(groups)
  out = _general(
    apply_fn,
    base if is_mlp else None,
    theta,
    const,
    x1,
    x2,
    method=method,
    trace=trace_outputs,
    per_layer=per_layer,
    block=tile_size,
    groups=groups,
    n_groups=n_groups,
    diagonal=diagonal,
  )
  return _checks.finite_result(out, "empirical_ntk", _OVERFLOW)


_OVERFLOW = (
  "Rescale the inputs (Θ grows like |x|² per layer), compute in float64, or check the "
  "activation for overflow at these pre-activations."
)


def empirical_nngp(model, params, x1, x2=None, *, trace_outputs: bool = True, diagonal: bool = False):
  """The empirical NNGP kernel K(x1, x2) = f(x1; θ) f(x2; θ)ᵀ of one network (NT's `empirical_nngp_fn`).

  Over random θ₀ its mean is the output covariance, whose infinite-width limit is the NNGP kernel
  ``analytic_kernel(...).nngp`` (the same for every output).

  Args:
    model: an `MLP`, a wrapper of one (`centered`, linearized) or any ``apply_fn(params, x) -> (N, O)``.
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
  if isinstance(root, MLP):
    in_dim = root.check_params(params)
    x1, x2 = _checks.input_pair(x1, x2, in_dim)
  else:
    x1, x2 = _general_inputs(x1, x2)
  _check_pairs(diagonal, x1, x2)
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
  model: MLP,
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
@functools.partial(jax.jit, static_argnames=("model", "trace", "per_layer", "block"))
def _structured(model: MLP, params, x1, x2, *, trace, per_layer, block):
  feats1 = model.ntk_features(params, x1)
  feats2 = feats1 if x2 is None else model.ntk_features(params, x2)
  fan_in = [p["W"].shape[0] for p in params]
  scales = [model.ntk_scales(l, n) if t else None for l, (n, t) in enumerate(zip(fan_in, model.trainable))]
  n_out = model.out_dim

  def tile(f1, f2):
    (H1, D1), (H2, D2) = f1, f2
    terms = []
    for l, sc in enumerate(scales):
      if sc is None:
        terms.append(None)
        continue
      c_w, c_b = sc
      t = c_w * (H1[l] @ H2[l].T) + c_b
      if D1[l] is None:  # readout: Δ_L = I_O, whose traced mean is 1
        t = t if trace else t[:, :, None, None] * jnp.eye(n_out, dtype=t.dtype)
      elif trace:
        t = t * (D1[l].reshape(D1[l].shape[0], -1) @ D2[l].reshape(D2[l].shape[0], -1).T) / n_out
      else:
        t = t[:, :, None, None] * jnp.einsum("iaq,jbq->ijab", D1[l], D2[l])
      terms.append(t)
    if not per_layer:
      return sum(t for t in terms if t is not None)
    ref = next(t for t in terms if t is not None)
    return jnp.stack([jnp.zeros_like(ref) if t is None else t for t in terms], axis=2)

  out = _tiling.tiled(
    tile, feats1, feats2, block, symmetric=x2 is None, swap_axes=None if trace else (-1, -2)
  )
  return jnp.moveaxis(out, 2, 0) if per_layer else out


@functools.partial(jax.jit, static_argnames=("model", "trace", "per_layer"))
def _structured_diagonal(model: MLP, params, x1, x2, *, trace, per_layer):
  """Θ(x1_i, x2_i) from the same per-point features: row-wise inner products instead of Grams."""
  H1, D1 = model.ntk_features(params, x1)
  H2, D2 = (H1, D1) if x2 is None else model.ntk_features(params, x2)
  n_out = model.out_dim
  terms = []
  for l, layer in enumerate(params):
    if not model.trainable[l]:
      terms.append(None)
      continue
    c_w, c_b = model.ntk_scales(l, layer["W"].shape[0])
    t = c_w * jnp.sum(H1[l] * H2[l], axis=1) + c_b
    if D1[l] is None:  # readout: Δ_L = I_O
      t = t if trace else t[:, None, None] * jnp.eye(n_out, dtype=t.dtype)
    elif trace:
      t = t * jnp.sum(D1[l] * D2[l], axis=(1, 2)) / n_out
    else:
      t = t[:, None, None] * jnp.einsum("iaq,ibq->iab", D1[l], D2[l])
    terms.append(t)
  if not per_layer:
    return sum(t for t in terms if t is not None)
  ref = next(t for t in terms if t is not None)
  return jnp.stack([jnp.zeros_like(ref) if t is None else t for t in terms])


# --------------------------------------------------------------- jacobian and ntvp
@functools.partial(
  jax.jit,
  static_argnames=(
    "apply_fn",
    "mlp",
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
  apply_fn, mlp, theta, const, x1, x2, *, method, trace, per_layer, block, groups, n_groups, diagonal=False
):
  """Θ of f(θ, x) = apply_fn(θ, x), or apply_fn(merge(θ, const), x) for an MLP with frozen layers."""
  if mlp is None:
    f = apply_fn
  else:
    f = lambda th, x: apply_fn(mlp.merge(th, const), x)
  kernel = _jacobian_kernel if method == "jacobian" else _ntvp_kernel
  parts = [_restrict(theta, g) for g in groups] if per_layer else [(theta, lambda th: th)]

  def tile(xa, xb):
    terms = [kernel(lambda q, x, e=embed: f(e(q), x), th_g, xa, xb, trace) for th_g, embed in parts]
    if not per_layer:
      return terms[0]
    if n_groups != len(groups):  # frozen MLP layers contribute zero where they stand
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
