"""The linearized network: the first-order Taylor expansion of f in its parameters (Lee et al. 2019).

    f_lin(x; θ) = f(x; θ₀) + J(x; θ₀)(θ − θ₀),      J = ∂f/∂θ at θ₀,

evaluated as one forward-mode product `jax.jvp` per call, so no Jacobian is ever materialised.
f_lin is linear in θ with the constant NTK Θ(θ₀), so under gradient flow on the MSE loss its
outputs follow `mse_dynamics` with K = Θ(θ₀) exactly (Lee et al. 2019, Chizat et al. 2019).
"""

from __future__ import annotations

import jax

from ntk_lab import _checks
from ntk_lab.models import Wrapper, apply_fn_of

__all__ = ["Linearized", "linearize"]


@jax.tree_util.register_pytree_node_class
class Linearized(Wrapper):
  """f_lin(x; θ) = f(x; θ₀) + J(θ₀)(θ − θ₀); build it with `linearize`.

  It takes the params of the model it wraps (same pytree), trains with `gradient_flow` and
  `train` (for a network, only its trainable layers move), and its `empirical_ntk` at any θ is the
  wrapped model's NTK at θ₀.
  """

  def apply(self, params, x):
    f = apply_fn_of(self.model)
    step = jax.tree.map(lambda p, p0: p - p0, params, self.params0)
    out, tangent = jax.jvp(lambda p: f(p, x), (self.params0,), (step,))
    # Leaf by leaf: for a pytree-valued apply_fn (a tuple of outputs, a dict) `out + tangent`
    # would concatenate tuples instead of adding them.
    return jax.tree.map(jax.numpy.add, out, tangent)


def linearize(model, params0) -> Linearized:
  """The linearization of `model` around θ₀ = `params0`.

  Args:
    model: a network of `ntk_lab.layers` (e.g. an `MLP`), a `centered` model, or any
      ``apply_fn(params, x)``; its output may be any
      pytree of arrays (the linearization is taken leaf by leaf; the trainers and `empirical_ntk`
      need a single (N, O) array).
    params0: the expansion point θ₀.

  Returns:
    A `Linearized` model: ``lin.apply(params, x)`` has the structure and shapes of ``model``'s
    outputs.

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> net = nl.MLP((32,), activation="tanh")
    >>> p0 = net.init(jax.random.PRNGKey(0), 3)
    >>> lin = nl.linearize(net, p0)
    >>> x = jnp.ones((4, 3))
    >>> bool(jnp.allclose(lin.apply(p0, x), net.apply(p0, x)))
    True
  """
  apply_fn_of(model)  # checks the type
  _checks.finite_tree(params0, "params0")
  return Linearized(model, params0)
