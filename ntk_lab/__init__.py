"""ntk_lab: neural tangent kernels of wide networks, on current JAX.

Public API (explicit re-exports; everything else is internal):

* `MLP`, `Activation`, `centered`: functional fully-connected networks in NTK/standard
  parametrization with plain-pytree params.
* `empirical_ntk`: the finite-width NTK by Jacobian contraction, NTK-vector products or the
  structured layerwise formula.
* `analytic_kernel` (also `MLP.kernel`): the infinite-width NNGP and NTK.
* `monte_carlo_kernel`: NNGP and NTK estimated from finite networks, with standard errors.
* `g_infinity`, `h_infinity`, `relu_h_infinity`, `relu_h_infinity_series`,
  `relu_ntk_all_weights`, `ntk_complexity`: the seeds' named two-layer kernels and the NTK's
  complexity measure (seed 002 P2).
* `datasets` (a module): scikit-learn's digits (split, normalised, label corruption) and synthetic
  sets (circle, sphere, Gaussian, teacher–student).
* `deep_linear` (a module): balanced deep linear networks, their end-to-end dynamics and the
  UUᵀ factorization flow (seed 004).
* `kernel_complexity`: yᵀH⁻¹y complexity measures of any kernel, each named by its definition
  (Arora et al. 2019's √(2yᵀH⁻¹y/n), or the trace form of `ntk_complexity`).
* `mse_dynamics`, `max_learning_rate`: closed-form gradient-flow (or, discrete, gradient-descent)
  outputs of kernel regression (train and test), and the stable GD step bound 2/λ_max.
* `mse_ensemble`, `gp_inference`: the infinite-width ensemble of GD-trained networks (mean and
  covariance over time) and the NNGP posterior.
* `linearize`: the network's first-order Taylor expansion in its parameters.
* `gradient_flow` (diffrax ODE) and `train` (optax): training runs with opt-in observables.
"""

from ntk_lab import datasets, deep_linear
from ntk_lab.activations import ACTIVATIONS, Activation
from ntk_lab.analytic import CLOSED_FORMS, Kernel, analytic_kernel, gaussian_expectations
from ntk_lab.complexity import COMPLEXITY_DEFINITIONS, Complexity, kernel_complexity
from ntk_lab.empirical import METHODS, empirical_nngp, empirical_ntk, structured_flops
from ntk_lab.ensemble import Gaussian, gp_inference, mse_ensemble
from ntk_lab.kernel_dynamics import MSEDynamics, max_learning_rate, mse_dynamics
from ntk_lab.linearize import Linearized, linearize
from ntk_lab.mlp import MLP, Centered, centered
from ntk_lab.monte_carlo import MonteCarloKernel, monte_carlo_kernel
from ntk_lab.observables import OBSERVABLES
from ntk_lab.training import (LOSSES, SOLVERS, DivergenceError, SolverError, Trajectory,
                              gradient_flow, train)
from ntk_lab.two_layer import (Series, g_infinity, h_infinity, ntk_complexity, relu_h_infinity,
                               relu_h_infinity_series, relu_ntk_all_weights)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "CLOSED_FORMS",
    "COMPLEXITY_DEFINITIONS",
    "Complexity",
    "Centered",
    "DivergenceError",
    "Gaussian",
    "Kernel",
    "LOSSES",
    "Linearized",
    "METHODS",
    "MLP",
    "MSEDynamics",
    "MonteCarloKernel",
    "OBSERVABLES",
    "SOLVERS",
    "Series",
    "SolverError",
    "Trajectory",
    "analytic_kernel",
    "centered",
    "datasets",
    "deep_linear",
    "empirical_nngp",
    "empirical_ntk",
    "g_infinity",
    "gaussian_expectations",
    "gp_inference",
    "gradient_flow",
    "kernel_complexity",
    "h_infinity",
    "linearize",
    "max_learning_rate",
    "monte_carlo_kernel",
    "mse_dynamics",
    "mse_ensemble",
    "ntk_complexity",
    "relu_h_infinity",
    "relu_h_infinity_series",
    "relu_ntk_all_weights",
    "structured_flops",
    "train",
]
