"""Seed 003 (Mathematical Foundations of Deep Learning, Assignment 3): the shallow net
F(x; w, c) = (1/√m) Σ_i c_i σ(w_iᵀx), norms ‖w‖_{p,q} = (Σ_i ‖w_i‖_q^p)^{1/p}."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab.atlas import Outcome, claim
from ntk_lab.atlas._util import loglog_fit, slope_text, sphere, vanishes

relu = jax.nn.relu


def F(x, w, c, sigma=relu):
  return sigma(x @ w.T) @ c / math.sqrt(w.shape[0])


def norm_pq(w, p, q=2):
  return jnp.sum(jnp.linalg.norm(w, ord=q, axis=1) ** p) ** (1 / p)


def _instances(quick):
  """(m, d, displacement scale) spanning small and large values."""
  for m in (1, 1000) if quick else (1, 10, 1000):
    for d in (1, 5):
      for scale in (1e-3, 1.0, 1e3) if quick else (1e-6, 1e-3, 1.0, 1e3):
        yield m, d, scale


@claim("C3.1", "003 Q1 (a)", "ReLU, |c_i| ≤ 1: |F(x;w,c) − F(x;w',c)| ≤ (‖x‖/√m)‖w − w'‖_{1,2} ≤ ‖x‖ ‖w − w'‖_{2,2}")
def lipschitz(quick):
  worst1, worst2, count, bad = 0.0, 0.0, 0, False
  for m, d, scale in _instances(quick):
    key = jax.random.PRNGKey(m * 10 + d)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    x = jax.random.normal(k1, (4, d))
    w = jax.random.normal(k2, (m, d))
    c = jax.random.uniform(k3, (m,), minval=-1, maxval=1)
    for kind in ("random", "along x", "extreme c"):
      if kind == "random":
        dw = scale * jax.random.normal(k4, (m, d))
      else:  # every unit pushed along x_0 (active side): the first inequality is then tight
        dw = scale * jnp.broadcast_to(x[0] / jnp.linalg.norm(x[0]), (m, d)) * jnp.sign(w @ x[0])[:, None]
      cc = jnp.sign(c) if kind == "extreme c" else c
      f0, f1 = F(x, w, cc), F(x, w + dw, cc)
      lhs = jnp.abs(f0 - f1)
      mid = jnp.linalg.norm(x, axis=1) / math.sqrt(m) * norm_pq(dw, 1)
      right = jnp.linalg.norm(x, axis=1) * norm_pq(dw, 2)
      # F(w) − F(w') cancels for tiny displacements: allow its rounding, a few eps·(|F(w)| + |F(w')|)
      slack = 8 * jnp.finfo(x.dtype).eps * (jnp.abs(f0) + jnp.abs(f1) + mid)
      worst1 = max(worst1, float(jnp.max(lhs / mid)))
      worst2 = max(worst2, float(jnp.max(mid / right)))
      bad = bad or bool(jnp.any(lhs > mid + slack)) or bool(jnp.any(mid > right * (1 + 1e-12)))
      count += 1
  return Outcome({"instances": count, "max LHS/middle": worst1, "max middle/right": worst2}, not bad,
                 note="Tight: every unit moved along x on its active side. Compared up to the rounding of "
                      "F(w) − F(w'), 8·eps·(|F(w)| + |F(w')| + middle).")


@claim("C3.2", "003 Q1 (b)", "(w(0), c) from a symmetric Xavier initialisation (w_i ~ N(0, σ²I), c_i Rademacher, "
       "Q2 a): |F(x;w,c)| ≤ ‖x‖ ‖w − w(0)‖_{2,2} for all x, w, with probability one")
def symmetric_init(quick):
  worst_plain, worst_sym, ce = 0.0, 0.0, None
  for m in (2, 64, 2048):
    key = jax.random.PRNGKey(m)
    x = jax.random.normal(key, (5, 3))
    w0 = jax.random.normal(jax.random.fold_in(key, 1), (m, 3))
    c = jnp.where(jax.random.bernoulli(jax.random.fold_in(key, 2), 0.5, (m,)), 1.0, -1.0)
    # as printed: at w = w(0) the right side is 0 but F(x; w(0), c) ≠ 0
    lhs = float(jnp.max(jnp.abs(F(x, w0, c))))
    if lhs > 0 and ce is None:
      ce = (f"m = {m}, w = w(0) (so ‖w − w(0)‖ = 0): |F(x; w(0), c)| = {lhs:.3f} > 0 for a Gaussian w(0) with "
            "Rademacher c; the printed bound needs F(·; w(0), c) ≡ 0")
    worst_plain = max(worst_plain, lhs)
    # corrected: the symmetric (doubled) initialisation, units in pairs (w_i, c_i), (w_i, −c_i), |c_i| = 1
    ws = jnp.concatenate([w0[: m // 2]] * 2)
    cs = jnp.concatenate([c[: m // 2], -c[: m // 2]])
    for scale in (0.0, 1e-3, 1.0, 1e3):
      w = ws + scale * jax.random.normal(jax.random.fold_in(key, 3), ws.shape)
      rhs = jnp.linalg.norm(x, axis=1) * norm_pq(w - ws, 2)
      val = jnp.abs(F(x, w, cs))
      worst_sym = max(worst_sym, float(jnp.max(val / jnp.where(rhs > 0, rhs, 1.0))) if scale > 0
                      else float(jnp.max(val)) * 1e12)  # at w = w(0): F must vanish to rounding
  return Outcome({"max |F(x; w(0), c)| (plain init)": worst_plain,
                  "max |F|/(‖x‖‖w − w(0)‖) (symmetric init)": worst_sym}, worst_plain == 0, ce,
                 "with the symmetric initialisation of Q1 (b) proper (m even, w_{i+m/2}(0) = w_i(0), "
                 "c_{i+m/2} = −c_i, so F(·; w(0), c) ≡ 0), |F(x;w,c)| ≤ ‖x‖ ‖w − w(0)‖_{2,2}; in general "
                 "|F(x;w,c) − F(x;w(0),c)| ≤ ‖x‖ ‖w − w(0)‖_{2,2} (Q1 a)",
                 worst_sym <= 1 + 1e-9,
                 note="Rademacher c (|c_i| = 1, the hypothesis of Q1); displacements of scale 1e-3 … 1e3. "
                      "ntk_lab.MLP(readout_init='symmetric') builds the same pairing for any readout law.")


@claim("C3.3", "003 Q1 (c)", "f*(x) = E_w[v(w)ᵀx 1{wᵀx ≥ 0}] with α = E‖v(w)‖² satisfies |f*(x)| ≤ α‖x‖")
def infinite_net(quick):
  worst_printed, worst_corr, ce = 0.0, 0.0, None
  d = 4
  x = jnp.array([1.0, -2.0, 0.5, 3.0])
  xn = float(jnp.linalg.norm(x))
  for eps in (1e-3, 0.1, 0.4, 1.0, 10.0):
    # v(w) = ε x/‖x‖ (constant): f*(x) = ε‖x‖ P(wᵀx ≥ 0) = ε‖x‖/2 exactly, α = ε²
    fstar, alpha = eps * xn / 2, eps**2
    ratio = fstar / (alpha * xn)
    if ratio > 1 and ce is None:
      ce = (f"v(w) ≡ ε x/‖x‖ with ε = {eps:g}: f*(x) = ε‖x‖/2 = {fstar:.4g} > α‖x‖ = ε²‖x‖ = {alpha * xn:.4g}; "
            "|f*| ≤ α‖x‖ fails whenever ε < 1/2 (α is a squared norm, f* is linear in v)")
    worst_printed = max(worst_printed, ratio)
    worst_corr = max(worst_corr, fstar / (math.sqrt(alpha / 2) * xn))
  # a non-constant map, v(w) = A w (Monte Carlo with its standard error)
  draws = 200_000 if quick else 2_000_000
  for scale in (0.01, 1.0, 100.0):
    A = scale * jax.random.normal(jax.random.PRNGKey(int(scale * 100)), (d, d))
    w = jax.random.normal(jax.random.PRNGKey(7), (draws, d))
    vals = (w @ A.T @ x) * (w @ x >= 0)
    fstar, se = float(jnp.mean(vals)), float(jnp.std(vals) / math.sqrt(draws))
    alpha = float(jnp.sum(A**2))  # E‖Aw‖² = ‖A‖_F²
    worst_corr = max(worst_corr, (abs(fstar) - 4 * se) / (math.sqrt(alpha / 2) * xn))
  return Outcome({"max |f*|/(α‖x‖)": worst_printed, "max |f*|/(√(α/2)‖x‖)": worst_corr}, worst_printed <= 1, ce,
                 "|f*(x)| ≤ √(α/2) ‖x‖ ≤ √α ‖x‖ (Cauchy–Schwarz: E[‖v‖ 1{wᵀx ≥ 0}] ≤ √α √P(wᵀx ≥ 0)); "
                 "√α is the RKHS norm", worst_corr <= 1 + 1e-9,
                 note="The corrected bound is attained by the constant map (ratio 1); for v(w) = Aw it is checked "
                      "by Monte Carlo, 4 standard errors in its favour.")


def _logcosh(z):
  return z + jax.nn.softplus(-2 * z) - math.log(2.0)  # σ' = tanh: L = 1, β = 1


def _tails(quick, part):
  """Concentration checks of Q2 (a)/(b): erf (closed-form K) at unit scale and σ' = tanh at weight
  scale 30 (σ'(wᵀx) ≈ ±1: the summands nearly two-valued, Hoeffding's worst case)."""
  from ntk_lab import concentration as C
  draws = 1000 if quick else 6000
  rows = []
  for name, act, L, s, mc in (("erf", "erf", 2 / math.sqrt(math.pi), 1.0, False),
                              ("logcosh, s = 30", _logcosh, 1.0, 30.0, True)):
    x = sphere(jax.random.PRNGKey(3), 3 if part == "a" else 5, 3)
    if mc:  # K by Monte Carlo: E[tanh(a) tanh(b)] has no closed form (error ~2e-3·|xᵀx'|)
      w = s * jax.random.normal(jax.random.PRNGKey(9), (200_000, 3))
      phi = jnp.tanh(x @ w.T)
      kernel = (x @ x.T) * (phi @ phi.T) / w.shape[0]
    else:
      kernel = None
    n = x.shape[0]
    for m in (1, 4, 64) if quick else (1, 2, 4, 16, 64, 256):
      dev = C.deviations(act, x, m, jax.random.PRNGKey(m), draws=draws, w_std=s, kernel=kernel)
      if part == "a":
        for i, j in ((0, 1), (0, 2), (1, 1)):
          c = abs(float(x[i] @ x[j]))
          bound = np.exp(-C.TAUS**2 / 2)
          p = C.tail_check(dev["entries"][:, i, j], c * L**2 / math.sqrt(m), bound)
          q = C.tail_check(dev["entries"][:, i, j], c * L**2 / math.sqrt(m), 2 * bound)
          rows.append((name, m, (i, j), c, p, q))
      else:
        for norm in ("op", "fro"):
          bound = n**2 * np.exp(-C.TAUS**2 / 2)
          p = C.tail_check(dev[norm], n * L**2 / math.sqrt(m), bound)
          q = C.tail_check(dev[norm], n * L**2 / math.sqrt(m), 2 * bound)
          rows.append((name, m, norm, n, p, q))
  return rows, draws


@claim("C3.4", "003 Q2 (a)", "β-smooth σ, |σ'| ≤ L: P(|K(x,x') − K^(m)(x,x')| > t) ≤ exp(−t²m/(2|xᵀx'|²L⁴))")
def kernel_tail(quick):
  rows, draws = _tails(quick, "a")
  bad = [r for r in rows if r[4][2] > 0]
  ce = None
  if bad:
    name, m, pair, c, p, _ = max(bad, key=lambda r: r[4][2])
    tau = p[3]
    ce = (f"σ = {name}, m = {m}, pair {pair} (|xᵀx'| = {c:.3f}), t = {tau:.2f}·|xᵀx'|L²/√m: empirical "
          f"P = {np.interp(tau, _taus(), p[0]):.3f} (Clopper–Pearson lower limit above the bound by {p[2]:.3f}) vs "
          f"bound {math.exp(-tau**2 / 2):.3f}, over {draws} draws")
  worst_p = max(r[4][1] for r in rows)
  worst_q = max(r[5][1] for r in rows)
  return Outcome({"cases": len(rows), "draws each": draws, "max_t P̂/bound (printed)": worst_p,
                  "max_t P̂/(2·bound)": worst_q}, not bad, ce,
                 "P(|K − K^(m)| > t) ≤ 2 exp(−t²m/(2|xᵀx'|²L⁴)) (Hoeffding, two-sided: summands in "
                 "[−|xᵀx'|L², |xᵀx'|L²])", all(r[5][2] <= 0 for r in rows),
                 note="Violation = the Clopper–Pearson lower limit (Bonferroni over 100 t values) above the bound. "
                      "For erf at unit scale the printed bound holds with room.")


def _taus():
  from ntk_lab import concentration as C
  return C.TAUS


@claim("C3.5", "003 Q2 (b)", "‖x_i‖ ≤ 1: P(‖H − H^(m)‖_{2,2} > t) ≤ n² exp(−t²m/(2n²L⁴))")
def gram_tail(quick):
  rows, draws = _tails(quick, "b")
  worst = max(r[4][1] for r in rows)
  return Outcome({"cases": len(rows), "draws each": draws, "max_t P̂/bound (spectral and Frobenius)": worst},
                 all(r[4][2] <= 0 for r in rows),
                 note="Checked for the spectral and the (stronger) Frobenius norm. The n² union bound over entries at "
                      "t/n is loose: the empirical tail stays far below it even where (a) fails without its 2.")


@claim("C3.6", "003 Q2 (c)", "|F(x;w',c) − F_0(x;w')| ≤ β‖c‖_∞‖x‖/(2√m) · ‖w' − w‖_{1,2} (linearisation of a "
       "β-smooth σ)")
def smooth_linearisation(quick):
  worst_p, worst_c, ce = 0.0, 0.0, None
  acts = (("z²/2", lambda z: z**2 / 2, 1.0), ("sin", jnp.sin, 1.0), ("softplus", jax.nn.softplus, 0.25),
          ("logcosh", _logcosh, 1.0))
  for name, sigma, beta in acts:
    for m, d, scale in _instances(quick):
      key = jax.random.PRNGKey(m + d)
      k1, k2, k3, k4 = jax.random.split(key, 4)
      x = jax.random.normal(k1, (3, d))
      w = jax.random.normal(k2, (m, d))
      c = jax.random.normal(k3, (m,))
      dw = scale * jax.random.normal(k4, (m, d))
      grad = jax.vmap(lambda xi: jax.grad(lambda w: F(xi[None], w, c, sigma)[0])(w))(x)
      lin = F(x, w, c, sigma) + jnp.einsum("nrd,rd->n", grad, dw)
      lhs = jnp.abs(F(x, w + dw, c, sigma) - lin)
      xn = jnp.linalg.norm(x, axis=1)
      printed = beta * jnp.max(jnp.abs(c)) * xn / (2 * math.sqrt(m)) * norm_pq(dw, 1)
      corrected = beta * jnp.max(jnp.abs(c)) * xn**2 / (2 * math.sqrt(m)) * norm_pq(dw, 2) ** 2
      # the difference cancels in float64 below ~1e-16·|F|: compare up to that rounding
      slack = 1e-13 * (jnp.abs(F(x, w + dw, c, sigma)) + jnp.abs(lin))
      r = float(jnp.max((lhs - slack) / printed))
      if r > 1 and (ce is None or r > ce[0]):
        i = int(jnp.argmax(lhs / printed))
        ce = (r, f"σ = {name} (β = {beta:g}), m = {m}, d = {d}, ‖w' − w‖ scale {scale:g}: |F − F_0| = "
                 f"{float(lhs[i]):.4g} > {float(printed[i]):.4g}")
      worst_p = max(worst_p, r)
      worst_c = max(worst_c, float(jnp.max((lhs - slack) / corrected)))
  return Outcome({"max LHS/RHS (printed)": worst_p, "max LHS/RHS (corrected)": worst_c}, worst_p <= 1,
                 ce[1] if ce else None,
                 "|F(x;w',c) − F_0(x;w')| ≤ β‖c‖_∞‖x‖²/(2√m) · ‖w' − w‖²_{2,2}: the Taylor remainder is quadratic "
                 "in the displacement (and in x); the printed right side is linear in both", worst_c <= 1 + 1e-9,
                 note="Equality in the corrected bound for σ = z²/2 with every w_i' − w_i parallel to x.")


@claim("C3.7", "003 Q3 (a)", "all-weights ReLU NTK: K^(m)(x,x') → K(x,x') almost surely as m → ∞")
def all_weights_limit(quick):
  import ntk_lab as nl
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  s = 1.3
  K = np.asarray(nl.relu_ntk_all_weights(x, w_std=s))
  m_max = 2**16 if quick else 2**20
  paths = []
  for path in range(4):  # one nested sequence w_1, w_2, … per path: running means
    w = s * jax.random.normal(jax.random.PRNGKey(100 + path), (m_max, 3))
    z = x @ w.T
    act = (z >= 0).astype(x.dtype)
    terms = (x @ x.T)[None] * (act.T[:, :, None] * act.T[:, None, :]) + relu(z).T[:, :, None] * relu(z).T[:, None, :]
    running = np.cumsum(np.asarray(terms), axis=0) / np.arange(1, m_max + 1)[:, None, None]
    ms = 2 ** np.arange(4, int(math.log2(m_max)) + 1)
    paths.append([float(np.max(np.abs(running[m - 1] - K)) / np.max(np.abs(K))) for m in ms])
  ms_all = np.tile(ms, len(paths))
  fit = loglog_fit(ms_all, np.concatenate(paths))
  final = max(p[-1] for p in paths)
  return Outcome({"max |K^(m) − K|/max|K| slope along paths": slope_text(fit),
                  f"max relative error at m = {m_max:,}": final},
                 vanishes(fit) and final < 0.02,
                 note="K in closed form (ntk_lab.relu_ntk_all_weights, w ~ N(0, 1.3² I)); 4 sample paths of nested "
                      "running means (the a.s. statement is about one sequence per draw).")


@claim("C3.8", "003 Q3 (b)", "|F(x;w',c') − F_0(x;w',c')| ≤ (2‖c‖₂ + ‖c − c'‖₂)‖w' − w‖_{2,2}‖x‖/√m (ReLU)")
def relu_linearisation(quick):
  worst = 0.0
  count = 0
  for m, d, scale in _instances(quick):
    for cscale in (1e-3, 1e3) if quick else (1e-3, 1.0, 1e3):
      key = jax.random.PRNGKey(m * 7 + d)
      k1, k2, k3, k4, k5 = jax.random.split(key, 5)
      x = jax.random.normal(k1, (3, d))
      w, c = jax.random.normal(k2, (m, d)), jax.random.normal(k3, (m,))
      dw, dc = scale * jax.random.normal(k4, (m, d)), cscale * jax.random.normal(k5, (m,))
      gw = jax.vmap(lambda xi: jax.grad(lambda w: F(xi[None], w, c)[0])(w))(x)
      f0 = F(x, w, c) + jnp.einsum("nrd,rd->n", gw, dw) + relu(x @ w.T) @ dc / math.sqrt(m)
      lhs = jnp.abs(F(x, w + dw, c + dc) - f0)
      rhs = (2 * jnp.linalg.norm(c) + jnp.linalg.norm(dc)) * norm_pq(dw, 2) * jnp.linalg.norm(x, axis=1) / math.sqrt(m)
      slack = 1e-13 * (jnp.abs(F(x, w + dw, c + dc)) + jnp.abs(f0))
      worst = max(worst, float(jnp.max((lhs - slack) / rhs)))
      count += 1
  return Outcome({"instances": count, "max LHS/RHS": worst}, worst <= 1,
                 note="The proof gives (‖c‖₂ + ‖c − c'‖₂)·…: the printed bound is loose by up to 2× when ‖c − c'‖ ≪ ‖c‖, and "
                      "nearly tight when ‖c − c'‖ ≫ ‖c‖ (the worst instance).")


@claim("C3.9", "003 Q4", "projected SGD on linear least squares, η = 1/(L√T): E L(θ̄_T) − min_{B(0,R)} L ≤ 2RL/√T")
def projected_sgd(quick):
  ce, worst_p, worst_c = None, 0.0, 0.0
  cases = []
  # a one-dimensional problem, Φ(x_i) = 1, y_i = R: every sample gradient is θ − R, so SGD is deterministic
  for R in (0.5, 1.0, 10.0, 1000.0):
    for T in (100, 400, 10_000):
      cases.append(("1-d", R, T, np.ones((4, 1)), np.full(4, R)))
  key = jax.random.PRNGKey(0)
  for R in (0.5, 3.0):
    for T in (100, 2000):
      phi = np.asarray(jax.random.normal(key, (30, 5)))
      cases.append(("random", R, T, phi, phi @ np.ones(5) + 0.3 * np.asarray(jax.random.normal(key, (30,)))))
  for kind, R, T, phi, y in cases:
    n = len(y)
    L_loss = lambda th: 0.5 * np.mean((phi @ th - y) ** 2)
    # L bounds the sample gradients on B(0, R): ‖Φ_i(θᵀΦ_i − y_i)‖ ≤ ‖Φ_i‖(R‖Φ_i‖ + |y_i|)
    L = float(np.max(np.linalg.norm(phi, axis=1) * (R * np.linalg.norm(phi, axis=1) + np.abs(y))))
    best = _ball_min(phi, y, R)
    for eta, tag in ((1 / (L * math.sqrt(T)), "printed"), (2 * R / (L * math.sqrt(T)), "corrected")):
      gaps = []
      for rep in range(1 if kind == "1-d" else (5 if quick else 40)):
        rng = np.random.default_rng(rep)
        th, avg = np.zeros(phi.shape[1]), np.zeros(phi.shape[1])
        for i in rng.integers(0, n, T):
          avg += th / T
          th = th - eta * phi[i] * (th @ phi[i] - y[i])
          nrm = np.linalg.norm(th)
          th = th if nrm <= R else th * R / nrm
        gaps.append(L_loss(avg) - best)
      ratio = float(np.mean(gaps)) / (2 * R * L / math.sqrt(T))
      if tag == "printed":
        if ratio > max(worst_p, 1):
          ce = (f"{kind} problem, R = {R:g}, T = {T}, L = {L:.4g}: L(θ̄_T) − min = {np.mean(gaps):.4g} > 2RL/√T = "
                f"{2 * R * L / math.sqrt(T):.4g}; with η = 1/(L√T) the iterates travel at most ηLT = √T, "
                f"too little when R ≫ √T")
        worst_p = max(worst_p, ratio)
      else:
        worst_c = max(worst_c, ratio)
  return Outcome({"cases": len(cases), "max gap/(2RL/√T), η = 1/(L√T)": worst_p,
                  "same, η = 2R/(L√T)": worst_c}, worst_p <= 1, ce,
                 "with η = 2R/(L√T) (the step scaled by the diameter of B(0, R)), E L(θ̄_T) − min ≤ 2RL/√T; with the "
                 "printed η = 1/(L√T) the standard analysis gives (‖θ_0 − θ*‖² + 1) L/(2√T) ≤ (4R² + 1)L/(2√T)",
                 worst_c <= 1,
                 note="θ_0 = 0; L the sup of the sample-gradient norms over B(0, R); the random problems average 5 "
                      "(quick) or 40 SGD runs.")


def _ball_min(phi, y, R):
  """min over ‖θ‖ ≤ R of (1/2n)‖Φθ − y‖² (trust-region: bisection on the multiplier)."""
  n = len(y)
  A, b = phi.T @ phi / n, phi.T @ y / n
  th = np.linalg.lstsq(phi, y, rcond=None)[0]
  if np.linalg.norm(th) > R:
    lo, hi = 0.0, 1.0
    while np.linalg.norm(np.linalg.solve(A + hi * np.eye(len(b)), b)) > R:
      hi *= 2
    for _ in range(200):
      mid = (lo + hi) / 2
      if np.linalg.norm(np.linalg.solve(A + mid * np.eye(len(b)), b)) > R:
        lo = mid
      else:
        hi = mid
    th = np.linalg.solve(A + hi * np.eye(len(b)), b)
  return 0.5 * np.mean((phi @ th - y) ** 2)


@claim("C3.10", "003 Q5", "K₁ + K₂ is a Mercer kernel and ‖f‖²_K = inf{‖g‖²_{K₁} + ‖h‖²_{K₂} : g + h = f}")
def sum_of_kernels(quick):
  import ntk_lab as nl
  worst_psd, worst_norm = np.inf, 0.0
  for n in (3, 8, 20):
    x = sphere(jax.random.PRNGKey(n), n, 4)
    k1 = np.asarray(nl.relu_h_infinity(x))  # train w (seed 003 Q3: the two parts of the all-weights NTK)
    k2 = np.asarray(nl.g_infinity(x, activation="relu"))  # train c
    k = k1 + k2
    lam = np.linalg.eigvalsh(k)
    worst_psd = min(worst_psd, float(lam[0] / lam[-1]))
    fvals = np.asarray(jax.random.normal(jax.random.PRNGKey(n + 1), (n,)))
    direct = fvals @ np.linalg.solve(k, fvals)
    # inf over g = K₁a (h = f − g, ‖h‖²_{K₂} = hᵀK₂⁻¹h): a quadratic in a, solved exactly
    k2inv = np.linalg.inv(k2)
    a = np.linalg.solve(k1 + k1 @ k2inv @ k1, k1 @ k2inv @ fvals)
    g = k1 @ a
    inf = a @ k1 @ a + (fvals - g) @ k2inv @ (fvals - g)
    worst_norm = max(worst_norm, float(abs(inf - direct) / direct))
  return Outcome({"min λ(K₁ + K₂)/λ_max": worst_psd, "max |inf − ‖f‖²_K|/‖f‖²_K": worst_norm},
                 worst_psd >= -1e-12 and worst_norm < 1e-8,
                 note="On n points, K₁ = H^∞ (train w) and K₂ = G^∞ (train c) of a two-layer ReLU net; f given by its "
                      "values. The tolerance allows for the conditioning of K₂ (up to 1e8 at n = 20).")


@claim("C3.11", "003 Q6", "E[φ(x;θ)ᵀφ(x';θ)] is PSD with ‖f‖_K = inf{‖u‖_{L²(μ)} : f = E[uᵀφ]}; the NTK is one, "
       "φ = xσ'(wᵀx) (train w) or (x c σ'(wᵀx), σ(wᵀx)) (train both)")
def random_features(quick):
  import ntk_lab as nl
  x = sphere(jax.random.PRNGKey(0), 6, 3)
  draws = 400_000 if quick else 4_000_000
  w = jax.random.normal(jax.random.PRNGKey(1), (draws, 3))
  c = jnp.where(jax.random.bernoulli(jax.random.PRNGKey(2), 0.5, (draws,)), 1.0, -1.0)
  act = (x @ w.T >= 0).astype(x.dtype)  # (n, draws)
  feats_w = (x @ x.T)[:, :, None] * (act[:, None, :] * act[None, :, :])  # xᵀx' σ'σ'
  both = feats_w * (c**2)[None, None] + relu(x @ w.T)[:, None, :] * relu(x @ w.T)[None, :, :]
  z = 0.0
  for feats, exact in ((feats_w, nl.relu_h_infinity(x)), (both, nl.relu_ntk_all_weights(x))):
    mean = jnp.mean(feats, axis=-1)
    se = jnp.std(feats, axis=-1) / math.sqrt(draws)
    z = max(z, float(jnp.max(jnp.abs(mean - exact) / jnp.maximum(se, 1e-300))))
  # the RKHS norm for an empirical measure μ_M: ‖f‖²_K = min{(1/M)Σ‖u_k‖² : f = (1/M)Σ u_kᵀφ_k}
  worst_norm, min_eig = 0.0, np.inf
  for M in (50, 400):
    ws = jax.random.normal(jax.random.PRNGKey(M), (M, 3))
    phi = np.asarray(((x @ ws.T >= 0)[:, :, None] * x[:, None, :]).reshape(6, -1))  # (n, M·d): φ(x_i; w_k)
    K = phi @ phi.T / M
    lam = np.linalg.eigvalsh(K)
    min_eig = min(min_eig, float(lam[0] / lam[-1]))
    fvals = np.asarray(jax.random.normal(jax.random.PRNGKey(M + 1), (6,)))
    u = M * np.linalg.lstsq(phi, fvals, rcond=None)[0]  # least-norm u with (1/M)Φu = f
    worst_norm = max(worst_norm, float(abs(u @ u / M - fvals @ np.linalg.solve(K, fvals)) / (u @ u / M)))
  ok = z < 5 and min_eig >= -1e-12 and worst_norm < 1e-8
  return Outcome({"max |MC − closed form|/s.e.": z, "min λ(K_μM)/λ_max": min_eig,
                  "max |min ‖u‖² − fᵀK⁻¹f| (rel)": worst_norm}, ok,
                 note="NTK features by Monte Carlo against the closed forms (ntk_lab.relu_h_infinity, "
                      "relu_ntk_all_weights); the norm identity on empirical measures μ_M (M features).")
