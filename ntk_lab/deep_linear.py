"""Deep linear networks and their trajectories (Arora, Cohen and Hazan 2018, "On the optimization
of deep networks: implicit acceleration by overparameterization"; Arora et al. 2019, "A convergence
analysis of gradient descent for deep linear neural networks").

A depth-N linear net is a list of factors ``[W_1, …, W_N]``, W_j of shape (d_j, d_{j−1}), with the
end-to-end matrix W_{1:N} = W_N ⋯ W_1 of shape (d_N, d_0). A loss ℓ is any function of the
end-to-end matrix; gradient flow on the factors is Ẇ_j = −∂ℓ(W_N ⋯ W_1)/∂W_j.

* Balanced factors: W_{j+1}ᵀW_{j+1} = W_j W_jᵀ for every j. `balanced_factors` builds them as
  W_j = V_{j+1} Σ^{1/N} V_jᵀ (V_1, V_{N+1} the singular vectors of the target end-to-end matrix,
  the inner V_j random with orthonormal columns), so W_{1:j}ᵀW_{1:j} = [W_{1:N}ᵀW_{1:N}]^{j/N}.
* End-to-end dynamics (Arora et al. 2018, Theorem 1): if the factors start balanced, W = W_{1:N} follows
  Ẇ = −Σ_{i=1}^N [WWᵀ]^{(i−1)/N} ∇ℓ(W) [WᵀW]^{(N−i)/N}  (`end_to_end_velocity`); for a row-vector
  output (d_N = 1) this is Ẇ = −‖W‖^{2(N−1)/N} (∇ℓ(W) + (N − 1) ∇ℓ(W) ŵᵀŵ), ŵ = W/‖W‖
  (`rank_one_velocity`): the step along the current direction is amplified (N − 1)-fold.
* Symmetric factorization: φ(U) = ℓ(UUᵀ). With G = ∇ℓ(UUᵀ), ∇φ(U) = (G + Gᵀ)U, so
  U̇ = −(G + Gᵀ)U and W = UUᵀ follows Ẇ = −(G + Gᵀ)W − W(G + Gᵀ). The forms
  U̇ = −2GᵀU and Ẇ = −2(X + Xᵀ), X = GᵀW, often written for it, agree with these exactly when G is symmetric
  (e.g. ℓ defined on symmetric matrices through a symmetric formula); see the claims atlas, C4.2.

Every velocity is a pure function of arrays (jit/vmap-able); `flow` integrates any of them with
diffrax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from ntk_lab import _checks

__all__ = [
  "end_to_end",
  "balanced_factors",
  "balanced_init",
  "balancedness",
  "psd_power",
  "factor_velocity",
  "end_to_end_velocity",
  "rank_one_velocity",
  "factorization_velocity",
  "gram_velocity",
  "flow",
]


def _factors(factors, name="factors"):
  if not isinstance(factors, (list, tuple)) or not factors:
    raise TypeError(
      f"{name}: expected a non-empty list of 2-D matrices [W_1, …, W_N], got {type(factors).__name__}."
    )
  out = [jnp.asarray(w) for w in factors]
  for j, w in enumerate(out, 1):
    if w.ndim != 2:
      raise ValueError(f"{name}[{j - 1}]: W_{j} must be 2-D (d_j, d_(j-1)), got shape {w.shape}.")
  for j in range(1, len(out)):
    if out[j].shape[1] != out[j - 1].shape[0]:
      raise ValueError(
        f"{name}: W_{j + 1} has shape {out[j].shape} but W_{j} has {out[j - 1].shape}; "
        f"W_{j + 1} must have {out[j - 1].shape[0]} columns."
      )
  return out


def end_to_end(factors) -> jax.Array:
  """W_{1:N} = W_N ⋯ W_1, shape (d_N, d_0).

  Example:
    >>> import jax.numpy as jnp
    >>> end_to_end([jnp.eye(2), 2 * jnp.eye(2)]).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
  """
  fs = _factors(factors)
  w = fs[0]
  for f in fs[1:]:
    w = f @ w
  return w


def balanced_factors(matrix, hidden_dims: Sequence[int], *, key) -> list[jax.Array]:
  """Balanced factors [W_1, …, W_N] with W_N ⋯ W_1 = `matrix` (d_N, d_0), N = len(hidden_dims) + 1.

  W_j = V_{j+1} Σ^{1/N} V_jᵀ with matrix = V_{N+1} Σ V_1ᵀ its thin SVD (rank r = min(d_0, d_N))
  and V_2, …, V_N random (d_j, r) matrices with orthonormal columns, so that
  W_{j+1}ᵀW_{j+1} = W_j W_jᵀ. Needs every hidden width d_j ≥ r.
  """
  a = jnp.asarray(matrix)
  if a.ndim != 2:
    raise ValueError(f"matrix: expected the 2-D end-to-end matrix (d_N, d_0), got shape {a.shape}.")
  _checks.check_finite(a, "matrix")
  hidden = [int(h) for h in hidden_dims]
  r = min(a.shape)
  if any(h < r for h in hidden):
    raise ValueError(
      f"hidden_dims: every hidden width must be ≥ min(d_0, d_N) = {r} to hold a balanced "
      f"factorization, got {hidden}."
    )
  u, s, vt = jnp.linalg.svd(a, full_matrices=False)
  n = len(hidden) + 1
  keys = jax.random.split(key, max(len(hidden), 1))
  frames = (
    [vt.T] + [jnp.linalg.qr(jax.random.normal(k, (h, r), a.dtype))[0] for k, h in zip(keys, hidden)] + [u]
  )
  root = s ** (1.0 / n)
  return [frames[j + 1] @ (root[:, None] * frames[j].T) for j in range(n)]


def balanced_init(key, dims: Sequence[int], *, scale: float = 1.0) -> list[jax.Array]:
  """Balanced factors for layer sizes ``dims = (d_0, …, d_N)`` whose end-to-end matrix has i.i.d.
  N(0, scale²/d_0) entries.

  Example:
    >>> import jax
    >>> fs = balanced_init(jax.random.PRNGKey(0), (3, 4, 4, 2), scale=0.5)
    >>> [f.shape for f in fs], float(balancedness(fs)) < 1e-5
    ([(4, 3), (4, 4), (2, 4)], True)
  """
  dims = [int(d) for d in dims]
  if len(dims) < 2 or min(dims) < 1:
    raise ValueError(f"dims: expected (d_0, …, d_N) with N ≥ 1 positive sizes, got {dims}.")
  ka, kf = jax.random.split(key)
  a = scale * jax.random.normal(ka, (dims[-1], dims[0])) / jnp.sqrt(dims[0])
  return balanced_factors(a, dims[1:-1], key=kf)


def balancedness(factors) -> jax.Array:
  """max_j ‖W_{j+1}ᵀW_{j+1} − W_j W_jᵀ‖_F (0 for balanced factors; conserved by gradient flow)."""
  fs = _factors(factors)
  gaps = [jnp.linalg.norm(fs[j + 1].T @ fs[j + 1] - fs[j] @ fs[j].T) for j in range(len(fs) - 1)]
  return jnp.max(jnp.stack(gaps)) if gaps else jnp.zeros(())


def psd_power(a, p) -> jax.Array:
  """A^p for a symmetric positive semi-definite A by its eigendecomposition; A^0 = I, also for
  singular A, as in the seed's sums.

  Eigenvalues below dim · eps · λ_max are round-off of a zero eigenvalue and are set to 0: a
  fractional power would otherwise lift a 1e-17 to 1e-6.
  """
  a = jnp.asarray(a)
  lam, v = jnp.linalg.eigh((a + a.T) / 2)
  tol = a.shape[0] * jnp.finfo(lam.dtype).eps * jnp.max(jnp.abs(lam))
  lam = jnp.where(lam > tol, lam, 0.0)
  powered = jnp.where(lam > 0, jnp.where(lam > 0, lam, 1.0) ** p, 0.0)
  powered = jnp.where(p == 0, jnp.ones_like(lam), powered)
  return (v * powered) @ v.T


def factor_velocity(loss: Callable, factors) -> list[jax.Array]:
  """Gradient flow on the factors: [−∂ℓ(W_N ⋯ W_1)/∂W_j]_j (by autodiff), same shapes."""
  fs = _factors(factors)
  return [-g for g in jax.grad(lambda f: loss(end_to_end(f)))(fs)]


def end_to_end_velocity(loss: Callable, w, depth: int) -> jax.Array:
  """Ẇ = −Σ_{i=1}^N [WWᵀ]^{(i−1)/N} ∇ℓ(W) [WᵀW]^{(N−i)/N}, N = `depth`, shape of W."""
  if int(depth) < 1:
    raise ValueError(f"depth: must be ≥ 1, got {depth}.")
  g = jax.grad(loss)(w)
  left, right = w @ w.T, w.T @ w
  n = int(depth)
  return -sum(psd_power(left, (i - 1) / n) @ g @ psd_power(right, (n - i) / n) for i in range(1, n + 1))


def rank_one_velocity(loss: Callable, w, depth: int) -> jax.Array:
  """The end-to-end velocity for a row-vector output W (1, d_0):
  Ẇ = −‖W‖^{2(N−1)/N} (∇ℓ(W) + (N − 1) ∇ℓ(W) ŵᵀŵ), ŵ = W/‖W‖ (Arora et al. 2018, Claim 1)."""
  w = jnp.asarray(w)
  if w.ndim != 2 or w.shape[0] != 1:
    raise ValueError(f"w: expected a row vector of shape (1, d_0), got shape {w.shape}.")
  n = int(depth)
  g = jax.grad(loss)(w)
  norm2 = jnp.sum(w**2)
  w_hat = w / jnp.sqrt(norm2)
  return -(norm2 ** ((n - 1) / n)) * (g + (n - 1) * (g @ w_hat.T) * w_hat)


def factorization_velocity(loss: Callable, u) -> jax.Array:
  """U̇ = −∇_U ℓ(UUᵀ) = −(G + Gᵀ)U with G = ∇ℓ(UUᵀ) (any ℓ)."""
  g = jax.grad(loss)(u @ u.T)
  return -(g + g.T) @ u


def gram_velocity(loss: Callable, w) -> jax.Array:
  """Ẇ for W = UUᵀ under `factorization_velocity`: −(G + Gᵀ)W − W(G + Gᵀ), G = ∇ℓ(W)."""
  g = jax.grad(loss)(w)
  s = g + g.T
  return -(s @ w + w @ s)


def flow(
  velocity: Callable, state0, times, *, rtol: float = 1e-8, atol: float = 1e-10, max_steps: int = 100_000
):
  """Integrates ṡ = velocity(s) (any pytree state) with diffrax's Tsit5; returns the states at
  `times` stacked on a leading axis.

  Example:
    >>> import jax.numpy as jnp
    >>> out = flow(lambda s: -s, jnp.ones(2), jnp.array([0.0, 1.0]))
    >>> round(float(out[1, 0]), 6)  # e^{-1}
    0.367879
  """
  import diffrax

  times = jnp.asarray(times, dtype=jnp.result_type(float))
  if times.ndim != 1 or times.shape[0] < 1:
    raise ValueError(f"times: expected a 1-D array of save times, got shape {times.shape}.")
  term = diffrax.ODETerm(lambda t, s, args: velocity(s))
  sol = diffrax.diffeqsolve(
    term,
    diffrax.Tsit5(),
    t0=times[0],
    t1=times[-1],
    dt0=None,
    y0=state0,
    saveat=diffrax.SaveAt(ts=times),
    stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
    max_steps=max_steps,
  )
  return sol.ys
