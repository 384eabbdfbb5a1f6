"""ntk_lab: neural tangent kernels of wide networks, on current JAX.

Public API (explicit re-exports; everything else is internal):

* `MLP`, `Activation`, `centered`: functional fully-connected networks in NTK/standard
  parametrization with plain-pytree params.
* `empirical_ntk`: the finite-width NTK by Jacobian contraction, NTK-vector products or the
  structured layerwise formula.
* `analytic_kernel` (also `MLP.kernel`): the infinite-width NNGP and NTK.
"""

from ntk_lab.activations import ACTIVATIONS, Activation
from ntk_lab.analytic import CLOSED_FORMS, Kernel, analytic_kernel, gaussian_expectations
from ntk_lab.empirical import METHODS, empirical_ntk, structured_flops
from ntk_lab.mlp import MLP, Centered, centered

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "CLOSED_FORMS",
    "Centered",
    "Kernel",
    "METHODS",
    "MLP",
    "analytic_kernel",
    "centered",
    "empirical_ntk",
    "gaussian_expectations",
    "structured_flops",
]
