"""The empirical neural tangent kernel of a finite network.

    Θ(x, x')_{ab} = Σ_p ∂f_a(x; θ)/∂θ_p · ∂f_b(x'; θ)/∂θ_p            (seed 000 eq 5; seed 002 H(t))

summed over the trainable parameters only. Three independent routes compute it:

* ``"jacobian"``: per-point Jacobians (vmapped `jax.jacrev`), contracted leaf by leaf.
* ``"ntvp"``: NTK-vector products Θ v = J₁(J₂ᵀ v), `jax.jvp` (via `jax.linearize`) of
  `jax.vjp`, for one basis vector v at a time in small batches; no Jacobian is held.
* ``"structured"``: for an `MLP`, the layerwise closed form (seed 000 eqs 5–7)
  Θ = Σ_l (c_W,l · H_{l−1}H'_{l−1}ᵀ + c_b,l) ⊙ (Δ_l Δ'_lᵀ), from activations H and backprop
  signals Δ computed once per point. Almost all of its work is large matrix products.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks, _tiling
from ntk_lab.linearize import Linearized
from ntk_lab.mlp import MLP, Wrapper, apply_fn_of

__all__ = ["empirical_ntk", "structured_flops", "METHODS"]

METHODS = ("auto", "structured", "jacobian", "ntvp")


def empirical_ntk(model, params, x1, x2=None, *, method: str = "auto", trace_outputs: bool = True,
                  per_layer: bool = False, batch_size: int | None = None,
                  memory_budget: float = _tiling.DEFAULT_MEMORY_BUDGET):
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
    per_layer: if True, prepend an axis with each layer's contribution Θ_l (they sum to Θ). For a
      plain apply_fn the "layers" are the top-level entries of a list/tuple/dict `params`.
    batch_size: tile side B: x1 × x2 is evaluated in B × B tiles, one at a time. ``None`` picks
      one tile if the problem fits ``memory_budget`` bytes of temporaries, else the largest B that does.
    memory_budget: bytes of temporaries one tile may use when ``batch_size`` is None.

  Returns:
    An array of shape (N1, N2) — or (N1, N2, O, O) with ``trace_outputs=False`` — with
    ``(L, …)`` in front when ``per_layer``.

  Example:
    >>> import jax, ntk_lab as nl
    >>> net = nl.MLP((128,), activation="relu", b_std=None)
    >>> params = net.init(jax.random.PRNGKey(0), 3)
    >>> x = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    >>> nl.empirical_ntk(net, params, x).shape
    (5, 5)
    >>> nl.empirical_ntk(net, params, x, x[:2], method="jacobian", per_layer=True).shape
    (2, 5, 2)
  """
  _checks.choice(method, "method", METHODS)
  if batch_size is not None:
    batch_size = _checks.positive_int(batch_size, "batch_size")
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
        f"{type(base).__name__}. Use method='jacobian', 'ntvp' or 'auto' for a general apply_fn.")

  if is_mlp:
    in_dim = base.check_params(params)
    x1, x2 = _checks.input_pair(x1, x2, in_dim)
  else:
    x1, x2 = _general_inputs(x1, x2)
  out_shape = jax.eval_shape(apply_fn, params, x1[:1])
  if len(out_shape.shape) != 2 or out_shape.shape[0] != 1:
    raise ValueError(
        f"model: apply_fn(params, x) must return shape (N, O); for 1 point it returned "
        f"{out_shape.shape}. Wrap it, e.g. lambda p, x: f(p, x).reshape(len(x), -1).")
  n_out = out_shape.shape[1]

  n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
  if method == "auto":
    method = "structured" if is_mlp else _cheaper_general_method(params, n1, n2, n_out, memory_budget)
  if per_layer and not is_mlp and _top_level_groups(params) is None:
    raise ValueError(
        "per_layer=True: params must be a list, tuple or dict whose top-level entries are the "
        f"layers, got {type(params).__name__}.")
  if batch_size is None:
    n_terms = (base.n_layers if is_mlp else len(_top_level_groups(params))) if per_layer else 1
    batch_size = _auto_block(method, n1, n2, _n_params(params), n_out, trace_outputs, n_terms,
                             jnp.dtype(x1.dtype).itemsize, memory_budget)

  if method == "structured":
    out = _structured(base, params, x1, x2, trace=trace_outputs, per_layer=per_layer, block=batch_size)
    return _checks.finite_result(out, "empirical_ntk", _OVERFLOW)
  if is_mlp:
    theta, const = base.split(params)
    groups = tuple(i for i, t in enumerate(base.trainable) if t)
    n_groups = base.n_layers
  else:
    theta, const = params, None
    groups = _top_level_groups(params) if per_layer else None
    n_groups = None if groups is None else len(groups)
  out = _general(apply_fn, base if is_mlp else None, theta, const, x1, x2, method=method,
                 trace=trace_outputs, per_layer=per_layer, block=batch_size, groups=groups,
                 n_groups=n_groups)
  return _checks.finite_result(out, "empirical_ntk", _OVERFLOW)


_OVERFLOW = ("Rescale the inputs (Θ grows like |x|² per layer), compute in float64, or check the "
             "activation for overflow at these pre-activations.")


# ----------------------------------------------------------------------------- helpers
def _general_inputs(x1, x2):
  x1 = _checks.as_batch(x1, "x1")
  if x2 is not None:
    x2 = _checks.as_batch(x2, "x2")
    if x1.shape[1:] != x2.shape[1:]:
      raise ValueError(f"x2: per-point shape {x2.shape[1:]} differs from x1's {x1.shape[1:]}.")
  return x1, x2


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
  """The tile side for `batch_size=None`: None if one tile fits the budget."""
  out = 1 if trace else n_out * n_out
  if method == "structured":  # two Gram blocks, their product and the running sum, per term
    tile_bytes = lambda B: B * B * itemsize * out * (4 + 2 * n_terms)
  elif method == "jacobian":  # two B-point Jacobians of O·P numbers (and jacrev's own copy)
    tile_bytes = lambda B: itemsize * (B * B * out * 2 * n_terms + 4 * B * n_out * n_params)
  else:  # ntvp
    tile_bytes = lambda B: itemsize * B * B * n_out * n_out * 3 * n_terms
  return _tiling.choose_block(n1, n2, tile_bytes, budget)


def structured_flops(model: MLP, in_dim: int, n1: int, n2: int | None = None, *,
                     trace_outputs: bool = True, batch_size: int | None = None,
                     memory_budget: float = _tiling.DEFAULT_MEMORY_BUDGET, itemsize: int = 4) -> int:
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
  per_pair = sum(2 * widths[l] + (2 * o_pairs * widths[l + 1] if l < L - 1 else 0)
                 for l in range(L) if model.trainable[l])
  if batch_size is None:  # the structured tile estimate does not depend on the parameter count
    batch_size = _auto_block("structured", n1, n2, 0, O, trace_outputs, 1, itemsize, memory_budget)
  if batch_size is None or (batch_size >= n1 and batch_size >= n2):
    pairs = n1 * n2
  else:
    nb1, nb2 = -(-n1 // batch_size), -(-n2 // batch_size)
    tiles = nb1 * (nb1 + 1) // 2 if symmetric else nb1 * nb2
    pairs = tiles * batch_size * batch_size
  return int(flops + pairs * per_pair)


# ----------------------------------------------------------------------- structured
@functools.partial(jax.jit, static_argnames=("model", "trace", "per_layer", "block"))
def _structured(model: MLP, params, x1, x2, *, trace, per_layer, block):
  feats1 = model.ntk_features(params, x1)
  feats2 = feats1 if x2 is None else model.ntk_features(params, x2)
  fan_in = [p["W"].shape[0] for p in params]
  scales = [model.ntk_scales(l, n) if t else None
            for l, (n, t) in enumerate(zip(fan_in, model.trainable))]
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

  out = _tiling.tiled(tile, feats1, feats2, block, symmetric=x2 is None,
                      swap_axes=None if trace else (-1, -2))
  return jnp.moveaxis(out, 2, 0) if per_layer else out


# --------------------------------------------------------------- jacobian and ntvp
@functools.partial(jax.jit, static_argnames=("apply_fn", "mlp", "method", "trace", "per_layer",
                                             "block", "groups", "n_groups"))
def _general(apply_fn, mlp, theta, const, x1, x2, *, method, trace, per_layer, block, groups, n_groups):
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

  out = _tiling.tiled(tile, x1, x1 if x2 is None else x2, block, symmetric=x2 is None,
                      swap_axes=None if trace else (-1, -2))
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
