"""Live cross-check against neural-tangents 0.6.5 (marker `nt`; `make test-nt`, which CI runs).

A generated grid of MLPs — depths 1, 2 and 5 for every activation NT has in closed form, W_std (scalar and
per layer) and b_std values including b_std = 0 and no bias, both parametrizations, out_dim > 1 and
N1 ≠ N2 — goes to NT's own interpreter (reference/nt_oracle.py, `make reference` builds it) in
one request file; ntk_lab must match NT's `kernel_fn` and `empirical_ntk_fn` (implementations 1–3)
to ≤ 1e-6 relative in float64; the registry's further closed forms (sign, step, rectified
monomials 0–3, monomials, polynomials, ABReLU, rbf, gaussian, exp, sin/cos with a phase, and the
affine wraps NT has: a·erf(b·z) + c, a·sin(b·z + φ), exp(b·z)) likewise. Activations NT has no closed form for (tanh, sigmoid, softplus, a
custom callable) are checked against NT's `monte_carlo_kernel_fn` and our own Monte Carlo, with a
tolerance from the sample count.

A second grid mixes values per layer as NT's `stax.serial` of `Dense` layers can: a parametrization,
σ_w (some 0), σ_b (some None: no bias) per layer and an activation per hidden layer, where
"identity" stands for two consecutive `Dense` layers (NT gets no layer between them). Those cases
also check `empirical_nngp` against `empirical_nngp_fn` and the diagonal-only kernels against NT's
`diagonal_axes=(0,)` (empirical) and the diagonal of its `kernel_fn` (infinite width).
"""

import itertools
import json
import pathlib
import subprocess
import tempfile

import jax
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import rel_err

pytestmark = pytest.mark.nt

ROOT = pathlib.Path(__file__).resolve().parents[1]
NT_PYTHON = ROOT / ".venv-nt" / "bin" / "python"
CLOSED = ["relu", "leaky_relu", "abs", "erf", "sin", "gelu", "identity"]
NO_CLOSED_FORM = ["tanh", "sigmoid", "softplus"]
# The registry's other closed forms, with parameters and the affine wraps NT has (name, extras).
MORE_CLOSED = [
  ("sign", {}),
  ("step", {}),
  ("rectified_monomial", {"params": [0]}),
  ("rectified_monomial", {"params": [2]}),
  ("rectified_monomial", {"params": [3]}),
  ("monomial", {"params": [3]}),
  ("polynomial", {"params": [0.2, -1.0, 0.5, 0.3]}),
  ("abrelu", {"params": [-0.4, 1.3]}),
  ("rbf", {"params": [0.6]}),
  ("gaussian", {"params": [-0.7]}),
  ("exp", {"inner": 0.4}),
  ("sin", {"params": [0.7], "scale": 1.5, "inner": 0.8}),
  ("cos", {"params": [-0.3], "scale": 0.7, "inner": 1.3}),
  ("erf", {"scale": 1.5, "inner": 0.7, "shift": 0.4}),
]
TOL = 1e-6
PREDICT_TIMES = np.array([0.0, 0.5, 3.0, 40.0])
MC_SAMPLES, Z = 256, 5.0


def grid():
  """One case per (activation, depth); the other factors cycle so every level of each appears."""
  rng = np.random.default_rng(0)
  W_stds = [0.5, 1.0, 1.7, "per-layer"]
  b_stds = [None, 0.0, 0.3, 1.1]
  cases = []
  # Depths 1, 2 and 5: one hidden layer, a composition, a deep net (3 and 4 take no other path).
  for i, (act, depth) in enumerate(itertools.product(CLOSED, (1, 2, 5))):
    W = W_stds[i % 4]
    cases.append(
      dict(
        hidden=[int(w) for w in rng.integers(8, 17, depth)],
        activation=act,
        alpha=0.15,
        parametrization=["ntk", "standard"][(i // 2) % 2],
        out_dim=[1, 3][i % 2],
        W_std=[round(float(v), 3) for v in rng.uniform(0.6, 1.8, depth + 1)] if W == "per-layer" else W,
        b_std=b_stds[(i // 3) % 4],
        n1=5 + i % 3,
        n2=3 + i % 4,
        in_dim=2 + i % 4,
        modes=["analytic", "empirical"],
      )
    )
  for i in range(0, len(cases), 6):  # ensemble predictions on a spread of the closed-form cases
    cases[i]["modes"].append("predict")
    cases[i]["diag_reg"] = [0.0, 1e-3][(i // 6) % 2]
  for j, (act, extra) in enumerate(MORE_CLOSED):
    # NT's RectifiedMonomial (and so step) returns NaN beyond one hidden layer (its arccos-based
    # self-covariance divides by sin θ = 0), so those are compared with one hidden layer.
    depth = 1 if act in ("step", "rectified_monomial") else 2
    cases.append(
      dict(
        hidden=[int(w) for w in rng.integers(8, 17, depth)],
        activation=act,
        alpha=0.0,
        parametrization=["ntk", "standard"][j % 2],
        out_dim=[1, 2][j % 2],
        W_std=[0.8, 1.2][j % 2],
        b_std=[None, 0.2][(j // 2) % 2],
        n1=4,
        n2=3,
        in_dim=3,
        modes=["analytic", "empirical"],
        **extra,
      )
    )
  for act in NO_CLOSED_FORM:
    cases.append(
      dict(
        hidden=[64],
        activation=act,
        alpha=0.0,
        parametrization="ntk",
        out_dim=2,
        W_std=1.3,
        b_std=0.2,
        n1=4,
        n2=3,
        in_dim=3,
        modes=["mc"],
      )
    )
  return cases


def mixed_grid():
  """Per-layer mixes: every case mixes parametrizations; σ_w = 0, no-bias layers and identity
  activations (consecutive affine layers) cycle through the depths. A σ_w = 0 layer gets a bias
  σ_b > 0 when a kinked activation follows, so no pre-activation sits exactly at the kink."""
  rng = np.random.default_rng(1)
  acts = CLOSED
  cases = []
  for i in range(24):
    depth = 1 + i % 4
    L = depth + 1
    params = ["ntk", "standard"] * L
    params = params[i % 2 : i % 2 + L]
    if i % 3 == 0:
      rng.shuffle(params)
      params[0], params[-1] = "ntk", "standard"
    W = [round(float(v), 3) for v in rng.uniform(0.6, 1.8, L)]
    b = [[None, 0.0, 0.3, 1.1][(i // 4 + 3 * l) % 4] for l in range(L)]
    act = [acts[(i + 2 * l) % len(acts)] for l in range(depth)]
    if i % 4 == 1:
      act[0] = "identity"
    if i % 5 in (0, 2):  # a σ_w = 0 layer: the first, or one inside
      z = 0 if i % 5 == 0 or depth < 2 else 1 + i % (depth - 1)
      W[z] = 0.0
      b[z] = b[z] or 0.4
    cases.append(
      dict(
        hidden=[int(w) for w in rng.integers(8, 17, depth)],
        activation=act,
        alpha=0.15,
        parametrization=params,
        out_dim=[1, 3][i % 2],
        W_std=W,
        b_std=b,
        n1=4 + i % 3,
        n2=3 + i % 4,
        in_dim=2 + i % 4,
        modes=["analytic", "empirical", "nngp", "diagonal"],
      )
    )
  return cases


CASES = grid()
FIRST_MIXED = len(CASES)
CASES += mixed_grid()


def model_of(case):
  def act_of(name):
    if name == "leaky_relu":
      return nl.Activation("leaky_relu", alpha=case["alpha"])
    if name == "identity" or not any(k in case for k in ("params", "scale", "inner", "shift")):
      return name
    return nl.Activation(
      name,
      params=tuple(case.get("params", ())),
      scale=case.get("scale", 1.0),
      inner=case.get("inner", 1.0),
      shift=case.get("shift", 0.0),
    )

  a, W, b, p = case["activation"], case["W_std"], case["b_std"], case["parametrization"]
  tup = lambda v: tuple(v) if isinstance(v, list) else v
  return nl.MLP(
    tuple(case["hidden"]),
    out_dim=case["out_dim"],
    activation=tuple(map(act_of, a)) if isinstance(a, list) else act_of(a),
    parametrization=tup(p),
    W_std=tup(W),
    b_std=tup(b),
  )


def targets(i, case):
  return jax.random.normal(jax.random.PRNGKey(500 + i), (case["n1"], case["out_dim"]))


@pytest.fixture(scope="module")
def nt_answers(request):
  if not NT_PYTHON.exists():
    pytest.fail(f"{NT_PYTHON} is missing: run `make reference` (or `make test-nt`, which does).")
  # Only the cases of the selected tests go to NT (a -k selection runs in a fraction of the time).
  selected = set()
  for item in request.session.items:
    if item.module is request.module and "nt_answers" in item.fixturenames:
      selected.add(getattr(getattr(item, "callspec", None), "params", {}).get("i", "all"))
  if "all" in selected:
    selected = set(range(len(CASES)))
  request_data = {"n_cases": len(CASES), "case_ids": np.array(sorted(selected), dtype=np.int64)}
  local = []
  for i, case in enumerate(CASES):
    if i not in selected:
      local.append(None)
      continue
    net = model_of(case)
    keys = jax.random.split(jax.random.PRNGKey(100 + i), 3)
    x1 = jax.random.normal(keys[0], (case["n1"], case["in_dim"]))
    x2 = jax.random.normal(keys[1], (case["n2"], case["in_dim"]))
    params = net.init(keys[2], case["in_dim"])
    p = f"c{i}_"
    spec = {
      k: case[k]
      for k in (
        "hidden",
        "out_dim",
        "activation",
        "alpha",
        "parametrization",
        "W_std",
        "b_std",
        "params",
        "scale",
        "inner",
        "shift",
      )
      if k in case
    }
    request_data.update(
      {
        p + "spec": json.dumps(spec),
        p + "modes": json.dumps(case["modes"]),
        p + "x1": np.asarray(x1),
        p + "x2": np.asarray(x2),
        p + "mc_samples": MC_SAMPLES,
        p + "mc_seed": i,
      }
    )
    if "predict" in case["modes"]:
      request_data.update(
        {p + "y": np.asarray(targets(i, case)), p + "times": PREDICT_TIMES, p + "diag_reg": case["diag_reg"]}
      )
    for l, layer in enumerate(params):
      for name, v in layer.items():
        request_data[f"{p}{name}{l}"] = np.asarray(v)
    local.append((net, params, x1, x2))
  answers = ask_oracle(request_data, timeout=1800)
  return answers, local


def ask_oracle(request: dict, *, timeout: float) -> dict:
  """NT's answers to one batched request of `reference/nt_oracle.py`, run in NT's interpreter
  (the arrays go through .npz files)."""
  with tempfile.TemporaryDirectory() as tmp:
    inp, out = pathlib.Path(tmp) / "in.npz", pathlib.Path(tmp) / "out.npz"
    np.savez(inp, **request)
    run = subprocess.run(
      [str(NT_PYTHON), str(ROOT / "reference" / "nt_oracle.py"), "batch", str(inp), str(out)],
      capture_output=True,
      text=True,
      timeout=timeout,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(np.load(out))


def at_a_kink(net, params, x):
  """Points with some hidden pre-activation exactly 0 under a kinked ρ (relu, leaky_relu, abs).

  There ρ'(0) is a convention: JAX's relu uses 0, NT's `jnp.maximum`-based layers 1/2. It happens
  when a layer goes dead with b = 0 (all units off, so the next pre-activations are exactly 0)."""
  kinked = ("relu", "leaky_relu", "abs", "abrelu", "sign", "step", "rectified_monomial")
  if not any(net.activation_of(l).name in kinked for l in range(net.n_layers - 1)):
    return np.zeros(x.shape[0], bool)
  h, hit = x, np.zeros(x.shape[0], bool)
  for l, layer in enumerate(params[:-1]):
    a, beta = net.layer_scales(l, layer["W"].shape[0])
    z = a * h @ layer["W"] + (beta * layer["b"] if "b" in layer else 0.0)
    if net.activation_of(l).name in ("relu", "leaky_relu", "abs"):
      hit |= np.asarray((z == 0).any(axis=1))
    h = net.activation_of(l)(z)
  return hit


def ids(case):
  short = lambda v: "-".join(map(str, v)) if isinstance(v, list) else v
  extra = "".join(f"-{k}{case[k]}" for k in ("params", "scale", "inner", "shift") if k in case)
  return (
    f"{short(case['activation'])}{extra}-d{len(case['hidden'])}-{short(case['parametrization'])}-"
    f"b{short(case['b_std'])}"
  )


@pytest.mark.parametrize(
  "i", [i for i, c in enumerate(CASES) if "analytic" in c["modes"]], ids=lambda i: ids(CASES[i])
)
def test_analytic_and_empirical_match_nt(nt_answers, i):
  answers, local = nt_answers
  net, params, x1, x2 = local[i]
  k = net.kernel(x1, x2)
  p = f"c{i}_"
  for name in ("nngp", "ntk"):
    assert rel_err(getattr(k, name), answers[p + name]) <= TOL, name
  rows, cols = ~at_a_kink(net, params, x1), ~at_a_kink(net, params, x2)
  assert rows.sum() >= len(rows) - 2 and cols.sum() >= len(cols) - 2
  keep = np.ix_(rows, cols)
  for method in ("structured", "jacobian", "ntvp"):
    ours = np.asarray(nl.empirical_ntk(net, params, x1, x2, method=method))
    for impl in (1, 2, 3):
      assert rel_err(ours[keep], answers[p + f"ntk_trace_{impl}"][keep]) <= TOL, (method, impl)


@pytest.mark.parametrize(
  "i", [i for i, c in enumerate(CASES) if c["modes"] == ["mc"]], ids=lambda i: CASES[i]["activation"]
)
def test_activations_without_closed_form_against_monte_carlo(nt_answers, i):
  """One hidden layer: E over init of f f' and of Θ_θ is the analytic kernel at any width, so
  NT's MC, our MC and our quadrature kernel must agree within Z standard errors of S draws
  (ours estimates the standard error for both: the same estimator of the same network)."""
  answers, local = nt_answers
  net, _, x1, x2 = local[i]
  exact = net.kernel(x1, x2)
  mc = nl.monte_carlo_kernel(net, jax.random.PRNGKey(7), x1, x2, n_samples=MC_SAMPLES, samples_per_step=64)
  for name in ("nngp", "ntk"):
    se = np.asarray(getattr(mc, name + "_stderr"))
    truth = np.asarray(getattr(exact, name))
    theirs = answers[f"c{i}_mc_{name}"]
    assert (np.abs(np.asarray(getattr(mc, name)) - truth) <= Z * se).all(), ("ours", name)
    assert (np.abs(theirs - truth) <= Z * se).all(), ("NT", name)


def test_a_custom_callable_matches_its_named_twin_in_monte_carlo():
  """A user callable (no name, so quadrature) has NT's numbers via its named twin (tanh above)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  named = nl.MLP((64,), activation="tanh", W_std=1.3, b_std=0.2, out_dim=2)
  custom = nl.MLP(
    (64,), activation=nl.Activation("custom", fn=jax.numpy.tanh), W_std=1.3, b_std=0.2, out_dim=2
  )
  assert rel_err(custom.kernel(x).ntk, named.kernel(x).ntk) <= 1e-14


@pytest.mark.parametrize(
  "i", [i for i, c in enumerate(CASES) if "predict" in c["modes"]], ids=lambda i: ids(CASES[i])
)
def test_ensemble_and_gp_posterior_match_nt(nt_answers, i):
  """`mse_ensemble` (mean and covariance, finite t and t = ∞) and `gp_inference` against NT's
  `gradient_descent_mse_ensemble` and `gp_inference`; NT's time runs at η = 1/y.size of ours, or
  at η = 1 with ``reduction="mean"`` (NT's loss)."""
  answers, local = nt_answers
  net, _, x1, x2 = local[i]
  case, p = CASES[i], f"c{i}_"
  y = targets(i, case)
  k_dd, k_td, k_tt = net.kernel(x1), net.kernel(x2, x1), net.kernel(x2, get="nngp").nngp
  for g in ("nngp", "ntk"):
    for tag, t in (("t", PREDICT_TIMES), ("inf", np.inf)):
      ens = nl.mse_ensemble(
        k_dd,
        y,
        t,
        k_test_train=k_td,
        nngp_test_test=k_tt,
        kernel=g,
        learning_rate=1.0 / y.size,
        diag_reg=case["diag_reg"],
        compute_cov=True,
      )
      mean, cov = answers[f"{p}ens_{g}_{tag}_mean"], answers[f"{p}ens_{g}_{tag}_cov"]
      if tag == "inf":
        mean, cov = mean[None], cov[None]
      assert rel_err(ens.mean, mean) <= TOL, (g, tag, "mean")
      assert rel_err(ens.cov, cov) <= TOL, (g, tag, "cov")
      # NT's own convention, the mean-reduced loss: the same time axis at η = 1
      ens_mean = nl.mse_ensemble(
        k_dd,
        y,
        t,
        k_test_train=k_td,
        nngp_test_test=k_tt,
        kernel=g,
        reduction="mean",
        diag_reg=case["diag_reg"],
        compute_cov=True,
      )
      assert rel_err(ens_mean.mean, mean) <= TOL, (g, tag, "mean, reduction='mean'")
      assert rel_err(ens_mean.cov, cov) <= TOL, (g, tag, "cov, reduction='mean'")
  gp = nl.gp_inference(k_dd.nngp, y, k_test_train=k_td.nngp, k_test_test=k_tt, diag_reg=case["diag_reg"])
  assert rel_err(gp.mean, answers[p + "gp_mean"]) <= TOL
  assert rel_err(gp.cov, answers[p + "gp_cov"]) <= TOL


MIXED = range(FIRST_MIXED, len(CASES))


@pytest.mark.parametrize("i", [i for i in MIXED if "nngp" in CASES[i]["modes"]], ids=lambda i: ids(CASES[i]))
def test_empirical_nngp_matches_nt(nt_answers, i):
  answers, local = nt_answers
  net, params, x1, x2 = local[i]
  p = f"c{i}_"
  assert rel_err(nl.empirical_nngp(net, params, x1, x2), answers[p + "emp_nngp"]) <= 1e-12
  full = nl.empirical_nngp(net, params, x1, x2, trace_outputs=False)  # both (N1, N2, O, O)
  assert rel_err(full, answers[p + "emp_nngp_full"]) <= 1e-12


@pytest.mark.parametrize(
  "i", [i for i in MIXED if "diagonal" in CASES[i]["modes"]], ids=lambda i: ids(CASES[i])
)
def test_diagonal_kernels_match_nt(nt_answers, i):
  """Our diagonal-only kernels at (x_i, x_i) and (x_i, x_{N−1−i}) against NT's `diagonal_axes=(0,)`
  (empirical NTK traced, implementations 1–3, and full, implementation 1; empirical NNGP) and the diagonal of NT's
  infinite-width kernel."""
  answers, local = nt_answers
  net, params, x1, _ = local[i]
  keep = ~at_a_kink(net, params, x1)
  assert keep.sum() >= len(keep) - 2
  for tag, other in (("self", None), ("rev", x1[::-1])):
    q = f"c{i}_diag_{tag}_"
    pair_keep = keep if other is None else keep & keep[::-1]
    k = net.kernel(x1, other, diagonal=True)
    assert k.ntk.shape == (x1.shape[0],)
    assert rel_err(k.nngp, answers[q + "nngp"]) <= TOL, (tag, "nngp")
    assert rel_err(k.ntk, answers[q + "ntk"]) <= TOL, (tag, "ntk")
    assert rel_err(nl.empirical_nngp(net, params, x1, other, diagonal=True), answers[q + "emp_nngp"]) <= 1e-12
    for method in ("structured", "jacobian", "ntvp"):
      traced = np.asarray(nl.empirical_ntk(net, params, x1, other, method=method, diagonal=True))
      full = np.asarray(
        nl.empirical_ntk(net, params, x1, other, method=method, diagonal=True, trace_outputs=False)
      )
      for impl in (1, 2, 3):
        theirs = answers[q + f"ntk_{impl}"]
        assert rel_err(traced[pair_keep], theirs[pair_keep]) <= TOL, (tag, method, impl)
      theirs = answers[q + "ntk_full_1"]
      assert theirs.shape == full.shape, (theirs.shape, full.shape)
      assert rel_err(full[pair_keep], theirs[pair_keep]) <= TOL, (tag, method, "full")
