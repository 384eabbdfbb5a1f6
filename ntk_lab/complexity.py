"""Data-dependent complexity measures of a kernel and labels, yᵀH⁻¹y based.

Arora et al. 2019 ("Fine-grained analysis of optimization and generalization for overparameterized
two-layer neural networks", Theorem 5.1) bound the test error of a wide two-layer ReLU net trained
by gradient descent by

    √(2 yᵀ(H^∞)⁻¹y / n)                                          (definition "arora2019")

plus lower-order terms, with H^∞ its NTK Gram matrix (`ntk_lab.relu_h_infinity` for unit-norm
inputs); the measure is small for labels the kernel finds easy (true labels) and grows with the
fraction of random labels. The Rademacher-complexity form that keeps the trace of the kernel,

    √(2 yᵀH⁻¹y · tr H) / n                                        (definition "trace"),

is what `ntk_lab.ntk_complexity` computes for H^∞; for unit-norm inputs tr H^∞ = n/2, so it is the
first divided by √2. `kernel_complexity` computes either for any kernel matrix (empirical or
analytic NTK, NNGP, …); `definition` is required so that a number always names its formula. For
targets with O columns, yᵀH⁻¹y is Σ_o y_oᵀH⁻¹y_o.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntk_lab import _checks
from ntk_lab.kernel_dynamics import spectrum

__all__ = ["COMPLEXITY_DEFINITIONS", "Complexity", "kernel_complexity"]

COMPLEXITY_DEFINITIONS = {
  "arora2019": "√(2 yᵀH⁻¹y / n)  (Arora et al. 2019, Theorem 5.1)",
  "trace": "√(2 yᵀH⁻¹y · tr H) / n  (the Rademacher form with the trace; nl.two_layer.ntk_complexity)",
}


class Complexity(NamedTuple):
  """value: the measure; quadratic_form: yᵀH⁻¹y; trace: tr H (all scalars)."""

  value: jax.Array
  quadratic_form: jax.Array
  trace: jax.Array


def kernel_complexity(k_train_train, y_train, *, definition: str, diag_reg: float = 0.0) -> Complexity:
  """A yᵀH⁻¹y complexity measure of labels y under the kernel H = `k_train_train`.

  H⁻¹ is applied through a symmetric eigendecomposition of H + ε·mean(diag H)·I (ε = `diag_reg`);
  eigenvalues below N·eps·λ_max count as 0 (a pseudo-inverse), so a singular kernel gives a finite
  number that ignores the part of y it cannot represent.

  Args:
    k_train_train: H, (n, n), symmetric positive semi-definite up to rounding (checked as in
      `mse_dynamics`: a non-symmetric or indefinite H raises, since yᵀH⁻¹y of an indefinite H
      can be any number, even negative).
    y_train: labels (n,) or (n, O) (±1 labels in the paper).
    definition: ``"arora2019"`` (√(2yᵀH⁻¹y/n)) or ``"trace"`` (√(2yᵀH⁻¹y · tr H)/n); see
      `COMPLEXITY_DEFINITIONS`.
    diag_reg: ε ≥ 0.

  Returns:
    `Complexity(value, quadratic_form, trace)`.

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (20, 5))
    >>> x = x / jnp.linalg.norm(x, axis=1, keepdims=True); y = jnp.sign(x[:, 0])
    >>> H = nl.two_layer.relu_h_infinity(x)
    >>> a = nl.kernel_complexity(H, y, definition="arora2019").value
    >>> t = nl.kernel_complexity(H, y, definition="trace").value
    >>> bool(jnp.isclose(t, nl.two_layer.ntk_complexity(x, y))), bool(jnp.isclose(a, jnp.sqrt(2.0) * t))
    (True, True)
  """
  _checks.choice(definition, "definition", tuple(COMPLEXITY_DEFINITIONS))
  _checks.nonnegative_number(diag_reg, "diag_reg")
  H = _checks.kernel_matrix(k_train_train, "k_train_train")
  n = H.shape[0]
  y = _checks.targets(y_train, "y_train", n)
  out, defects = _complexity(H, y, diag_reg, definition)
  _checks.check_kernel(defects, "k_train_train", n, H.dtype)
  return out


@functools.partial(jax.jit, static_argnames="definition")
def _complexity(H, y, diag_reg, definition):
  lam, V, live = spectrum(H, diag_reg)
  defects = _checks.kernel_defects(H, lam, diag_reg)  # checked by the caller, O(n²)
  proj = V.T @ y  # (n, O): the labels in the kernel's eigenbasis
  inv = jnp.where(live, 1.0 / jnp.where(live, lam, 1.0), 0.0)
  quad = jnp.sum(inv[:, None] * proj**2)
  trace = jnp.sum(lam)  # tr of the regularised, symmetrised H, the one inverted
  n = H.shape[0]
  value = jnp.sqrt(2 * quad / n) if definition == "arora2019" else jnp.sqrt(2 * quad * trace) / n
  return Complexity(value, quad, trace), defects
