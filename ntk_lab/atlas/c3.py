"""The shallow net F(x; w, c) = (1/√m) Σ_i c_i σ(w_iᵀx) in NTK parametrization, with the mixed norms
‖w‖_{p,q} = (Σ_i ‖w_i‖_q^p)^{1/p}: Lipschitz bounds, the infinite-width function class and its RKHS,
concentration of the finite-width NTK (Du et al. 2019, Lemma 3.1: Hoeffding), linearisation bounds
(Lee et al. 2019; Chizat et al. 2019), projected SGD, sums of kernels and random-feature kernels
(Arora et al. 2019 "On exact computation")."""

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


@claim(
  "C3.1",
  "shallow ReLU net, Lipschitz in w",
  "For σ = ReLU and |c_i| ≤ 1, for all x, w, w': "
  "|F(x;w,c) − F(x;w',c)| ≤ (‖x‖/√m)‖w − w'‖_{1,2} ≤ ‖x‖ ‖w − w'‖_{2,2}",
  twin="the same with 1/√m replaced by 1/m (the exponent of m doubled)",
)
def lipschitz(quick, twin):
  worst1, worst2, count, bad = 0.0, 0.0, 0, False
  root = (lambda m: m) if twin else math.sqrt
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
      mid = jnp.linalg.norm(x, axis=1) / root(m) * norm_pq(dw, 1)
      right = jnp.linalg.norm(x, axis=1) * norm_pq(dw, 2)
      # F(w) − F(w') cancels for tiny displacements: allow its rounding, a few eps·(|F(w)| + |F(w')|)
      slack = 8 * jnp.finfo(x.dtype).eps * (jnp.abs(f0) + jnp.abs(f1) + mid)
      worst1 = max(worst1, float(jnp.max(lhs / mid)))
      worst2 = max(worst2, float(jnp.max(mid / right)))
      bad = bad or bool(jnp.any(lhs > mid + slack)) or bool(jnp.any(mid > right * (1 + 1e-12)))
      count += 1
  search = _search_lipschitz(root)
  return Outcome(
    {
      "instances": count,
      "max LHS/middle": worst1,
      "max middle/right": worst2,
      "search: max LHS/middle": search["worst ratio"],
    },
    not bad and search["worst ratio"] <= 1 + 1e-9,
    search=search,
    note="Tight: every unit moved along x on its active side. Compared up to the rounding of "
    "F(w) − F(w'), 8·eps·(|F(w)| + |F(w')| + middle). The search runs over m ∈ [1, 4096], "
    "d ∈ [1, 20], the displacement's scale and its mix of random and along-x directions, "
    "with |c_i| = 1.",
  )


def _search_lipschitz(root):
  from ntk_lab.atlas._search import worst_case

  def ratio(m, d, scale, along):
    rng = np.random.default_rng(m * 31 + d)
    x = rng.normal(size=d)
    w = rng.normal(size=(m, d))
    c = np.where(rng.uniform(size=m) < 0.5, -1.0, 1.0)
    push = np.sign(w @ x)[:, None] * x[None] / np.linalg.norm(x)
    dw = scale * (along * push + (1 - along) * rng.normal(size=(m, d)))
    f0 = c @ np.maximum(w @ x, 0) / math.sqrt(m)
    f1 = c @ np.maximum((w + dw) @ x, 0) / math.sqrt(m)
    mid = np.linalg.norm(x) / root(m) * np.sum(np.linalg.norm(dw, axis=1))
    slack = 8 * np.finfo(float).eps * (abs(f0) + abs(f1) + mid)
    return (abs(f1 - f0) - slack) / mid if mid > 0 else -np.inf

  return worst_case(
    ratio,
    {"m": (1, 4096, "int"), "d": (1, 20, "int"), "scale": (1e-6, 1e3, "log"), "along": (0.0, 1.0, "lin")},
    n_random=200,
  )


@claim(
  "C3.2",
  "shallow ReLU net, symmetric initialisation",
  "For σ = ReLU and (w(0), c) drawn from a symmetric "
  "Xavier initialisation (c_i = ±1): with probability one, |F(x;w,c)| ≤ ‖x‖ ‖w − w(0)‖_{2,2} for all x and w",
  twin="the paired reading with the right side halved",
)
def symmetric_init(quick, twin):
  half = 0.5 if twin else 1.0
  worst_plain, worst_sym, ce = 0.0, 0.0, None
  at_init, worst_lip = 0.0, 0.0
  for m in (2, 64, 2048):
    key = jax.random.PRNGKey(m)
    x = jax.random.normal(key, (5, 3))
    w0 = jax.random.normal(jax.random.fold_in(key, 1), (m, 3))
    c = jnp.where(jax.random.bernoulli(jax.random.fold_in(key, 2), 0.5, (m,)), 1.0, -1.0)
    # reading 1: w_i(0) ~ N(0, σ²I) and c_i Rademacher, independent. At w = w(0) the right side is 0
    lhs = float(jnp.max(jnp.abs(F(x, w0, c))))
    if lhs > 0 and ce is None:
      ce = (
        f"reading 'independent Gaussian w_i(0), Rademacher c_i': m = {m}, w = w(0) (so ‖w − w(0)‖ = 0): "
        f"|F(x; w(0), c)| = {lhs:.3f} > 0 = right side"
      )
    worst_plain = max(worst_plain, lhs)
    for scale in (1e-3, 1.0, 1e3):  # the corrected statement, for the independent initialisation
      w = w0 + scale * jax.random.normal(jax.random.fold_in(key, 4), w0.shape)
      rhs = half * jnp.linalg.norm(x, axis=1) * norm_pq(w - w0, 2)
      worst_lip = max(worst_lip, float(jnp.max(jnp.abs(F(x, w, c) - F(x, w0, c)) / rhs)))
    # reading 2: units in pairs (w_i, c_i), (w_i, −c_i), so F(·; w(0), c) ≡ 0
    ws = jnp.concatenate([w0[: m // 2]] * 2)
    cs = jnp.concatenate([c[: m // 2], -c[: m // 2]])
    at_init = max(at_init, float(jnp.max(jnp.abs(F(x, ws, cs)))))
    for scale in (1e-3, 1.0, 1e3):
      w = ws + scale * jax.random.normal(jax.random.fold_in(key, 3), ws.shape)
      rhs = half * jnp.linalg.norm(x, axis=1) * norm_pq(w - ws, 2)
      worst_sym = max(worst_sym, float(jnp.max(jnp.abs(F(x, w, cs)) / rhs)))
  search = _search_paired(half)
  worst_sym = max(worst_sym, search["worst ratio"])
  paired = worst_sym <= 1 + 1e-9 and at_init < 1e-12
  return Outcome(
    {
      "max |F(x; w(0), c)|, independent init": worst_plain,
      "max |F(x; w(0), c)|, paired init": at_init,
      "max |F|/(‖x‖‖w − w(0)‖), paired init (incl. search)": worst_sym,
      "max |F(w) − F(w(0))|/(‖x‖‖w − w(0)‖), independent init": worst_lip,
    },
    worst_plain == 0 and paired,
    ce,
    "for any initialisation: |F(x;w,c) − F(x;w(0),c)| ≤ ‖x‖ ‖w − w(0)‖_{2,2} (the Lipschitz bound, C3.1)",
    worst_lip <= 1 + 1e-9,
    reading="a symmetric initialisation in the usual sense: m even, units in pairs with w_{i+m/2}(0) = "
    "w_i(0) and c_{i+m/2} = −c_i, so that F(·; w(0), c) ≡ 0",
    reading_holds=paired,
    search=search,
    note="'Symmetric Xavier initialisation' has two readings: independent w_i(0) ~ N(0, σ²I) and "
    "Rademacher c_i (c symmetric in law), under which the claim fails at w = w(0); or the paired "
    "(antisymmetric) initialisation, under which it holds. Displacements of scale 1e-3 … 1e3; the "
    "search runs over m ∈ [2, 4096] (even), d ∈ [1, 20] and the displacement (scale, mix of a "
    "common and a per-unit direction). ntk_lab.MLP(readout_init='symmetric') builds the same "
    "pairing for any readout law.",
  )


def _search_paired(half):
  from ntk_lab.atlas._search import worst_case

  def ratio(m, d, scale, common):
    m = 2 * max(m // 2, 1)
    rng = np.random.default_rng(m * 17 + d)
    x = rng.normal(size=d)
    w0 = rng.normal(size=(m // 2, d))
    c = np.where(rng.uniform(size=m // 2) < 0.5, -1.0, 1.0)
    ws, cs = np.concatenate([w0, w0]), np.concatenate([c, -c])
    dw = scale * (
      common * np.broadcast_to(x / np.linalg.norm(x), (m, d)) * cs[:, None]
      + (1 - common) * rng.normal(size=(m, d))
    )
    val = abs(cs @ np.maximum((ws + dw) @ x, 0)) / math.sqrt(m)
    rhs = half * np.linalg.norm(x) * np.sqrt(np.sum(dw**2))
    return val / rhs if rhs > 0 else -np.inf

  return worst_case(
    ratio,
    {"m": (2, 4096, "int"), "d": (1, 20, "int"), "scale": (1e-6, 1e3, "log"), "common": (0.0, 1.0, "lin")},
    n_random=150,
  )


@claim(
  "C3.3",
  "infinite-width ReLU net",
  "For a transport map v: R^d → R^d with α = E_{w~N(0,I)}‖v(w)‖² < ∞, "
  "the infinitely wide net f*(x) = E_w[v(w)ᵀx 1{wᵀx ≥ 0}] satisfies |f*(x)| ≤ α‖x‖ for all x",
  twin="the corrected bound halved: |f*(x)| ≤ √(α/2)‖x‖/2",
)
def infinite_net(quick, twin):
  worst_printed, worst_corr, ce = 0.0, 0.0, None
  half = 0.5 if twin else 1.0
  d = 4
  x = jnp.array([1.0, -2.0, 0.5, 3.0])
  xn = float(jnp.linalg.norm(x))
  for eps in (1e-3, 0.1, 0.4, 1.0, 10.0):
    # v(w) = ε x/‖x‖ (constant): f*(x) = ε‖x‖ P(wᵀx ≥ 0) = ε‖x‖/2 exactly, α = ε²
    fstar, alpha = eps * xn / 2, eps**2
    ratio = fstar / (alpha * xn)
    if ratio > 1 and ce is None:
      ce = (
        f"v(w) ≡ ε x/‖x‖ with ε = {eps:g}: f*(x) = ε‖x‖/2 = {fstar:.4g} > α‖x‖ = ε²‖x‖ = {alpha * xn:.4g}; "
        "|f*| ≤ α‖x‖ fails whenever ε < 1/2 (α is a squared norm, f* is linear in v)"
      )
    worst_printed = max(worst_printed, ratio)
    worst_corr = max(worst_corr, fstar / (half * math.sqrt(alpha / 2) * xn))
  # a non-constant map, v(w) = A w (Monte Carlo with its standard error)
  draws = 200_000 if quick else 2_000_000
  for scale in (0.01, 1.0, 100.0):
    A = scale * jax.random.normal(jax.random.PRNGKey(int(scale * 100)), (d, d))
    w = jax.random.normal(jax.random.PRNGKey(7), (draws, d))
    vals = (w @ A.T @ x) * (w @ x >= 0)
    fstar, se = float(jnp.mean(vals)), float(jnp.std(vals) / math.sqrt(draws))
    alpha = float(jnp.sum(A**2))  # E‖Aw‖² = ‖A‖_F²
    worst_corr = max(worst_corr, (abs(fstar) - 4 * se) / (half * math.sqrt(alpha / 2) * xn))
  return Outcome(
    {"max |f*|/(α‖x‖)": worst_printed, "max |f*|/(√(α/2)‖x‖)": worst_corr},
    worst_printed <= 1,
    ce,
    "|f*(x)| ≤ √(α/2) ‖x‖ ≤ √α ‖x‖ (Cauchy–Schwarz: E[‖v‖ 1{wᵀx ≥ 0}] ≤ √α √P(wᵀx ≥ 0)); √α is the RKHS norm",
    worst_corr <= 1 + 1e-9,
    note="The counterexample family v ≡ εx/‖x‖ is exact (no sampling) and reaches the edge ε → 0, "
    "where the ratio |f*|/(α‖x‖) = 1/(2ε) is unbounded. The corrected bound is attained by the "
    "constant map (ratio 1); for v(w) = Aw it is checked by Monte Carlo, 4 standard errors in "
    "its favour.",
  )


def _logcosh(z):
  return z + jax.nn.softplus(-2 * z) - math.log(2.0)  # σ' = tanh: L = 1, β = 1


def _tails(quick, part, twin=False):
  """Tail checks of the finite-width kernel K^(m) around K: erf (closed-form K) at unit scale,
  σ' = tanh at weight scale 30 (σ'(wᵀx) ≈ ±1: the summands nearly two-valued, Hoeffding's worst case
  for off-diagonal entries) and softplus at weight scale 300 (σ' = sigmoid ≈ 0 or 1, so σ'² is
  nearly two-valued: the worst case for a diagonal entry, and for the Gram matrix at n = 1)."""
  from ntk_lab import concentration as C

  draws = 1000 if quick else 6000
  rows = []
  # the twins: (a) the exponent of the corrected bound doubled; (b) the corrected bound's constant 2 halved
  k = 2.0 if twin and part == "a" else 1.0
  two = 1.0 if twin and part == "b" else 2.0
  cases = [
    ("erf", "erf", 2 / math.sqrt(math.pi), 1.0, False, 3 if part == "a" else 5),
    ("logcosh, s = 30", _logcosh, 1.0, 30.0, True, 3 if part == "a" else 5),
    ("softplus, s = 300", jax.nn.softplus, 1.0, 300.0, True, 3 if part == "a" else 1),
  ]
  if part == "b":
    cases.append(("erf", "erf", 2 / math.sqrt(math.pi), 1.0, False, 1))
  for name, act, L, s, mc, npts in cases:
    x = sphere(jax.random.PRNGKey(3), npts, 3)
    if mc:  # K by Monte Carlo: E[tanh(a) tanh(b)] has no closed form (error ~2e-3·|xᵀx'|)
      w = s * jax.random.normal(jax.random.PRNGKey(9), (200_000, 3))
      phi = jax.vmap(jax.grad(act))((x @ w.T).ravel()).reshape(npts, -1)
      kernel = (x @ x.T) * (phi @ phi.T) / w.shape[0]
    else:
      kernel = None
    n = x.shape[0]
    for m in (1, 4, 64) if quick else (1, 2, 4, 16, 64, 256):
      dev = C.deviations(act, x, m, jax.random.PRNGKey(m), draws=draws, first_layer_std=s, kernel=kernel)
      if part == "a":
        for i, j in ((0, 1), (0, 2), (1, 1)):
          c = abs(float(x[i] @ x[j]))
          bound = np.exp(-k * C.TAUS**2 / 2)
          p = C.tail_check(dev["entries"][:, i, j], c * L**2 / math.sqrt(m), bound)
          q = C.tail_check(dev["entries"][:, i, j], c * L**2 / math.sqrt(m), 2 * bound)
          rows.append((name, m, (i, j), c, p, q))
      else:
        for norm in ("op", "fro"):
          bound = n**2 * np.exp(-k * C.TAUS**2 / 2)
          p = C.tail_check(dev[norm], n * L**2 / math.sqrt(m), bound)
          q = C.tail_check(dev[norm], n * L**2 / math.sqrt(m), two * bound)
          rows.append((name, m, norm, n, p, q))
  return rows, draws


def _power(draws):
  """The smallest excess of a tail probability near 1 over the bound that the test flags."""
  from scipy import stats

  from ntk_lab import concentration as C

  return float(1 - stats.beta.ppf(0.05 / len(C.TAUS), draws, 1))


@claim(
  "C3.4",
  "finite-width NTK, entrywise tail (Du et al. 2019)",
  "For a β-smooth σ with |σ'| ≤ L, w_1 … w_m "
  "~ N(0, σ_w²I) independent, K(x,x') = E_w[xᵀx' σ'(wᵀx)σ'(wᵀx')] and K^(m)(x,x') = (1/m) Σ_k xᵀx' "
  "σ'(w_kᵀx)σ'(w_kᵀx'): P(|K(x,x') − K^(m)(x,x')| > t) ≤ exp(−t²m/(2|xᵀx'|²L⁴)) for every t > 0",
  twin="the corrected bound with the exponent doubled: 2 exp(−t²m/(|xᵀx'|²L⁴))",
)
def kernel_tail(quick, twin):
  rows, draws = _tails(quick, "a", twin)
  bad = [r for r in rows if r[4][2] > 0]
  ce = None
  if bad:
    name, m, pair, c, p, _ = max(bad, key=lambda r: r[4][2])
    tau = p[3]
    ce = (
      f"σ = {name}, m = {m}, pair {pair} (|xᵀx'| = {c:.3f}), t = {tau:.2f}·|xᵀx'|L²/√m: empirical "
      f"P = {np.interp(tau, _taus(), p[0]):.3f} (Clopper–Pearson lower limit above the bound by {p[2]:.3f}) vs "
      f"bound {math.exp(-(tau**2) / 2):.3f}, over {draws} draws"
    )
  worst_p = max(r[4][1] for r in rows)
  worst_q = max(r[5][1] for r in rows)
  return Outcome(
    {
      "cases": len(rows),
      "draws each": draws,
      "max_t P̂/bound (printed)": worst_p,
      "max_t P̂/(2·bound)": worst_q,
    },
    not bad,
    ce,
    "P(|K − K^(m)| > t) ≤ 2 exp(−t²m/(2|xᵀx'|²L⁴)) (Hoeffding, two-sided: summands in [−|xᵀx'|L², |xᵀx'|L²])",
    all(r[5][2] <= 0 for r in rows),
    power=f"a tail probability above the bound by more than {_power(draws):.1e} (near P = 1) to "
    f"about 0.05 (mid-range) is flagged, {draws} draws per case",
    note="Violation = the Clopper–Pearson lower limit (Bonferroni over 100 t values) above the bound. "
    "Edges: m = 1, weight scales up to 300 (derivatives nearly two-valued: tanh ≈ ±1, sigmoid "
    "≈ 0 or 1). For erf at unit scale the printed bound holds with room.",
  )


def _taus():
  from ntk_lab import concentration as C

  return C.TAUS


@claim(
  "C3.5",
  "finite-width NTK, Gram-matrix tail (Du et al. 2019)",
  "For n inputs with ‖x_i‖ ≤ 1, H and "
  "H^(m) the n × n Gram matrices of K and K^(m) (as in C3.4): P(‖H − H^(m)‖_{2,2} > t) ≤ n² "
  "exp(−t²m/(2n²L⁴)) for every t > 0",
  twin="the corrected bound with its constant 2 halved: n² exp(−t²m/(2n²L⁴))",
)
def gram_tail(quick, twin):
  rows, draws = _tails(quick, "b", twin)
  worst = max(r[4][1] for r in rows)
  bad = [r for r in rows if r[4][2] > 0]
  ce = None
  if bad:
    name, m, norm, n, p, _ = max(bad, key=lambda r: r[4][2])
    tau = p[3]
    ce = (
      f"σ = {name}, n = {n}, m = {m}, t = {tau:.2f}·nL²/√m ({norm} norm): empirical P = "
      f"{np.interp(tau, _taus(), p[0]):.3f} (Clopper–Pearson lower limit above the bound by {p[2]:.3f}) vs "
      f"bound n² exp(−τ²/2) = {n**2 * math.exp(-(tau**2) / 2):.3f}, over {draws} draws. At n = 1 the "
      "union bound has no slack: it is the entrywise bound of C3.4 without its factor 2, and at m = 1 "
      "with σ'² nearly two-valued the deviation is about L²/2 with probability ≈ 1"
    )
  corr = all(r[5][2] <= 0 for r in rows)
  return Outcome(
    {
      "cases": len(rows),
      "draws each": draws,
      "max_t P̂/bound (spectral and Frobenius)": worst,
      "max_t P̂/(2·bound)": max(r[5][1] for r in rows),
      "n values": "1, 5",
    },
    not bad,
    ce,
    "P(‖H − H^(m)‖_{2,2} > t) ≤ 2n² exp(−t²m/(2n²L⁴)) (the union bound over the n² entries at t/n, "
    "each with the two-sided Hoeffding bound of C3.4)",
    corr,
    power=f"a tail probability above the bound by more than {_power(draws):.1e} (near P = 1) to "
    f"about 0.05 (mid-range) is flagged, {draws} draws per case",
    note="Checked for the spectral and the (stronger) Frobenius norm, n = 1 and n = 5, m from 1. For "
    "n ≥ 2 the n² union bound is loose (the empirical tail stays far below it); the edge n = 1 "
    "is where it fails.",
  )


@claim(
  "C3.6",
  "linearisation, smooth activation (Lee et al. 2019)",
  "For a β-smooth σ, F_0(x; w') = F(x;w,c) + "
  "∇_wF(x;w,c)·(w' − w) the linearisation in w around w: |F(x;w',c) − F_0(x;w')| ≤ β‖c‖_∞‖x‖/(2√m) · "
  "‖w' − w‖_{1,2} for all x, w, w'",
  twin="the corrected bound halved",
)
def smooth_linearisation(quick, twin):
  worst_p, worst_c, ce = 0.0, 0.0, None
  half = 0.5 if twin else 1.0
  acts = (
    ("z²/2", lambda z: z**2 / 2, 1.0),
    ("sin", jnp.sin, 1.0),
    ("softplus", jax.nn.softplus, 0.25),
    ("logcosh", _logcosh, 1.0),
  )
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
      corrected = half * beta * jnp.max(jnp.abs(c)) * xn**2 / (2 * math.sqrt(m)) * norm_pq(dw, 2) ** 2
      # the difference cancels in float64 below ~1e-16·|F|: compare up to that rounding
      slack = 1e-13 * (jnp.abs(F(x, w + dw, c, sigma)) + jnp.abs(lin))
      r = float(jnp.max((lhs - slack) / printed))
      if r > 1 and (ce is None or r > ce[0]):
        i = int(jnp.argmax(lhs / printed))
        ce = (
          r,
          f"σ = {name} (β = {beta:g}), m = {m}, d = {d}, ‖w' − w‖ scale {scale:g}: |F − F_0| = "
          f"{float(lhs[i]):.4g} > {float(printed[i]):.4g}",
        )
      worst_p = max(worst_p, r)
      worst_c = max(worst_c, float(jnp.max((lhs - slack) / corrected)))
  return Outcome(
    {"max LHS/RHS (printed)": worst_p, "max LHS/RHS (corrected)": worst_c},
    worst_p <= 1,
    ce[1] if ce else None,
    "|F(x;w',c) − F_0(x;w')| ≤ β‖c‖_∞‖x‖²/(2√m) · ‖w' − w‖²_{2,2}: the Taylor remainder is quadratic "
    "in the displacement (and in x); the printed right side is linear in both",
    worst_c <= 1 + 1e-9,
    note="Equality in the corrected bound for σ = z²/2 with every w_i' − w_i parallel to x. σ ∈ {z²/2, "
    "sin, softplus, log cosh} with their tightest β; m from 1, displacements of scale 1e-6 … 1e3 "
    "(the printed bound fails for large displacements, where the quadratic remainder outgrows it).",
  )


@claim(
  "C3.7",
  "all-weights ReLU NTK, strong law",
  "For the shallow ReLU net with both layers trained (w_k ~ "
  "N(0, s²I), c_k = ±1), the empirical NTK K^(m)(x,x') → K(x,x') almost surely as m → ∞",
  twin="the same with the limit 1.05·K",
)
def all_weights_limit(quick, twin):
  import ntk_lab as nl

  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  s = 1.3
  K = np.asarray(nl.two_layer.relu_ntk_all_weights(x, first_layer_std=s)) * (1.05 if twin else 1.0)
  m_max = 2**16 if quick else 2**20
  paths = []
  for path in range(4):  # one nested sequence w_1, w_2, … per path: running means
    w = s * jax.random.normal(jax.random.PRNGKey(100 + path), (m_max, 3))
    z = x @ w.T
    act = (z >= 0).astype(x.dtype)
    terms = (x @ x.T)[None] * (act.T[:, :, None] * act.T[:, None, :]) + relu(z).T[:, :, None] * relu(z).T[
      :, None, :
    ]
    running = np.cumsum(np.asarray(terms), axis=0) / np.arange(1, m_max + 1)[:, None, None]
    ms = 2 ** np.arange(4, int(math.log2(m_max)) + 1)
    paths.append([float(np.max(np.abs(running[m - 1] - K)) / np.max(np.abs(K))) for m in ms])
  ms_all = np.tile(ms, len(paths))
  fit = loglog_fit(ms_all, np.concatenate(paths))
  final = max(p[-1] for p in paths)
  return Outcome(
    {
      "max |K^(m) − K|/max|K| slope along paths": slope_text(fit),
      f"max relative error at m = {m_max:,}": final,
    },
    vanishes(fit) and final < 0.02,
    note="K in closed form (ntk_lab.relu_ntk_all_weights, w ~ N(0, 1.3² I)); 4 sample paths of nested "
    "running means (the a.s. statement is about one sequence per draw).",
  )


@claim(
  "C3.8",
  "linearisation, ReLU, both layers (Chizat et al. 2019)",
  "For σ = ReLU and F_0(x; w', c') the "
  "linearisation of F in (w, c) around (w, c): |F(x;w',c') − F_0(x;w',c')| ≤ (2‖c‖₂ + ‖c − c'‖₂)‖w' − "
  "w‖_{2,2}‖x‖/√m for all x, w, w', c, c'",
  twin="the same with the term ‖c − c'‖₂ dropped",
)
def relu_linearisation(quick, twin):
  worst = 0.0
  keep = 0.0 if twin else 1.0
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
      rhs = (
        (2 * jnp.linalg.norm(c) + keep * jnp.linalg.norm(dc))
        * norm_pq(dw, 2)
        * jnp.linalg.norm(x, axis=1)
        / math.sqrt(m)
      )
      slack = 1e-13 * (jnp.abs(F(x, w + dw, c + dc)) + jnp.abs(f0))
      worst = max(worst, float(jnp.max((lhs - slack) / rhs)))
      count += 1
  search = _search_relu_lin(keep)
  worst = max(worst, search["worst ratio"])
  return Outcome(
    {"instances": count, "max LHS/RHS (incl. search)": worst},
    worst <= 1,
    search=search,
    note="The proof gives (‖c‖₂ + ‖c − c'‖₂)·…: the printed bound is loose by up to 2× when ‖c − c'‖ ≪ "
    "‖c‖, and nearly tight when ‖c − c'‖ ≫ ‖c‖. The search runs over m ∈ [1, 4096], d ∈ [1, 20], "
    "the scales of w' − w and c' − c, and a mix of random and sign-flipping displacements "
    "(every unit pushed across its kink along x, the case where the ReLU remainder is largest).",
  )


def _search_relu_lin(keep):
  from ntk_lab.atlas._search import worst_case

  def ratio(m, d, scale, cscale, flip):
    rng = np.random.default_rng(m * 13 + d)
    x = rng.normal(size=d)
    w, c = rng.normal(size=(m, d)), rng.normal(size=m)
    z = w @ x
    across = -(1 + flip) * (z / (x @ x))[:, None] * x[None]  # moves w_iᵀx to −flip·w_iᵀx
    dw = scale * rng.normal(size=(m, d)) + across
    dc = cscale * rng.normal(size=m)
    f = (c + dc) @ np.maximum((w + dw) @ x, 0) / math.sqrt(m)
    f0 = (c @ np.maximum(z, 0) + (c * (z >= 0)) @ (dw @ x) + dc @ np.maximum(z, 0)) / math.sqrt(m)
    rhs = (
      (2 * np.linalg.norm(c) + keep * np.linalg.norm(dc))
      * np.sqrt(np.sum(dw**2))
      * np.linalg.norm(x)
      / math.sqrt(m)
    )
    slack = 1e-13 * (abs(f) + abs(f0))
    return (abs(f - f0) - slack) / rhs if rhs > 0 else -np.inf

  return worst_case(
    ratio,
    {
      "m": (1, 4096, "int"),
      "d": (1, 20, "int"),
      "scale": (1e-6, 1e3, "log"),
      "cscale": (1e-6, 1e6, "log"),
      "flip": (0.0, 3.0, "lin"),
    },
    n_random=200,
  )


@claim(
  "C3.9",
  "projected SGD",
  "Projected SGD on a linear least-squares loss L(θ) = (1/2n)Σ_i(θᵀΦ_i − y_i)² over "
  "the ball B(0, R), from θ_0 = 0, with step η = 1/(L√T) (L a bound on the sample-gradient norms over the "
  "ball) and the average θ̄_T of the first T iterates: E L(θ̄_T) − min_{B(0,R)} L ≤ 2RL/√T",
  twin="the corrected statement with √T replaced by T",
)
def projected_sgd(quick, twin):
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
      ratio = float(np.mean(gaps)) / (2 * R * L / (T if twin and tag == "corrected" else math.sqrt(T)))
      if tag == "printed":
        if ratio > max(worst_p, 1):
          ce = (
            f"{kind} problem, R = {R:g}, T = {T}, L = {L:.4g}: L(θ̄_T) − min = {np.mean(gaps):.4g} > 2RL/√T = "
            f"{2 * R * L / math.sqrt(T):.4g}; with η = 1/(L√T) the iterates travel at most ηLT = √T, "
            f"too little when R ≫ √T"
          )
        worst_p = max(worst_p, ratio)
      else:
        worst_c = max(worst_c, ratio)
  return Outcome(
    {"cases": len(cases), "max gap/(2RL/√T), η = 1/(L√T)": worst_p, "same, η = 2R/(L√T)": worst_c},
    worst_p <= 1,
    ce,
    "with η = 2R/(L√T) (the step scaled by the diameter of B(0, R)), E L(θ̄_T) − min ≤ 2RL/√T; with the "
    "printed η = 1/(L√T) the standard analysis gives (‖θ_0 − θ*‖² + 1) L/(2√T) ≤ (4R² + 1)L/(2√T)",
    worst_c <= 1,
    note="θ_0 = 0; L the sup of the sample-gradient norms over B(0, R); the random problems average 5 "
    "(quick) or 40 SGD runs.",
  )


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


@claim(
  "C3.10",
  "sum of kernels",
  "For Mercer kernels K₁, K₂: K = K₁ + K₂ is a Mercer kernel and its RKHS norm is "
  "‖f‖²_K = inf{‖g‖²_{K₁} + ‖h‖²_{K₂} : g + h = f}",
  twin="the same with the infimum replaced by the even split g = h = f/2",
)
def sum_of_kernels(quick, twin):
  import ntk_lab as nl

  worst_psd, worst_norm = np.inf, 0.0
  for n in (3, 8, 20):
    x = sphere(jax.random.PRNGKey(n), n, 4)
    k1 = np.asarray(nl.two_layer.relu_h_infinity(x))  # train w (the two parts of the all-weights NTK)
    k2 = np.asarray(nl.two_layer.g_infinity(x, activation="relu"))  # train c
    k = k1 + k2
    lam = np.linalg.eigvalsh(k)
    worst_psd = min(worst_psd, float(lam[0] / lam[-1]))
    fvals = np.asarray(jax.random.normal(jax.random.PRNGKey(n + 1), (n,)))
    direct = fvals @ np.linalg.solve(k, fvals)
    # inf over g = K₁a (h = f − g, ‖h‖²_{K₂} = hᵀK₂⁻¹h): a quadratic in a, solved exactly
    k2inv = np.linalg.inv(k2)
    a = np.linalg.solve(k1 + k1 @ k2inv @ k1, k1 @ k2inv @ fvals)
    if twin:
      a = np.linalg.solve(k1, fvals / 2)
    g = k1 @ a
    inf = a @ k1 @ a + (fvals - g) @ k2inv @ (fvals - g)
    worst_norm = max(worst_norm, float(abs(inf - direct) / direct))
  return Outcome(
    {"min λ(K₁ + K₂)/λ_max": worst_psd, "max |inf − ‖f‖²_K|/‖f‖²_K": worst_norm},
    worst_psd >= -1e-12 and worst_norm < 1e-8,
    note="On n points, K₁ = H^∞ (train w) and K₂ = G^∞ (train c) of a two-layer ReLU net; f given by its "
    "values. The tolerance allows for the conditioning of K₂ (up to 1e8 at n = 20).",
  )


@claim(
  "C3.11",
  "random-feature kernels (Arora et al. 2019, exact computation)",
  "A random-feature kernel "
  "K(x,x') = E_θ[φ(x;θ)ᵀφ(x';θ)] is PSD with ‖f‖_K = inf{‖u‖_{L²(μ)} : f = E[uᵀφ]}; the NTK is one, "
  "φ = xσ'(wᵀx) (train w) or (x c σ'(wᵀx), σ(wᵀx)) (train both), ReLU, w ~ N(0, I), c = ±1",
  twin="the same with the closed-form NTKs multiplied by 1.05",
)
def random_features(quick, twin):
  import ntk_lab as nl

  x = sphere(jax.random.PRNGKey(0), 6, 3)
  draws = 400_000 if quick else 4_000_000
  w = jax.random.normal(jax.random.PRNGKey(1), (draws, 3))
  c = jnp.where(jax.random.bernoulli(jax.random.PRNGKey(2), 0.5, (draws,)), 1.0, -1.0)
  act = (x @ w.T >= 0).astype(x.dtype)  # (n, draws)
  feats_w = (x @ x.T)[:, :, None] * (act[:, None, :] * act[None, :, :])  # xᵀx' σ'σ'
  both = feats_w * (c**2)[None, None] + relu(x @ w.T)[:, None, :] * relu(x @ w.T)[None, :, :]
  z = 0.0
  scale = 1.05 if twin else 1.0
  for feats, exact in (
    (feats_w, scale * nl.two_layer.relu_h_infinity(x)),
    (both, scale * nl.two_layer.relu_ntk_all_weights(x)),
  ):
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
  return Outcome(
    {
      "max |MC − closed form|/s.e.": z,
      "min λ(K_μM)/λ_max": min_eig,
      "max |min ‖u‖² − fᵀK⁻¹f| (rel)": worst_norm,
    },
    ok,
    note="NTK features by Monte Carlo against the closed forms (ntk_lab.relu_h_infinity, "
    "relu_ntk_all_weights); the norm identity on empirical measures μ_M (M features).",
  )
