"""How `train` drives an optax optimizer: checks that it can (before compiling), calls its update
with the extra arguments some optimizers need, and finds the program already compiled for an
optimizer that computes the same thing.

A freshly built ``optax.sgd(0.1)`` is a new object with new closures, so a compilation cache keyed
on the object would compile again. `canonical` keys on a structural fingerprint instead: the
update function's code, its defaults and the values it closes over (recursively: numbers by
value, arrays by content, functions by their own fingerprint, anything else by identity), and the
optimizer state's tree structure. Two optimizers with the same fingerprint compute the same
update, so the first one seen stands in for both.
"""

from __future__ import annotations

import functools
import hashlib
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntk_lab import _checks

__all__ = ["canonical", "check", "update"]

_OPTIMIZER_TYPE = "optimizer: expected an optax.GradientTransformation such as optax.sgd(0.1), got {}."
_EXTRA = "value, grad and value_fn (the loss, its gradient and the loss as a function of the params)"


def update(optimizer, grads, state, params, *, value, value_fn):
  """``optimizer.update``; an ``optax.GradientTransformationExtraArgs`` (every optax optimizer;
  needed by ``optax.lbfgs``'s line search and ``optax.contrib.reduce_on_plateau``) also gets the
  batch loss as ``value``, its gradient as ``grad`` and the batch loss function as ``value_fn``.
  Transformations that take no extra arguments ignore them."""
  if isinstance(optimizer, optax.GradientTransformationExtraArgs):
    return optimizer.update(grads, state, params, value=value, grad=grads, value_fn=value_fn)
  return optimizer.update(grads, state, params)


def check(optimizer, params, value_dtype):
  """The optimizer's initial state for `params`, after checking (by tracing its update once on
  shapes, nothing compiled) that `train` can drive it: its update runs on the trainable params
  with the arguments `update` passes and returns updates shaped like the params and a state
  shaped like the initial one (a `lax.scan` carry must keep its shape)."""
  if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
    raise TypeError(_OPTIMIZER_TYPE.format(type(optimizer).__name__))
  try:
    state = optimizer.init(params)
  except Exception as e:  # noqa: BLE001 - any failure of a user's optimizer is reported as its own
    raise TypeError(
      f"optimizer: its init(params) failed on the trainable params ({type(e).__name__}: {e}). "
      "train passes the trainable params, a pytree like params0; an optimizer that wants its own "
      "parameter structure cannot be driven by train: write the loop with optax directly."
    ) from e

  def trial(state, params):
    value = jnp.zeros((), value_dtype)
    return update(optimizer, params, state, params, value=value, value_fn=lambda p: optax.tree.vdot(p, p))

  try:
    updates, new_state = eqx.filter_eval_shape(trial, state, params)
  except Exception as e:  # noqa: BLE001
    raise TypeError(
      f"optimizer: its update failed on the trainable params ({type(e).__name__}: {e}). train calls "
      f"update(grads, state, params) and, for an optax.GradientTransformationExtraArgs, passes "
      f"{_EXTRA}. An optimizer that needs other arguments, or its own parameter structure (such "
      "as optax.lookahead's LookaheadParams), cannot be driven by train: write the loop with optax "
      "directly."
    ) from e
  if _shapes(updates) != _shapes(params):
    raise TypeError(
      "optimizer: its update returned updates shaped unlike the params; train adds them to the "
      "params with optax.apply_updates, so they must have the params' structure and shapes."
    )
  if _shapes(new_state) != _shapes(state):
    raise TypeError(
      "optimizer: its update returned a state whose structure, shapes or dtypes differ from "
      "init's; train carries the state through a lax.scan, which needs them to stay the same."
    )
  return state


def _shapes(tree):
  leaves, treedef = jax.tree.flatten(tree)
  return treedef, tuple((tuple(np.shape(a)), str(jnp.result_type(a))) for a in leaves)


# Optimizers already compiled for, keyed on their fingerprint. Each holds (through its closures)
# every object its fingerprint names by identity, so those ids cannot be reused while it is here.
_CANONICAL: dict = {}


def canonical(optimizer, state):
  """The first optimizer seen whose update has the same fingerprint (and state structure)."""
  key = (type(optimizer), _fingerprint(optimizer.update), jax.tree.structure(state))
  try:
    hash(key)
  except TypeError:
    return optimizer
  if len(_CANONICAL) > 256:
    _CANONICAL.clear()
  return _CANONICAL.setdefault(key, optimizer)


def _fingerprint(obj, depth=0):
  """A hashable description of what `obj` computes (see the module docstring)."""
  fp = functools.partial(_fingerprint, depth=depth + 1)
  if depth > 40:  # deep or self-referencing closures: identity (at worst a recompilation)
    return ("id", id(obj))
  if obj is None or isinstance(obj, (bool, int, str, bytes, type, types.CodeType)):
    return (type(obj), obj)
  if isinstance(obj, float):
    return (float, obj.hex())  # tells -0.0 from 0.0 and compares NaN equal to itself
  if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
    try:
      a = np.asarray(obj)
    except _checks.TRACED:
      return ("id", id(obj))
    return ("array", a.shape, str(a.dtype), hashlib.sha256(a.tobytes()).hexdigest())
  if isinstance(obj, functools.partial):
    return ("partial", fp(obj.func), fp(obj.args), fp(obj.keywords))
  if isinstance(obj, types.FunctionType):
    cells = []
    for cell in obj.__closure__ or ():
      try:
        cells.append(fp(cell.cell_contents))
      except ValueError:  # an empty cell
        cells.append(None)
    return (
      "function",
      obj.__code__,
      id(obj.__globals__),
      fp(obj.__defaults__),
      fp(obj.__kwdefaults__),
      tuple(cells),
    )
  if isinstance(obj, types.MethodType):
    return ("method", fp(obj.__func__), fp(obj.__self__))
  if isinstance(obj, (tuple, list)):
    return (type(obj), tuple(fp(o) for o in obj))
  if isinstance(obj, dict):
    return (type(obj), tuple((fp(k), fp(v)) for k, v in obj.items()))
  return ("id", id(obj))
