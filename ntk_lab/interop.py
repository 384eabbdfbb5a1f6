"""Bring your own model: Equinox and Flax NNX modules as ``(apply_fn, params)`` pairs.

Every function of ntk_lab that takes a model also takes a plain ``apply_fn(params, x) -> (N, O)``
with any pytree of params (`empirical_ntk`, `empirical_nngp`, `linearize`, `gradient_flow`,
`train` and the observables). The two adapters here turn a module into such a pair:

* `from_equinox`: ``eqx.partition(model, eqx.is_inexact_array)``: the floating-point arrays are
  θ; everything else (integer arrays, Python numbers, activation functions, static fields) is held
  fixed in ``apply_fn``. The module acts on one point, so ``apply_fn`` vmaps it over the batch.
* `from_nnx`: ``nnx.split(model, nnx.Param, ...)``: the ``nnx.Param`` variables are θ; every
  other variable (``BatchStat``, ``RngState``, custom kinds) is held fixed. The module acts on a
  batch, as NNX layers do.

Θ is summed over θ only (the trainable parameters), as for an `MLP` with frozen layers. A model
whose forward pass changes its own state (BatchNorm in training mode updating its statistics,
active Dropout drawing random numbers) is not a fixed function of θ, so the adapters refuse it,
naming the layer and the fix (evaluation mode).

Example:
  >>> import jax, equinox as eqx, ntk_lab as nl
  >>> from ntk_lab.interop import from_equinox
  >>> mlp = eqx.nn.MLP(3, 2, width_size=16, depth=2, key=jax.random.PRNGKey(0))
  >>> apply_fn, params = from_equinox(mlp)
  >>> x = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
  >>> apply_fn(params, x).shape, nl.empirical_ntk(apply_fn, params, x).shape
  ((5, 2), (5, 5))
"""

from __future__ import annotations

import importlib
import warnings

import jax
import jax.numpy as jnp

__all__ = ["from_equinox", "from_nnx"]


def _require(module: str, extra: str):
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise ImportError(
      f"{module} is not installed; install it with `pip install {extra}` "
      f"(or `pip install 'ntk_lab[{extra.split()[0]}]'`)."
    ) from e


def _check_params(leaves_with_paths, who: str, fix: str):
  """θ must be non-empty, real and floating; warns if float64 is on but θ is in lower precision."""
  if not leaves_with_paths:
    raise ValueError(
      f"model: {who} found no trainable arrays (θ is empty), so the NTK would be zero; "
      "check the `trainable` filter and that the model holds floating-point arrays."
    )
  low = []
  for path, leaf in leaves_with_paths:
    dtype = jnp.asarray(leaf).dtype
    if jnp.issubdtype(dtype, jnp.complexfloating) or not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(
        f"model: the trainable leaf {path} has dtype {dtype}; ntk_lab's kernels need real "
        "floating-point parameters. Keep it out of `trainable` (it is then held fixed) or convert it."
      )
    if jax.config.jax_enable_x64 and jnp.finfo(dtype).bits < 64:
      low.append(f"{path} ({dtype})")
  if low:
    shown = ", ".join(low[:3]) + (f" and {len(low) - 3} more" if len(low) > 3 else "")
    warnings.warn(
      f"{who}: float64 is enabled but the parameters {shown} are in lower precision, so the "
      f"kernels and gradients are only that accurate. {fix}",
      stacklevel=3,
    )


def _as_outputs(out, n: int, who: str):
  if not hasattr(out, "reshape") or not hasattr(out, "shape"):
    raise TypeError(
      f"model: {who} expects the module to return one array, got {type(out).__name__}; wrap it "
      "in a module that returns the output array (e.g. the logits)."
    )
  if out.ndim == 0 or out.shape[0] != n:
    raise ValueError(
      f"model: for {n} points the module returned shape {tuple(out.shape)}, not ({n}, …); "
      "the leading axis must be the batch."
    )
  return out.reshape(n, -1)


# ------------------------------------------------------------------------------------- Equinox
class EquinoxApply:
  """``apply_fn(params, x) -> (N, O)`` of an Equinox module (built by `from_equinox`).

  Hashable by identity, so it is a static argument of `jax.jit` (one compilation per adapter).
  """

  def __init__(self, static, state, batched):
    self._static = static
    self._state = state
    self._batched = batched

  def module(self, params):
    """The Equinox module with parameters `params` (e.g. the trained θ of a `Trajectory`)."""
    eqx = _require("equinox", "equinox")
    return eqx.combine(params, self._static)

  def __call__(self, params, x):
    model = self.module(params)
    if self._state is None:
      fn = model
    else:
      state = self._state
      fn = lambda xi: model(xi, state)[0]
    out = fn(x) if self._batched else jax.vmap(fn)(x)
    return _as_outputs(out, x.shape[0], "from_equinox")


def from_equinox(model, *, trainable=None, state=None, batched: bool = False):
  """``(apply_fn, params)`` of an Equinox module, for every ntk_lab function that takes a model.

  Args:
    model: an ``eqx.Module`` mapping one point to an output array (of any shape; flattened to O
      numbers), e.g. ``eqx.nn.MLP`` or a module of ``eqx.nn.Conv2d`` layers.
    trainable: which leaves form θ: an Equinox filter (a function of a leaf, or a pytree of
      bools/functions matching `model`, as for ``eqx.partition``). Default
      ``eqx.is_inexact_array``: every floating-point array trains; integer arrays, Python
      numbers and functions are held fixed. Leaves the filter leaves out are held fixed (and do
      not contribute to the NTK).
    state: the ``eqx.nn.State`` of a model holding stateful layers (``eqx.nn.BatchNorm``), which
      is then called as ``model(x, state)[0]`` with the state held fixed; the model must be in
      inference mode (``eqx.nn.inference_mode(model)``).
    batched: True if ``model(x)`` already takes the whole batch (N, …); by default it is vmapped
      over the leading axis.

  Returns:
    ``(apply_fn, params)``: ``params`` is θ, the trainable part of ``eqx.partition`` (a module
    with ``None`` elsewhere), and ``apply_fn(params, x)`` returns (N, O).
    ``apply_fn.module(params)`` rebuilds the module, e.g. from trained parameters.

  Raises:
    ValueError: the model has an active ``eqx.nn.Dropout`` or a BatchNorm not in inference mode
      (naming the layer's path), holds stateful layers but no `state` was given, or θ is empty.
    TypeError: `model` is not an Equinox module, or a trainable leaf is not real floating-point.

  Example:
    >>> import jax, equinox as eqx, ntk_lab as nl
    >>> from ntk_lab.interop import from_equinox
    >>> net = eqx.nn.MLP(2, 1, width_size=8, depth=1, key=jax.random.PRNGKey(0))
    >>> apply_fn, params = from_equinox(net)
    >>> x = jax.numpy.ones((4, 2))
    >>> nl.empirical_ntk(apply_fn, params, x, method="ntvp").shape
    (4, 4)
  """
  eqx = _require("equinox", "equinox")
  if not isinstance(model, eqx.Module):
    raise TypeError(
      f"model: expected an equinox.Module, got {type(model).__name__}"
      + (" (a Flax NNX module: use from_nnx)." if type(model).__module__.startswith("flax") else ".")
    )
  if not isinstance(batched, bool):
    raise TypeError(f"batched: expected a bool, got {batched!r}.")
  stateful = _equinox_layers(model, eqx)
  for path, layer in stateful:
    if isinstance(layer, eqx.nn.Dropout):
      if not layer.inference and layer.p > 0:
        raise ValueError(
          f"model: the eqx.nn.Dropout at {path} is active (inference=False, p={layer.p}), so the "
          "network is random and has no NTK. Use model = eqx.nn.inference_mode(model)."
        )
    elif state is None:
      raise ValueError(
        f"model: the stateful layer {type(layer).__name__} at {path} needs its state; pass it held "
        "fixed: from_equinox(eqx.nn.inference_mode(model), state=state), with the model called "
        "as model(x, state)."
      )
    elif getattr(layer, "inference", True) is False:
      raise ValueError(
        f"model: the {type(layer).__name__} at {path} is in training mode (inference=False): its "
        "output depends on the batch and it updates its statistics. Use "
        "eqx.nn.inference_mode(model)."
      )
  if state is not None and not stateful:
    raise ValueError("state: the model has no stateful layers (eqx.nn.BatchNorm, …); drop `state`.")
  filter_spec = eqx.is_inexact_array if trainable is None else trainable
  try:
    params, static = eqx.partition(model, filter_spec)
  except (TypeError, ValueError) as e:
    raise type(e)(
      f"trainable: not a filter for this model ({e}); pass a function of a leaf, or a pytree of "
      "bools matching the model."
    ) from e
  leaves = [
    (f"model{jax.tree_util.keystr(p)}", leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
  ]
  for path, leaf in leaves:
    if not eqx.is_array(leaf):
      raise TypeError(
        f"trainable: selects {path}, a {type(leaf).__name__}, not an array; only arrays can train. "
        "Select arrays only (e.g. with eqx.is_inexact_array)."
      )
  _check_params(
    leaves,
    "from_equinox",
    "Convert the model first: jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) "
    "else a, model).",
  )
  return EquinoxApply(static, state, batched), params


def _equinox_layers(model, eqx):
  """(path, layer) for the Dropout and stateful layers (BatchNorm, …) inside `model`."""
  kinds = (eqx.nn.Dropout, eqx.nn.StatefulLayer)
  found = []
  for path, node in jax.tree_util.tree_flatten_with_path(model, is_leaf=lambda n: isinstance(n, kinds))[0]:
    if isinstance(node, kinds) and (isinstance(node, eqx.nn.Dropout) or node.is_stateful()):
      found.append((f"model{jax.tree_util.keystr(path)}", node))
  return found


# ------------------------------------------------------------------------------------ Flax NNX
class NNXApply:
  """``apply_fn(params, x) -> (N, O)`` of a Flax NNX module (built by `from_nnx`).

  Hashable by identity, so it is a static argument of `jax.jit` (one compilation per adapter).
  """

  def __init__(self, graphdef, rest, trainable):
    self._graphdef = graphdef
    self._rest = rest
    self._trainable = trainable

  def module(self, params):
    """A new NNX module with parameters `params` and the fixed variables (the model is not changed)."""
    nnx = _require("flax.nnx", "flax")
    copy = lambda tree: jax.tree.map(lambda a: a, tree)  # fresh Variables: the closure stays intact
    return nnx.merge(self._graphdef, copy(params), copy(self._rest))

  def __call__(self, params, x):
    nnx = _require("flax.nnx", "flax")
    model = self.module(params)
    before = jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]
    out = model(x)
    after = jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]
    changed = [
      jax.tree_util.keystr(p)
      for (p, a), (_, b) in zip(before, after)
      if a is not b  # a layer that writes a variable replaces its value
    ]
    if changed or len(before) != len(after):
      where = changed[0] if changed else "(variables were added or removed)"
      raise ValueError(
        f"model: calling the module changed its variable {where} (BatchNorm updating its "
        "statistics, Dropout drawing random numbers, a cache, …), so it is not a fixed function of "
        "its parameters and has no NTK. Put it in evaluation mode first (model.eval(), or "
        "use_running_average=True / deterministic=True on that layer)."
      )
    return _as_outputs(out, x.shape[0], "from_nnx")


def from_nnx(model, *, trainable=None):
  """``(apply_fn, params)`` of a Flax NNX module, for every ntk_lab function that takes a model.

  Args:
    model: an ``nnx.Module`` mapping a batch (N, …) to outputs (N, …) (flattened to (N, O)).
      Not modified: ``apply_fn`` works on a copy.
    trainable: an NNX filter selecting θ (default ``nnx.Param``): a Variable type, a tuple of
      them, a path predicate, … as for ``nnx.split``. All other variables (``BatchStat``,
      ``RngState``, custom kinds, Params the filter leaves out) are held fixed.

  Returns:
    ``(apply_fn, params)``: ``params`` is the ``nnx.State`` of θ, and ``apply_fn(params, x)``
    returns (N, O); ``apply_fn.module(params)`` rebuilds a module, e.g. from trained parameters.

  Raises:
    ValueError: a BatchNorm with ``use_running_average=False`` or an active Dropout (naming its
      path; fix: ``model.eval()``), or θ is empty. A custom layer that writes a variable when
      called raises the same, on the first call of ``apply_fn``.
    TypeError: `model` is not an NNX module, or a trainable variable is not real floating-point.
    ImportError: flax is not installed (``pip install 'ntk_lab[flax]'``).

  Example:
    >>> import jax, pytest, ntk_lab as nl
    >>> from ntk_lab.interop import from_nnx
    >>> nnx = pytest.importorskip("flax.nnx")  # the example needs the optional flax
    >>> kw = dict(param_dtype=jax.numpy.zeros(()).dtype)  # float64 when it is enabled
    >>> net = nnx.Sequential(nnx.Linear(2, 8, rngs=nnx.Rngs(0), **kw), nnx.relu, nnx.Linear(8, 1, rngs=nnx.Rngs(1), **kw))
    >>> apply_fn, params = from_nnx(net)
    >>> nl.empirical_ntk(apply_fn, params, jax.numpy.ones((4, 2))).shape
    (4, 4)
  """
  nnx = _require("flax.nnx", "flax")
  if not isinstance(model, nnx.Module):
    raise TypeError(
      f"model: expected a flax.nnx.Module, got {type(model).__name__}"
      + (" (an Equinox module: use from_equinox)." if type(model).__module__.startswith("equinox") else ".")
    )
  for path, node in nnx.iter_graph(model):
    where = "model" + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in path)
    if isinstance(node, nnx.BatchNorm) and not node.use_running_average:
      raise ValueError(
        f"model: the BatchNorm at {where} normalises with batch statistics and updates them "
        "(use_running_average=False), so the network is not a fixed function of its parameters. "
        "Call model.eval() first (or build it with use_running_average=True)."
      )
    if isinstance(node, nnx.Dropout) and not node.deterministic and node.rate > 0:
      raise ValueError(
        f"model: the Dropout at {where} is active (deterministic=False, rate={node.rate}), so the "
        "network is random and has no NTK. Call model.eval() first (or build it with "
        "deterministic=True)."
      )
  graphdef, params, rest = nnx.split(model, nnx.Param if trainable is None else trainable, ...)
  # The states may share Variable objects with `model`: copy them, so later changes to the model
  # (an optimizer step, model.train()) do not change what these params and apply_fn mean.
  params, rest = jax.tree.map(lambda a: a, (params, rest))
  leaves = [
    (f"params{jax.tree_util.keystr(p)}", leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
  ]
  _check_params(leaves, "from_nnx", "Build the layers with param_dtype=jnp.float64 (and dtype=jnp.float64).")
  return NNXApply(graphdef, rest, trainable), params
