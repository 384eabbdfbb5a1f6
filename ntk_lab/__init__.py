"""ntk_lab: neural tangent kernels of wide networks, on current JAX.

Public API (explicit re-exports; everything else is internal):

* `MLP`, `Activation`, `centered`: functional fully-connected networks in NTK/standard
  parametrization with plain-pytree params.
* `empirical_ntk`: the finite-width NTK by Jacobian contraction, NTK-vector products or the
  structured layerwise formula.
* `analytic_kernel` (also `MLP.kernel`): the infinite-width NNGP and NTK.
* `monte_carlo_kernel`: NNGP and NTK estimated from finite networks, with standard errors.
* `g_infinity`, `h_infinity`, `relu_h_infinity`, `relu_h_infinity_series`,
  `relu_ntk_all_weights`: the seeds' named two-layer kernels.
* `mse_dynamics`: closed-form gradient-flow outputs of kernel regression (train and test).
"""

from ntk_lab.activations import ACTIVATIONS, Activation
from ntk_lab.analytic import CLOSED_FORMS, Kernel, analytic_kernel, gaussian_expectations
from ntk_lab.empirical import METHODS, empirical_ntk, structured_flops
from ntk_lab.kernel_dynamics import MSEDynamics, mse_dynamics
from ntk_lab.mlp import MLP, Centered, centered
from ntk_lab.monte_carlo import MonteCarloKernel, monte_carlo_kernel
from ntk_lab.two_layer import (Series, g_infinity, h_infinity, relu_h_infinity,
                               relu_h_infinity_series, relu_ntk_all_weights)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "CLOSED_FORMS",
    "Centered",
    "Kernel",
    "METHODS",
    "MLP",
    "MSEDynamics",
    "MonteCarloKernel",
    "Series",
    "analytic_kernel",
    "centered",
    "empirical_ntk",
    "g_infinity",
    "gaussian_expectations",
    "h_infinity",
    "monte_carlo_kernel",
    "mse_dynamics",
    "relu_h_infinity",
    "relu_h_infinity_series",
    "relu_ntk_all_weights",
    "structured_flops",
]
