"""Monte Carlo kernels against the analytic limit, and the width^(−1/2) convergence of a single
empirical NTK (Jacot et al. 2018; Lee et al. 2019)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import inputs, rel_err

# |mean − truth| ≤ Z·stderr entrywise. With ≤ 64 entries per check and Gaussian-like means,
# P(any |z| > 5) ≲ 64·6e-7 ≈ 4e-5: a genuine mismatch fails, sampling noise does not.
Z = 5.0


@pytest.mark.parametrize(
  "act,b_std,parametrization",
  [
    # a closed form in the default suite (each case draws and compiles a Monte Carlo ensemble:
    # 10–20 s on 2 cores), the rest in the slow one
    ("relu", None, "ntk"),
    pytest.param("erf", 0.3, "ntk", marks=pytest.mark.slow),
    pytest.param("tanh", 0.2, "ntk", marks=pytest.mark.slow),
    pytest.param("gelu", 0.1, "standard", marks=pytest.mark.slow),
    pytest.param("softplus", None, "standard", marks=pytest.mark.slow),
    # registry closed forms without a neural-tangents twin for the wrap, and a jump (sign)
    pytest.param(
      nl.Activation("relu", scale=-2.0, inner=0.5, shift=-0.3), 0.2, "ntk", marks=pytest.mark.slow
    ),
    pytest.param(
      nl.Activation("gelu", scale=1.2, inner=2.0, shift=0.1), None, "standard", marks=pytest.mark.slow
    ),
    pytest.param(nl.Activation("sign"), 0.1, "ntk", marks=pytest.mark.slow),
    pytest.param(
      nl.Activation("rectified_monomial", params=(2,), shift=-0.5), 0.1, "ntk", marks=pytest.mark.slow
    ),
    pytest.param(nl.Activation("polynomial", params=(0.3, -1.0, 0.5)), None, "ntk", marks=pytest.mark.slow),
  ],
  ids=str,
)
def test_one_hidden_layer_mc_is_unbiased_for_the_analytic_kernel(act, b_std, parametrization):
  """For one hidden layer, E[f f'] and E[Θ_θ] equal the analytic kernels at any width, so the
  MC mean must lie within Z standard errors of them; the standard error shrinks like 1/√S."""
  net = nl.MLP((64,), activation=act, b_std=b_std, parametrization=parametrization, out_dim=2)
  x1, x2 = inputs(6, 3), inputs(4, 3, seed=3)
  exact = net.kernel(x1, x2)
  mc = nl.monte_carlo_kernel(net, jax.random.PRNGKey(0), x1, x2, n_samples=400, samples_per_step=50)
  for name in ("nngp", "ntk"):
    mean, se = np.asarray(getattr(mc, name)), np.asarray(getattr(mc, name + "_stderr"))
    truth = np.asarray(getattr(exact, name))
    assert (se > 0).all()
    assert (np.abs(mean - truth) <= Z * se).all(), (name, np.max(np.abs(mean - truth) / se))
  fewer = nl.monte_carlo_kernel(net, jax.random.PRNGKey(1), x1, x2, n_samples=100, samples_per_step=50)
  ratio = float(np.median(np.asarray(fewer.ntk_stderr) / np.asarray(mc.ntk_stderr)))
  assert 1.6 < ratio < 2.5  # √(400/100) = 2


@pytest.mark.slow  # a deep ensemble compiled twice (~14 s)
def test_deep_mc_approaches_the_limit_and_options():
  net = nl.MLP((512, 512), activation="erf", b_std=0.2)
  x = inputs(5, 3)
  mc = nl.monte_carlo_kernel(net, jax.random.PRNGKey(2), x, n_samples=16, samples_per_step=4)
  exact = net.kernel(x)
  for name in ("nngp", "ntk"):  # sampling error, plus a finite-width bias of O(1/width)
    mean, se = np.asarray(getattr(mc, name)), np.asarray(getattr(mc, name + "_stderr"))
    truth = np.asarray(getattr(exact, name))
    assert (np.abs(mean - truth) <= Z * se + 0.02 * np.abs(truth).max()).all(), name
  assert rel_err(mc.ntk, exact.ntk) < 0.05  # Θ_θ itself concentrates at this width
  only = nl.monte_carlo_kernel(net, jax.random.PRNGKey(2), x, n_samples=16, get="ntk")
  assert only.nngp is None and only.nngp_stderr is None
  assert rel_err(only.ntk, mc.ntk) <= 1e-12  # the same draws, however they are batched
  sym = nl.MLP((64,), activation="erf", readout_init="symmetric")
  assert (
    float(jnp.abs(nl.monte_carlo_kernel(sym, jax.random.PRNGKey(0), x, n_samples=4).nngp).max()) <= 1e-30
  )  # f ≡ 0 up to rounding


@pytest.mark.slow  # ~25 s: widths up to 8192; CI runs it with `make test-slow`
def test_single_empirical_ntk_error_falls_like_inverse_sqrt_width():
  """Seed 000 eq 8: ‖Θ_θ − Θ^∞‖_F / ‖Θ^∞‖_F ~ width^(−1/2); the fitted log-log slope over widths
  64 … 8192 (averaged over 3 draws per width) must lie in [−0.65, −0.35]."""
  net_of = lambda n: nl.MLP((n, n), activation="relu", b_std=0.1)
  x = inputs(8, 4)
  limit = net_of(1).kernel(x).ntk
  widths = 2 ** np.arange(6, 14)
  errs = []
  for n in widths:
    net = net_of(int(n))
    e = [rel_err(nl.empirical_ntk(net, net.init(jax.random.PRNGKey(s), 4), x), limit) for s in range(3)]
    errs.append(np.mean(e))
  slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
  assert -0.65 <= slope <= -0.35, (slope, errs)


@pytest.mark.parametrize(
  "call,exc,match",
  [
    (
      lambda x: nl.monte_carlo_kernel(lambda p, x: x, jax.random.PRNGKey(0), x, n_samples=4),
      TypeError,
      "model: expected a network of ntk_lab layers",
    ),
    (
      lambda x: nl.monte_carlo_kernel(nl.MLP((4,)), jax.random.PRNGKey(0), x, n_samples=1),
      ValueError,
      "n_samples: needs at least 2",
    ),
    (
      lambda x: nl.monte_carlo_kernel(nl.MLP((4,)), jax.random.PRNGKey(0), x, n_samples=4, get="ntgp"),
      ValueError,
      "get",
    ),
    (
      lambda x: nl.monte_carlo_kernel(nl.MLP((4,)), jax.random.PRNGKey(0), x, x[:, :2], n_samples=4),
      ValueError,
      "x2: has 2 features",
    ),
  ],
)
def test_errors(call, exc, match):
  with pytest.raises(exc, match=match):
    call(inputs(3, 3))
