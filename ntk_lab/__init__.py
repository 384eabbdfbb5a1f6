"""ntk_lab: neural tangent kernels of wide networks, on current JAX.

Public API (explicit re-exports; everything else lives in its module):

* `layers`: layers that carry their own rules (init, apply, infinite-width kernel, structured
  empirical term) and the networks built from them, with neural-tangents' `stax` names
  (``nl.layers.serial(nl.layers.Dense(512), nl.layers.Relu(), …)``).
* `MLP`, `Activation`, `centered`, `linearize`: fully-connected networks in NTK or standard
  parametrization (a network of `layers`, with plain-pytree params); the network minus its
  initial function, and its first-order Taylor expansion in the parameters (Lee et al. 2019).
* `empirical_ntk`, `empirical_nngp`: the finite-width kernels (Jacot et al. 2018), the NTK by
  Jacobian contraction, NTK-vector products or the structured layerwise formula.
* `analytic_kernel` (also ``net.kernel``) → `Kernel`: the infinite-width NNGP and NTK;
  `monte_carlo_kernel` → `MonteCarloKernel`: both estimated from finite networks.
* `mse_dynamics` → `MSEDynamics`, `max_learning_rate`: closed-form gradient-flow (or gradient-
  descent) outputs of kernel regression; `mse_ensemble`, `gp_inference` → `Gaussian`: the
  infinite-width ensemble of trained networks and the NNGP posterior.
* `gradient_flow` (diffrax) and `train` (optax) → `Trajectory`, raising `DivergenceError` or
  `SolverError`: training runs with opt-in observables.
* `from_equinox`, `from_nnx`: an Equinox or Flax NNX module as ``(apply_fn, params)``, for every
  function that takes an apply_fn.
* `kernel_complexity`: yᵀH⁻¹y complexity measures of a kernel (Arora et al. 2019).
* Submodules: `datasets` (digits, CIFAR-10 and synthetic sets), `two_layer` (two-layer kernels in closed
  form: Du et al. 2019; Arora et al. 2019), `deep_linear` (balanced deep linear networks: Arora et
  al. 2018), `stats` (log-log slope fits).
"""

from ntk_lab import datasets, deep_linear, layers, stats, two_layer
from ntk_lab._version import __version__ as __version__
from ntk_lab.activations import Activation
from ntk_lab.analytic import Kernel, analytic_kernel
from ntk_lab.complexity import kernel_complexity
from ntk_lab.empirical import empirical_nngp, empirical_ntk
from ntk_lab.ensemble import Gaussian, gp_inference, mse_ensemble
from ntk_lab.interop import from_equinox, from_nnx
from ntk_lab.kernel_dynamics import MSEDynamics, max_learning_rate, mse_dynamics
from ntk_lab.linearize import linearize
from ntk_lab.mlp import MLP
from ntk_lab.models import centered
from ntk_lab.monte_carlo import MonteCarloKernel, monte_carlo_kernel
from ntk_lab.training import DivergenceError, SolverError, Trajectory, gradient_flow, train

__all__ = [
  "Activation",
  "DivergenceError",
  "Gaussian",
  "Kernel",
  "MLP",
  "MSEDynamics",
  "MonteCarloKernel",
  "SolverError",
  "Trajectory",
  "analytic_kernel",
  "centered",
  "datasets",
  "deep_linear",
  "empirical_nngp",
  "empirical_ntk",
  "from_equinox",
  "from_nnx",
  "gp_inference",
  "gradient_flow",
  "kernel_complexity",
  "layers",
  "linearize",
  "max_learning_rate",
  "monte_carlo_kernel",
  "mse_dynamics",
  "mse_ensemble",
  "stats",
  "train",
  "two_layer",
]
