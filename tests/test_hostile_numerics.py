"""A hostile-input table for the numerics of the kernels: activations that outgrow the quadrature
window, expectations that do not exist, the zero polynomial, gradients at a kink, and the
two-layer kernels under jit and forced node counts.

Each row is (input → expected outcome): the error type and the words its message must contain,
a warning and its words, or the value checked against an independent route (a closed form of
the registry, scipy's adaptive integration, a central finite difference, neural-tangents' values
recorded from `stax`, or `kernel_complexity` on the same matrix). The policy is docs/kernels.md.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import rel_err


class Raises(NamedTuple):
  exc: type
  words: str  # a regex the message must match


class Warns(NamedTuple):
  words: str


class Value(NamedTuple):
  check: Callable  # out -> bool


X = jnp.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.7]])  # |x|² = 1.34 and 1.53, d = 3
XP = jnp.array([[0.6, -0.3, 0.9]])
# One Activation per callable, shared by the rows: the probes compile once per (activation, nodes).
EXP = nl.Activation("custom", fn=jnp.exp)
EXP_Z2 = nl.Activation("custom", fn=lambda z: jnp.exp(z * z / 4))  # e^{bz²}, b = 1/4
GAUSS_Z2 = nl.Activation("gaussian", params=(0.25,))  # its closed form: 4b·k < 1 needed
TANH = nl.Activation("custom", fn=jnp.tanh)
RELU_FN = nl.Activation("custom", fn=jax.nn.relu)
ZERO_POLY = nl.Activation("polynomial", params=())


def net(act, W_std, depth=1, b_std=None):
  return nl.MLP((8,) * depth, activation=act, W_std=W_std, b_std=b_std)


def kernels_match(a, b, tol):
  return all(rel_err(getattr(a, f), getattr(b, f)) <= tol for f in ("nngp", "ntk"))


def max_rel(a, b):
  """Largest entry error relative to √(b(x, x) b(x', x')) (the scale of the accuracy contract)."""
  a, b = np.asarray(a), np.asarray(b)
  d = np.sqrt(np.abs(np.diag(b)))
  return float(np.max(np.abs(a - b) / np.outer(d, d)))


def gaussian_diag_adaptive(log_fn, q):
  """E[fn(u)²], u ~ N(0, q), by scipy's adaptive quadrature over the whole line (fn = exp(log_fn))."""
  from scipy import integrate

  s = math.sqrt(q)
  val = integrate.quad(lambda z: math.exp(2 * log_fn(s * z) - z * z / 2), -np.inf, np.inf, epsrel=1e-12)[0]
  return val / math.sqrt(2 * math.pi)


def grad_at_origin(model, field, **kw):
  return jax.grad(lambda x: getattr(nl.analytic_kernel(model, x[None], XP, **kw), field)[0, 0])(jnp.zeros(3))


def central_difference(model, field, h=1e-6):
  def k(x):
    return float(getattr(nl.analytic_kernel(model, x[None], XP), field)[0, 0])

  return np.array([(k(h * e) - k(-h * e)) / (2 * h) for e in np.eye(3)])


def chain_rule_at_origin(a, b, W_std, depth):
  """The documented gradient at x = 0 of the NNGP of an ABReLU net without bias (NTK
  parametrization): each layer's Σ̇ at cos θ = 0, ((a + b)/2)², times σ_w², down to ∂Σ₁/∂x = σ_w²x'/d."""
  slope = ((a + b) / 2) ** 2
  return W_std ** (2 * (depth + 1)) * slope**depth * np.asarray(XP[0]) / 3


# neural-tangents 0.6.5 `stax` (Dense(8, W_std=1.2), act) × depth, Dense(1, W_std=1.2), no bias:
# jax.grad of kernel_fn(x[None], XP)[0, 0] at x = 0, recorded (the project's NT environment).
NT_GRADS = {
  ("relu", 2, "nngp"): [0.0373248, -0.0186624, 0.0559872],
  ("relu", 2, "ntk"): [0.1119744, -0.0559872, 0.1679616],
  ("abrelu", 2, "nngp"): [0.0244888, -0.0122444, 0.0367332],
  ("abrelu", 2, "ntk"): [0.0734664, -0.0367332, 0.11019961],
  ("leaky_relu", 1, "ntk"): [0.21152794, -0.10576397, 0.3172919],
  ("sign", 1, "nngp"): [0.0, 0.0, 0.0],
}
ABRELU = nl.Activation("abrelu", params=(-0.4, 1.3))


def nt_row(name, depth, field):
  act = {"abrelu": ABRELU}.get(name, name)
  return (
    f"kink grad {name} depth {depth} {field} is neural-tangents'",
    lambda: grad_at_origin(net(act, 1.2, depth), field),
    Value(lambda g: np.allclose(g, NT_GRADS[name, depth, field], rtol=1e-6, atol=1e-9)),
  )


def relu_all_weights_formula(x1, x2, s):
  """xᵀx'(π − θ)/(2π) + s²|x||x'|(sin θ + (π − θ) cos θ)/(2π), in NumPy."""
  g = np.asarray(x1 @ x2.T)
  norms = np.outer(np.linalg.norm(x1, axis=1), np.linalg.norm(x2, axis=1))
  th = np.arccos(np.clip(g / norms, -1, 1))
  return (g * (np.pi - th) + s * s * norms * (np.sin(th) + (np.pi - th) * np.cos(th))) / (2 * np.pi)


# Two-layer inputs: |x| = 3 puts w·x at variance 9, where eᶻ's integrand peaks at z = 6.
XL = jnp.array([[3.0, 0.0], [0.0, 2.5]])
XS = jnp.array([[0.8, 0.3], [-0.2, 0.9], [0.5, -0.5]])


def g_inf(x=XS, **kw):
  kw.setdefault("activation", EXP)
  return nl.two_layer.g_infinity(x, **kw)


CASES = [
  # ----------------------------------------------------------- truncation: eᶻ as a callable
  (
    "exp callable W_std 2 meets 1e-7",
    lambda: (nl.analytic_kernel(net(EXP, 2.0), X), nl.analytic_kernel(net("exp", 2.0), X)),
    Value(lambda ks: max(max_rel(getattr(ks[0], f), getattr(ks[1], f)) for f in ("nngp", "ntk")) <= 1e-7),
  ),
  (
    "exp callable W_std 3 refused (was 1e-6 off)",
    lambda: nl.analytic_kernel(net(EXP, 3.0), X),
    Raises(
      ValueError,
      r"exp \(a callable\).*variances 4\.02 … 4\.59.*beyond the quadrature window.*"
      r"truncation error 1\.\de-06.*quadrature_rtol=1e-07.*more nodes do not.*Activation\('exp'\)",
    ),
  ),
  (
    "exp callable W_std 4 refused (was 5e-4 off)",
    lambda: nl.analytic_kernel(net(EXP, 4.0), X),
    Raises(ValueError, r"truncation error 5\.\de-04.*smaller W_std"),
  ),
  (
    "exp callable W_std 3 at rtol 1e-5: the estimate is honest",
    lambda: (
      nl.analytic_kernel(net(EXP, 3.0), X, quadrature_rtol=1e-5),
      nl.analytic_kernel(net("exp", 3.0), X),
    ),
    Value(lambda ks: 1e-7 < max_rel(ks[0].nngp, ks[1].nngp) <= 1e-5),
  ),
  (
    "exp callable W_std 3 float32 inputs: 1e-6 beyond the window is within 1e-5",
    lambda: (
      nl.analytic_kernel(net(EXP, 3.0), X.astype(jnp.float32)).nngp,
      nl.analytic_kernel(net("exp", 3.0), X).nngp,
    ),
    Value(lambda ks: ks[0].dtype == jnp.float32 and max_rel(ks[0], ks[1]) <= 1e-5),
  ),
  (
    "exp callable W_std 4 float32 inputs refused at 1e-5",
    lambda: nl.analytic_kernel(net(EXP, 4.0), X.astype(jnp.float32)),
    Raises(ValueError, r"truncation error 5\.\de-04.*quadrature_rtol=1e-05"),
  ),
  (
    "exp callable W_std 4 forced nodes warns",
    lambda: nl.analytic_kernel(net(EXP, 4.0), X, quadrature_nodes=64),
    Warns(r"quadrature_nodes=64: estimated relative error 5\.\de-04"),
  ),
  (
    "exp callable W_std 4 under jit raises at run time",
    lambda: jax.block_until_ready(jax.jit(lambda x: nl.analytic_kernel(net(EXP, 4.0), x).ntk)(X)),
    Raises(jax.errors.JaxRuntimeError, r"estimated relative error 5\.\de-04"),
  ),
  (
    "exp callable two layers W_std 1.5",
    lambda: nl.analytic_kernel(net(EXP, 1.5, depth=2), X),
    Raises(ValueError, r"in hidden layer 2.*beyond the quadrature window"),
  ),
  # ------------------------------------------------ e^{z²/4}: finite only while 4b·k = k < 1
  (
    "exp(z²/4) at k ≈ 0.37 matches the gaussian closed form",
    lambda: (nl.analytic_kernel(net(EXP_Z2, 0.9), X), nl.analytic_kernel(net(GAUSS_Z2, 0.9), X)),
    Value(lambda ks: max(max_rel(getattr(ks[0], f), getattr(ks[1], f)) for f in ("nngp", "ntk")) <= 1e-7),
  ),
  (
    "exp(z²/4) at k = 0.6: Σ within its estimate (adaptive integration), Σ̇ refused at 1e-7",
    lambda: (
      float(
        nl.quadrature.gaussian_expectations(
          EXP_Z2, 0.6, 0.6, 0.6, nodes=nl.quadrature.choose_nodes(EXP_Z2, np.array([0.6]), 1e-6)
        )[0]
      ),
      nl.quadrature.quadrature_error(EXP_Z2, np.array([0.6]), 32)[0],
      gaussian_diag_adaptive(lambda z: z * z / 4, 0.6),
    ),
    # The window misses 1.3e-8 of E[e^{u²/2}] = 1/√0.4 (estimated), and 4e-7 of Σ̇: refused at 1e-7.
    Value(lambda v: abs(v[0] - v[2]) <= min(1e-7, 2 * v[1]) * v[2] and abs(v[2] - 0.4**-0.5) <= 1e-12),
  ),
  (
    "exp(z²/4) at k = 0.6: Σ̇ truncated by 4e-7, refused at 1e-7",
    lambda: nl.quadrature.choose_nodes(EXP_Z2, np.array([0.6]), 1e-7),
    Raises(ValueError, r"truncation error 1\.\de-08 on Σ, 4\.\de-07 on Σ̇"),
  ),
  (
    "exp(z²/4) at k ≈ 0.86 converges but is truncated",
    lambda: nl.analytic_kernel(net(EXP_Z2, 1.3), X),
    Raises(ValueError, r"<lambda> \(a callable\).*truncation error 8\.\de-04 on Σ, 1\.\de-02 on Σ̇"),
  ),
  (
    "exp(z²/4) at k ≈ 1.3 diverges",
    lambda: nl.analytic_kernel(net(EXP_Z2, 1.6), X),
    Raises(ValueError, r"does not decay beyond the quadrature window.*may be infinite.*estimated error inf"),
  ),
  (
    "exp(z²/4) diverging, loosest rtol still refused",
    lambda: nl.analytic_kernel(net(EXP_Z2, 1.6), X, quadrature_rtol=0.999),
    Raises(ValueError, r"may be infinite"),
  ),
  (
    "exp(z²/4) diverging, forced nodes refused",
    lambda: nl.analytic_kernel(net(EXP_Z2, 1.6), X, quadrature_nodes=32),
    Raises(ValueError, r"may be infinite"),
  ),
  (
    "exp(z²/4) diverging under jit",
    lambda: jax.block_until_ready(jax.jit(lambda x: nl.analytic_kernel(net(EXP_Z2, 1.6), x).nngp)(X)),
    Raises(jax.errors.JaxRuntimeError, r"estimated relative error inf"),
  ),
  (
    "choose_nodes exp(z²/4) at k = 1 (the edge) refused",
    lambda: nl.quadrature.choose_nodes(EXP_Z2, np.array([0.5, 1.0]), 1e-7),
    Raises(ValueError, r"variances 0\.5 … 1.*may be infinite"),
  ),
  (
    "quadrature_error exp(z²/4) diverging refused",
    lambda: nl.quadrature.quadrature_error(EXP_Z2, np.array([1.5]), 32),
    Raises(ValueError, r"E\[ρ\(u\)²\] or E\[ρ'\(u\)²\] may be infinite"),
  ),
  # ---------------------------------------- ordinary activations: truncation ≈ 0, unchanged
  (
    "tanh callable at W_std 5: 64 nodes chosen, error below 1e-7",
    lambda: (
      nl.quadrature.choose_nodes(TANH, np.array([0.05, 40.0]), 1e-7),
      nl.quadrature.quadrature_error(TANH, np.array([0.05, 40.0]), 64),
    ),
    Value(lambda out: out[0] == 64 and max(out[1]) <= 1e-7),
  ),
  (
    "softplus and sigmoid keep 32 nodes",
    lambda: [nl.quadrature.choose_nodes(a, np.array([0.3, 2.0]), 1e-7) for a in ("softplus", "sigmoid")],
    Value(lambda n: n == [32, 32]),
  ),
  (
    "closed forms untouched by the estimate (exp at W_std 4)",
    lambda: nl.analytic_kernel(net("exp", 4.0), X).nngp,
    Value(
      lambda k: (
        rel_err(k, 16.0 * np.exp(16.0 * np.add.outer(*(2 * [np.sum(X * X, 1) / 6])) + 16.0 * X @ X.T / 3))
        <= 1e-12
      )
    ),
  ),
  # ----------------------------------------------------------- two-layer kernels, same control
  (
    "g_infinity exp callable at |x| ≤ 0.9 matches the closed form",
    lambda: (g_inf(), g_inf(activation="exp")),
    Value(lambda g: max_rel(*g) <= 1e-7),
  ),
  (
    "h_infinity exp callable matches the closed form",
    lambda: (
      nl.two_layer.h_infinity(XS, activation=EXP, a_second_moment=2.0),
      nl.two_layer.h_infinity(XS, activation="exp", a_second_moment=2.0),
    ),
    Value(lambda h: rel_err(*h) <= 1e-7),
  ),
  (
    "g_infinity exp callable at |x| = 3 refused (was 0.1 % off)",
    lambda: g_inf(XL),
    Raises(ValueError, r"exp \(a callable\): its Gaussian expectations in g_infinity.*variances 6\.25 … 9"),
  ),
  (
    "g_infinity exp callable at |x| = 3, forced nodes warn: more nodes do not help",
    lambda: g_inf(XL, quadrature_nodes=128),
    Warns(
      r"quadrature_nodes=128 in g_infinity: estimated relative error 1\.\de-03.*beyond the quadrature window"
    ),
  ),
  (
    "g_infinity exp callable at |x| = 3 under jit",
    lambda: jax.block_until_ready(jax.jit(lambda x: g_inf(x))(XL)),
    Raises(jax.errors.JaxRuntimeError, r"g_infinity under jit/grad.*mass beyond the quadrature window"),
  ),
  (
    "g_infinity exp(z²/4) at |x|² = 1.2 diverges",
    lambda: g_inf(jnp.array([[1.2**0.5, 0.0]]), activation=EXP_Z2),
    Raises(ValueError, r"may be infinite"),
  ),
  (
    "g_infinity exp callable at |x| = 3 with rtol 1e-2",
    lambda: (g_inf(XL, quadrature_rtol=1e-2), g_inf(XL, activation="exp")),
    Value(lambda g: max_rel(*g) <= 1e-2),
  ),
  (
    "h_infinity tanh under jit equals eager",
    lambda: (
      jax.jit(lambda x: nl.two_layer.h_infinity(x, activation="tanh"))(XS),
      nl.two_layer.h_infinity(XS, activation="tanh"),
    ),
    Value(lambda h: rel_err(*h) <= 1e-7),
  ),
  (
    "h_infinity tanh s = 5 under jit: 32 nodes miss 1e-7",
    lambda: jax.block_until_ready(
      jax.jit(lambda x: nl.two_layer.h_infinity(x, activation="tanh", first_layer_std=5.0))(XL)
    ),
    Raises(jax.errors.JaxRuntimeError, r"32-node quadrature rule of activation tanh.*pass quadrature_nodes="),
  ),
  (
    "h_infinity tanh s = 5 under jit with 128 nodes equals eager",
    lambda: (
      jax.jit(
        lambda x: nl.two_layer.h_infinity(x, activation="tanh", first_layer_std=5.0, quadrature_nodes=128)
      )(XL),
      nl.two_layer.h_infinity(XL, activation="tanh", first_layer_std=5.0),
    ),
    Value(lambda h: rel_err(*h) <= 1e-7),
  ),
  (
    "g_infinity tanh forced 4 nodes warns",
    lambda: nl.two_layer.g_infinity(XL, activation="tanh", quadrature_nodes=4),
    Warns(r"quadrature_nodes=4 in g_infinity: estimated relative error"),
  ),
  (
    "g_infinity quadrature_nodes 0",
    lambda: g_inf(quadrature_nodes=0),
    Raises(ValueError, r"quadrature_nodes: must be a positive integer"),
  ),
  (
    "g_infinity quadrature_nodes 600",
    lambda: g_inf(quadrature_nodes=600),
    Raises(ValueError, r"at most 512"),
  ),
  (
    "h_infinity quadrature_rtol 0",
    lambda: nl.two_layer.h_infinity(XS, activation="tanh", quadrature_rtol=0.0),
    Raises(ValueError, r"quadrature_rtol: must be a number in \(0, 1\)"),
  ),
  (
    "relu_ntk_all_weights is h_infinity + g_infinity and the arc-cosine formula",
    lambda: nl.two_layer.relu_ntk_all_weights(XL, XS, first_layer_std=0.7),
    Value(lambda K: rel_err(K, relu_all_weights_formula(XL, XS, 0.7)) <= 1e-13),
  ),
  # ----------------------------------------------------- complexity: one implementation
  (
    "ntk_complexity repeated input is kernel_complexity's",
    lambda: (
      nl.two_layer.ntk_complexity(
        jnp.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]]), jnp.array([1.0, 1.0, -1.0])
      ),
      nl.kernel_complexity(
        nl.two_layer.relu_h_infinity(jnp.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])),
        jnp.array([1.0, 1.0, -1.0]),
        definition="trace",
      ).value,
    ),
    Value(lambda c: bool(jnp.isfinite(c[0])) and abs(float(c[0] - c[1])) <= 1e-12 * abs(float(c[1]))),
  ),
  (
    "ntk_complexity repeated input: the duplicate adds nothing to yᵀH⁺y",
    lambda: nl.two_layer.ntk_complexity(jnp.array([[1.0, 0.0], [1.0, 0.0]]), jnp.array([1.0, 1.0])),
    # H = ½·11ᵀ (rank 1), y = 1: yᵀH⁺y = 2·(1/(2·½))… = 2, tr H = 1: √(2·2·1)/2 = 1.
    Value(lambda c: abs(float(c) - 1.0) <= 1e-12),
  ),
  (
    "ntk_complexity wrong y shape",
    lambda: nl.two_layer.ntk_complexity(XS, jnp.ones(2)),
    Raises(ValueError, r"y: expected shape \(3,\) or \(3, O\)"),
  ),
  # ------------------------------------------------------------- the zero polynomial
  (
    "polynomial params=() is ρ ≡ 0",
    lambda: ZERO_POLY(jnp.linspace(-2.0, 2.0, 5)),
    Value(lambda y: y.shape == (5,) and not np.any(np.asarray(y))),
  ),
  (
    "polynomial params=[] kernels are 0 (neural-tangents' Polynomial(coef=[]))",
    lambda: nl.analytic_kernel(net(nl.Activation("polynomial", params=[]), 1.3, depth=2), X),
    Value(lambda k: not np.any(np.asarray(k.nngp)) and not np.any(np.asarray(k.ntk))),
  ),
  (
    "zero polynomial with a bias: only the readout bias is left",
    lambda: nl.analytic_kernel(net(ZERO_POLY, 1.3, b_std=0.2), X, XP),
    Value(lambda k: np.allclose(k.nngp, 0.04, rtol=1e-14) and np.allclose(k.ntk, 0.04, rtol=1e-14)),
  ),
  (
    "zero polynomial: the empirical NTK agrees (outputs and kernel 0)",
    lambda: (lambda m: (m.apply(p := m.init(jax.random.PRNGKey(0), 3), X), nl.empirical_ntk(m, p, X)))(
      net(ZERO_POLY, 1.3)
    ),
    Value(lambda out: not np.any(np.asarray(out[0])) and not np.any(np.asarray(out[1]))),
  ),
  (
    "polynomial without params keeps the default z",
    lambda: nl.Activation("polynomial").kernel(1.0, 2.0, 0.5),
    Value(lambda t: float(t[0]) == 0.5 and float(t[1]) == 1.0),
  ),
  (
    "polynomial params=(0.0,) is also 0",
    lambda: nl.Activation("polynomial", params=(0.0,)).kernel(1.0, 2.0, 0.5)[0],
    Value(lambda t: float(t) == 0.0),
  ),
  (
    "abrelu params=() refused",
    lambda: nl.Activation("abrelu", params=()),
    Raises(ValueError, r"abrelu takes 2 number\(s\) \(a, b\), got \(\); leave params unset"),
  ),
  (
    "relu params=() is relu",
    lambda: nl.Activation("relu", params=()) == nl.Activation("relu"),
    Value(lambda same: same),
  ),
  ("polynomial params a string", lambda: nl.Activation("polynomial", params=5), Raises(TypeError, r"params")),
  # ------------------------------------------------------------- gradients at a kink (x = 0)
  *[
    (
      f"kink grad {name} depth 1 {field} is the central difference",
      (
        lambda act, field: (
          lambda: (grad_at_origin(net(act, 1.2), field), central_difference(net(act, 1.2), field))
        )
      )(act, field),
      Value(lambda g: np.allclose(g[0], g[1], rtol=1e-8, atol=1e-10)),
    )
    for name, act in (("relu", "relu"), ("abrelu", ABRELU), ("leaky_relu", "leaky_relu"), ("abs", "abs"))
    for field in ("nngp", "ntk")
  ],
  *[
    (
      f"kink grad abrelu depth {depth} nngp is the chain rule of Σ̇ at cos θ = 0",
      (lambda depth: lambda: grad_at_origin(net(ABRELU, 1.2, depth), "nngp"))(depth),
      (
        lambda depth: Value(lambda g: np.allclose(g, chain_rule_at_origin(-0.4, 1.3, 1.2, depth), rtol=1e-12))
      )(depth),
    )
    for depth in (1, 2, 3)
  ],
  *[nt_row(*key) for key in NT_GRADS],
  (
    "kink grad relu callable (quadrature) is the named relu's",
    lambda: (
      grad_at_origin(net(RELU_FN, 1.2, 2), "ntk", quadrature_nodes=128),
      grad_at_origin(net("relu", 1.2, 2), "ntk"),
    ),
    Value(lambda g: np.allclose(g[0], g[1], rtol=1e-9)),
  ),
  (
    "kink grad sign is 0 (a jump: no derivative exists)",
    lambda: [grad_at_origin(net("sign", 1.2, 2), f) for f in ("nngp", "ntk")],
    Value(lambda gs: all(not np.any(np.asarray(g)) for g in gs)),
  ),
  (
    "kink: values at x = 0 unchanged (relu Σ(0, x') = 0)",
    lambda: nl.analytic_kernel(net("relu", 1.2, 2), jnp.zeros((1, 3)), XP),
    Value(lambda k: float(k.nngp[0, 0]) == 0.0 and float(k.ntk[0, 0]) == 0.0),
  ),
]


# Rows that compile programs of their own (new node counts, jit, deep gradients): the slow suite
# runs them; the default suite keeps at least one row of every kind above.
SLOW = {
  "exp callable W_std 4 forced nodes warns",
  "g_infinity exp callable at |x| = 3 with rtol 1e-2",
  "kink grad relu callable (quadrature) is the named relu's",
  "h_infinity tanh s = 5 under jit with 128 nodes equals eager",
  "h_infinity tanh s = 5 under jit: 32 nodes miss 1e-7",
  "h_infinity tanh under jit equals eager",
  "softplus and sigmoid keep 32 nodes",
  "tanh callable at W_std 5: 64 nodes chosen, error below 1e-7",
  "g_infinity exp callable at |x| = 3, forced nodes warn: more nodes do not help",
  "g_infinity tanh forced 4 nodes warns",
  "exp(z²/4) diverging under jit",
  "kink grad abrelu depth 2 nngp is the chain rule of Σ̇ at cos θ = 0",
  "kink grad abrelu depth 3 nngp is the chain rule of Σ̇ at cos θ = 0",
  "zero polynomial: the empirical NTK agrees (outputs and kernel 0)",
  "ntk_complexity repeated input: the duplicate adds nothing to yᵀH⁺y",
  *(
    f"kink grad {name} depth {depth} {field} is neural-tangents'" for name, depth, field in list(NT_GRADS)[1:]
  ),
}


def test_table_is_unique():
  ids = [c[0] for c in CASES]
  assert len(set(ids)) == len(ids) and SLOW <= set(ids)


@pytest.mark.parametrize(
  "name,call,expect",
  [pytest.param(*c, marks=pytest.mark.slow) if c[0] in SLOW else c for c in CASES],
  ids=[c[0] for c in CASES],
)
def test_hostile_numerics(name, call, expect):
  if isinstance(expect, Raises):
    with pytest.raises(expect.exc) as err:
      call()
    assert re.search(expect.words, str(err.value), re.S), f"{name}: message was {err.value}"
  elif isinstance(expect, Warns):
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      call()
    messages = [str(w.message) for w in caught]
    assert any(re.search(expect.words, m, re.S) for m in messages), f"{name}: warnings were {messages}"
  else:
    assert expect.check(call()), name
