"""What the kernels and trainers accept as a model, and how they take it apart.

A model is a network of layers (`ntk_lab.layers.Layer`, e.g. `ntk_lab.MLP`), a wrapper built
from a model and a parameter point θ₀ (`centered`, `ntk_lab.linearize`), or any
``apply_fn(params, x)``. `apply_fn_of` gives its function; `split_trainable` and
`trainable_merge` separate the params that train from those that stay fixed (a layer's
``trainable=False``; every leaf of a plain apply_fn trains).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax

from ntk_lab.layers import Layer

__all__ = [
  "Centered",
  "Wrapper",
  "apply_fn_of",
  "centered",
  "root_model",
  "split_trainable",
  "trainable_merge",
]


class Wrapper:
  """Base of models built from another model and a parameter point θ₀ (`Centered`, `Linearized`).

  A wrapper is a pytree whose leaves are θ₀ (and those of any wrapper inside it); the innermost
  model (a network of layers or an apply_fn) is static. So wrappers pass through `jax.jit` as
  arguments.
  """

  def __init__(self, model, params0):
    self.model = model
    self.params0 = params0

  @property
  def root(self):
    """The innermost model: a network of layers or a plain apply_fn."""
    return self.model.root if isinstance(self.model, Wrapper) else self.model

  def tree_flatten(self):
    if isinstance(self.model, Wrapper):
      return (self.model, self.params0), None
    return (self.params0,), self.model

  @classmethod
  def tree_unflatten(cls, static, children):
    return cls(*children) if static is None else cls(static, children[0])


@jax.tree_util.register_pytree_node_class
class Centered(Wrapper):
  """The centred model f̂(x; θ) = f(x; θ) − f(x; θ₀) (Chizat et al. 2019), so that f̂(x; θ₀) = 0.

  Build it with `centered`. It has the same NTK as the model it wraps (f(x; θ₀) does not depend
  on θ), and `empirical_ntk` takes it wherever it takes the model.
  """

  def apply(self, params, x):
    base = apply_fn_of(self.model)
    return base(params, x) - base(self.params0, x)


def centered(model, params0) -> Centered:
  """f̂(x; θ) = f(x; θ) − f(x; θ₀) for a network of layers or an ``apply_fn(params, x)``.

  Example:
    >>> import jax, ntk_lab as nl
    >>> net = nl.MLP((16,), b_std=None)
    >>> p0 = net.init(jax.random.PRNGKey(0), 2)
    >>> float(abs(nl.centered(net, p0).apply(p0, jax.numpy.ones((3, 2)))).max())
    0.0
  """
  apply_fn_of(model)  # checks the type
  return Centered(model, params0)


def apply_fn_of(model) -> Callable:
  """The ``apply(params, x)`` function of a network, a wrapper (centred, linearized) or a callable."""
  if isinstance(model, (Layer, Wrapper)):
    return model.apply
  if callable(model) and not isinstance(model, type):
    return model
  raise TypeError(
    f"model: expected a network of ntk_lab layers (e.g. ntk_lab.MLP, ntk_lab.layers.serial(...)), "
    f"a wrapper of one (ntk_lab.centered, ntk_lab.linearize) or an apply_fn(params, x), "
    f"got {type(model).__name__}."
  )


def root_model(model):
  """The innermost model of a wrapper (centred, linearized), or the model itself."""
  return model.root if isinstance(model, Wrapper) else model


def split_trainable(model, params):
  """(trainable, frozen) for `model`'s params: a network splits by its layers' ``trainable``
  (each a tree shaped like `params`, None where a leaf belongs to the other); any other model
  trains every leaf (frozen is None)."""
  root = root_model(model)
  if isinstance(root, Layer):
    return eqx.partition(params, root.trainable_mask())
  return params, None


def trainable_merge(model) -> Callable:
  """The inverse of `split_trainable` for `model`: ``merge(trainable, frozen) -> params``."""
  if isinstance(root_model(model), Layer):
    return eqx.combine
  return lambda trainable, frozen: trainable
