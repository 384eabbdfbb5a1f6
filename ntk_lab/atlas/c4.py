"""Seed 004 (Foundations of Deep Learning, Ex 3): deep linear networks (trajectory approach) and
ultra-wide networks. The deep-linear pieces are `ntk_lab.deep_linear`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import deep_linear as dl
from ntk_lab.atlas import Outcome, claim
from ntk_lab.atlas._util import loglog_fit, rel, slope_text, vanishes


@claim("C4.1", "004 LNN Ex1", "balanced W_j = V_{j+1}D_jΣV_jᵀ: W_{1:j}ᵀW_{1:j} = [W_{1:N}ᵀW_{1:N}]^{j/N}")
def balanced_powers(quick):
  worst, count = 0.0, 0
  for depth in (1, 2, 3, 6):
    for d in (1, 3, 8):
      for scale in (1e-2, 1.0, 10.0):
        key = jax.random.PRNGKey(depth * 100 + d)
        # the seed's construction: V_j orthogonal, D_j random signs, one Σ for every factor
        vs = [jnp.linalg.qr(jax.random.normal(k, (d, d)))[0] for k in jax.random.split(key, depth + 1)]
        signs = [jnp.where(jax.random.bernoulli(k, 0.5, (d,)), 1.0, -1.0)
                 for k in jax.random.split(jax.random.fold_in(key, 1), depth)]
        sigma = scale * jnp.sort(jax.random.uniform(jax.random.fold_in(key, 2), (d,)))[::-1]
        fs = [vs[j + 1] @ jnp.diag(signs[j] * sigma) @ vs[j].T for j in range(depth)]
        w = dl.end_to_end(fs)
        for j in range(1, depth + 1):
          wj = dl.end_to_end(fs[:j])
          worst = max(worst, rel(wj.T @ wj, dl.psd_power(w.T @ w, j / depth)))
        count += 1
  return Outcome({"instances": count, "max relative error": worst}, worst < 1e-10,
                 note="Σ spans 1e-2…10 (so Σ^{2N} spans 1e-24…1e12); fractional powers by eigendecomposition.")


@claim("C4.2", "004 LNN Ex2", "φ(U) = ℓ(UUᵀ): U̇ = −2∇ℓ(UUᵀ)ᵀU, and W = UUᵀ follows Ẇ = −2(X + Xᵀ), X = ∇ℓ(W)ᵀW")
def factorization(quick):
  worst_p, worst_c, worst_sym, ce = 0.0, 0.0, 0.0, None
  for d in (2, 5):
    for r in (1, d):
      key = jax.random.PRNGKey(d * 10 + r)
      m_asym = jax.random.normal(key, (d, d))
      for name, sym, loss in (
          ("½‖W − M‖², M not symmetric", False, lambda w: 0.5 * jnp.sum((w - m_asym) ** 2)),
          ("Σ_ij M_ij W_ij³", False, lambda w: jnp.sum(m_asym * w**3)),
          ("½‖W − S‖², S symmetric", True, lambda w: 0.5 * jnp.sum((w - (m_asym + m_asym.T)) ** 2))):
        u = jax.random.normal(jax.random.fold_in(key, 1), (d, r))
        g = jax.grad(loss)(u @ u.T)
        auto = -jax.grad(lambda v: loss(v @ v.T))(u)
        printed_u = -2 * g.T @ u
        _, wdot = jax.jvp(lambda v: v @ v.T, (u,), (auto,))
        x = g.T @ (u @ u.T)
        printed_w = -2 * (x + x.T)
        err_p = max(rel(printed_u, auto), rel(printed_w, wdot))
        err_c = max(rel(dl.factorization_velocity(loss, u), auto), rel(dl.gram_velocity(loss, u @ u.T), wdot))
        if sym:
          worst_sym = max(worst_sym, err_p)
        else:
          if err_p > 1e-10 and ce is None:
            ce = (f"ℓ(W) = {name}, d = {d}, U of rank {r}: the printed U̇ = −2∇ℓᵀU differs from −∇φ(U) (autodiff) by "
                  f"{rel(printed_u, auto):.2f} (relative), the printed Ẇ from d/dt(UUᵀ) by {rel(printed_w, wdot):.2f}; "
                  "∂(UUᵀ)_ij/∂u_st = δ_is u_jt + δ_js u_it gives ∇φ(U) = (∇ℓ + ∇ℓᵀ)U")
          worst_p = max(worst_p, err_p)
        worst_c = max(worst_c, err_c)
  return Outcome({"printed vs autodiff, asymmetric ∇ℓ (rel)": worst_p, "printed, symmetric ∇ℓ (rel)": worst_sym,
                  "corrected vs autodiff (rel)": worst_c}, worst_p < 1e-10, ce,
                 "U̇ = −(∇ℓ + ∇ℓᵀ)U and Ẇ = −(∇ℓ + ∇ℓᵀ)W − W(∇ℓ + ∇ℓᵀ); the printed forms are the special case of a "
                 "symmetric ∇ℓ(W) (e.g. ℓ a function of symmetric W through a symmetric formula)",
                 worst_c < 1e-10 and worst_sym < 1e-10)


@claim("C4.3", "004 LNN Ex3", "balanced deep linear net: Ẇ_{1:N} = −Σ_i [WWᵀ]^{(i−1)/N}∇ℓ(W)[WᵀW]^{(N−i)/N}; for a "
       "row-vector output Ẇ = −‖W‖^{2(N−1)/N}(∇ℓ + (N − 1)∇ℓ ŵᵀŵ)")
def end_to_end(quick):
  worst_traj, worst_rank1, count = 0.0, 0.0, 0
  times = jnp.linspace(0.0, 3.0, 7)
  for dims in ((5, 5, 5, 5, 1),) if quick else ((3, 3, 3), (4, 6, 6, 3), (5, 5, 5, 5, 1),
                                                            (2, 4, 4, 4, 4, 4, 2)):
    for scale in (0.1, 1.0) if not quick else (0.5,):
      key = jax.random.PRNGKey(len(dims) * 10 + dims[0])
      kx, ky, kf = jax.random.split(key, 3)
      x = jax.random.normal(kx, (dims[0], 10))
      y = jax.random.normal(ky, (dims[-1], dims[0])) @ x
      loss = lambda w: 0.5 * jnp.sum((w @ x - y) ** 2) / 10
      fs0 = dl.balanced_init(kf, dims, scale=scale)
      n = len(fs0)
      fac = dl.flow(lambda f: dl.factor_velocity(loss, f), fs0, times, rtol=1e-11, atol=1e-13)
      e2e = dl.flow(lambda w: dl.end_to_end_velocity(loss, w, n), dl.end_to_end(fs0), times, rtol=1e-11, atol=1e-13)
      w_fac = jax.vmap(dl.end_to_end)(fac)
      worst_traj = max(worst_traj, rel(w_fac, e2e))
      if dims[-1] == 1:
        for i in range(len(times)):
          worst_rank1 = max(worst_rank1, rel(dl.rank_one_velocity(loss, w_fac[i], n),
                                             dl.end_to_end_velocity(loss, w_fac[i], n)))
      count += 1
  return Outcome({"runs": count, "max_t ‖W_factors − W_e2e‖ (rel)": worst_traj,
                  "rank-one form vs the sum (rel)": worst_rank1}, worst_traj < 1e-7 and worst_rank1 < 1e-10,
                 note="Factor-level gradient flow (autodiff) and the end-to-end ODE integrated separately (Tsit5, rtol "
                      "1e-11); the gap is integration error. The rank-one form: the component of ∇ℓ along ŵ is scaled "
                      "N-fold, the rest once.")


@claim("C4.4", "004 UW Ex1", "u̇ = −H*(u − y): ‖u(t) − y‖² ≤ exp(−2λ_min(H*)t)‖u(0) − y‖²")
def linear_flow(quick):
  from scipy.linalg import expm
  worst, count, tight = 0.0, 0, 0.0
  for n in (1, 4, 30):
    for cond in (1.0, 1e3, 1e8):
      key = jax.random.PRNGKey(n)
      q = np.linalg.qr(np.asarray(jax.random.normal(key, (n, n))))[0]
      lam = np.geomspace(1.0, 1.0 / cond, n) * 2.0
      H = (q * lam) @ q.T
      y = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (n,)))
      for start in ("random", "slowest"):
        u0 = y + (q[:, -1] if start == "slowest" else np.asarray(jax.random.normal(jax.random.fold_in(key, 2), (n,))))
        for t in (1e-3, 1.0, 10.0, 1e4):
          r = expm(-H * t) @ (u0 - y)  # the exact solution u(t) − y
          lhs, rhs = r @ r, np.exp(-2 * lam.min() * t) * (u0 - y) @ (u0 - y)
          if rhs > 1e-250:
            worst = max(worst, lhs / rhs)
            if start == "slowest":
              tight = max(tight, lhs / rhs)
          count += 1
  return Outcome({"cases": count, "max LHS/RHS": float(worst), "with u(0) − y the slowest eigenvector": float(tight)},
                 worst <= 1 + 1e-9, note="Exact solution by the matrix exponential (scipy.linalg.expm); condition "
                                         "numbers 1…1e8. Equality when u(0) − y is the λ_min eigenvector.")


@claim("C4.5", "004 UW Ex3", "the gap ‖u_NN(t) − u_NTK(t)‖ first grows, then shrinks; wider networks stay closer")
def nn_vs_ntk(quick):
  import ntk_lab as nl
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
  x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
  y = jnp.sin(2 * x[:, :1]) + 0.3 * x[:, 1:2]
  times = jnp.concatenate([jnp.zeros(1), jnp.geomspace(0.05, 3000.0, 40)])  # until both fit the data
  widths = (16, 128, 1024) if quick else (16, 64, 256, 1024, 4096)
  peaks, ws, shape_ok, humps = [], [], True, 0
  for w in widths:
    for s in range(2 if quick else 3):
      net = nl.MLP((w,), activation="relu", W_std=1.0, b_std=0.1)
      p0 = net.init(jax.random.PRNGKey(s), 3)
      run = nl.gradient_flow(nl.centered(net, p0), p0, x, y, times=times, observe=["ntk_gap"])
      gap = np.asarray(run.observables["ntk_gap"])
      i = int(np.argmax(gap))
      # grows from 0, peaks inside (0, T), and has shrunk to a small fraction of its peak at the end
      shape_ok &= bool(gap[0] < 1e-6 * gap[i] and 0 < i < len(gap) - 1 and gap[-1] < 0.02 * gap[i])
      inner = gap[1:-1]
      humps = max(humps, int(np.sum((inner > gap[:-2]) & (inner > gap[2:]) & (inner > 0.2 * gap[i]))))
      peaks.append(gap[i])
      ws.append(w)
  fit = loglog_fit(ws, peaks)
  return Outcome({"every run: 0 at t = 0, peak inside, < 2 % of the peak at t = 3000": shape_ok,
                  "peak gap slope over width": slope_text(fit), "most local maxima in one run": humps},
                 shape_ok and vanishes(fit),
                 note="Training points; the centred ReLU net against the infinite-width NTK predictor from the same "
                      "u(0) (observable ntk_gap), t ∈ [0, 3000] on a log grid. The gap need not be unimodal: it can "
                      "rise a second time while the slow modes are fitted before both outputs reach y.")
