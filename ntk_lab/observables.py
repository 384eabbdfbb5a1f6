"""Quantities tracked along a training trajectory, shared by `gradient_flow` and `train`.

All are opt-in by name (``observe=("loss", "kernel_drift", …)``); each becomes one entry (or two,
with a ``_test`` twin) of the result's ``observables`` dict, with a leading time axis T:

* ``"loss"`` (T,): the training loss L(θ(t)) (seed convention L = ½ Σ_i ‖f(x_i) − y_i‖² for MSE).
* ``"residual"`` (T,): ‖y − u(t)‖, u(t) = f(X; θ(t)) (seed 001 a).
* ``"ntk_eigs"``: ``ntk_min_eig`` and ``ntk_max_eig`` (T,), λ_min and λ_max of the empirical NTK
  K(t) on the training set (output-averaged, as `empirical_ntk`).
* ``"kernel_drift"`` (T,): ‖K(t) − K(0)‖_F / ‖K(0)‖_F (seed 000 Ex3.6).
* ``"weight_change"`` (T, L): ‖W_l(t) − W_l(0)‖_F / ‖W_l(0)‖_F per layer (seed 000 Ex3.4); for a
  plain apply_fn, per parameter leaf.
* ``"unit_change"`` (T, L), MLPs only: per layer, the largest change of one unit's weights,
  max_r ‖w_r(t) − w_r(0)‖ (seed 001 b): the incoming weights w_r = W_l[:, r] of each unit of a
  hidden layer, and for the readout the outgoing weights a_r = W_L[r, :] of each last hidden unit.
* ``"lin_gap"``: ``lin_gap`` (T,) and ``lin_gap_test``: ‖u_NN(t) − u_lin(t)‖, with u_lin the
  closed-form gradient-flow outputs of the network linearized at θ₀ (MSE only).
* ``"ntk_gap"``: ``ntk_gap`` and ``ntk_gap_test``: ‖u_NN(t) − u_NTK(t)‖ with u_NTK the
  infinite-width NTK predictor started from the network's own u(0) (seed 004 UW Ex3; MSE, MLPs).

The per-state quantities are computed inside the compiled solver / scan at each saved point; the
two gaps compare against closed forms afterwards, so no observable recompiles per time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ntk_lab import _checks
from ntk_lab.empirical import empirical_ntk
from ntk_lab.kernel_dynamics import mse_dynamics
from ntk_lab.mlp import MLP, apply_fn_of, root_model

__all__ = ["OBSERVABLES", "Observer"]

OBSERVABLES = ("loss", "residual", "ntk_eigs", "kernel_drift", "weight_change", "unit_change",
               "lin_gap", "ntk_gap")


class Observer:
  """Validates ``observe`` for a model and computes the observables (internal).

  `state_observables` runs inside the compiled solver / scan at each saved state, with the
  arrays of `context` passed in as arguments (so one compilation serves every call of equal
  shapes); `gaps` adds the closed-form comparisons afterwards.
  """

  def __init__(self, model, params0, x, y, *, loss: str, observe, x_test=None):
    observe = (observe,) if isinstance(observe, str) else tuple(observe)
    for name in observe:
      _checks.choice(name, "observe", OBSERVABLES)
    self.names = observe
    self.model, self.params0, self.x, self.y, self.x_test = model, params0, x, y, x_test
    root = root_model(model)
    if "unit_change" in observe and not isinstance(root, MLP):
      raise ValueError("observe: 'unit_change' needs an ntk_lab.MLP (or a centred/linearized one), "
                       f"got {type(root).__name__}; drop it or use 'weight_change'.")
    for gap in ("lin_gap", "ntk_gap"):
      if gap in observe and loss != "mse":
        raise ValueError(
            f"observe: '{gap}' compares with closed-form MSE dynamics, so it needs loss='mse' "
            f"(got {loss!r}); to compare under cross-entropy, train nl.linearize(model, params0) "
            "with the same call and compare the two results.")
    if "ntk_gap" in observe and not isinstance(root, MLP):
      raise ValueError("observe: 'ntk_gap' needs the infinite-width NTK of an ntk_lab.MLP, got "
                       f"{type(root).__name__}.")
    k0 = empirical_ntk(model, params0, x) if "kernel_drift" in observe else None
    self.context = {"params0": params0, "k0": k0}

  # ------------------------------------------------------------------------ gaps
  def gaps(self, times, learning_rate, train, test):
    """‖u_NN − u_lin‖ and ‖u_NN − u_NTK‖ at gradient-flow times (traceable)."""
    out = {}
    if not ({"lin_gap", "ntk_gap"} & set(self.names)):
      return out
    f = apply_fn_of(self.model)
    u0 = f(self.params0, self.x)
    u0_test = None if self.x_test is None else f(self.params0, self.x_test)
    t = jnp.asarray(times)
    if "lin_gap" in self.names:
      lin_train, lin_test = self._linearized(t, learning_rate, u0, u0_test)
      out["lin_gap"] = _distance(train, lin_train)
      if test is not None:
        out["lin_gap_test"] = _distance(test, lin_test)
    if "ntk_gap" in self.names:
      root = root_model(self.model)
      k = root.kernel(self.x, get="ntk").ntk
      k_test = None if self.x_test is None else root.kernel(self.x_test, self.x, get="ntk").ntk
      ref = mse_dynamics(k, self.y, t, k_test_train=k_test, learning_rate=learning_rate,
                         u0_train=u0, u0_test=u0_test)
      out["ntk_gap"] = _distance(train, ref.train)
      if test is not None:
        out["ntk_gap_test"] = _distance(test, ref.test)
    return out

  def _linearized(self, t, learning_rate, u0, u0_test):
    # The linearized network's exact MSE flow uses the full (N·O × N·O) NTK at θ₀.
    n, o = self.y.shape
    K = empirical_ntk(self.model, self.params0, self.x, trace_outputs=False)
    K = K.transpose(0, 2, 1, 3).reshape(n * o, n * o)
    Kt = None
    if self.x_test is not None:
      Kt = empirical_ntk(self.model, self.params0, self.x_test, self.x, trace_outputs=False)
      m = Kt.shape[0]
      Kt = Kt.transpose(0, 2, 1, 3).reshape(m * o, n * o)
    ref = mse_dynamics(K, self.y.reshape(-1), t, k_test_train=Kt, learning_rate=learning_rate,
                       u0_train=u0.reshape(-1), u0_test=None if Kt is None else u0_test.reshape(-1))
    train = ref.train.reshape(len(t), n, o)
    test = None if Kt is None else ref.test.reshape(len(t), -1, o)
    return train, test


def state_observables(names, model, context, params, x, y, outputs, loss_value):
  """The per-state observables named in `names`, as a dict of arrays (traceable)."""
  out = {}
  if "loss" in names:
    out["loss"] = loss_value
  if "residual" in names:
    out["residual"] = jnp.linalg.norm(y - outputs)
  if "ntk_eigs" in names or "kernel_drift" in names:
    K = empirical_ntk(model, params, x)
    if "ntk_eigs" in names:
      lam = jnp.linalg.eigvalsh((K + K.T) / 2)
      out["ntk_min_eig"], out["ntk_max_eig"] = lam[0], lam[-1]
    if "kernel_drift" in names:
      k0 = context["k0"]
      out["kernel_drift"] = jnp.linalg.norm(K - k0) / jnp.linalg.norm(k0)
  params0 = context["params0"]
  if "weight_change" in names:
    if isinstance(root_model(model), MLP):
      pairs = [(p["W"], p0["W"]) for p, p0 in zip(params, params0)]
    else:
      pairs = list(zip(jax.tree.leaves(params), jax.tree.leaves(params0)))
    out["weight_change"] = jnp.stack([jnp.linalg.norm(w - w0) / jnp.linalg.norm(w0) for w, w0 in pairs])
  if "unit_change" in names:
    last = len(params) - 1
    # Hidden unit r's incoming weights are column r of W_l; the readout's a_r is row r of W_L.
    out["unit_change"] = jnp.stack([
        jnp.max(jnp.linalg.norm(p["W"] - p0["W"], axis=1 if l == last else 0))
        for l, (p, p0) in enumerate(zip(params, params0))])
  return out


def _distance(a, b):
  return jnp.linalg.norm((a - b).reshape(a.shape[0], -1), axis=1)
