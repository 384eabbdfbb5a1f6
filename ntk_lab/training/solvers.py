"""The ODE solvers `gradient_flow` offers by name: diffrax's, plus the classical RK4."""

from __future__ import annotations

import diffrax
import numpy as np

from ntk_lab import _checks

__all__ = ["SOLVERS", "solver_of"]


class _RK4(diffrax.AbstractERK):
  """The classical 4th-order Runge–Kutta method (fixed steps; diffrax ships no RK4)."""

  tableau = diffrax.ButcherTableau(
      c=np.array([0.5, 0.5, 1.0]),
      b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
      b_error=np.zeros(4),  # no embedded method: only for constant step sizes
      a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
  )
  interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

  def order(self, terms):
    return 4


# name -> (solver class, adaptive?)
SOLVERS = {"tsit5": (diffrax.Tsit5, True), "dopri5": (diffrax.Dopri5, True),
           "dopri8": (diffrax.Dopri8, True), "bosh3": (diffrax.Bosh3, True),
           "heun": (diffrax.Heun, False), "euler": (diffrax.Euler, False), "rk4": (_RK4, False)}


def solver_of(solver, dt0):
  if isinstance(solver, str):
    cls, adaptive = SOLVERS[_checks.choice(solver, "solver", tuple(SOLVERS))]
    if not adaptive and dt0 is None:
      raise ValueError(f"dt0: solver={solver!r} takes fixed steps, so it needs dt0 (e.g. a fraction "
                       "of 1/(η λ_max) of the NTK); or use an adaptive solver such as 'tsit5'.")
    return cls(), adaptive
  if isinstance(solver, diffrax.AbstractSolver):
    return solver, dt0 is None
  raise TypeError(f"solver: expected one of {sorted(SOLVERS)} or a diffrax solver, got {solver!r}.")
