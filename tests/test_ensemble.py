"""The infinite-width ensemble and the GP posterior against an independent route: the outputs are
an affine map of the initial GP draw, f_t = f_0 + A(t)(y − f_0(X)), so their covariance is M Σ Mᵀ
for the joint prior covariance Σ of (f_0(X), f_0(X_*)) and M = [−A(t), I], with A(t) from
`expm` and a linear solve instead of an eigendecomposition. (NT's own numbers: tests/test_nt_live.py.)"""

import jax
import jax.numpy as jnp
import pytest
from jax.scipy.linalg import expm

import ntk_lab as nl
from tests.conftest import rel_err


def kernels(seed=0, n=7, m=4):
  net = nl.MLP((512, 512), activation="erf", W_std=1.4, b_std=0.2)
  x = jax.random.normal(jax.random.PRNGKey(seed), (n + m, 3))
  full = net.kernel(x)
  y = jax.random.normal(jax.random.PRNGKey(seed + 1), (n, 2))
  return full, y, n


@pytest.mark.parametrize("get", ["ntk", "nngp"])
@pytest.mark.parametrize("diag_reg", [0.0, 0.01])
def test_ensemble_is_the_affine_image_of_the_prior(get, diag_reg):
  full, y, n = kernels()
  train = nl.Kernel(full.nngp[:n, :n], full.ntk[:n, :n])
  test = nl.Kernel(full.nngp[n:, :n], full.ntk[n:, :n])
  times, eta = jnp.array([0.0, 0.4, 3.0]), 0.8
  out = nl.mse_ensemble(
    train,
    y,
    times,
    k_test_train=test,
    nngp_test_test=full.nngp[n:, n:],
    kernel=get,
    learning_rate=eta,
    diag_reg=diag_reg,
    compute_cov=True,
  )
  assert out.mean.shape == (3, 4, 2) and out.cov.shape == (3, 4, 4)
  theta = getattr(full, get)
  reg = diag_reg * jnp.mean(jnp.diag(theta[:n, :n])) * jnp.eye(n)
  sigma = full.nngp + (jax.scipy.linalg.block_diag(reg, jnp.zeros((4, 4))) if get == "nngp" else 0)
  for k, t in enumerate(times):
    th = theta[:n, :n] + reg
    A = theta[n:, :n] @ jnp.linalg.solve(th, jnp.eye(n) - expm(-eta * th * t))
    assert rel_err(out.mean[k], A @ y) <= 1e-10 or float(t) == 0.0
    M = jnp.concatenate([-A, jnp.eye(4)], axis=1)
    assert rel_err(out.cov[k], M @ sigma @ M.T) <= 1e-9


def test_gp_posterior_is_bayes_rule_and_the_converged_nngp_ensemble():
  full, y, n = kernels(seed=3)
  K, Ks, Kss = full.nngp[:n, :n], full.nngp[n:, :n], full.nngp[n:, n:]
  post = nl.gp_inference(K, y, k_test_train=Ks, k_test_test=Kss, diag_reg=0.05)
  noisy = K + 0.05 * jnp.mean(jnp.diag(K)) * jnp.eye(n)
  assert rel_err(post.mean, Ks @ jnp.linalg.solve(noisy, y)) <= 1e-10
  assert rel_err(post.cov, Kss - Ks @ jnp.linalg.solve(noisy, Ks.T)) <= 1e-10
  ens = nl.mse_ensemble(
    nl.Kernel(K, None),
    y,
    jnp.inf,
    k_test_train=nl.Kernel(Ks, None),
    nngp_test_test=Kss,
    kernel="nngp",
    diag_reg=0.05,
    compute_cov=True,
  )
  assert rel_err(ens.mean[0], post.mean) <= 1e-10 and rel_err(ens.cov[0], post.cov) <= 1e-10


def test_ensemble_errors():
  full, y, n = kernels()
  train = nl.Kernel(full.nngp[:n, :n], full.ntk[:n, :n])
  with pytest.raises(ValueError, match="kernel: must be one of"):
    nl.mse_ensemble(train, y, kernel="both")
  with pytest.raises(ValueError, match="k_train_train: needs its 'ntk' kernel"):
    nl.mse_ensemble(nl.Kernel(full.nngp[:n, :n], None), y)
  with pytest.raises(ValueError, match="nngp_test_test: compute_cov=True on test points"):
    nl.mse_ensemble(train, y, k_test_train=nl.Kernel(full.nngp[n:, :n], full.ntk[n:, :n]), compute_cov=True)
  with pytest.raises(ValueError, match=r"y_train: expected shape \(7,\) or \(7, O\)"):
    nl.mse_ensemble(train, y[:3])
  with pytest.raises(ValueError, match="times: must be ≥ 0"):
    nl.mse_ensemble(train, y, jnp.array([-1.0]))


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_discrete_ensemble_uses_the_gradient_descent_matrix_power(get):
  """A_k = Θ_*X Θ⁻¹ (I − (I − ηΘ)^k), by repeated matrix products, in the mean and the covariance."""
  full, y, n = kernels(seed=2)
  train = nl.Kernel(full.nngp[:n, :n], full.ntk[:n, :n])
  test = nl.Kernel(full.nngp[n:, :n], full.ntk[n:, :n])
  theta = getattr(full, get)
  eta = 1.2 / float(jnp.linalg.eigvalsh(theta[:n, :n])[-1])
  steps = jnp.array([0, 3, 25])
  out = nl.mse_ensemble(
    train,
    y,
    steps,
    k_test_train=test,
    nngp_test_test=full.nngp[n:, n:],
    kernel=get,
    learning_rate=eta,
    compute_cov=True,
    discrete=True,
  )
  step = jnp.eye(n) - eta * theta[:n, :n]
  for i, k in enumerate(steps.tolist()):
    power = jnp.linalg.matrix_power(step, k)
    A = theta[n:, :n] @ jnp.linalg.solve(theta[:n, :n], jnp.eye(n) - power)
    assert float(jnp.max(jnp.abs(out.mean[i] - A @ y))) <= 1e-10
    M = jnp.concatenate([-A, jnp.eye(4)], axis=1)
    assert rel_err(out.cov[i], M @ full.nngp @ M.T) <= 1e-9
