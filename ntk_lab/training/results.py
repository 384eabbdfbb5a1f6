"""What the trainers return and raise: `Trajectory`, `DivergenceError`, `SolverError`."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["DivergenceError", "SolverError", "Trajectory"]


class Trajectory(NamedTuple):
  """A training run sampled at T points.

  Attributes:
    times: (T,) gradient-flow times t (`gradient_flow`), or step counts (`train`).
    train_outputs: (T, N, O), u = f(X; θ) on the training inputs.
    test_outputs: (T, N_test, O) on ``x_test``, or None.
    params: the trainable params at each point, each leaf with a leading T axis (with
      ``save_params=True``), else None.
    final_params: the full params at the last point, ready to evaluate or train further.
    observables: dict of (T, …) arrays, see `ntk_lab.observables`.
    stats: solver statistics (``num_steps``, ``num_accepted_steps``, ``num_rejected_steps``) or,
      for `train`, ``{"steps": …}``.
  """

  times: Any
  train_outputs: Any
  test_outputs: Any
  params: Any
  final_params: Any
  observables: dict
  stats: dict


class DivergenceError(FloatingPointError):
  """Training produced NaN or Inf. Attributes: ``time`` (or ``step``) where it began and the last
  finite loss (``last_finite_loss``, at ``last_finite_at``)."""

  def __init__(self, message, *, time=None, step=None, last_finite_loss=None, last_finite_at=None):
    super().__init__(message)
    self.time, self.step = time, step
    self.last_finite_loss, self.last_finite_at = last_finite_loss, last_finite_at


class SolverError(RuntimeError):
  """The ODE solver stopped before the last requested time (e.g. it ran out of ``max_steps``)."""

  def __init__(self, message, *, time=None, steps=None):
    super().__init__(message)
    self.time, self.steps = time, steps
