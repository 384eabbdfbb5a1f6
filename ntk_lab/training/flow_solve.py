"""The compiled gradient-flow solve: its structure (`FlowProgram`), its runtime values
(`FlowInputs`) and what it returns (`Solved`); `solve` is compiled once per structure."""

from __future__ import annotations

from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ntk_lab.models import apply_fn_of, trainable_merge
from ntk_lab.training import common


class FlowProgram(NamedTuple):
  """The structure of one compiled solve (`_solve` is compiled once per distinct value of it)."""

  loss: str
  reduction: str
  solver: diffrax.AbstractSolver
  adaptive: bool  # PID steps with rtol/atol, else constant steps of dt0
  error_control: str  # what steers adaptive steps ("params" for fixed steps: nothing is measured)
  auto_dt0: bool  # diffrax picks the first step
  max_steps: int
  observables: tuple  # (name, Observable) entries
  save_params: bool

  @property
  def running_max(self) -> bool:
    return any(e.running_max for _, e in self.observables)

  @property
  def on_outputs(self) -> bool:
    return self.error_control in ("outputs", "both")


class FlowInputs(NamedTuple):
  """The runtime values of one solve: new values (η, tolerances, dt0, times) reuse the program."""

  data: common.Data
  trainable0: Any
  times: jax.Array
  eta: jax.Array
  rate: jax.Array  # kernel time per unit of t: η (reduction "sum") or η / y.size ("mean")
  rtol: jax.Array
  atol: jax.Array
  dt0: jax.Array | None


class Solved(NamedTuple):
  """What the compiled solve returns."""

  saved: dict  # the records at the saved times, each with a leading T axis
  final: Any  # trainable params at the last time reached
  t_end: jax.Array
  status: jax.Array  # 0 done, 1 diverged, 2 out of max_steps, 3 solver failure
  stats: dict
  steps: tuple | None  # (times, running observables) at every accepted step, if any is observed


@eqx.filter_jit
def solve(program: FlowProgram, inputs: FlowInputs) -> Solved:
  """The solve, compiled once per (program, array shapes): values in `inputs` are arguments."""
  common.TRACES["gradient_flow"] += 1
  p, data, trainable0 = program, inputs.data, inputs.trainable0
  loss_fn = common.loss_fn(p.loss, p.reduction)
  f = apply_fn_of(data.model)
  merge = trainable_merge(data.model)
  eta = inputs.eta

  # The state is the displacement δ = θ − θ₀, not θ: in a wide net each weight moves by
  # O(1/√width) while being O(1) itself, so tolerances relative to θ would not resolve the motion.
  def at(delta):
    return jax.tree.map(jnp.add, trainable0, delta)

  def outputs(delta):
    return f(merge(at(delta), data.frozen), data.x)

  def field(t, z, args):
    if not p.on_outputs:
      return jax.tree.map(lambda g: -eta * g, jax.grad(lambda d: loss_fn(outputs(d), data.y))(z))
    # One forward pass; its linearisation gives both θ̇ = −η Jᵀ ∂L/∂u and u̇ = J θ̇.
    u, jvp = jax.linearize(outputs, z[0])
    (g,) = jax.linear_transpose(jvp, z[0])(jax.grad(loss_fn)(u, data.y))
    d_delta = jax.tree.map(lambda a: -eta * a, g)
    return d_delta, jvp(d_delta)

  def delta_of(z):
    return z[0] if p.on_outputs else z

  def save(t, z, args):
    return common.snapshot(data, loss_fn, p.observables, at(delta_of(z)), p.save_params, inputs.rate * t)

  def save_running(t, z, args):
    return common.running(data, loss_fn, p.observables, at(delta_of(z)), inputs.rate * t)

  subs = [
    diffrax.SubSaveAt(ts=inputs.times, fn=save),
    diffrax.SubSaveAt(t1=True, fn=lambda t, z, a: delta_of(z)),
  ]
  if p.running_max:
    subs.append(diffrax.SubSaveAt(steps=True, fn=save_running))
  if not p.adaptive:
    controller = diffrax.ConstantStepSize()
  elif p.on_outputs:
    # Only the outputs' error steers the steps (it is what users measure), or both errors.
    norm = _rms_of_outputs if p.error_control == "outputs" else _rms_of_both
    controller = diffrax.PIDController(rtol=inputs.rtol, atol=inputs.atol, norm=norm)
  else:
    controller = diffrax.PIDController(rtol=inputs.rtol, atol=inputs.atol)
  delta0 = jax.tree.map(jnp.zeros_like, trainable0)
  z0 = (delta0, outputs(delta0)) if p.on_outputs else delta0
  event = diffrax.Event(lambda t, z, args, **kw: jnp.logical_not(common.all_finite(z)))
  sol = diffrax.diffeqsolve(
    diffrax.ODETerm(field),
    p.solver,
    t0=jnp.zeros((), inputs.times.dtype),
    t1=inputs.times[-1],
    dt0=None if p.auto_dt0 else inputs.dt0,
    y0=z0,
    saveat=diffrax.SaveAt(subs=subs),
    stepsize_controller=controller,
    event=event,
    max_steps=p.max_steps,
    throw=False,
  )
  status = jnp.select(
    [
      sol.result == diffrax.RESULTS.successful,
      sol.result == diffrax.RESULTS.event_occurred,
      sol.result == diffrax.RESULTS.max_steps_reached,
    ],
    [0, 1, 2],
    3,
  )
  final = at(jax.tree.map(lambda a: a[-1], sol.ys[1]))
  steps = (sol.ts[2], sol.ys[2]) if p.running_max else None
  return Solved(sol.ys[0], final, sol.ts[1], status, sol.stats, steps)


def running_maxima(times, saved_obs, step_ts, step_obs):
  """For each entry e measured at every accepted step: ``e_max`` (T,), the largest value over the
  steps and saved points up to each saved time."""
  out = {}
  # Step s falls in the interval that ends at the first saved time ≥ t_s; unused buffer slots
  # (t = inf) land past the last interval and are dropped.
  seg = jnp.searchsorted(times, step_ts, side="left")
  for name, values in step_obs.items():
    per_interval = jax.ops.segment_max(values, seg, num_segments=times.shape[0])
    out[name + "_max"] = jax.lax.cummax(jnp.maximum(per_interval, saved_obs[name]), axis=0)
  return out


def _rms_of_outputs(scaled_error):
  """The step controller's norm: the RMS of the outputs' scaled local error (the displacement's is
  ignored, since it matters only through the outputs)."""
  e = scaled_error[1]
  return jnp.sqrt(jnp.mean(jnp.square(e)))


def _rms_of_both(scaled_error):
  """The larger of the outputs' and the displacement's RMS scaled local errors."""
  leaves = jax.tree.leaves(scaled_error[0])
  size = sum(l.size for l in leaves)
  params = jnp.sqrt(sum(jnp.sum(jnp.square(l)) for l in leaves) / size)
  return jnp.maximum(_rms_of_outputs(scaled_error), params)
