"""Deep networks in NTK parametrization (Jacot et al. 2018): backpropagation, the finite-width NTK
recursion, the Gaussian-process and NTK limits, lazy training. The model is
Φ(W; x) = W_J (1/√w_J) ρ W_{J−1} ⋯ ρ W_1 (1/√w_1) x, with w_j the input size of W_j (so Φ_j, the
layer-j pre-activation, has w_{j+1} entries): `ntk_lab.MLP` in NTK parametrization with W_std = 1
and no biases. Σ_j and Σ̇_j are the infinite-width covariances of Φ_j and of ρ'(Φ_j)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab.atlas import Outcome, claim
from ntk_lab.atlas._util import loglog_fit, rel, slope_text, vanishes

_ACTS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sin": jnp.sin}


@claim(
  "C0.1",
  "backpropagation",
  "For a network x_{j+1} = W_j ρ(x_j) (j = 1 … J) and a loss ℓ(x_{J+1}): "
  "∇_{W_j}ℓ = ∇_{x_{j+1}}ℓ ρ(x_j)ᵀ and ∇_{x_j}ℓ = ρ'(x_j) ⊙ W_jᵀ∇_{x_{j+1}}ℓ (backprop written by hand "
  "equals autodiff)",
  twin="the same with the factor ρ'(x_j) dropped: ∇_{x_j}ℓ = W_jᵀ∇_{x_{j+1}}ℓ",
)
def backprop(quick, twin):
  worst, count = 0.0, 0
  for J in (1, 4) if quick else (1, 2, 4, 7):
    for width in (3, 40) if quick else (3, 40, 300):
      for _name, rho in _ACTS.items():
        key = jax.random.PRNGKey(100 * J + width)
        dims = [5] + [width] * (J - 1) + [2]
        keys = jax.random.split(key, J + 2)
        ws = [jax.random.normal(keys[j], (dims[j + 1], dims[j])) / math.sqrt(dims[j]) for j in range(J)]
        x0, y = jax.random.normal(keys[J], (5,)), jax.random.normal(keys[J + 1], (2,))
        loss = lambda xj: 0.5 * jnp.sum((xj - y) ** 2) + jnp.log(jnp.sum(jnp.exp(xj)))

        def forward(ws, x0):
          xs = [x0]
          for w in ws:
            xs.append(w @ rho(xs[-1]))
          return xs

        xs = forward(ws, x0)
        g = jax.grad(loss)(xs[-1])
        grads_w = [None] * J
        for j in reversed(range(J)):
          grads_w[j] = jnp.outer(g, rho(xs[j]))
          g = (1.0 if twin else jax.vmap(jax.grad(rho))(xs[j])) * (ws[j].T @ g)
        auto_w, auto_x = jax.grad(lambda ws, x0: loss(forward(ws, x0)[-1]), argnums=(0, 1))(ws, x0)
        worst = max(worst, rel(g, auto_x), *(rel(a, b) for a, b in zip(grads_w, auto_w)))
        count += 1
  return Outcome(
    {"instances": count, "max relative error": worst},
    worst < 1e-12,
    note="W_j has shape n_{j+1} × n_j (the shape for which x_{j+1} = W_j ρ(x_j) typechecks); "
    "ρ ∈ {ReLU, tanh, sin}, depths 1–7, widths 3–300, a squared-error plus log-sum-exp loss.",
  )


def _phi_layers(ws, x, rho):
  """Pre-activations Φ_1, …, Φ_J of the module's model for one input x (ws[j] has shape (w_{j+2}, w_{j+1}))."""
  phis = [ws[0] @ x / math.sqrt(x.shape[0])]
  for w in ws[1:]:
    phis.append(w @ rho(phis[-1]) / math.sqrt(w.shape[1]))
  return phis


@claim(
  "C0.2",
  "finite-width NTK recursion (Jacot et al. 2018)",
  "The empirical NTK K_W(x,x') = Σ_j ∂_{W_j}Φ(x) ∂_{W_j}Φ(x')ᵀ (a w_{J+1} × w_{J+1} matrix) satisfies "
  "K_W(x,x') = (1/w_J) ρΦ_{J−1}(x) ρΦ_{J−1}(x')ᵀ + (1/w_J) W_J[ρ'(Φ_{J−1}(x))] K^{(J−1)}_W(x,x') "
  "[ρ'(Φ_{J−1}(x'))] W_Jᵀ, K^{(J−1)} the NTK of the first J − 1 layers and [ρ'] a diagonal matrix",
  twin="the same recursion with the first term halved",
)
def ntk_recursion(quick, twin):
  worst, worst_outer, count = 0.0, 0.0, 0
  half = 0.5 if twin else 1.0
  for J in (1, 3) if quick else (1, 2, 3, 5):
    for width in (3, 64) if quick else (3, 4, 64, 512):  # width 3 = n_out: a square last layer
      for n_out in (3,) if quick else (1, 3):
        for _name, rho in (("relu", jax.nn.relu), ("tanh", jnp.tanh)):
          dims = [3] + [width] * (J - 1) + [n_out]
          keys = jax.random.split(jax.random.PRNGKey(J * 1000 + width + n_out), J + 2)
          ws = [jax.random.normal(keys[j], (dims[j + 1], dims[j])) for j in range(J)]
          x, xp = jax.random.normal(keys[J], (3,)), jax.random.normal(keys[J + 1], (3,))
          jac = lambda z: jax.jacobian(lambda ws: _phi_layers(ws, z, rho)[-1])(ws)
          ja, jb = jac(x), jac(xp)
          auto = sum(a.reshape(n_out, -1) @ b.reshape(n_out, -1).T for a, b in zip(ja, jb))
          pa, pb = _phi_layers(ws, x, rho), _phi_layers(ws, xp, rho)
          k = half * x @ xp / 3 * jnp.eye(dims[1])  # K_1 = Σ_1 I
          for j in range(1, J):
            dr = jax.vmap(jax.grad(rho))
            wj = ws[j]
            rest = wj @ (dr(pa[j - 1])[:, None] * k * dr(pb[j - 1])[None, :]) @ wj.T / wj.shape[1]
            if wj.shape[0] == wj.shape[1]:  # the first term read literally, as an outer product
              outer = jnp.outer(rho(pa[j - 1]), rho(pb[j - 1])) / wj.shape[1] + rest
            k = half * rho(pa[j - 1]) @ rho(pb[j - 1]) / wj.shape[1] * jnp.eye(wj.shape[0]) + rest
            # (an all-zero reference, e.g. every ReLU unit off, would make the relative error 0/0)
            if J == j + 1 and wj.shape[0] == wj.shape[1] and float(jnp.max(jnp.abs(auto))) > 0:
              worst_outer = max(worst_outer, rel(outer, auto))
          worst = max(worst, rel(k, auto))
          count += 1
  literal = worst_outer < 1e-10
  return Outcome(
    {
      "instances": count,
      "max relative error (inner product · I)": worst,
      "max relative error (outer product, square last layer)": worst_outer,
    },
    literal and worst < 1e-10,
    reading="the first term is the inner product (1/w_J) ρΦ_{J−1}(x)ᵀρΦ_{J−1}(x') times the "
    "w_{J+1} × w_{J+1} identity",
    reading_holds=worst < 1e-10,
    note="As printed, ρΦ_{J−1}(x)ρΦ_{J−1}(x')ᵀ is an outer product of size w_J × w_J, which is not "
    "the shape of K_W (w_{J+1} × w_{J+1}); where the two sizes agree (a square last layer) it is "
    "compared too, and it is wrong. The inner product times I is the reading that typechecks and "
    "the one checked. ReLU and tanh, depths 1–5, widths 4–512, autodiff NTK as the reference.",
  )


@claim(
  "C0.3",
  "Gaussian-process limit (Jacot et al. 2018)",
  "As the hidden widths → ∞ (one after the other), "
  "the units of the layer-j pre-activation Φ_j(x) become independent centred Gaussian processes with "
  "covariance Σ_j(x, x') (the NNGP recursion)",
  twin="the same with covariance 1.1·Σ_j",
)
def gp_limit(quick, twin):
  import ntk_lab as nl

  widths = (16, 32, 64, 128) if quick else (16, 32, 64, 128, 256, 512)
  draws = 800 if quick else 4000
  x = jnp.array([[1.0, 0.5, 0.2], [0.3, 1.2, 0.7]])  # non-negative entries, as the GP-limit statement assumes
  kurt, dep, cov_err = [], [], []
  for w in widths:
    net = nl.MLP((w, w), activation="relu", W_std=1.0, b_std=None)  # its output is layer 3

    def layer3(key):
      ws = [jax.random.normal(k, s) for k, s in zip(jax.random.split(key, 3), [(w, 3), (w, w), (w, w)])]
      return jnp.stack([_phi_layers(ws, xi, jax.nn.relu)[-1] for xi in x])  # (2, w): Φ_3 units

    keys = jax.random.split(jax.random.PRNGKey(w), draws)
    phi = jax.jit(lambda k: jax.lax.map(layer3, k, batch_size=64))(keys)  # (R, 2, w), 64 draws at a time
    sigma = np.asarray(nl.analytic_kernel(net, x, get="nngp").nngp)  # Σ_3 of the last hidden layer
    sigma = sigma * (1.1 if twin else 1.0)
    # (the MLP's output NNGP equals the covariance of any unit of the last pre-activation layer)
    emp = np.einsum("rau,rbu->ab", phi, phi) / (draws * w)
    cov_err.append(float(np.max(np.abs(emp - sigma)) / np.max(np.abs(sigma))))
    z = np.asarray(phi[:, 0, :])
    kurt.append(abs(float(np.mean(z**4) / np.mean(z**2) ** 2 - 3)))
    s1, s2 = np.sum(z**2, axis=1), np.sum(z**4, axis=1)
    pair = np.mean((s1**2 - s2) / (w * (w - 1)))  # E[Φ_a² Φ_b²], a ≠ b
    dep.append(abs(float(pair / np.mean(z**2) ** 2 - 1)))
  fk, fd = loglog_fit(widths, kurt), loglog_fit(widths, dep)
  ok = vanishes(fk) and vanishes(fd) and cov_err[-1] < 0.05
  return Outcome(
    {
      "|excess kurtosis| slope": slope_text(fk),
      "unit dependence slope": slope_text(fd),
      "covariance error at widest": cov_err[-1],
      "widths": f"{widths[0]}–{widths[-1]}",
      "draws": draws,
    },
    ok,
    note="Layer 3 of a ReLU net with inputs of non-negative entries: non-Gaussianity (excess "
    "kurtosis) and the dependence of two units (E[Φ_a²Φ_b²]/E[Φ²]² − 1) must vanish (the 95 % "
    "interval of the log-log slope below 0) and the covariance must match Σ_3 to 5 % at the "
    "widest width. Joint Gaussianity is tested through these two moments only.",
  )


def _limit_ntk_relu(x, xp, J):
  """The limit NTK with ρ = ReLU, written out: Σ_j and Σ̇_j by the arc-cosine formulas."""
  d = x.shape[0]
  s11, s22, s12 = x @ x / d, xp @ xp / d, x @ xp / d
  sig, sdot = [s12], []
  for _ in range(J - 1):
    c = np.clip(s12 / np.sqrt(s11 * s22), -1.0, 1.0)
    th = np.arccos(c)
    sdot.append((np.pi - th) / (2 * np.pi))
    s12 = np.sqrt(s11 * s22) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi)
    s11, s22 = s11 / 2, s22 / 2
    sig.append(s12)
  total = 0.0
  for j in range(J):
    total += sig[j] * np.prod(sdot[j:])
  return total


@claim(
  "C0.4",
  "NTK limit at initialisation (Jacot et al. 2018)",
  "As the hidden widths → ∞, the empirical NTK "
  "at a Gaussian initialisation converges to Σ_{j=1}^J Σ_j Σ̇_{j+1} ⋯ Σ̇_J · I (ReLU here, arc-cosine Σ_j and "
  "Σ̇_j)",
  twin="the same with the limit multiplied by 1.1",
)
def ntk_limit(quick, twin):
  import ntk_lab as nl

  worst_exact = 0.0
  factor = 1.1 if twin else 1.0
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, 4))  # non-negative entries
  for J in (1, 2, 3, 5):
    net = nl.MLP((7,) * (J - 1), activation="relu", W_std=1.0, b_std=None)
    lib = np.asarray(nl.analytic_kernel(net, x, get="ntk").ntk)
    formula = factor * np.array([[_limit_ntk_relu(np.asarray(a), np.asarray(b), J) for b in x] for a in x])
    worst_exact = max(worst_exact, rel(formula, lib))
  widths = (64, 128, 256, 512, 1024) if quick else (64, 128, 256, 512, 1024, 2048, 4096)
  errs, ws_all = [], []
  for w in widths:
    net = nl.MLP((w, w), activation="relu", W_std=1.0, b_std=None)
    lim = factor * np.array([[_limit_ntk_relu(np.asarray(a), np.asarray(b), 3) for b in x] for a in x])
    for s in range(3):
      emp = np.asarray(nl.empirical_ntk(net, net.init(jax.random.PRNGKey(s), 4), x))
      errs.append(float(np.linalg.norm(emp - lim) / np.linalg.norm(lim)))
      ws_all.append(w)
  fit = loglog_fit(ws_all, errs)
  ok = worst_exact < 1e-10 and vanishes(fit)
  return Outcome(
    {
      "limit formula vs ntk_lab.analytic_kernel": worst_exact,
      "‖K_W(0) − limit‖/‖limit‖ slope": slope_text(fit),
      "error at widest": float(np.median(errs[-3:])),
    },
    ok,
    note="The limit formula is written out independently for ReLU (arc-cosine Σ_j, Σ̇_j) and compared "
    "with ntk_lab.analytic_kernel exactly (depths 1–5); the width sweep (J = 3, three draws per "
    "width) must show a vanishing relative error (95 % slope interval below 0). The widths go "
    "to ∞ together here, not one after the other.",
  )


@claim(
  "C0.5",
  "lazy training (Jacot et al. 2018; Chizat et al. 2019)",
  "Under gradient flow on the squared loss "
  "on a fixed time interval [0, T]: sup_t ‖W_j(t) − W_j(0)‖ → 0 for every layer and sup_t ‖K_{W(t)} − "
  "K_{W(0)}‖ → 0 as the width w → ∞",
  twin="the corrected statement with the rate doubled: √w · sup_t ‖W_j(t) − W_j(0)‖/‖W_j(0)‖ → 0",
)
def lazy(quick, twin):
  import ntk_lab as nl

  widths = (32, 128, 512) if quick else (32, 128, 512, 2048)
  x = jax.random.uniform(jax.random.PRNGKey(1), (8, 3))
  y = jnp.sin(3 * x[:, :1])
  times = jnp.linspace(0.0, 4.0, 9)
  absolute = {j: [] for j in range(3)}
  relative = {j: [] for j in range(3)}
  drift, ws_all = [], []
  for w, seed in [(w, s) for w in widths for s in range(3)]:
    ws_all.append(w)
    net = nl.MLP((w, w), activation="tanh", W_std=1.0, b_std=None)
    p0 = net.init(jax.random.PRNGKey(seed), 3)
    run = nl.gradient_flow(
      net, p0, x, y, times=times, save_params=True, observe=["kernel_drift"], rtol=1e-6, atol=1e-9
    )
    for j in range(3):
      d = run.params[j]["W"] - p0[j]["W"][None]
      absolute[j].append(float(jnp.max(jnp.linalg.norm(d, axis=(1, 2)))))
      relative[j].append(absolute[j][-1] / float(jnp.linalg.norm(p0[j]["W"])))
    drift.append(float(jnp.max(run.observables["kernel_drift"])))
  fa = {j: loglog_fit(ws_all, v) for j, v in absolute.items()}
  boost = np.sqrt(np.asarray(ws_all, float)) if twin else 1.0
  fr = {j: loglog_fit(ws_all, np.asarray(v) * boost) for j, v in relative.items()}
  fk = loglog_fit(ws_all, drift)
  # "does not vanish": the slope interval reaches above −0.2 (no decay like w^{−0.2} or faster)
  printed = all(f[2] < -0.2 for f in fa.values()) and vanishes(fk)
  stuck = [j for j, f in fa.items() if not f[2] < -0.2]
  measured = {f"sup_t ‖ΔW_{j + 1}‖_F slope": slope_text(f) for j, f in fa.items()}
  measured.update({f"sup_t ‖ΔW_{j + 1}‖_F/‖W_{j + 1}(0)‖_F slope": slope_text(f) for j, f in fr.items()})
  measured["sup_t ‖K(t) − K(0)‖/‖K(0)‖ slope"] = slope_text(fk)
  ce = None
  if not printed:
    ce = (
      "; ".join(
        f"sup_t ‖W_{j + 1}(t) − W_{j + 1}(0)‖_F at widths {widths[0]}…{widths[-1]} (3 draws each): "
        + ", ".join(f"{v:.2f}" for v in absolute[j])
        + f", slope {slope_text(fa[j])}"
        for j in stuck
      )
      + " (tanh, J = 3, T = 4): the absolute change does not vanish; each of the w² entries moves O(1/w), "
      "so the Frobenius (and, the change being low-rank, the operator) norm stays O(1)."
    )
  corrected = (
    "the relative change sup_t ‖W_j(t) − W_j(0)‖/‖W_j(0)‖ → 0 (like w^{−1/2}; w^{−1} for the w × w layer) for every layer, and "
    "‖K_{W(t)} − K_{W(0)}‖ → 0"
  )
  return Outcome(
    measured,
    printed,
    ce,
    corrected,
    all(vanishes(f) for f in fr.values()) and vanishes(fk),
    note="‖·‖ read as the Frobenius norm; tanh, J = 3, T = 4, 3 draws per width. A finite sweep "
    "cannot prove that a quantity does not tend to 0: 'fails' here means that the 95 % interval "
    "of the log-log slope reaches above −0.2, i.e. the measurements exclude every decay like "
    "w^{−0.2} or faster (the theory gives O(1)); 'vanishes' means the interval lies below 0. "
    "The standard proofs bound a relative change.",
  )


@claim(
  "C0.6",
  "outer products",
  "For all vectors u, v ∈ R^d: ‖uuᵀ − vvᵀ‖ ≤ (‖u‖ + ‖v‖)‖u − v‖ (spectral and Frobenius norms)",
  twin="the same with the right side halved",
)
def outer_products(quick, twin):
  worst, count, bad = 0.0, 0, False
  half = 0.5 if twin else 1.0
  key = jax.random.PRNGKey(6)
  for d in (1, 3, 100):
    for scale in (1e-3, 1.0, 1e3):
      for kind in ("random", "close", "opposite", "zero", "parallel"):
        key, ku, kv = jax.random.split(key, 3)
        u = scale * jax.random.normal(ku, (d,))
        v = {
          "random": scale * jax.random.normal(kv, (d,)),
          "close": u + 1e-6 * scale * jax.random.normal(kv, (d,)),
          "opposite": -u,
          "zero": 0 * u,
          "parallel": 2.5 * u,
        }[kind]
        rhs = half * (jnp.linalg.norm(u) + jnp.linalg.norm(v)) * jnp.linalg.norm(u - v)
        diff = jnp.outer(u, u) - jnp.outer(v, v)
        # uuᵀ − vvᵀ cancels when v ≈ u: its rounding error is a few eps·(‖u‖² + ‖v‖²)
        slack = 8 * jnp.finfo(u.dtype).eps * (u @ u + v @ v)
        for lhs in (jnp.linalg.norm(diff, 2), jnp.linalg.norm(diff)):
          if rhs > 0:
            worst = max(worst, float(lhs / rhs))
            bad = bad or bool(lhs > rhs + slack)
          count += 1
  search = _search_outer(half)
  return Outcome(
    {"instances": count, "max LHS/RHS": worst, "search: max LHS/RHS": search["worst ratio"]},
    not bad and search["worst ratio"] <= 1 + 1e-9,
    search=search,
    note="Tight: v = 0 gives LHS = RHS = ‖u‖². Compared up to the rounding of uuᵀ − vvᵀ, "
    "8·eps·(‖u‖² + ‖v‖²). The search runs over d ∈ [1, 50], v = s·R_θ u + δ (a rotation by θ "
    "in a random plane, scale s ∈ [1e-4, 1e4], a perturbation δ), both norms.",
  )


def _search_outer(half):
  from ntk_lab.atlas._search import worst_case

  def ratio(d, theta, s, delta, kind):
    rng = np.random.default_rng(d)
    u = rng.normal(size=d)
    e = rng.normal(size=d)
    e -= (e @ u) / (u @ u) * u
    e *= np.linalg.norm(u) / max(np.linalg.norm(e), 1e-300)
    v = s * (np.cos(theta) * u + np.sin(theta) * e) + delta * rng.normal(size=d)
    diff = np.outer(u, u) - np.outer(v, v)
    lhs = np.linalg.norm(diff, 2 if kind < 0.5 else "fro")
    rhs = half * (np.linalg.norm(u) + np.linalg.norm(v)) * np.linalg.norm(u - v)
    slack = 8 * np.finfo(float).eps * (u @ u + v @ v)
    return (lhs - slack) / rhs if rhs > 0 else -np.inf

  return worst_case(
    ratio,
    {
      "d": (1, 50, "int"),
      "theta": (0.0, np.pi, "lin"),
      "s": (1e-4, 1e4, "log"),
      "delta": (1e-8, 1.0, "log"),
      "kind": (0.0, 1.0, "lin"),
    },
    n_random=300,
  )
