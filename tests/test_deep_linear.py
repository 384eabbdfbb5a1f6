"""Deep linear networks (seed 004): balanced factors, the end-to-end ODE against factor-level
gradient flow, the rank-one form, and the symmetric factorization flow against autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab.deep_linear as dl


@pytest.fixture(autouse=True)
def _x64():
  with jax.enable_x64(True):
    yield


def _regression(key, d0, dn, n=12):
  kx, kw = jax.random.split(key)
  x = jax.random.normal(kx, (d0, n))
  y = jax.random.normal(kw, (dn, d0)) @ x
  return lambda w: 0.5 * jnp.sum((w @ x - y) ** 2) / n


@pytest.mark.parametrize("dims", [(3, 3, 3), (4, 5, 6, 2), (5, 7, 7, 7, 1), (2, 3, 3, 3, 3, 4)])
def test_balanced_factors_and_seed_identity(dims):
  fs = dl.balanced_init(jax.random.PRNGKey(1), dims, scale=1.3)
  assert [f.shape for f in fs] == [(dims[j + 1], dims[j]) for j in range(len(dims) - 1)]
  assert float(dl.balancedness(fs)) < 1e-12
  w = dl.end_to_end(fs)
  n = len(fs)
  for j in range(1, n + 1):  # seed 004 LNN Ex 1: W_{1:j}ᵀW_{1:j} = [W_{1:N}ᵀW_{1:N}]^{j/N}
    wj = dl.end_to_end(fs[:j])
    np.testing.assert_allclose(wj.T @ wj, dl.psd_power(w.T @ w, j / n), atol=1e-11)


def test_psd_power_against_repeated_products():
  a = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
  s = a @ a.T  # rank 3: A^0 = I and A^1 = A even when singular
  np.testing.assert_allclose(dl.psd_power(s, 0.0), jnp.eye(5), atol=1e-12)
  np.testing.assert_allclose(dl.psd_power(s, 1.0), s, atol=1e-11)
  half = dl.psd_power(s, 0.5)
  np.testing.assert_allclose(half @ half, s, atol=1e-11)
  third = dl.psd_power(s, 1 / 3)
  np.testing.assert_allclose(third @ third @ third, s, atol=1e-10)


@pytest.mark.slow  # three diffrax compilations each; the atlas (C4.3) checks the same in the slow suite too
@pytest.mark.parametrize("dims", [(3, 3, 3), (4, 6, 6, 3), (5, 5, 5, 5, 1)])
def test_factor_flow_follows_end_to_end_dynamics(dims):
  loss = _regression(jax.random.PRNGKey(2), dims[0], dims[-1])
  fs0 = dl.balanced_init(jax.random.PRNGKey(3), dims, scale=0.7)
  times = jnp.linspace(0.0, 3.0, 7)
  fac = dl.flow(lambda f: dl.factor_velocity(loss, f), fs0, times, rtol=1e-11, atol=1e-12)
  e2e = dl.flow(
    lambda w: dl.end_to_end_velocity(loss, w, len(fs0)), dl.end_to_end(fs0), times, rtol=1e-11, atol=1e-12
  )
  w_fac = jax.vmap(dl.end_to_end)(fac)
  scale = float(jnp.max(jnp.abs(w_fac)))
  assert float(jnp.max(jnp.abs(w_fac - e2e))) < 1e-8 * scale
  assert float(loss(w_fac[-1])) < 0.5 * float(loss(w_fac[0]))  # it trained
  assert max(float(dl.balancedness([f[-1] for f in fac])), 0) < 1e-8  # balancedness conserved


def test_rank_one_form_equals_general_sum():
  for depth in (1, 2, 3, 6):
    loss = _regression(jax.random.PRNGKey(depth), 5, 1)
    w = jax.random.normal(jax.random.PRNGKey(10 + depth), (1, 5))
    np.testing.assert_allclose(
      dl.rank_one_velocity(loss, w, depth), dl.end_to_end_velocity(loss, w, depth), rtol=1e-11, atol=1e-13
    )


def test_factorization_flow_against_autodiff():
  m = jax.random.normal(jax.random.PRNGKey(0), (4, 4))  # not symmetric: G = ∇ℓ is asymmetric
  loss = lambda w: 0.5 * jnp.sum((w - m) ** 2) + jnp.sum(w[0] ** 3)
  u = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  np.testing.assert_allclose(
    dl.factorization_velocity(loss, u), -jax.grad(lambda v: loss(v @ v.T))(u), rtol=1e-12, atol=1e-12
  )
  udot = dl.factorization_velocity(loss, u)
  _, wdot = jax.jvp(lambda v: v @ v.T, (u,), (udot,))
  np.testing.assert_allclose(dl.gram_velocity(loss, u @ u.T), wdot, rtol=1e-12, atol=1e-12)


def test_errors_name_the_argument():
  with pytest.raises(ValueError, match=r"factors: W_2 has shape"):
    dl.end_to_end([jnp.ones((3, 2)), jnp.ones((2, 4))])
  with pytest.raises(TypeError, match="factors"):
    dl.end_to_end(jnp.ones((2, 2)))
  with pytest.raises(ValueError, match="hidden_dims"):
    dl.balanced_factors(jnp.ones((3, 3)), [2], key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="w: expected a row vector"):
    dl.rank_one_velocity(lambda w: jnp.sum(w), jnp.ones((2, 3)), 2)
  with pytest.raises(ValueError, match="dims"):
    dl.balanced_init(jax.random.PRNGKey(0), (3,))


def test_velocities_compose_with_jit_and_vmap():
  loss = _regression(jax.random.PRNGKey(4), 3, 2)
  ws = jax.random.normal(jax.random.PRNGKey(5), (4, 2, 3))
  batched = jax.jit(jax.vmap(lambda w: dl.end_to_end_velocity(loss, w, 3)))(ws)
  for i in range(4):
    np.testing.assert_allclose(batched[i], dl.end_to_end_velocity(loss, ws[i], 3), rtol=1e-12)
