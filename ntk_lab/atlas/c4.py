"""Deep linear networks (Arora et al. 2018, the trajectory approach) and ultra-wide networks (Lee et
al. 2019: a wide net trains like its NTK linearisation). The deep-linear pieces are
`ntk_lab.deep_linear`; W_{1:j} = W_j ⋯ W_1 is the end-to-end matrix of the first j layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import deep_linear as dl
from ntk_lab.atlas import Outcome, claim
from ntk_lab.atlas._util import loglog_fit, rel, slope_text


@claim(
  "C4.1",
  "deep linear nets, balanced factors",
  "For W_j = V_{j+1}D_jΣV_jᵀ (j = 1 … N) with V_j orthogonal, "
  "D_j diagonal of signs ±1 and one non-negative diagonal Σ: W_{1:j}ᵀW_{1:j} = [W_{1:N}ᵀW_{1:N}]^{j/N} "
  "for every j",
  twin="the same with the exponent doubled, 2j/N",
)
def balanced_powers(quick, twin):
  worst, count = 0.0, 0
  for depth in (1, 2, 3, 6):
    for d in (1, 3, 8):
      for scale in (1e-2, 1.0, 10.0):
        key = jax.random.PRNGKey(depth * 100 + d)
        # the construction: V_j orthogonal, D_j random signs, one Σ for every factor
        vs = [jnp.linalg.qr(jax.random.normal(k, (d, d)))[0] for k in jax.random.split(key, depth + 1)]
        signs = [
          jnp.where(jax.random.bernoulli(k, 0.5, (d,)), 1.0, -1.0)
          for k in jax.random.split(jax.random.fold_in(key, 1), depth)
        ]
        sigma = scale * jnp.sort(jax.random.uniform(jax.random.fold_in(key, 2), (d,)))[::-1]
        fs = [vs[j + 1] @ jnp.diag(signs[j] * sigma) @ vs[j].T for j in range(depth)]
        w = dl.end_to_end(fs)
        for j in range(1, depth + 1):
          wj = dl.end_to_end(fs[:j])
          worst = max(worst, rel(wj.T @ wj, dl.psd_power(w.T @ w, (2 if twin else 1) * j / depth)))
        count += 1
  return Outcome(
    {"instances": count, "max relative error": worst},
    worst < 1e-9,  # Σ^{2N} spans 36 orders: fractional powers by eigendecomposition round to ~1e-10
    note="Σ spans 1e-2…10 (so Σ^{2N} spans 1e-24…1e12); fractional powers by eigendecomposition.",
  )


@claim(
  "C4.2",
  "symmetric factorisation",
  "For a loss ℓ on d × d matrices and φ(U) = ℓ(UUᵀ), gradient flow "
  "U̇ = −∇φ(U) reads U̇ = −2∇ℓ(UUᵀ)ᵀU, and W = UUᵀ follows Ẇ = −2(X + Xᵀ) with X = ∇ℓ(W)ᵀW",
  twin="the same with the factor 2 dropped: U̇ = −∇ℓ(UUᵀ)ᵀU, Ẇ = −(X + Xᵀ); corrected forms halved",
)
def factorization(quick, twin):
  k = 0.5 if twin else 1.0
  worst_p, worst_c, worst_sym, ce = 0.0, 0.0, 0.0, None
  for d in (2, 5):
    for r in (1, d):
      key = jax.random.PRNGKey(d * 10 + r)
      m_asym = jax.random.normal(key, (d, d))
      for name, sym, loss in (
        ("½‖W − M‖², M not symmetric", False, lambda w: 0.5 * jnp.sum((w - m_asym) ** 2)),
        ("Σ_ij M_ij W_ij³", False, lambda w: jnp.sum(m_asym * w**3)),
        ("½‖W − S‖², S symmetric", True, lambda w: 0.5 * jnp.sum((w - (m_asym + m_asym.T)) ** 2)),
      ):
        u = jax.random.normal(jax.random.fold_in(key, 1), (d, r))
        g = jax.grad(loss)(u @ u.T)
        auto = -jax.grad(lambda v: loss(v @ v.T))(u)
        printed_u = -2 * k * g.T @ u
        _, wdot = jax.jvp(lambda v: v @ v.T, (u,), (auto,))
        x = g.T @ (u @ u.T)
        printed_w = -2 * k * (x + x.T)
        err_p = max(rel(printed_u, auto), rel(printed_w, wdot))
        err_c = max(
          rel(k * dl.factorization_velocity(loss, u), auto), rel(k * dl.gram_velocity(loss, u @ u.T), wdot)
        )
        if sym:
          worst_sym = max(worst_sym, err_p)
        else:
          if err_p > 1e-10 and ce is None:
            ce = (
              f"ℓ(W) = {name}, d = {d}, U of rank {r}: the printed U̇ = −2∇ℓᵀU differs from −∇φ(U) (autodiff) by "
              f"{rel(printed_u, auto):.2f} (relative), the printed Ẇ from d/dt(UUᵀ) by {rel(printed_w, wdot):.2f}; "
              "∂(UUᵀ)_ij/∂u_st = δ_is u_jt + δ_js u_it gives ∇φ(U) = (∇ℓ + ∇ℓᵀ)U"
            )
          worst_p = max(worst_p, err_p)
        worst_c = max(worst_c, err_c)
  return Outcome(
    {
      "printed vs autodiff, asymmetric ∇ℓ (rel)": worst_p,
      "printed, symmetric ∇ℓ (rel)": worst_sym,
      "corrected vs autodiff (rel)": worst_c,
    },
    worst_p < 1e-10 and worst_sym < 1e-10,
    ce,
    "for any ℓ: U̇ = −(∇ℓ + ∇ℓᵀ)U and Ẇ = −(∇ℓ + ∇ℓᵀ)W − W(∇ℓ + ∇ℓᵀ)",
    worst_c < 1e-10,
    reading="∇ℓ is the gradient of ℓ restricted to symmetric matrices (equivalently ∇ℓ(W) is symmetric, "
    "e.g. ℓ(W) = ½‖W − S‖² with S symmetric): then ∇ℓ + ∇ℓᵀ = 2∇ℓ and the printed forms hold",
    reading_holds=worst_sym < 1e-10,
    note="∇ℓ read first as the ordinary (Euclidean) gradient on all d × d matrices, which need not be "
    "symmetric (ℓ = ½‖W − M‖² with M not symmetric, ℓ = Σ M_ij W_ij³); autodiff of φ as the "
    "reference. d ∈ {2, 5}, U of rank 1 and d.",
  )


@claim(
  "C4.3",
  "deep linear nets, end-to-end dynamics (Arora et al. 2018)",
  "Under gradient flow of a deep "
  "linear net from a balanced initialisation (W_{j+1}ᵀW_{j+1} = W_jW_jᵀ), the end-to-end matrix W = W_{1:N} "
  "follows Ẇ = −Σ_{i=1}^N [WWᵀ]^{(i−1)/N}∇ℓ(W)[WᵀW]^{(N−i)/N}; for a row-vector output (W = ‖W‖ŵ) this is "
  "Ẇ = −‖W‖^{2(N−1)/N}(∇ℓ + (N − 1)(∇ℓ ŵᵀ)ŵ)",
  twin="the same with the depth N replaced by N + 1",
)
def end_to_end(quick, twin):
  worst_traj, worst_rank1, count = 0.0, 0.0, 0
  times = jnp.linspace(0.0, 3.0, 7)
  for dims in (
    ((5, 5, 5, 5, 1),) if quick else ((3, 3, 3), (4, 6, 6, 3), (5, 5, 5, 5, 1), (2, 4, 4, 4, 4, 4, 2))
  ):
    for scale in (0.1, 1.0) if not quick else (0.5,):
      key = jax.random.PRNGKey(len(dims) * 10 + dims[0])
      kx, ky, kf = jax.random.split(key, 3)
      x = jax.random.normal(kx, (dims[0], 10))
      y = jax.random.normal(ky, (dims[-1], dims[0])) @ x
      loss = lambda w: 0.5 * jnp.sum((w @ x - y) ** 2) / 10
      fs0 = dl.balanced_init(kf, dims, scale=scale)
      n = len(fs0)
      fac = dl.flow(lambda f: dl.factor_velocity(loss, f), fs0, times, rtol=1e-11, atol=1e-13)
      ne = n + 1 if twin else n
      e2e = dl.flow(
        lambda w: dl.end_to_end_velocity(loss, w, ne), dl.end_to_end(fs0), times, rtol=1e-11, atol=1e-13
      )
      w_fac = jax.vmap(dl.end_to_end)(fac)
      worst_traj = max(worst_traj, rel(w_fac, e2e))
      if dims[-1] == 1:
        for i in range(len(times)):
          worst_rank1 = max(
            worst_rank1,
            rel(dl.rank_one_velocity(loss, w_fac[i], ne), dl.end_to_end_velocity(loss, w_fac[i], n)),
          )
      count += 1
  return Outcome(
    {
      "runs": count,
      "max_t ‖W_factors − W_e2e‖ (rel)": worst_traj,
      "rank-one form vs the sum (rel)": worst_rank1,
    },
    worst_traj < 1e-7 and worst_rank1 < 1e-10,
    note="Factor-level gradient flow (autodiff) and the end-to-end ODE integrated separately (Tsit5, rtol "
    "1e-11); the gap is integration error. The rank-one form: the component of ∇ℓ along ŵ is scaled "
    "N-fold, the rest once.",
  )


@claim(
  "C4.4",
  "linearised (kernel) dynamics",
  "For a symmetric positive semi-definite H* and u̇ = −H*(u − y): "
  "‖u(t) − y‖² ≤ exp(−2λ_min(H*)t)‖u(0) − y‖² for all t ≥ 0",
  twin="the same with the exponent doubled, exp(−4λ_min(H*)t)",
)
def linear_flow(quick, twin):
  from scipy.linalg import expm

  worst, count, tight = 0.0, 0, 0.0
  rate = 4 if twin else 2
  for n in (1, 4, 30):
    for cond in (1.0, 1e3, 1e8):
      key = jax.random.PRNGKey(n)
      q = np.linalg.qr(np.asarray(jax.random.normal(key, (n, n))))[0]
      lam = np.geomspace(1.0, 1.0 / cond, n) * 2.0
      H = (q * lam) @ q.T
      y = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (n,)))
      for start in ("random", "slowest"):
        u0 = y + (
          q[:, -1] if start == "slowest" else np.asarray(jax.random.normal(jax.random.fold_in(key, 2), (n,)))
        )
        for t in (1e-3, 1.0, 10.0, 1e4):
          r = expm(-H * t) @ (u0 - y)  # the exact solution u(t) − y
          lhs, rhs = r @ r, np.exp(-rate * lam.min() * t) * (u0 - y) @ (u0 - y)
          if rhs > 1e-250:
            worst = max(worst, lhs / rhs)
            if start == "slowest":
              tight = max(tight, lhs / rhs)
          count += 1
  search = _search_linear(rate)
  worst = max(worst, search["worst ratio"])
  return Outcome(
    {
      "cases": count,
      "max LHS/RHS (incl. search)": float(worst),
      "with u(0) − y the slowest eigenvector": float(tight),
    },
    worst <= 1 + 1e-9,
    search=search,
    note="Exact solution by the matrix exponential (scipy.linalg.expm); n = 1 … 30, condition "
    "numbers 1…1e8, t from 1e-3 to 1e4. Equality when u(0) − y is the λ_min eigenvector. The "
    "search runs over n ∈ [1, 40], λ_min ∈ [0, 1] (0: singular H*), the spread of the spectrum, "
    "t, and the weight of the slowest eigenvector in u(0) − y.",
  )


def _search_linear(rate):
  from scipy.linalg import expm

  from ntk_lab.atlas._search import worst_case

  def ratio(n, lam_min, spread, t, slow):
    rng = np.random.default_rng(n)
    q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    lam = np.sort(lam_min + spread * rng.uniform(size=n))
    lam[0] = lam_min
    H = (q * lam) @ q.T
    r0 = slow * q[:, 0] + (1 - slow) * rng.normal(size=n)
    r = expm(-H * t) @ r0
    rhs = np.exp(-rate * lam_min * t) * (r0 @ r0)
    return (r @ r) / rhs if rhs > 1e-250 else -np.inf

  return worst_case(
    ratio,
    {
      "n": (1, 40, "int"),
      "lam_min": (0.0, 1.0, "lin"),
      "spread": (1e-3, 1e3, "log"),
      "t": (1e-4, 1e2, "log"),
      "slow": (0.0, 1.0, "lin"),
    },
    n_random=150,
  )


@claim(
  "C4.5",
  "wide nets track their NTK (Lee et al. 2019)",
  "Training a finite two-layer ReLU net and its "
  "infinite-width NTK predictor from the same outputs u(0) by gradient flow, the gap ‖u_NN(t) − u_NTK(t)‖ on "
  "the training points first grows, then shrinks; wider networks have a lower peak gap (stay closer), and "
  "narrower networks close the gap faster",
  twin="the same with 'wider networks have a higher peak gap'",
)
def nn_vs_ntk(quick, twin):
  import ntk_lab as nl

  x = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
  x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
  y = jnp.sin(2 * x[:, :1]) + 0.3 * x[:, 1:2]
  times = jnp.concatenate([jnp.zeros(1), jnp.geomspace(0.05, 3000.0, 40)])  # until both fit the data
  t = np.asarray(times)
  widths = (16, 128, 1024) if quick else (16, 64, 256, 1024, 4096)
  peaks, ws, t_close, rise_fall, humps_all = [], [], [], True, []
  for w in widths:
    for s in range(2 if quick else 3):
      net = nl.MLP((w,), activation="relu", W_std=1.0, b_std=0.1)
      p0 = net.init(jax.random.PRNGKey(s), 3)
      run = nl.gradient_flow(nl.centered(net, p0), p0, x, y, times=times, observe=["ntk_gap"])
      gap = np.asarray(run.observables["ntk_gap"])
      i = int(np.argmax(gap))
      # (gap(0) = 0 by construction: both start from the same u(0)) an interior peak, and at the end a
      # small fraction of it
      rise_fall &= bool(0 < i < len(gap) - 1 and gap[-1] < 0.02 * gap[i])
      inner = gap[1:-1]
      humps_all.append(int(np.sum((inner > gap[:-2]) & (inner > gap[2:]) & (inner > 0.2 * gap[i]))))
      after = np.nonzero((np.arange(len(gap)) > i) & (gap <= 0.1 * gap[i]))[0]
      t_close.append(float(t[after[0]]) if len(after) else float("inf"))  # gap back below 10 % of its peak
      peaks.append(gap[i])
      ws.append(w)
  fit = loglog_fit(ws, peaks)
  finite = np.isfinite(t_close)
  fit_t = (
    loglog_fit(np.asarray(ws)[finite], np.asarray(t_close)[finite]) if finite.sum() > 2 else (np.nan,) * 3
  )
  wider_closer = (fit[1] > 0) if twin else bool(fit[2] < 0)  # the twin: wider nets have a higher peak
  narrower_faster = bool(np.all(finite) and fit_t[1] > 0)  # time to close grows with the width
  faster_undecided = bool(np.all(finite) and fit_t[1] <= 0 <= fit_t[2])
  unimodal = max(humps_all) <= 1
  holds = rise_fall and unimodal and wider_closer and narrower_faster
  reading_ok = rise_fall and wider_closer and narrower_faster
  ce = None
  if not unimodal:
    ce = (
      f"{sum(h > 1 for h in humps_all)} of {len(humps_all)} runs have more than one local maximum above 20 % "
      f"of the peak (up to {max(humps_all)}): the gap rises a second time while the slow modes are fitted"
    )
  return Outcome(
    {
      "every run: interior peak, < 2 % of it at t = 3000": rise_fall,
      "most local maxima (> 20 % of the peak) in one run": max(humps_all),
      "peak gap slope over width": slope_text(fit),
      "time to fall below 10 % of the peak, slope over width": slope_text(fit_t)
      if np.isfinite(fit_t[0])
      else "not reached",
    },
    holds,
    ce,
    reading=(
      "'first grows, then shrinks' read as: rises from 0 to an interior peak and falls below 2 % of "
      "it by the end, not necessarily monotonically"
    )
    if not unimodal
    else None,
    reading_holds=reading_ok if not unimodal else None,
    decided=not (rise_fall and wider_closer and faster_undecided and not twin),
    power=(
      "the 95 % interval of the closing-time slope contains 0: 'narrower networks close the gap "
      "faster' is neither confirmed nor refuted at these widths"
    )
    if faster_undecided
    else None,
    note="Training points; the centred ReLU net (one hidden layer, biases of std 0.1) against the "
    "infinite-width NTK predictor from the same u(0) (observable ntk_gap), t ∈ [0, 3000] on a log "
    "grid, 2–3 draws per width. 'Stay closer': the 95 % interval of the log-log slope of the peak "
    "gap over the width below 0. 'Close faster': the time for the gap to fall below 10 % of its "
    "peak, its log-log slope over the width above 0 (longer for wider nets). 'First grows, then "
    "shrinks' read strictly: at most one local maximum above 20 % of the peak.",
  )
