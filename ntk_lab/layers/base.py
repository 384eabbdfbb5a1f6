"""The layer contract: what a layer carries, and the state its infinite-width rule maps.

A layer is a small frozen (hashable) spec, usable as a static argument of `jax.jit`, with

* ``init_params(key, in_shape, dtype) -> params``: draws its params for inputs of per-point shape
  ``in_shape``, and ``output_shape_of(in_shape)`` gives its output's per-point shape (together,
  the shape-threading ``init_fun`` of `jax.example_libraries.stax`);
* ``apply(params, x)``: its output for a batch ``x`` of shape (N, *in_shape);
* ``kernel_rule(state, ctx) -> state``: its infinite-width rule, mapping the `KernelState` of its
  input (NNGP, NTK, the per-point variances) to that of its output. One rule serves every form:
  the state holds either a tile of pairs x1 × x2 (arrays of shape (N1, N2)), the pairs
  (x1_i, x2_i) (``paired``, shape (N,)), or the points with themselves (``same``: the NNGP is then
  the variance, and the rule needs nothing else);
* optionally ``ntk_term(params, h1, d1, h2, d2, *, paired, trace)``: its own term of the empirical
  NTK, Σ_p ∂f(x)/∂p · ∂f(x')/∂p over its params p, from its inputs h (N, *in_shape) and the
  backpropagated signals d = ∂f/∂(its output), shape (N, O, *out_shape). With it the structured
  route sums per-layer terms; without it ``method="structured"`` refuses and ``"auto"`` uses
  another route.

Networks (`serial`, `parallel`) are layers too, so they nest. Traversal order — the order in
which `serial` and `parallel` visit their children — numbers a network's layers: overrides of
σ_w/σ_b and quadrature node counts are handed to the layers in that order by a `RuleContext`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from ntk_lab import _checks

__all__ = ["Layer", "KernelState", "RuleContext", "Taps", "gram"]


@dataclasses.dataclass(frozen=True)
class KernelState:
  """The infinite-width state of one layer's output, for pairs of inputs (x, x').

  Attributes:
    nngp: Σ(x, x'), the covariance of one output unit: (N1, N2) for a tile, (N,) when ``paired``
      or ``same``.
    ntk: Θ(x, x') of the same shape, or None when only the NNGP is computed.
    var1, var2: Σ(x, x) of the x1 and of the x2 points, (N1,) and (N2,) (None when ``same``).
    width: the number of units (channels) per point of this output, the fan-in of a next layer.
    is_gaussian: whether the units are Gaussian processes in the limit (after an affine layer),
      which a nonlinearity's Gaussian expectations need.
    paired: the arrays hold the pairs (x1_i, x2_i) rather than a tile.
    same: the arrays hold the pairs (x_i, x_i): Σ(x, x') is the variance itself.
    spatial: the number of spatial axes of the output (0 for vectors, 1 for sequences, 2 for
      images). Each array then has spatial axes after its batch axes (N1, N2) or (N,):
    full: the layout of those axes. False (pixel-diagonal): one axis per spatial axis, Σ at the
      pairs of equal positions, (N1, N2, H, W) for images, which is all a network that never mixes
      positions needs. True: every pair of positions, two axes per spatial axis side by side,
      (N1, N2, H, H', W, W') (neural-tangents' layout), which pooling layers need. ``var1`` and
      ``var2`` hold each point's covariances with itself in the same layout, (N, H, H', W, W').
  """

  nngp: Any
  ntk: Any
  var1: Any
  var2: Any
  width: int
  is_gaussian: bool = False
  paired: bool = False
  same: bool = False
  spatial: int = 0
  full: bool = False

  @property
  def batch_ndim(self) -> int:
    """The number of leading batch axes of the arrays: 2 for a tile, 1 for pairs or points."""
    return 1 if (self.paired or self.same) else 2

  def pixel_variances(self, own):
    """Σ(x, x) at each position, (N, *spatial), from a point's own covariances ``own`` (N, *layout)."""
    if not self.full:
      return own
    for _ in range(self.spatial):  # each call takes the diagonal of the next pair, put last
      own = jnp.diagonal(own, axis1=1, axis2=2)
    return own

  def broadcast_pixels(self, p1, p2):
    """Per-position variances of the x1 and x2 points, (N1, *spatial) and (N2, *spatial), shaped
    to broadcast against ``nngp`` (the first at the position of x, the second at that of x')."""
    return _expand(p1, self, first=True), _expand(p2, self, first=False)

  def variances(self):
    """(k11, k22): Σ(x, x) and Σ(x', x') broadcast against ``nngp``."""
    if self.same:
      if not self.full:
        return self.nngp, self.nngp
      p = self.pixel_variances(self.nngp)
      return self.broadcast_pixels(p, p)
    return self.broadcast_pixels(self.pixel_variances(self.var1), self.pixel_variances(self.var2))

  def own_state(self, own) -> KernelState:
    """The points' covariances with themselves (``var1`` or ``var2``) as a ``same`` state."""
    return dataclasses.replace(self, nngp=own, ntk=None, var1=None, var2=None, paired=True, same=True)

  def map_spatial(self, fn, *, ntk: bool = True):
    """The state with ``fn(array, batch_ndim)`` applied to Σ(x, x'), the points' own covariances
    and (``ntk``) Θ: a linear map of the spatial axes (convolution, pooling)."""
    own = lambda v: None if v is None else fn(v, 1)
    return dataclasses.replace(
      self,
      nngp=fn(self.nngp, self.batch_ndim),
      ntk=fn(self.ntk, self.batch_ndim) if (ntk and self.ntk is not None) else self.ntk,
      var1=own(self.var1),
      var2=own(self.var2),
    )

  def map_covariances(self, fn):
    """The state with ``fn`` applied to Σ(x, x'), Σ(x, x) and Σ(x', x') alike."""
    return dataclasses.replace(
      self,
      nngp=fn(self.nngp),
      var1=None if self.var1 is None else fn(self.var1),
      var2=None if self.var2 is None else fn(self.var2),
    )

  def replace(self, **changes) -> KernelState:
    return dataclasses.replace(self, **changes)


def _expand(p, state: KernelState, *, first: bool):
  """(N, S1, …, Sk) per-position values as the batch and spatial axes of ``state.nngp``."""
  n, sizes = p.shape[0], p.shape[1:]
  lead = (n,) if state.batch_ndim == 1 else ((n, 1) if first else (1, n))
  if state.full:
    spatial = sum(((s, 1) if first else (1, s) for s in sizes), ())
  else:
    spatial = tuple(sizes)
  return p.reshape(lead + spatial)


class RuleContext:
  """What a network's kernel rules share while they run, handed out in traversal order.

  Args:
    W_std, b_std: None (each layer's own σ_w, σ_b) or arrays with one value per weighted layer
      (e.g. every `Dense`), possibly traced, so that kernels can be differentiated with respect to
      them.
    nodes: quadrature nodes per nonlinearity (0 for a closed form), or None for the default.
    record: if True, each layer whose rule needs Σ(x, x) (nonlinearities, normalisations)
      records the per-position variances of its input (`variances`, `recorded_by`).
    known: None, or the variances each such layer's input has at the x1 and at the x2 points,
      ``(list for x1, list for x2)`` in the network's order, as a pass with ``record`` gave them.
      Tiles take them from here rather than carrying Σ(x, x) through every layer: computed once
      per point, not once per tile (where XLA would fuse them into every entry).
  """

  def __init__(self, *, W_std=None, b_std=None, nodes=None, record: bool = False, known=None):
    self._w, self._b, self._nodes = W_std, b_std, nodes
    self._weighted = self._nonlinear = self._known = 0
    self.record = record
    self.known = known
    self.variances: list = []
    self.recorded_by: list = []  # the layer of each entry of `variances`

  def scales(self, layer) -> tuple:
    """(σ_w, σ_b) of the next weighted layer: the override's entries, or the layer's own."""
    i = self._weighted
    self._weighted += 1
    w = layer.W_std if self._w is None else self._w[i]
    b = (layer.b_std or 0.0) if self._b is None else self._b[i]
    return w, b

  def record_variances(self, layer, pixel_variances) -> None:
    """With ``record``: keeps the per-position variances Σ(x, x) of `layer`'s input."""
    if self.record:
      self.variances.append(pixel_variances)
      self.recorded_by.append(layer)

  def next_known(self):
    """(Σ(x, x) at the x1 points, at the x2 points) of the next nonlinearity, or None."""
    if self.known is None:
      return None
    i = self._known
    self._known += 1
    return self.known[0][i], self.known[1][i]

  def nodes(self, default: int) -> int:
    """Quadrature nodes of the next nonlinearity."""
    i = self._nonlinear
    self._nonlinear += 1
    return default if self._nodes is None else self._nodes[i]


class Taps:
  """Forward-pass hooks of the structured empirical NTK: each layer with params that trains records
  its input and adds a zero perturbation ε to its output, so ∂f/∂ε is the signal backpropagated
  to that output (public `jax.vjp`, no jaxpr rewriting)."""

  def __init__(self, perturbations=None):
    self.perturbations = perturbations
    self.layers: list = []
    self.inputs: list = []
    self.output_shapes: list = []

  def __call__(self, layer, params, x):
    y = layer.apply(params, x)
    if not (layer.has_params and layer.trainable):
      return y
    i = len(self.inputs)
    self.layers.append(layer)
    self.inputs.append(x)
    self.output_shapes.append(jax.ShapeDtypeStruct(y.shape, y.dtype))
    return y if self.perturbations is None else y + self.perturbations[i]


def gram(a, b, paired: bool):
  """Σ_q a[i, q] b[j, q] over every trailing axis: (N1, N2), or (N,) for the pairs (a_i, b_i)."""
  a = a.reshape(a.shape[0], -1)
  b = b.reshape(b.shape[0], -1)
  return jnp.sum(a * b, axis=1) if paired else a @ b.T


class Layer:
  """Base class of layers and networks (see the module docstring for the contract).

  Subclasses are frozen dataclasses; a layer without params keeps the defaults below.
  """

  has_params: bool = False  # whether init draws any params (serial gives params only to those)
  trainable: bool = True
  has_ntk_term: bool = False

  # ---------------------------------------------------------------- the public face
  def init(self, key, in_shape, *, dtype=None):
    """Draws params for inputs whose per-point shape is ``in_shape`` (an int for vectors)."""
    in_shape = _as_shape(in_shape)
    dtype = dtype or jnp.result_type(float)
    return self.init_params(key, in_shape, dtype)

  def output_shape(self, in_shape) -> tuple:
    """The per-point shape of the output for per-point input shape ``in_shape``."""
    return self.output_shape_of(_as_shape(in_shape))

  def check_params(self, params, in_shape) -> None:
    """Refuses params that are not this network's for inputs of per-point shape ``in_shape``."""
    check_params_against(self, params, tuple(in_shape))

  def check_inputs(self, params, x1, x2=None):
    """(x1, x2) as checked arrays of shape (N, *in_shape), after checking `params` against them."""
    x1 = _checks.as_batch(x1, "x1")
    if x2 is not None:
      x2 = _checks.as_batch(x2, "x2")
      if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x2: per-point shape {x2.shape[1:]} differs from x1's {x1.shape[1:]}.")
    self.check_params(params, x1.shape[1:])
    return x1, x2

  # -------------------------------------------------------------- the layer contract
  def init_params(self, key, in_shape: tuple, dtype):
    return ()

  def output_shape_of(self, in_shape: tuple) -> tuple:
    return in_shape

  def apply(self, params, x):
    raise NotImplementedError

  def kernel_rule(self, state: KernelState, ctx: RuleContext) -> KernelState:
    raise NotImplementedError(
      f"{type(self).__name__} has no infinite-width rule; analytic_kernel needs one in every layer."
    )

  def supports_ntk_term(self, in_shape: tuple) -> bool:
    """Whether `ntk_term` applies to inputs of per-point shape ``in_shape``."""
    return self.has_ntk_term

  nonlinearity = None  # the `ntk_lab.Activation` of a layer whose rule takes Gaussian expectations

  # -------------------------------------------------- traversal (combinators override)
  def forward(self, params, x, taps: Taps):
    """``apply``, with the structured route's `Taps` hooked into every layer."""
    return taps(self, params, x)

  def leaves(self) -> list:
    """The layers that are not combinators, in traversal order."""
    return [self]

  def param_leaves(self) -> list:
    """(layer, mask) for each layer with params, in traversal order: ``mask`` is a prefix of the
    network's params tree that is True exactly on that layer's params (for `equinox.partition`)."""
    return [(self, True)] if self.has_params else []

  def trainable_mask(self):
    """A prefix of the params tree: True on the params that train."""
    return self.has_params and self.trainable

  def layer_params(self, params) -> list:
    """The params of each layer of `param_leaves`, in the same order."""
    return [params] if self.has_params else []


def _as_shape(in_shape) -> tuple:
  if isinstance(in_shape, (int,)) and not isinstance(in_shape, bool):
    shape = (in_shape,)
  elif isinstance(in_shape, (tuple, list)) and all(
    isinstance(s, int) and not isinstance(s, bool) for s in in_shape
  ):
    shape = tuple(in_shape)
  elif hasattr(in_shape, "__index__") and not isinstance(in_shape, bool):
    shape = (int(in_shape),)
  else:
    raise TypeError(
      f"in_shape: expected the shape of one input, an int for vectors (e.g. 3) or a tuple "
      f"(e.g. (8, 8, 3)), got {in_shape!r}."
    )
  if not shape or any(s < 1 for s in shape):
    raise ValueError(f"in_shape: every dimension must be ≥ 1, got {shape}.")
  return shape


@functools.lru_cache(maxsize=256)
def expected_params(layer, in_shape: tuple, dtype):
  """The params tree `layer.init` would give for ``in_shape``, as shapes (no arrays drawn)."""
  return jax.eval_shape(lambda: layer.init_params(jax.random.PRNGKey(0), in_shape, dtype))


def check_params_against(layer, params, in_shape):
  expected = expected_params(layer, in_shape, jnp.float32)
  paths, treedef = jax.tree_util.tree_flatten_with_path(expected)
  try:
    leaves = treedef.flatten_up_to(params)
  except (ValueError, TypeError) as e:
    raise ValueError(
      f"params: not the params of this network ({type(params).__name__} where its init gives "
      f"{jax.tree_util.tree_structure(expected)}); re-create them with net.init(key, in_shape). ({e})"
    ) from None
  for (path, want), leaf in zip(paths, leaves):
    shape = tuple(getattr(leaf, "shape", ()))
    if shape != tuple(want.shape):
      raise ValueError(
        f"params{jax.tree_util.keystr(path)}: has shape {shape}, but this network's init gives "
        f"{tuple(want.shape)} for inputs of per-point shape {in_shape}; were they made for other "
        "inputs or another network?"
      )
