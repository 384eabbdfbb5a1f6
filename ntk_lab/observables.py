"""Quantities tracked along a training trajectory, shared by `gradient_flow` and `train`.

Observables are opt-in (``observe=("loss", "kernel_drift", my_fn, …)``): registry names (the table
below, `OBSERVABLES`) or your own callables. Each becomes one entry (or several) of the result's
``observables`` dict, with a leading time axis T:

* ``"loss"`` (T,): the training loss L(θ(t)) in the trainer's ``reduction`` (``"sum"``:
  L = ½ Σ_i ‖f(x_i) − y_i‖² for MSE; ``"mean"``: divided by y.size; see docs/training.md).
* ``"residual"`` (T,): ‖y − u(t)‖, u(t) = f(X; θ(t)).
* ``"ntk_eigs"``: ``ntk_min_eig`` and ``ntk_max_eig`` (T,), λ_min and λ_max of the empirical NTK
  K(t) on the training set (output-averaged, as `empirical_ntk`).
* ``"kernel_drift"`` (T,): ‖K(t) − K(0)‖_F / ‖K(0)‖_F, which vanishes as the width grows in the lazy
  regime (Jacot et al. 2018; Chizat et al. 2019).
* ``"weight_change"`` (T, L): ‖W_l(t) − W_l(0)‖_F / ‖W_l(0)‖_F per layer with params (its weights
  ``"W"``, or all its params when it has no ``"W"``); for a plain apply_fn, per parameter leaf.
  Where W_l(0) = 0 (a zero-initialised layer) there is no scale to divide by, and the entry is the
  absolute change ‖W_l(t)‖_F.
* ``"unit_change"`` (T, L), networks of `Dense` layers (e.g. MLPs): per layer, the largest change
  of one unit's weights,
  max_r ‖w_r(t) − w_r(0)‖: the incoming weights w_r = W_l[:, r] of each unit of a hidden layer,
  and for the readout the outgoing weights a_r = W_L[r, :] of each last hidden unit (Du et al.
  2019 bound it by O(1/√m) for a two-layer net).
* ``"lin_gap"``: ``lin_gap`` (T,) and ``lin_gap_test``: ‖u_NN(t) − u_lin(t)‖, with u_lin the
  closed-form gradient-flow outputs of the network linearized at θ₀ (MSE only; Lee et al. 2019).
* ``"ntk_gap"``: ``ntk_gap`` and ``ntk_gap_test``: ‖u_NN(t) − u_NTK(t)‖ with u_NTK the
  infinite-width NTK predictor started from the network's own u(0) (MSE; networks of layers).

The two gaps also come with their running maxima ``lin_gap_max``, ``lin_gap_test_max`` (T,) (and
``ntk_gap_max``, …): the largest gap over every optimizer step (`train`) or every accepted solver
step (`gradient_flow`) up to each saved time, so a maximum does not depend on how often states are
saved.

A user observable is any function of one `State` returning an array (recorded under the
function's ``__name__``) or a dict of arrays (recorded under its keys); `register` adds one to the
registry under a name, optionally with a setup that checks the model and precomputes arrays. A
name may mean one thing only: a function named like a registered observable, a registration
over an existing name (without ``replace=True``) and two observables that record the same key
(a running maximum's ``<entry>_max`` included) are refused. All
observables run inside the compiled solver or scan (traceable), with their precomputed arrays
passed as arguments, so a second call of equal shapes does not recompile.

Example:
  >>> import jax, jax.numpy as jnp, ntk_lab as nl
  >>> net = nl.MLP((32,), b_std=None)
  >>> x = jax.random.normal(jax.random.PRNGKey(0), (6, 2)); y = x[:, 0]
  >>> def out_norm(s):
  ...   return jnp.linalg.norm(s.outputs)
  >>> run = nl.gradient_flow(net, net.init(jax.random.PRNGKey(1), 2), x, y,
  ...                        times=jnp.linspace(0, 2, 3), observe=["residual", out_norm])
  >>> sorted(run.observables), run.observables["out_norm"].shape
  (['out_norm', 'residual'], (3,))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ntk_lab import _checks
from ntk_lab.analytic import analytic_kernel
from ntk_lab.empirical import empirical_ntk
from ntk_lab.kernel_dynamics import decay, gain, spectrum
from ntk_lab.layers import Dense, Layer
from ntk_lab.models import apply_fn_of, root_model

__all__ = ["OBSERVABLES", "Observable", "Observer", "State", "register"]


class State(NamedTuple):
  """What an observable sees of one training state (arrays may be traced).

  Attributes:
    model: the model being trained; apply it with ``ntk_lab.models.apply_fn_of(model)``.
    params: the full params θ(t); params0: θ₀.
    x: training inputs (N, …); y: targets (N, O); outputs: u(t) = f(X; θ(t)), (N, O).
    loss: L(θ(t)) in the trainer's reduction, ().
    x_test: test inputs or None; test_outputs: f(X_test; θ(t)) (N_test, O) or None.
    kernel_time: τ such that a kernel machine with kernel K has moved by e^{−Kτ} at this state:
      η t (reduction ``"sum"``) or η t / y.size (``"mean"``) for `gradient_flow`; step ·
      time_per_step likewise for `train` (NaN when time_per_step is not given).
    context: the arrays this observable's setup precomputed (None without a setup).
  """

  model: Any
  params: Any
  params0: Any
  x: Any
  y: Any
  outputs: Any
  loss: Any
  x_test: Any
  test_outputs: Any
  kernel_time: Any
  context: Any


class Observable(NamedTuple):
  """A registry entry.

  Attributes:
    compute: ``compute(state) -> array | dict[str, array]`` (traceable).
    setup: ``setup(model, params0, x, y, x_test, loss=…, reduction=…) -> context`` or None; runs
      once before training on concrete values: raises if the observable does not apply, and
      returns arrays (a pytree) that `compute` reads as ``state.context``.
    running_max: also record the running maximum over every step of each (T,) entry, as
      ``<entry>_max``.
    needs_time: needs `State.kernel_time` (so `train` needs ``time_per_step``).
  """

  compute: Callable
  setup: Callable | None = None
  running_max: bool = False
  needs_time: bool = False


OBSERVABLES: dict[str, Observable] = {}


def register(
  name: str,
  compute: Callable,
  *,
  setup: Callable | None = None,
  running_max: bool = False,
  needs_time: bool = False,
  replace: bool = False,
) -> Observable:
  """Adds an observable to the registry under `name`; an existing name needs ``replace=True``.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> _ = nl.observables.register("max_output", lambda s: jnp.max(jnp.abs(s.outputs)))
    >>> "max_output" in nl.observables.OBSERVABLES
    True
    >>> del nl.observables.OBSERVABLES["max_output"]
  """
  if not isinstance(name, str) or not name:
    raise TypeError(f"name: expected a non-empty string, got {name!r}.")
  if not callable(compute):
    raise TypeError(f"compute: expected a function of a State, got {type(compute).__name__}.")
  if name in OBSERVABLES and not replace:
    raise ValueError(
      f"name: {name!r} is already a registered observable; pick another name, or pass "
      "replace=True to redefine it everywhere."
    )
  entry = Observable(compute, setup, bool(running_max), bool(needs_time))
  OBSERVABLES[name] = entry
  return entry


class Observer:
  """Resolves ``observe`` for a model and prepares the observables' arrays (internal).

  ``entries`` (a hashable tuple of (name, Observable)) is what the compiled trainers key on;
  ``context`` (name → arrays) is passed to them as an argument.
  """

  def __init__(self, model, params0, x, y, *, loss: str, observe, x_test=None, reduction: str = "sum"):
    if isinstance(observe, str) or callable(observe):
      observe = (observe,)
    try:
      observe = tuple(observe)
    except TypeError:
      raise TypeError(
        f"observe: expected a name, a function or a sequence of them, got {type(observe).__name__}."
      ) from None
    entries = []
    for item in observe:
      if isinstance(item, str):
        _checks.choice(item, "observe", tuple(OBSERVABLES))
        entries.append((item, OBSERVABLES[item]))
      elif callable(item):
        name = getattr(item, "__name__", "")
        if not name.isidentifier():
          raise ValueError(
            f"observe: a function observable is recorded under its __name__, and "
            f"{item!r} has none usable; use a def, or nl.observables.register(name, fn)."
          )
        if name in OBSERVABLES and OBSERVABLES[name].compute is not item:
          raise ValueError(
            f"observe: your function {name!r} has the name of the registered observable {name!r}, "
            "and its values would be recorded under that name; rename the function, or register "
            "it under a new name with nl.observables.register."
          )
        entries.append((name, Observable(item)))
      else:
        raise TypeError(f"observe: expected observable names or functions of a State, got {item!r}.")
    names = [n for n, _ in entries]
    if len(set(names)) != len(names):
      raise ValueError(f"observe: names repeat in {names}; give each observable once.")
    maxima = {n + "_max" for n, e in entries if e.running_max}
    if clash := sorted(maxima & set(names)):
      raise ValueError(
        f"observe: {clash[0]!r} is also the name of a running maximum recorded by another observable; "
        "rename it."
      )
    self.entries = tuple(entries)
    self.names = tuple(names)
    self.context = {
      n: (None if e.setup is None else e.setup(model, params0, x, y, x_test, loss=loss, reduction=reduction))
      for n, e in entries
    }

  @property
  def needs_time(self):
    return any(e.needs_time for _, e in self.entries)

  @property
  def running(self):
    return tuple((n, e) for n, e in self.entries if e.running_max)


def compute(entries, context, state: State, *, running_only: bool = False):
  """The named observables at one state, as a flat dict of arrays (traceable)."""
  out = {}
  for name, entry in entries:
    if running_only and not entry.running_max:
      continue
    value = entry.compute(state._replace(context=context[name]))
    value = value if isinstance(value, dict) else {name: value}
    for key in value:
      if key in out or (key.endswith("_max") and key[:-4] in out):
        raise ValueError(
          f"observe: two observables record {key!r} (the second is {name!r}); rename one of them."
        )
    out.update(value)
  return out


# ----------------------------------------------------------------------------- built-ins


def _loss(s):
  return s.loss


def _residual(s):
  return jnp.linalg.norm(s.y - s.outputs)


def _ntk_eigs(s):
  lam = jnp.linalg.eigvalsh(_sym(empirical_ntk(s.model, s.params, s.x)))
  return {"ntk_min_eig": lam[0], "ntk_max_eig": lam[-1]}


def _kernel_drift_setup(model, params0, x, y, x_test, **_):
  return empirical_ntk(model, params0, x)


def _kernel_drift(s):
  K, k0 = empirical_ntk(s.model, s.params, s.x), s.context
  return jnp.linalg.norm(K - k0) / jnp.linalg.norm(k0)


def _weight_change(s):
  root = root_model(s.model)
  if isinstance(root, Layer):
    pairs = [_weights(p, p0) for p, p0 in zip(root.layer_params(s.params), root.layer_params(s.params0))]
  else:
    pairs = [(w.ravel(), w0.ravel()) for w, w0 in zip(jax.tree.leaves(s.params), jax.tree.leaves(s.params0))]
  out = []
  for w, w0 in pairs:
    change, scale = jnp.linalg.norm(w - w0), jnp.linalg.norm(w0)
    out.append(jnp.where(scale > 0, change / jnp.where(scale > 0, scale, 1.0), change))
  return jnp.stack(out)


def _weights(p, p0):
  """A layer's weights "W", or all its params flattened when it has none called so."""
  if isinstance(p, dict) and "W" in p:
    return p["W"], p0["W"]
  flat = lambda tree: jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(tree)])
  return flat(p), flat(p0)


def _unit_change_setup(model, params0, x, y, x_test, **_):
  root = root_model(model)
  if not isinstance(root, Layer) or not all(isinstance(leaf, Dense) for leaf, _ in root.param_leaves()):
    raise ValueError(
      "observe: 'unit_change' needs a network whose layers with params are all Dense (an ntk_lab.MLP, "
      f"or a centred/linearized one), got {type(root).__name__}; drop it or use 'weight_change'."
    )


def _unit_change(s):
  root = root_model(s.model)
  layers = list(zip(root.layer_params(s.params), root.layer_params(s.params0)))
  last = len(layers) - 1
  # Hidden unit r's incoming weights are column r of W_l; the readout's a_r is row r of W_L.
  return jnp.stack(
    [
      jnp.max(jnp.linalg.norm(p["W"] - p0["W"], axis=1 if l == last else 0))
      for l, (p, p0) in enumerate(layers)
    ]
  )


def _mse_only(name, loss):
  if loss != "mse":
    raise ValueError(
      f"observe: '{name}' compares with closed-form MSE dynamics, so it needs loss='mse' "
      f"(got {loss!r}); to compare under cross-entropy, train nl.linearize(model, params0) "
      "with the same call and compare the two results."
    )


def _reference(K, Kt, u0, u0_test, y):
  """The eigendecomposition of a kernel machine's gradient flow, precomputed once per call."""
  lam, V, live = spectrum(K, 0.0)
  ref = {"lam": lam, "V": V, "live": live, "y": y, "r0": V.T @ (u0 - y)}
  if Kt is not None:
    ref.update(KtV=Kt @ V, u0_test=u0_test)
  return ref


def _at(ref, tau):
  """(train, test) outputs of the kernel machine at kernel time τ = ηt (scalar), e^{−Kτ} form."""
  t = jnp.reshape(tau, (1,))
  train = ref["y"] + ref["V"] @ (decay(ref["lam"], ref["live"], 1.0, t)[0][:, None] * ref["r0"])
  test = None
  if "KtV" in ref:
    test = ref["u0_test"] - ref["KtV"] @ (gain(ref["lam"], ref["live"], 1.0, t)[0][:, None] * ref["r0"])
  return train, test


def _lin_gap_setup(model, params0, x, y, x_test, *, loss, **_):
  # The linearized network's exact MSE flow uses the full (N·O × N·O) NTK at θ₀.
  _mse_only("lin_gap", loss)
  n, o = y.shape
  f = apply_fn_of(model)
  K = empirical_ntk(model, params0, x, trace_outputs=False).transpose(0, 2, 1, 3).reshape(n * o, n * o)
  Kt = u0t = None
  if x_test is not None:
    Kt = empirical_ntk(model, params0, x_test, x, trace_outputs=False)
    Kt = Kt.transpose(0, 2, 1, 3).reshape(Kt.shape[0] * o, n * o)
    u0t = f(params0, x_test).reshape(-1, 1)
  return _reference(K, Kt, f(params0, x).reshape(-1, 1), u0t, y.reshape(-1, 1))


def _ntk_gap_setup(model, params0, x, y, x_test, *, loss, **_):
  _mse_only("ntk_gap", loss)
  root = root_model(model)
  if not isinstance(root, Layer):
    raise ValueError(
      "observe: 'ntk_gap' needs the infinite-width NTK of a network of ntk_lab layers (e.g. an "
      f"ntk_lab.MLP), got {type(root).__name__}."
    )
  f = apply_fn_of(model)
  K = analytic_kernel(root, x, get="ntk").ntk
  _checks.check_kernel(_checks.psd_defects(K), "the infinite-width NTK of 'ntk_gap'", K.shape[0], K.dtype)
  Kt = u0t = None
  if x_test is not None:
    Kt, u0t = analytic_kernel(root, x_test, x, get="ntk").ntk, f(params0, x_test)
  return _reference(K, Kt, f(params0, x), u0t, y)


def _gap(name, flat):
  def gap(s):
    train, test = _at(s.context, s.kernel_time)
    shape = s.outputs.shape
    out = {name: jnp.linalg.norm(s.outputs - (train.reshape(shape) if flat else train))}
    if test is not None:
      ref = test.reshape(s.test_outputs.shape) if flat else test
      out[name + "_test"] = jnp.linalg.norm(s.test_outputs - ref)
    return out

  return gap


def _sym(K):
  return (K + K.T) / 2


register("loss", _loss)
register("residual", _residual)
register("ntk_eigs", _ntk_eigs)
register("kernel_drift", _kernel_drift, setup=_kernel_drift_setup)
register("weight_change", _weight_change)
register("unit_change", _unit_change, setup=_unit_change_setup)
register("lin_gap", _gap("lin_gap", True), setup=_lin_gap_setup, running_max=True, needs_time=True)
register("ntk_gap", _gap("ntk_gap", False), setup=_ntk_gap_setup, running_max=True, needs_time=True)
