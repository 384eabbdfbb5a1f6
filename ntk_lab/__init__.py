"""ntk_lab: neural tangent kernels of wide networks, on current JAX.

Public API (explicit re-exports; everything else is internal):

* `MLP`, `Activation`, `centered`: functional fully-connected networks in NTK/standard
  parametrization with plain-pytree params.
* `empirical_ntk`: the finite-width NTK by Jacobian contraction, NTK-vector products or the
  structured layerwise formula.
"""

from ntk_lab.activations import ACTIVATIONS, Activation
from ntk_lab.empirical import METHODS, empirical_ntk
from ntk_lab.mlp import MLP, Centered, centered

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Centered",
    "METHODS",
    "MLP",
    "centered",
    "empirical_ntk",
]
