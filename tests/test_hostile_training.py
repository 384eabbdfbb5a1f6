"""Hostile inputs to the trainers: results too large to keep, a model or optimizer of the wrong
kind, strings as booleans. Each is refused before compiling, naming the argument and the fix."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ntk_lab as nl
from ntk_lab import _tiling
from ntk_lab.training import common, flow, optax_loop, optimizers

TIMES = jnp.array([0.0, 0.5, 1.0])


def problem(hidden=(8,), n=6, d=3):
  net = nl.MLP(hidden, activation="tanh", b_std=0.1)
  kx, ky, kp = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (n, d))
  return net, net.init(kp, d), x, jax.random.normal(ky, (n,))


def n_params(tree):
  return sum(a.size for a in jax.tree.leaves(tree))


# ------------------------------------------------------------------ results that cannot fit
def test_flow_saving_params_at_a_million_times_is_refused_before_compiling():
  net, p0, x, y = problem(hidden=(512, 512))
  traced = common.TRACES["gradient_flow"]
  need = 10**6 * 8 * (n_params(p0) + x.shape[0] + 1)  # params, outputs (N, 1) and the loss, float64
  with pytest.raises(
    ValueError, match=r"gradient_flow: the results it keeps need .* GB \(1,000,000 saved"
  ) as e:
    nl.gradient_flow(net, p0, x, y, times=jnp.linspace(0.0, 1.0, 10**6), save_params=True)
  msg = str(e.value)
  assert "fewer times" in msg and "save_params=False" in msg and f"{need / 1e9:.3g} GB" in msg
  assert common.TRACES["gradient_flow"] == traced  # nothing was traced, so nothing compiled


def test_train_recording_params_every_step_is_refused_before_compiling():
  net, p0, x, y = problem(hidden=(512, 512))
  traced = common.TRACES["train"]
  with pytest.raises(ValueError, match=r"train: the results it keeps need .*held 2 times") as e:
    nl.train(net, p0, x, y, optimizer=optax.sgd(0.1), steps=10**6, every=1, save_params=True)
  assert "a larger every than 1" in str(e.value) and "save_params=False" in str(e.value)
  assert common.TRACES["train"] == traced


def test_the_estimate_counts_every_kept_array_and_refuses_at_the_available_memory(monkeypatch):
  """The plan's bytes, recounted by hand: T records of params, train and test outputs, the loss
  and the observables; plus, for the gaps' running maxima, one (t, gap) per possible solver step.
  A run needing exactly the available memory passes, one byte more is refused."""
  net, p0, x, y = problem()
  xt = x[:2] + 1.0
  n, p = x.shape[0], n_params(p0)
  args = dict(times=TIMES, save_params=True, x_test=xt, observe=["loss", "weight_change", "lin_gap"])
  plan = flow._plan(flow._checked(**_flow_defaults(net, p0, x, y, **args)))
  per_record = 8 * (p + n + 2 + 1 + 1 + 2 + 2)  # params, train, test, loss, "loss", (2,) changes, 2 gaps
  assert plan.footprint.record_bytes == per_record and plan.footprint.params_bytes == 8 * p
  assert plan.footprint.extra_bytes == 100_000 * 8 * (2 + 1)  # max_steps × (lin_gap, lin_gap_test, t)
  total = 3 * per_record + plan.footprint.extra_bytes
  assert plan.footprint.total == total
  monkeypatch.setattr(_tiling, "available_bytes", lambda devices=None: total)
  common.refuse_unless_fits("gradient_flow", plan.footprint, fewer_points="fewer times")
  monkeypatch.setattr(_tiling, "available_bytes", lambda devices=None: total - 1)
  with pytest.raises(ValueError, match="for the gaps' running maxima"):
    nl.gradient_flow(net, p0, x, y, **args)
  train_plan = optax_loop._plan(
    optax_loop._checked(**_train_defaults(net, p0, x, y, steps=40, every=10, save_params=True))
  )
  assert train_plan.footprint.records == 5 and train_plan.footprint.record_bytes == 8 * (p + n + 1)
  assert train_plan.footprint.total == 2 * 5 * 8 * (p + n + 1)


def _flow_defaults(net, p0, x, y, **kw):
  return {**_defaults(nl.gradient_flow), "model": net, "params0": p0, "x": x, "y": y, **kw}


def _train_defaults(net, p0, x, y, **kw):
  call = {"model": net, "params0": p0, "x": x, "y": y, "optimizer": optax.sgd(0.1)}
  return {**_defaults(nl.train), **call, **kw}


def _defaults(fn):
  params = inspect.signature(fn).parameters.values()
  return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


# ----------------------------------------------------------------- models of the wrong kind
@pytest.mark.parametrize("trainer", ["gradient_flow", "train"])
def test_a_dict_or_params_as_the_model_is_a_type_error_naming_model(trainer):
  net, p0, x, y = problem()
  call = (
    (lambda m, p: nl.gradient_flow(m, p, x, y, times=TIMES))
    if trainer == "gradient_flow"
    else (lambda m, p: nl.train(m, p, x, y, optimizer=optax.sgd(0.1), steps=2))
  )
  with pytest.raises(TypeError, match=r"model: expected a network .* got a dict; pass the network as model"):
    call({"apply": net.apply}, p0)
  with pytest.raises(TypeError, match=r"model: .* got a list"):
    call(p0, p0)  # the params in the model's place
  with pytest.raises(TypeError, match=r"params0: expected a pytree of arrays .* leaf of type MLP"):
    call(net, net)


# -------------------------------------------------------------------------------- optimizers
@pytest.mark.slow  # two compilations of L-BFGS's line search (~10 s on 2 cores)
def test_lbfgs_gets_value_grad_and_value_fn_and_matches_a_plain_optax_loop():
  """optax.lbfgs needs the loss, its gradient and the loss function in `update`; `train` passes
  them, and its run equals the loop written with optax directly."""
  net, p0, x, y = problem()
  run = nl.train(net, p0, x, y, optimizer=optax.lbfgs(), steps=8, every=8)
  fn = lambda p: 0.5 * jnp.sum((net.apply(p, x) - y[:, None]) ** 2)  # noqa: E731
  opt = optax.lbfgs()

  @jax.jit
  def step(params, state):
    value, grad = jax.value_and_grad(fn)(params)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fn)
    return optax.apply_updates(params, updates), state

  params, state = p0, opt.init(p0)
  for _ in range(8):
    params, state = step(params, state)
  for a, b in zip(jax.tree.leaves(run.final_params), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
  assert float(fn(params)) < 0.1 * float(fn(p0))  # 8 quasi-Newton steps: 3.1 -> 0.21


@pytest.mark.parametrize(
  "optimizer",
  [optax.lbfgs(), optax.chain(optax.sgd(0.1), optax.contrib.reduce_on_plateau()), optax.adam(1e-3)],
)
def test_optimizers_that_need_the_loss_pass_the_check(optimizer):
  """L-BFGS (value, grad, value_fn) and reduce_on_plateau (value) get what they need: their
  update traces on shapes with the arguments train passes (the run is in the slow suite)."""
  net, p0, x, y = problem()
  state = optimizers.check(optimizer, p0, x.dtype)
  assert jax.tree.structure(state) == jax.tree.structure(optimizer.init(p0))


@pytest.mark.parametrize(
  "optimizer,match",
  [
    (optax.lookahead(optax.sgd(0.1), 5, 0.5), r"optimizer: its update failed .*LookaheadParams"),
    (
      optax.GradientTransformation(optax.sgd(0.1).init, lambda g, s, p=None: (g, (s, s))),
      r"optimizer: its update returned a state whose structure",
    ),
    (
      optax.GradientTransformation(optax.sgd(0.1).init, lambda g, s, p=None: (g[:1], s)),
      r"optimizer: its update returned updates shaped unlike the params",
    ),
    (optax.sgd, r"optimizer: expected an optax.GradientTransformation .* got function"),
  ],
)
def test_optimizers_train_cannot_drive_are_refused_before_compiling(optimizer, match):
  net, p0, x, y = problem()
  traced = common.TRACES["train"]
  with pytest.raises(TypeError, match=match):
    nl.train(net, p0, x, y, optimizer=optimizer, steps=4)
  assert common.TRACES["train"] == traced


# ------------------------------------------------------------------------ strings as booleans
@pytest.mark.parametrize("value", ["False", 0, 1, None, "yes"])
def test_save_params_must_be_a_bool(value):
  net, p0, x, y = problem()
  with pytest.raises(TypeError, match=r"save_params: expected True or False, got"):
    nl.gradient_flow(net, p0, x, y, times=TIMES, save_params=value)
  with pytest.raises(TypeError, match=r"save_params: expected True or False, got"):
    nl.train(net, p0, x, y, optimizer=optax.sgd(0.1), steps=2, save_params=value)
  assert common._boolean(np.bool_(True), "save_params") is True
