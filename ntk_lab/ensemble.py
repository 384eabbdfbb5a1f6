"""Infinite-width ensembles: the output distribution of GD-trained wide networks, and the NNGP
posterior (what neural-tangents' ``predict.gradient_descent_mse_ensemble`` and ``gp_inference``
give).

At infinite width the network at initialization is a centred GP with covariance K (the NNGP
kernel), and gradient flow on L = ½ Σ ‖f(x_i) − y_i‖² with learning rate η moves it linearly with
the constant NTK Θ (Jacot et al. 2018; Lee et al. 2019). With

    A(t) = Θ_*X Θ_XX⁻¹ (I − e^{−ηΘ_XX t})        (N_test × N),

the outputs on test points are Gaussian with

    mean(t) = A(t) y,
    cov(t)  = K_** − A(t) K_*Xᵀ − K_*X A(t)ᵀ + A(t) K_XX A(t)ᵀ.

With ``kernel="nngp"`` (train only the readout layer; Θ = K) the same formulas give
mean = K_*X K⁻¹(I − e^{−ηKt}) y and cov = K_** − K_*X K⁻¹(I − e^{−2ηKt}) K_*Xᵀ, the NNGP posterior
at t = ∞ (`gp_inference`).

Discrete time (``discrete=True``): gradient descent with step η, times read as step counts k and
A_k = Θ_*X Θ_XX⁻¹ (I − (I − ηΘ_XX)^k) in the same formulas (see `mse_dynamics`).

Time convention: NT normalises the MSE by the N·O entries of y, so NT's time t at learning rate
lr equals ours at ``learning_rate = lr / y.size``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntk_lab import _checks
from ntk_lab.analytic import Kernel
from ntk_lab.kernel_dynamics import check_converges, check_schedule, gain, overflow_cause, spectrum

__all__ = ["Gaussian", "gp_inference", "mse_ensemble"]


class Gaussian(NamedTuple):
  """A Gaussian over outputs: mean (…, N, O) and covariance (…, N, N) (shared by the O outputs)
  or None."""

  mean: jax.Array
  cov: jax.Array | None


def _field(kernel, name, arg, *, square=False):
  value = getattr(kernel, name, None)
  if value is None:
    raise ValueError(
      f"{arg}: needs its {name!r} kernel, e.g. net.kernel(x, get=('nngp', 'ntk')); "
      f"got {type(kernel).__name__} without it."
    )
  if square:
    return _checks.kernel_matrix(value, f"{arg}.{name}")
  return _checks.as_batch(value, f"{arg}.{name}")


def _check_psd(K, name):
  """The kernel check of a matrix the dynamics do not diagonalise (a prior covariance)."""
  _checks.check_kernel(_checks.psd_defects(K), name, K.shape[0], K.dtype)


def mse_ensemble(
  k_train_train,
  y_train,
  times=jnp.inf,
  *,
  k_test_train=None,
  nngp_test_test=None,
  kernel: str = "ntk",
  learning_rate: float = 1.0,
  diag_reg: float = 0.0,
  compute_cov: bool = False,
  discrete: bool = False,
  reduction: str = "sum",
) -> Gaussian:
  """Mean (and covariance) of an infinite ensemble of wide networks trained by MSE gradient flow.

  Args:
    k_train_train: `Kernel` (nngp, ntk) on the training inputs, each (N, N); the one that is
      diagonalised (`kernel`) must be symmetric positive semi-definite up to rounding, else a
      `ValueError` says how far off it is (see `mse_dynamics`).
    y_train: targets (N,) or (N, O).
    times: times t ≥ 0, (T,) or a scalar; ``jnp.inf`` (default) is the converged ensemble. With
      ``discrete=True``, whole numbers of gradient-descent steps k.
    k_test_train: `Kernel` between test and training inputs, each (N_test, N); None predicts on
      the training inputs.
    nngp_test_test: K_** on the test inputs, (N_test, N_test); needed for the test covariance
      (and refused without `k_test_train`). Like every kernel matrix it must be symmetric
      positive semi-definite up to rounding (checked, one `eigvalsh`), as must
      ``k_train_train.nngp`` when ``compute_cov`` with ``kernel="ntk"``.
    kernel: which kernel drives the training: ``"ntk"`` (all layers trained) or ``"nngp"`` (readout only: Θ = K).
    learning_rate: η > 0 (convention L = ½ Σ ‖f − y‖²; NT's t ↔ ours with η = 1/y.size).
    diag_reg: ε ≥ 0; Θ_XX + ε·mean(diag Θ_XX)·I replaces Θ_XX in the inverse and exponential
      (and, for ``kernel="nngp"``, K_XX in the covariance: ε is then observation noise).
    compute_cov: also return the covariance.
    discrete: gradient descent with step η (A_k uses (I − ηΘ)^k) instead of gradient flow.
    reduction: ``"sum"`` (L = ½ Σ (f − y)²) or ``"mean"`` (divided by y.size, NT's convention:
      η Θ becomes η Θ / y.size), as in `gradient_flow`.

  Returns:
    `Gaussian(mean (T, N_test, O), cov (T, N_test, N_test) or None)`.

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> net = nl.MLP((512,), activation="erf")
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (6, 2)); xt = x[:2] + 0.1
    >>> out = nl.mse_ensemble(net.kernel(x), jnp.sin(x[:, 0]), jnp.array([1.0, jnp.inf]),
    ...                       k_test_train=net.kernel(xt, x), nngp_test_test=net.kernel(xt).nngp,
    ...                       compute_cov=True)
    >>> out.mean.shape, out.cov.shape
    ((2, 2, 1), (2, 2, 2))
  """
  _checks.choice(kernel, "kernel", ("ntk", "nngp"))
  theta = _field(k_train_train, kernel, "k_train_train", square=True)
  n = theta.shape[0]
  y = _checks.targets(y_train, "y_train", n)
  t = check_schedule(times, theta.dtype, learning_rate, diag_reg, discrete=discrete)
  if k_test_train is None:
    theta_t = theta
    if nngp_test_test is not None:
      raise ValueError(
        "nngp_test_test: given without k_test_train; the predictions are then on the training "
        "inputs, whose K_** is k_train_train.nngp. Drop it, or pass k_test_train too."
      )
  else:
    theta_t = _field(k_test_train, kernel, "k_test_train")
    if theta_t.ndim != 2 or theta_t.shape[1] != n:
      raise ValueError(f"k_test_train.{kernel}: expected (N_test, {n}), got {tuple(theta_t.shape)}.")
  cov_args = None
  if compute_cov:
    k = _field(k_train_train, "nngp", "k_train_train", square=True)
    if k.shape != (n, n):
      raise ValueError(
        f"k_train_train.nngp: expected ({n}, {n}) like k_train_train.ntk, got {tuple(k.shape)}."
      )
    if kernel == "ntk":  # the diagonalised Θ is checked below; the prior K is checked here
      _check_psd(k, "k_train_train.nngp")
    if k_test_train is None:
      k_t, k_tt = k, k
    else:
      k_t = _field(k_test_train, "nngp", "k_test_train")
      if nngp_test_test is None:
        raise ValueError(
          "nngp_test_test: compute_cov=True on test points needs K_** = net.kernel(x_test, get='nngp').nngp."
        )
      k_tt = _checks.kernel_matrix(nngp_test_test, "nngp_test_test")
      m = theta_t.shape[0]
      if k_tt.shape != (m, m):
        raise ValueError(f"nngp_test_test: expected ({m}, {m}), got {tuple(k_tt.shape)}.")
      _check_psd(k_tt, "nngp_test_test")
    if kernel == "nngp":
      # Θ = K: the regulariser is then observation noise, in every K_XX of the formula (as NT).
      k = k + diag_reg * jnp.mean(jnp.diag(k)) * jnp.eye(n, dtype=k.dtype)
    cov_args = (k, k_t, k_tt)
  eta = learning_rate / (y.size if _checks.choice(reduction, "reduction", ("sum", "mean")) == "mean" else 1)
  mean, cov, defects, top = _ensemble(theta, theta_t, y, t, eta, diag_reg, cov_args, discrete=discrete)
  _checks.check_kernel(defects, f"k_train_train.{kernel}", n, theta.dtype)
  if discrete:
    check_converges(t, top, learning_rate, n, theta.dtype)
  _checks.finite_result((mean, cov), "mse_ensemble", overflow_cause(discrete))
  return Gaussian(mean, cov)


@functools.partial(jax.jit, static_argnames="discrete")
def _ensemble(theta, theta_t, y, t, eta, diag_reg, cov_args, discrete=False):
  lam, V, live = spectrum(theta, diag_reg)
  defects = _checks.kernel_defects(theta, lam, diag_reg)  # checked by the caller, O(N²)
  # A(t) = Θ_*X V diag(g(t)) Vᵀ, (T, N_test, N)
  A = jnp.einsum("ki,ij,tj,lj->tkl", theta_t, V, gain(lam, live, eta, t, discrete), V)
  mean = jnp.einsum("tkl,lo->tko", A, y)
  top = eta * jnp.max(lam)  # η·λ_max: gradient descent has a limit iff < 2
  if cov_args is None:
    return mean, None, defects, top
  k, k_t, k_tt = cov_args
  cross = jnp.einsum("tkl,ml->tkm", A, k_t)
  cov = k_tt[None] - cross - jnp.swapaxes(cross, 1, 2) + jnp.einsum("tkl,lm,tnm->tkn", A, k, A)
  return mean, (cov + jnp.swapaxes(cov, 1, 2)) / 2, defects, top


def gp_inference(
  k_train_train, y_train, *, k_test_train=None, k_test_test=None, diag_reg: float = 0.0
) -> Gaussian:
  """The GP posterior with prior covariance K (the NNGP posterior when K is the NNGP kernel).

      mean = K_*X (K_XX + εI)⁻¹ y,     cov = K_** − K_*X (K_XX + εI)⁻¹ K_*Xᵀ,

  with ε = diag_reg·mean(diag K_XX) (pseudo-inverse for singular K_XX at ε = 0).

  Args:
    k_train_train: K_XX, (N, N), symmetric positive semi-definite up to rounding (checked).
    y_train: (N,) or (N, O).
    k_test_train: K_*X, (N_test, N); None predicts on the training inputs.
    k_test_test: K_**, (N_test, N_test), for the covariance (None: mean only; with
      `k_test_train` None the covariance on the training inputs is returned and this is
      refused), symmetric positive semi-definite up to rounding (checked).
    diag_reg: ε ≥ 0 (the observation-noise variance, relative to the mean prior variance).

  Returns:
    `Gaussian(mean (N_test, O), cov (N_test, N_test) or None)`.

  Example:
    >>> import jax.numpy as jnp, ntk_lab as nl
    >>> K = jnp.array([[1.0, 0.5], [0.5, 1.0]])
    >>> post = nl.gp_inference(K, jnp.array([1.0, 2.0]), k_test_train=K, k_test_test=K)
    >>> [round(float(v), 6) for v in post.mean[:, 0]], float(jnp.abs(post.cov).max()) < 1e-12
    ([1.0, 2.0], True)
  """
  for name, arg in (
    ("k_train_train", k_train_train),
    ("k_test_train", k_test_train),
    ("k_test_test", k_test_test),
  ):
    if isinstance(arg, Kernel):
      raise TypeError(
        f"{name}: expected a matrix, got a Kernel; pass its .nngp (the NNGP posterior) or .ntk."
      )
  k = _checks.kernel_matrix(k_train_train, "k_train_train")
  train = Kernel(nngp=k, ntk=None)
  test = None if k_test_train is None else Kernel(nngp=k_test_train, ntk=None)
  if k_test_train is None and k_test_test is not None:
    raise ValueError(
      "k_test_test: given without k_test_train; the posterior is then on the training inputs, "
      "whose K_** is k_train_train. Drop it, or pass k_test_train too."
    )
  out = mse_ensemble(
    train,
    y_train,
    jnp.inf,
    k_test_train=test,
    nngp_test_test=k_test_test,
    kernel="nngp",
    diag_reg=diag_reg,
    compute_cov=k_test_test is not None or k_test_train is None,
  )
  return Gaussian(out.mean[0], None if out.cov is None else out.cov[0])
