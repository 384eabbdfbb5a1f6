"""Training a network: gradient flow as an ODE (diffrax) and discrete optimizers (optax).

Gradient flow moves the trainable parameters by

    dθ/dt = −η ∇_θ L(θ),     L(θ) = ½ Σ_i ‖f(x_i; θ) − y_i‖²   (loss="mse", reduction="sum"),

or L(θ) = Σ_i CE(softmax f(x_i; θ), y_i) (loss="cross_entropy"); reduction="mean" divides the MSE
by y.size and the cross-entropy by N. The training outputs u(t) = f(X; θ(t)) then follow
du/dt = −η K(t)(u − y) (sum) with K(t) the empirical NTK (Jacot et al. 2018). The conventions are
collected in docs/training.md. Both trainers are compiled once per structure (hyperparameters
are runtime values) and run unchanged on CPU or GPU; frozen layers of
an MLP (its ``trainable`` spec) never move. Divergence (NaN/Inf) and solver failures raise
`DivergenceError` / `SolverError` naming where they began; results never hold silent NaNs.

Both compose with `jax.vmap` (e.g. over draws of θ₀: each draw keeps its own adaptive steps) and
`jax.jit`. Hyperparameters (learning rate, tolerances, steps, `observe`) must be concrete values
(Python or NumPy scalars); arrays may be traced. Under tracing, the checks that need values run inside the program: under a
plain `vmap` a failing draw raises its own `DivergenceError`/`SolverError`/`ValueError`; under
`jit` JAX re-raises it as a `jax.errors.JaxRuntimeError` with the same message.
"""

from ntk_lab.training.common import LOSSES, REDUCTIONS
from ntk_lab.training.flow import gradient_flow
from ntk_lab.training.optax_loop import train
from ntk_lab.training.results import DivergenceError, SolverError, Trajectory
from ntk_lab.training.solvers import RK4, SOLVERS

__all__ = [
  "DivergenceError",
  "LOSSES",
  "REDUCTIONS",
  "RK4",
  "SOLVERS",
  "SolverError",
  "Trajectory",
  "gradient_flow",
  "train",
]
