"""The seeds' finite-width formulas against ntk_lab's empirical NTK (independent routes)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import inputs, rel_err


def unit_rows(n, d, seed=0):
  x = np.asarray(inputs(n, d, seed))
  return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("m,d", [(7, 3), (64, 5), (500, 2)])
def test_seed002_indicator_formula(m, d):
  """002 (c): H_ij = (1/m) Σ_r x_iᵀx_j 1{w_rᵀx_i ≥ 0, w_rᵀx_j ≥ 0}, f = (1/√m) Σ_r a_r σ(w_rᵀx)."""
  # σ(w_rᵀx) has no 1/√d, hence W_std = √d on the first layer; the readout (±1) is fixed.
  net = nl.MLP((m,), W_std=(math.sqrt(d), 1.0), b_std=None, trainable="hidden", readout_init="rademacher")
  params = net.init(jax.random.PRNGKey(m), d)
  x = unit_rows(9, d, seed=m)
  W = np.asarray(params[0]["W"])  # column r is w_r
  on = (x @ W >= 0).astype(float)  # (n, m)
  H = (x @ x.T) * (on @ on.T) / m
  for method in ("structured", "jacobian", "ntvp"):
    assert rel_err(nl.empirical_ntk(net, params, x, method=method), H) <= 1e-12


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "erf"])
def test_seed001_G_and_H_are_the_layer_contributions(activation):
  """001: G_ij = (1/m) Σ_r σ(w_rᵀx_i)σ(w_rᵀx_j), H_ij = x_iᵀx_j (1/m) Σ_r a_r² σ'(·)σ'(·)."""
  m, d = 40, 3
  net = nl.MLP((m,), activation=activation, W_std=(math.sqrt(d), 1.0), b_std=None)
  params = net.init(jax.random.PRNGKey(1), d)
  x = np.asarray(inputs(6, d))
  W, a = np.asarray(params[0]["W"]), np.asarray(params[1]["W"])[:, 0]
  sig = net.activation
  z = x @ W
  s = np.asarray(sig(z))
  ds = np.asarray(jax.vmap(jax.vmap(jax.grad(sig)))(jnp.asarray(z)))
  G = s @ s.T / m
  H = (x @ x.T) * ((ds * a**2) @ ds.T) / m
  per_layer = nl.empirical_ntk(net, params, x, per_layer=True)
  assert rel_err(per_layer[1], G) <= 1e-12
  assert rel_err(per_layer[0], H) <= 1e-12
  assert rel_err(nl.empirical_ntk(net, params, x, method="jacobian"), G + H) <= 1e-12


def hand_backprop(Ws, x, rho, drho, grad_out):
  """000 Ex1 for x_{j+1} = W_j ρ(x_j): returns ∇_{W_j} ℓ and ∇_{x_j} ℓ by the hand formulas."""
  xs = [x]
  for W in Ws:
    xs.append(W @ rho(xs[-1]))
  g = grad_out  # ∇_{x_J} ℓ
  gW, gx = [None] * len(Ws), [None] * (len(Ws) + 1)
  gx[-1] = g
  for j in reversed(range(len(Ws))):
    gW[j] = np.outer(g, rho(xs[j]))  # ∇_{W_j} ℓ = ∇_{x_{j+1}} ℓ · ρ(x_j)ᵀ
    g = drho(xs[j]) * (Ws[j].T @ g)  # ∇_{x_j} ℓ = ρ'(x_j) ⊙ W_jᵀ ∇_{x_{j+1}} ℓ
    gx[j] = g
  return gW, gx


def test_seed000_ex1_hand_backprop_equals_autodiff():
  rng = np.random.default_rng(0)
  widths = [4, 6, 5, 3]
  Ws = [rng.normal(size=(b, a)) for a, b in zip(widths[:-1], widths[1:])]
  x0 = rng.normal(size=4)
  target = rng.normal(size=3)
  ell = lambda out: 0.5 * jnp.sum((out - target) ** 2)

  def forward(Ws, x):
    for W in Ws:
      x = W @ jnp.tanh(x)
    return x

  xJ = forward([jnp.asarray(W) for W in Ws], jnp.asarray(x0))
  gW, gx = hand_backprop(Ws, x0, np.tanh, lambda z: 1 - np.tanh(z) ** 2, np.asarray(xJ) - target)
  auto_W = jax.grad(lambda Ws: ell(forward(Ws, jnp.asarray(x0))))([jnp.asarray(W) for W in Ws])
  auto_x = jax.grad(lambda x: ell(forward([jnp.asarray(W) for W in Ws], x)))(jnp.asarray(x0))
  for a, b in zip(gW, auto_W):
    assert rel_err(a, b) <= 1e-13
  assert rel_err(gx[0], auto_x) <= 1e-13


def seed000_recursive_ntk(Ws, x, xp, rho, drho):
  """000 eqs 6–7: K_{j+1} = (1/w) ρΦ_j(x)·ρΦ_j(x') I + (1/w) W [ρ'] K_j [ρ']ᵀ Wᵀ, K_1 = (1/w_1) xᵀx' I."""
  phi, phip = x, xp
  K = (x @ xp) / len(x) * np.eye(Ws[0].shape[0])
  phi = Ws[0] @ x / math.sqrt(len(x))
  phip = Ws[0] @ xp / math.sqrt(len(xp))
  for W in Ws[1:]:
    w = W.shape[1]
    D, Dp = np.diag(drho(phi)), np.diag(drho(phip))
    K = (rho(phi) @ rho(phip)) / w * np.eye(W.shape[0]) + W @ D @ K @ Dp.T @ W.T / w
    phi, phip = W @ rho(phi) / math.sqrt(w), W @ rho(phip) / math.sqrt(w)
  return K


@pytest.mark.parametrize("hidden", [(5,), (6, 4), (7, 5, 6)])
def test_seed000_recursion_equals_autodiff_ntk(hidden):
  """C0.2: the recursive finite-width NTK (eqs 6–7) equals Σ_j ∂_{W_j}Φ ∂_{W_j}Φᵀ (eq 5)."""
  net = nl.MLP(hidden, out_dim=2, activation="tanh", b_std=None)  # eq 4: no biases, 1/√w_j
  params = net.init(jax.random.PRNGKey(2), 3)
  Ws = [np.asarray(p["W"]).T for p in params]  # the seed's W_j acts on the left
  x = np.asarray(inputs(3, 3))
  full = np.asarray(nl.empirical_ntk(net, params, x, trace_outputs=False, method="jacobian"))
  dtanh = lambda z: 1 - np.tanh(z) ** 2
  for i in range(3):
    for j in range(3):
      K = seed000_recursive_ntk(Ws, x[i], x[j], np.tanh, dtanh)
      assert rel_err(K, full[i, j]) <= 1e-12
