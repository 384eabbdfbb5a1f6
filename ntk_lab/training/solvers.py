"""The ODE solvers `gradient_flow` takes: one registry of named diffrax solver objects.

A solver is a diffrax solver instance (``diffrax.Tsit5()``, ``diffrax.Dopri8()``, `RK4`, or any
``diffrax.AbstractSolver`` of your own); `SOLVERS` names the common ones. Each registry entry says
whether the solver has an embedded error estimate, so that it takes adaptive steps; the others
take fixed steps of size ``dt0``.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import numpy as np

from ntk_lab import _checks

__all__ = ["RK4", "SOLVERS", "SolverSpec", "solver_of"]


class RK4(diffrax.AbstractERK):
  """The classical 4th-order Runge–Kutta method (fixed steps only: no embedded error estimate).

  diffrax ships no RK4; this is its Butcher tableau as a diffrax solver.

  Example:
    >>> import diffrax, jax.numpy as jnp
    >>> sol = diffrax.diffeqsolve(diffrax.ODETerm(lambda t, y, a: -y), RK4(), 0.0, 1.0, 0.1,
    ...                           jnp.ones(()))
    >>> abs(float(sol.ys[-1]) - float(jnp.exp(-1.0))) < 1e-6
    True
  """

  tableau = diffrax.ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),  # no embedded method: only for constant step sizes
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
  )
  interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

  def order(self, terms):
    return 4


class SolverSpec(NamedTuple):
  """One registry entry: the diffrax solver object and whether it steps adaptively."""

  solver: diffrax.AbstractSolver
  adaptive: bool


# The one registry: name -> solver object (Heun's embedded Euler estimate is too crude to steer
# steps on a gradient flow, so it is offered with fixed steps).
SOLVERS = {
  "tsit5": SolverSpec(diffrax.Tsit5(), True),
  "dopri5": SolverSpec(diffrax.Dopri5(), True),
  "dopri8": SolverSpec(diffrax.Dopri8(), True),
  "bosh3": SolverSpec(diffrax.Bosh3(), True),
  "heun": SolverSpec(diffrax.Heun(), False),
  "euler": SolverSpec(diffrax.Euler(), False),
  "rk4": SolverSpec(RK4(), False),
}


def solver_of(solver, dt0):
  """(diffrax solver object, adaptive?) for a registry name or a diffrax solver instance."""
  if isinstance(solver, str):
    spec = SOLVERS[_checks.choice(solver, "solver", tuple(SOLVERS))]
    if not spec.adaptive and dt0 is None:
      raise ValueError(
        f"dt0: solver={solver!r} takes fixed steps, so it needs dt0 (e.g. a fraction "
        "of 1/(η λ_max) of the NTK); or use an adaptive solver such as 'tsit5'."
      )
    return spec.solver, spec.adaptive
  if isinstance(solver, diffrax.AbstractSolver):
    return solver, dt0 is None
  if isinstance(solver, type) and issubclass(solver, diffrax.AbstractSolver):
    raise TypeError(f"solver: pass a diffrax solver instance, e.g. {solver.__name__}(), not the class.")
  raise TypeError(
    f"solver: expected one of {sorted(SOLVERS)} or a diffrax solver instance "
    f"(e.g. diffrax.Tsit5()), got {solver!r}."
  )
