"""The two-layer ReLU net f(W, x) = (1/√m) Σ_r σ(w_rᵀx) with the readout fixed (Du et al. 2019;
Arora et al. 2019 "Fine-grained analysis"), unit-norm inputs, loss ½Σ_i(f(x_i) − y_i)², its NTK
H^∞ and the data-dependent complexity bound √(2yᵀ(H^∞)⁻¹y · tr H^∞)/n of Arora et al. 2019."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab.atlas import Outcome, claim
from ntk_lab.atlas._util import loglog_fit, rel, slope_text, sphere, vanishes


def f(w, x):
  return jnp.sum(jax.nn.relu(x @ w.T), axis=-1) / math.sqrt(w.shape[0])


@claim(
  "C2.1",
  "two-layer ReLU net, chain rule",
  "For the loss ℓ = ½Σ_i(u_i − y_i)², u_i = f(x_i): "
  "∂ℓ/∂w_r = Σ_i (u_i − y_i) ∂f(x_i)/∂w_r, and under gradient flow du/dt = H(t)(y − u) with "
  "H_ij = Σ_r ⟨∂f(x_i)/∂w_r, ∂f(x_j)/∂w_r⟩",
  twin="the same with du/dt = ½H(t)(y − u)",
)
def chain_rule(quick, twin):
  worst_g, worst_u = 0.0, 0.0
  for m in (1, 2000) if quick else (1, 20, 2000):
    for n in (1, 7):
      key = jax.random.PRNGKey(m + n)
      w = jax.random.normal(key, (m, 4))
      x = sphere(jax.random.fold_in(key, 1), n, 4)
      y = jax.random.normal(jax.random.fold_in(key, 2), (n,))
      u = f(w, x)
      jac = jax.jacobian(f)(w, x)  # (n, m, d): ∂f(x_i)/∂w_r
      worst_g = max(
        worst_g,
        rel(jax.grad(lambda w: 0.5 * jnp.sum((f(w, x) - y) ** 2))(w), jnp.einsum("i,ird->rd", u - y, jac)),
      )
      H = jnp.einsum("ird,jrd->ij", jac, jac)
      _, udot = jax.jvp(lambda w: f(w, x), (w,), (-jnp.einsum("i,ird->rd", u - y, jac),))
      worst_u = max(worst_u, rel(udot, (0.5 if twin else 1.0) * H @ (y - u)))
  return Outcome(
    {"gradient (rel)": worst_g, "du/dt vs H(y − u) (rel)": worst_u},
    max(worst_g, worst_u) < 1e-12,
    note="m ∈ {1, 20, 2000}, n ∈ {1, 7}, unit-norm inputs in R⁴; autodiff as the reference.",
  )


@claim(
  "C2.2",
  "two-layer ReLU net, indicator form",
  "At any weights W (so at every time of training): H_ij = (1/m) Σ_r x_iᵀx_j 1{w_rᵀx_i ≥ 0, w_rᵀx_j ≥ 0}",
  twin="the same with the indicator of w_rᵀx_j ≥ 0 dropped",
)
def indicator_form(quick, twin):
  worst, count = 0.0, 0
  for m in (1, 3000) if quick else (1, 30, 3000):
    for n in (2, 8):
      for spread in (
        (0.1, 10.0) if quick else (0.1, 1.0, 10.0)
      ):  # W anywhere along training: small, unit and large weights
        key = jax.random.PRNGKey(m * n)
        w = spread * jax.random.normal(key, (m, 5))
        x = sphere(jax.random.fold_in(key, 1), n, 5)
        jac = jax.jacobian(f)(w, x)
        H = jnp.einsum("ird,jrd->ij", jac, jac)
        act = (x @ w.T >= 0).astype(x.dtype)
        other = jnp.ones_like(act) if twin else act
        worst = max(worst, rel(H, (x @ x.T) * (act @ other.T) / m))
        count += 1
  return Outcome(
    {"instances": count, "max relative error": worst},
    worst < 1e-12,
    note="At the ReLU kink autodiff takes σ'(0) = 0 and the formula 1{· ≥ 0}; Gaussian weights never "
    "hit it. m ∈ {1, 30, 3000}, weight scales 0.1–10.",
  )


@claim(
  "C2.3",
  "two-layer ReLU NTK, closed form",
  "For unit-norm inputs and w ~ N(0, I): H^∞_ij = "
  "E_w[x_iᵀx_j 1{wᵀx_i ≥ 0, wᵀx_j ≥ 0}] = x_iᵀx_j (π − arccos(x_iᵀx_j)) / (2π), and the finite-width H(0) "
  "converges to it as m → ∞",
  twin="the same with 2π replaced by π",
)
def closed_form(quick, twin):
  import ntk_lab as nl

  x = sphere(jax.random.PRNGKey(0), 6, 4)
  x = jnp.concatenate([x, x[:1], -x[1:2]])  # include x = x' and x = −x'
  cos = jnp.clip(x @ x.T, -1, 1)
  closed = cos * (jnp.pi - jnp.arccos(cos)) / ((1 if twin else 2) * jnp.pi)
  draws = 400_000 if quick else 4_000_000
  sums, sq = 0.0, 0.0
  for k in jax.random.split(jax.random.PRNGKey(1), draws // 100_000):
    w = jax.random.normal(k, (100_000, 4))
    act = (x @ w.T >= 0).astype(x.dtype)
    vals = (x @ x.T)[None] * (act.T[:, :, None] * act.T[:, None, :])  # (draws, n, n)
    sums, sq = sums + vals.sum(0), sq + (vals**2).sum(0)
  mc = sums / draws
  se = jnp.sqrt(jnp.maximum(sq / draws - mc**2, 0) / draws)
  z = float(jnp.max(jnp.abs(mc - closed) / jnp.maximum(se, 1e-300)))
  lib = rel(nl.two_layer.relu_h_infinity(x), closed)
  m_widths = (100, 1000, 10_000, 100_000)
  errs = []
  for m in m_widths:
    net = nl.MLP((m,), W_std=(2.0, 1.0), b_std=None, trainable="hidden")  # readout fixed, as in the statement
    errs.append(
      float(jnp.max(jnp.abs(nl.empirical_ntk(net, net.init(jax.random.PRNGKey(m), 4), x) - closed)))
    )
  fit = loglog_fit(m_widths, errs)
  ok = z < 5.0 and lib < 1e-7 and vanishes(fit)  # arccos near ±1 (x = ±x') amplifies eps to √eps
  return Outcome(
    {
      "max |MC − formula|/s.e.": z,
      "MC draws": draws,
      "ntk_lab.relu_h_infinity vs formula": lib,
      "max |H(0) − H^∞| slope over m": slope_text(fit),
    },
    ok,
    note="E[x_iᵀx_j 1{wᵀx_i ≥ 0, wᵀx_j ≥ 0}] by Monte Carlo (z-score over all entries, 5σ with 64 "
    "entries), and the finite-width H(0) of an ntk_lab.MLP with the readout fixed (a_r ~ N(0, 1), "
    "E[a²] = 1) converging to it. The two closed-form routes agree to √eps, the conditioning of arccos at "
    "x_iᵀx_j = ±1.",
  )


def _series_reference(z, terms, first=4):
  """The power series of H^∞ summed independently (exact binomial coefficients in Python floats)."""
  total = z / first
  for l in range(terms):
    c = math.comb(2 * l, l) / 4**l
    total = total + c * z ** (2 * l + 2) / (2 * l + 1) / (2 * math.pi)
  return total


@claim(
  "C2.4",
  "two-layer ReLU NTK, power series",
  "For unit-norm inputs: H^∞_ij = x_iᵀx_j/4 + (1/2π) Σ_{l≥0} "
  "(2l)!/(2^{2l}(l!)²) · (x_iᵀx_j)^{2l+2}/(2l+1) (the series converges to the closed form on [−1, 1])",
  twin="the same with the first term x_iᵀx_j/2",
)
def power_series(quick, twin):
  import ntk_lab as nl

  z = np.concatenate([np.linspace(-1, 1, 41), [-0.999, 0.999]])
  closed = z * (np.pi - np.arccos(z)) / (2 * np.pi)
  errors, bound_ok = {}, True
  for terms in (1, 10, 100, 1000) if quick else (1, 10, 100, 1000, 10000):
    partial = _series_reference(z, terms, first=2 if twin else 4)
    errors[terms] = float(np.max(np.abs(partial - closed)))
    x1 = np.stack([np.ones_like(z), np.zeros_like(z)], 1)
    x2 = np.stack([z, np.sqrt(1 - z**2)], 1)
    lib = nl.two_layer.relu_h_infinity_series(jnp.asarray(x1), jnp.asarray(x2), terms=terms)
    diag_val, diag_bound = np.diag(np.asarray(lib.value)), np.diag(np.asarray(lib.error_bound))
    bound_ok &= (
      bool(np.all(np.abs(diag_val - closed) <= diag_bound + 1e-12)) and rel(diag_val, partial) < 1e-10
    )
  tail = loglog_fit(list(errors), list(errors.values()))
  ok = bound_ok and vanishes(tail) and errors[max(errors)] < 2e-2
  return Outcome(
    {
      "max |partial sum − closed form| at L terms": ", ".join(f"L={k}: {v:.1e}" for k, v in errors.items()),
      "slope in L (|z| = 1 is the slowest)": slope_text(tail),
      "library series within its error bound": bound_ok,
    },
    ok,
    note="Checked on z = x_iᵀx_j ∈ [−1, 1]; at |z| = 1 the remainder decays like L^{−1/2}, inside "
    "|z| < 1 geometrically.",
  )


@claim(
  "C2.5",
  "complexity bound (Arora et al. 2019, fine-grained analysis)",
  "For labels of a linear teacher, y_i = βᵀx_i, and unit-norm inputs x_1 … x_n ∈ R^d (X the n × d matrix of "
  "rows x_iᵀ, K = XXᵀ): √(2yᵀ(H^∞)⁻¹y · tr H^∞)/n ≤ 2√2‖β‖/√n, by three facts: 4K⁻¹ − (H^∞)⁻¹ ⪰ 0, "
  "tr H^∞ ≤ n and ‖X(XXᵀ)⁻¹Xᵀ‖_op ≤ 1",
  twin="the bound with its right side halved, √2‖β‖/√n, and tr H^∞ ≤ n/4",
)
def complexity_bound(quick, twin):
  import ntk_lab as nl

  half = 0.5 if twin else 1.0
  worst_ratio, fact_min, trace_ratio, proj, count, ce = 0.0, np.inf, 0.0, 0.0, 0, None
  general_min, min_rank_gap = np.inf, np.inf
  for d in (3, 10, 50) if not quick else (3, 10):
    for n in (1, 2, d, 4 * d, 20 * d) if not quick else (1, 2, d, 4 * d):
      for bscale in (1e-3, 1.0, 1e3) if not quick else (1e-3, 1e3):
        key = jax.random.PRNGKey(d * 1000 + n)
        x = sphere(key, n, d)
        beta = bscale * jax.random.normal(jax.random.fold_in(key, 1), (d,))
        y = x @ beta
        lhs = float(nl.two_layer.ntk_complexity(x, y))
        rhs = half * float(2 * math.sqrt(2) * jnp.linalg.norm(beta) / math.sqrt(n))
        worst_ratio = max(worst_ratio, lhs / rhs)
        h, k = np.asarray(nl.two_layer.relu_h_infinity(x)), np.asarray(x @ x.T)
        trace_ratio = max(trace_ratio, float(np.trace(h)) / (n * half**2))
        # H^∞ ⪰ K/4 (the series' first term; the rest are Hadamard powers, PSD): holds for every n
        general_min = min(
          general_min, float(np.linalg.eigvalsh(h - k / 4)[0]) / float(np.linalg.eigvalsh(h)[-1])
        )
        proj = max(proj, float(np.linalg.norm(np.asarray(x).T @ np.linalg.pinv(k) @ np.asarray(x), 2)))
        lam = np.linalg.eigvalsh(k)
        invertible = lam[0] > 1e-10 * lam[-1]
        min_rank_gap = min(min_rank_gap, float(lam[0] / lam[-1]))
        if invertible:
          fact = 4 * np.linalg.inv(k) - np.linalg.inv(h)
          fact_min = min(
            fact_min, float(np.linalg.eigvalsh(fact)[0] / np.abs(np.linalg.eigvalsh(fact)).max())
          )
        elif ce is None:
          ce = (
            f"n = {n} > d = {d}: K = XXᵀ has rank {np.linalg.matrix_rank(k)} < n (λ_min(K)/λ_max(K) = "
            f"{lam[0] / lam[-1]:.1e}), so K⁻¹ in the first fact and (XXᵀ)⁻¹ in the third do not exist"
          )
        count += 1
  search = _search(half, quick)
  worst_ratio = max(worst_ratio, search["worst ratio"])
  bound_holds = worst_ratio <= 1 + 1e-9
  facts_defined = min_rank_gap > 1e-10  # every K met was invertible
  facts_hold = fact_min >= -1e-9 and trace_ratio <= 1 and proj <= 1 + 1e-9
  general = general_min >= -1e-9
  return Outcome(
    {
      "instances": count,
      "max LHS/RHS (incl. search)": worst_ratio,
      "min eig(4K⁻¹ − H⁻¹)/scale (K invertible)": fact_min,
      "max tr H^∞/n": trace_ratio,
      "max ‖Xᵀ K⁺ X‖_op": proj,
      "min eig(H^∞ − K/4)/λ_max": general_min,
      "min λ_min(K)/λ_max(K)": min_rank_gap,
    },
    bound_holds and facts_hold and facts_defined,
    ce,
    "for n > d: H^∞ ⪰ K/4, hence yᵀ(H^∞)⁻¹y ≤ 4yᵀK⁺y for y = Xβ ∈ range K, and ‖Xᵀ K⁺ X‖ ≤ 1 (a "
    "projection); with tr H^∞ = n/2 the bound follows for every n",
    bound_holds and general and proj <= 1 + 1e-9,
    reading="the bound for every n; the three facts for n ≤ d, where K = XXᵀ is invertible (a hypothesis "
    "the statement omits)",
    reading_holds=bound_holds and facts_hold,
    search=search,
    note="X(XXᵀ)⁻¹Xᵀ does not typecheck for X of shape n × d (unless n = d); it is read as "
    "Xᵀ(XXᵀ)⁻¹X, the projection onto the row space, evaluated as Xᵀ(XXᵀ)⁺X (pseudo-inverse) so "
    "that it is defined for n > d too. ‖·‖_op is the spectral norm. tr H^∞ = n/2 exactly "
    "(H^∞_ii = 1/2), so the bound is loose by √2: LHS/RHS → 1/√2 as n grows. The adversarial "
    "search runs over n ∈ [1, 200], d ∈ [1, 50], the spread of the inputs around one direction "
    "(nearly parallel inputs make H^∞ ill-conditioned) and β along or across that direction.",
  )


def _search(half, quick):
  import ntk_lab as nl
  from ntk_lab.atlas._search import worst_case

  def ratio(n, d, spread, tilt):
    rng = np.random.default_rng(n * 100 + d)
    e = np.zeros(d)
    e[0] = 1.0
    x = e + spread * rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    beta = np.cos(tilt) * e + np.sin(tilt) * (rng.normal(size=d) if d > 1 else 0)
    if np.linalg.norm(beta) == 0:
      return -np.inf
    y = x @ beta
    if np.max(np.abs(y)) < 1e-12:
      return -np.inf
    lhs = float(nl.two_layer.ntk_complexity(jnp.asarray(x), jnp.asarray(y)))
    return lhs / (half * 2 * math.sqrt(2) * np.linalg.norm(beta) / math.sqrt(n))

  return worst_case(
    ratio,
    {
      "n": (1, 200, "int"),
      "d": (1, 50, "int"),
      "spread": (1e-3, 10.0, "log"),
      "tilt": (0.0, np.pi / 2, "lin"),
    },
    # Each new (n, d) compiles the complexity afresh (~2 s): the quick sweep searches less.
    n_random=20 if quick else 60,
    n_starts=1 if quick else 2,
    maxiter=15 if quick else 40,
  )
