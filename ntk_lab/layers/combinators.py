"""Combinators: networks built from layers, themselves layers (neural-tangents' ``stax`` names).

* `serial(*layers)`: composition. Its params are a list with one entry per layer that has params,
  in order (layers without params, e.g. activations, take none), so
  ``serial(Dense(512), Activation("relu"), Dense(1))`` has the params ``[{"W", "b"}, {"W", "b"}]``
  of ``nl.MLP((512,))``; ``init`` splits its key into one key per such layer.
* `parallel(*layers)`: the i-th layer applied to the i-th of a list of inputs; params likewise.
* `FanOut(n)`: n copies of the input; `FanInSum()`: the sum of a list of inputs; `Identity()`.

A residual block is ``serial(FanOut(2), parallel(serial(Dense(n), Activation("relu"), Dense(n)),
Identity()), FanInSum())``. Its infinite-width rule sums the branches' kernels, which is exact
when the branches are uncorrelated in the limit — as here, where one branch ends in a Dense layer
with fresh zero-mean weights (as in NT's ``stax.FanInSum``).
"""

from __future__ import annotations

import dataclasses

import jax

from ntk_lab import _checks
from ntk_lab.layers.base import Layer, RuleContext, Taps

__all__ = ["FanInSum", "FanOut", "Identity", "Parallel", "Serial", "parallel", "serial"]


def _check_layers(layers, name):
  if not layers:
    raise ValueError(f"{name}: needs at least one layer.")
  for i, layer in enumerate(layers):
    if not isinstance(layer, Layer):
      hint = " (call it: e.g. Identity(), FanInSum())" if isinstance(layer, type) else ""
      raise TypeError(f"{name}: argument {i} is a {type(layer).__name__}, not an ntk_lab layer{hint}.")
  return tuple(layers)


@dataclasses.dataclass(frozen=True)
class _Combinator(Layer):
  layers: tuple

  @property
  def has_params(self) -> bool:
    return any(layer.has_params for layer in self.layers)

  def _with_params(self):
    return [layer for layer in self.layers if layer.has_params]

  def _keys(self, key):
    n = len(self._with_params())
    return iter(jax.random.split(key, n)) if n else iter(())

  def leaves(self):
    return [leaf for layer in self.layers for leaf in layer.leaves()]

  def param_leaves(self):
    children = self._with_params()
    out = []
    for j, child in enumerate(children):
      for leaf, mask in child.param_leaves():
        out.append((leaf, [False] * j + [mask] + [False] * (len(children) - j - 1)))
    return out

  def trainable_mask(self):
    return [child.trainable_mask() for child in self._with_params()]

  def layer_params(self, params):
    return [p for child, entry in zip(self._with_params(), params) for p in child.layer_params(entry)]

  def _split(self, params):
    """Each layer's params entry: its element of the list, or () for a layer without params."""
    entries = iter(params)
    return [next(entries) if layer.has_params else () for layer in self.layers]


@dataclasses.dataclass(frozen=True)
class Serial(_Combinator):
  """Layers applied one after another; build it with `serial`."""

  def output_shape_of(self, in_shape):
    for layer in self.layers:
      in_shape = layer.output_shape_of(in_shape)
    return in_shape

  def init_params(self, key, in_shape, dtype):
    keys, params = self._keys(key), []
    for layer in self.layers:
      if layer.has_params:
        params.append(layer.init_params(next(keys), in_shape, dtype))
      in_shape = layer.output_shape_of(in_shape)
    return params

  def apply(self, params, x):
    for layer, p in zip(self.layers, self._split(params)):
      x = layer.apply(p, x)
    return x

  def forward(self, params, x, taps: Taps):
    for layer, p in zip(self.layers, self._split(params)):
      x = layer.forward(p, x, taps)
    return x

  def kernel_rule(self, state, ctx: RuleContext):
    for layer in self.layers:
      state = layer.kernel_rule(state, ctx)
    return state


def serial(*layers) -> Serial:
  """The composition of `layers`, first to last (NT's ``stax.serial``).

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> L = nl.layers
    >>> net = L.serial(L.Dense(64, b_std=0.1), L.Activation("erf"), L.Dense(1, b_std=0.1))
    >>> params = net.init(jax.random.PRNGKey(0), 3)
    >>> [sorted(p) for p in params], net.apply(params, jnp.ones((5, 3))).shape
    ([['W', 'b'], ['W', 'b']], (5, 1))
    >>> nl.analytic_kernel(net, jnp.eye(3)).ntk.shape
    (3, 3)
  """
  return Serial(_check_layers(layers, "serial"))


@dataclasses.dataclass(frozen=True)
class Parallel(_Combinator):
  """The i-th layer on the i-th input of a list; build it with `parallel`."""

  def _check_arity(self, items, what):
    if not isinstance(items, (list, tuple)) or len(items) != len(self.layers):
      got = len(items) if isinstance(items, (list, tuple)) else type(items).__name__
      raise ValueError(
        f"parallel: its {len(self.layers)} layers take a list of {len(self.layers)} {what}, got {got}; "
        "put FanOut(n) before it."
      )
    return items

  def output_shape_of(self, in_shape):
    shapes = self._check_arity(in_shape, "inputs")
    return [layer.output_shape_of(s) for layer, s in zip(self.layers, shapes)]

  def init_params(self, key, in_shape, dtype):
    shapes, keys = self._check_arity(in_shape, "inputs"), self._keys(key)
    return [
      layer.init_params(next(keys), s, dtype) for layer, s in zip(self.layers, shapes) if layer.has_params
    ]

  def apply(self, params, x):
    xs = self._check_arity(x, "inputs")
    return [layer.apply(p, xi) for layer, p, xi in zip(self.layers, self._split(params), xs)]

  def forward(self, params, x, taps: Taps):
    xs = self._check_arity(x, "inputs")
    return [layer.forward(p, xi, taps) for layer, p, xi in zip(self.layers, self._split(params), xs)]

  def kernel_rule(self, state, ctx: RuleContext):
    states = self._check_arity(state, "kernel states")
    return [layer.kernel_rule(s, ctx) for layer, s in zip(self.layers, states)]


def parallel(*layers) -> Parallel:
  """Applies the i-th layer to the i-th input of a list (NT's ``stax.parallel``)."""
  return Parallel(_check_layers(layers, "parallel"))


@dataclasses.dataclass(frozen=True)
class FanOut(Layer):
  """n copies of the input, as a list (NT's ``stax.FanOut``)."""

  num: int

  def __post_init__(self):
    _checks.positive_int(self.num, "num")

  def output_shape_of(self, in_shape):
    return [in_shape] * self.num

  def apply(self, params, x):
    return [x] * self.num

  def kernel_rule(self, state, ctx):
    return [state] * self.num


@dataclasses.dataclass(frozen=True)
class FanInSum(Layer):
  """The sum of a list of inputs of one shape (NT's ``stax.FanInSum``)."""

  def output_shape_of(self, in_shape):
    if not isinstance(in_shape, list) or len({tuple(s) for s in in_shape}) != 1:
      raise ValueError(f"FanInSum: needs a list of inputs of one shape, got shapes {in_shape}.")
    return in_shape[0]

  def apply(self, params, x):
    if not isinstance(x, (list, tuple)):
      raise ValueError("FanInSum: needs a list of inputs (e.g. from parallel after FanOut).")
    return sum(x[1:], x[0])

  def kernel_rule(self, state, ctx):
    if not isinstance(state, (list, tuple)):
      raise ValueError("FanInSum: needs a list of inputs (e.g. from parallel after FanOut).")
    first = state[0]
    total = lambda field: (
      None if any(getattr(s, field) is None for s in state) else sum(getattr(s, field) for s in state)
    )
    return first.replace(
      nngp=total("nngp"),
      ntk=total("ntk"),
      var1=total("var1"),
      var2=total("var2"),
      is_gaussian=all(s.is_gaussian for s in state),
    )


@dataclasses.dataclass(frozen=True)
class Identity(Layer):
  """The input unchanged (NT's ``stax.Identity``)."""

  def apply(self, params, x):
    return x

  def kernel_rule(self, state, ctx):
    return state
