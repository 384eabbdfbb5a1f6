"""Convolutional layers: `Conv`, `AvgPool`, `GlobalAvgPool`, `Flatten`, `LayerNorm`.

Each against an independent route: apply against explicit sums over patches and windows; the
infinite-width kernels against Monte Carlo means (one hidden layer, where the mean over draws is
the limit at any width), against themselves tiled, diagonal and paired; the empirical routes
against each other; the empirical NTK converging to the limit in width. neural-tangents' own
kernels for a grid of CNNs, CNTKs, Myrtle-5 and a ResNet are in `test_nt_live_layers.py` (`make test-nt`).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from ntk_lab import layers as L
from tests.conftest import rel_err


def _pad_same(n, k, s):
  out = -(-n // s)
  total = max((out - 1) * s + k - n, 0)
  return total // 2, out


def _explicit_conv(x, W, strides, padding):
  """Σ over the filter of W[δ]·x[p·s + δ − pad], loop by loop (zeros or wrap outside)."""
  n, h, w, _ = x.shape
  kh, kw = W.shape[:2]
  if padding == "VALID":
    (ph, oh), (pw, ow) = (0, (h - kh) // strides[0] + 1), (0, (w - kw) // strides[1] + 1)
  else:
    (ph, oh), (pw, ow) = _pad_same(h, kh, strides[0]), _pad_same(w, kw, strides[1])
  out = np.zeros((n, oh, ow, W.shape[-1]))
  x, W = np.asarray(x), np.asarray(W)
  for i, j, a, b in itertools.product(range(oh), range(ow), range(kh), range(kw)):
    r, c = i * strides[0] + a - ph, j * strides[1] + b - pw
    if padding == "CIRCULAR":
      r, c = r % h, c % w
    elif not (0 <= r < h and 0 <= c < w):
      continue
    out[:, i, j] += x[:, r, c] @ W[a, b]
  return out


@pytest.mark.parametrize(
  "padding,strides,filt", [("VALID", (1, 1), (3, 2)), ("SAME", (2, 1), (3, 3)), ("CIRCULAR", (1, 2), (2, 3))]
)
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_conv_apply_is_the_sum_over_patches(padding, strides, filt, parameterization):
  layer = L.Conv(3, filt, strides, padding, W_std=1.3, b_std=0.2, parameterization=parameterization)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 6, 2))
  params = layer.init(jax.random.PRNGKey(0), (5, 6, 2))
  assert params["W"].shape == (*filt, 2, 3)
  fan_in = 2 * filt[0] * filt[1]
  scale, beta = (1.3 / np.sqrt(fan_in), 0.2) if parameterization == "ntk" else (1.0, 1.0)
  want = scale * _explicit_conv(x, params["W"], strides, padding) + beta * np.asarray(params["b"])
  got = layer.apply(params, x)
  assert got.shape == want.shape == (2, *layer.output_shape((5, 6, 2))[:2], 3)
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
  "strides,padding,filt,shape",
  [
    ((1, 1), "SAME", (3, 3), (3, 6, 5, 2)),
    ((2, 1), "VALID", (3, 2), (3, 7, 5, 2)),
    ((2,), "SAME", (3,), (2, 9, 2)),
  ],
)
def test_conv_derivatives_are_those_of_the_lax_convolution(strides, padding, filt, shape):
  """`Conv`'s convolution takes its derivatives from a product of patches on the CPU (fast inside
  loops): gradients, JVPs and second derivatives equal those of `lax.conv_general_dilated`,
  with respect to inputs and filters, in and out of a `lax.scan`."""
  from ntk_lab.layers import conv as C

  x = jax.random.normal(jax.random.PRNGKey(1), shape)
  W = jax.random.normal(jax.random.PRNGKey(2), (*filt, shape[-1], 4))
  ours = lambda x, W: jnp.sum(jnp.sin(C._convolve(x, W, strides, padding)))
  lax_ = lambda x, W: jnp.sum(jnp.sin(C._conv_lax(x, W, strides, padding)))
  np.testing.assert_allclose(
    C._conv_patches(x, W, strides, padding), C._conv_lax(x, W, strides, padding), rtol=1e-12, atol=1e-12
  )
  for a, b in zip(jax.grad(ours, (0, 1))(x, W), jax.grad(lax_, (0, 1))(x, W), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
  for argnums in (0, 1):  # only one argument differentiated: the other's tangent is a symbolic zero
    np.testing.assert_allclose(
      jax.grad(ours, argnums)(x, W), jax.grad(lax_, argnums)(x, W), rtol=1e-12, atol=1e-12
    )
  tangents = (0.3 * x, 0.7 * W)
  np.testing.assert_allclose(
    jax.jvp(ours, (x, W), tangents)[1], jax.jvp(lax_, (x, W), tangents)[1], rtol=1e-12, atol=1e-12
  )
  hvp = lambda f: jax.jvp(jax.grad(f, 1), (x, W), tangents)[1]
  np.testing.assert_allclose(hvp(ours), hvp(lax_), rtol=1e-10, atol=1e-12)
  in_scan = lambda f: jax.lax.scan(lambda c, _: (c + jax.grad(f, 1)(x, W), None), jnp.zeros_like(W), None, 2)[
    0
  ]
  np.testing.assert_allclose(in_scan(ours), 2 * jax.grad(lax_, 1)(x, W), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["VALID", "SAME", "CIRCULAR"])
def test_avg_pool_apply_is_the_window_mean(padding):
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 4, 3))
  pool = L.AvgPool((2, 3), (2, 1), padding)
  ones = np.zeros((3, 3, 3, 3))  # per-channel identity "filter" of window 2×3: the window sum
  for c in range(3):
    ones[:2, :3, c, c] = 1.0
  want = _explicit_conv(x, ones[:2, :3], (2, 1), padding) / 6
  np.testing.assert_allclose(pool.apply((), x), want, rtol=1e-12, atol=1e-12)
  assert pool.output_shape((5, 4, 3)) == want.shape[1:]


def test_flatten_global_pool_and_layer_norm_apply():
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 4, 5))
  assert L.Flatten().apply((), x).shape == (2, 60)
  np.testing.assert_allclose(L.GlobalAvgPool().apply((), x), np.asarray(x).mean(axis=(1, 2)), rtol=1e-13)
  y = np.asarray(L.LayerNorm().apply((), x))
  np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-13)
  np.testing.assert_allclose((y**2).mean(-1), 1.0, rtol=1e-10)


# One hidden layer: the hidden units are exactly Gaussian at any width, so the mean over draws of
# f(x) f(x') and of the empirical NTK is the infinite-width kernel itself.
ONE_HIDDEN = {
  "conv-relu-flatten": L.serial(
    L.Conv(64, (3, 3), padding="SAME", b_std=0.1), L.Relu(), L.Flatten(), L.Dense(1)
  ),
  "conv-erf-avgpool-gap": L.serial(
    L.Conv(64, (2, 2), (2, 1), "CIRCULAR", W_std=1.5, b_std=0.2),
    L.Erf(),
    L.AvgPool((2, 2), padding="SAME"),
    L.GlobalAvgPool(),
    L.Dense(1, W_std=1.2, b_std=0.1),
  ),
  "conv1d-standard": L.serial(
    L.Conv(64, (3,), parameterization="standard", b_std=0.3),
    L.Relu(),
    L.GlobalAvgPool(),
    L.Dense(1, parameterization="standard"),
  ),
}


@pytest.mark.parametrize("name", list(ONE_HIDDEN))
def test_analytic_kernel_is_the_monte_carlo_mean(name):
  net = ONE_HIDDEN[name]
  shape = (5, 3) if "1d" in name else (4, 5, 2)
  x = jax.random.normal(jax.random.PRNGKey(2), (3, *shape))
  k = nl.analytic_kernel(net, x)
  mc = nl.monte_carlo_kernel(net, jax.random.PRNGKey(3), x, n_samples=96, samples_per_step=32)
  for field in ("nngp", "ntk"):
    z = np.abs(np.asarray(getattr(mc, field) - getattr(k, field))) / np.asarray(
      getattr(mc, field + "_stderr")
    )
    assert z.max() < 5.0, (field, z.max())


CNTK = L.serial(
  L.Conv(16, (3, 3), padding="SAME", b_std=0.1),
  L.Relu(),
  L.Conv(16, (3, 3), (2, 2), "CIRCULAR"),
  L.LayerNorm(),
  L.Gelu(),
  L.AvgPool((2, 2), padding="SAME"),
  L.Conv(16, (2, 2)),
  L.Relu(),
  L.GlobalAvgPool(),
  L.Dense(2, b_std=0.1),
)


def test_tiled_diagonal_and_paired_kernels_agree():
  x = jax.random.normal(jax.random.PRNGKey(4), (5, 6, 6, 2))
  whole = nl.analytic_kernel(CNTK, x)
  tiled = nl.analytic_kernel(CNTK, x, tile_size=2)
  for field in ("nngp", "ntk"):
    assert rel_err(getattr(tiled, field), getattr(whole, field)) <= 1e-12
  diag = nl.analytic_kernel(CNTK, x, diagonal=True)
  np.testing.assert_allclose(diag.ntk, np.diag(whole.ntk), rtol=1e-12)
  pairs = nl.analytic_kernel(CNTK, x[:3], x[2:5], diagonal=True)
  np.testing.assert_allclose(pairs.nngp, np.diag(nl.analytic_kernel(CNTK, x[:3], x[2:5]).nngp), rtol=1e-12)
  assert np.all(np.linalg.eigvalsh(np.asarray(whole.ntk)) > 0)


def test_empirical_routes_agree_and_structured_names_the_conv_layer():
  x1 = jax.random.normal(jax.random.PRNGKey(5), (3, 6, 6, 2))
  x2 = jax.random.normal(jax.random.PRNGKey(6), (2, 6, 6, 2))
  params = CNTK.init(jax.random.PRNGKey(0), (6, 6, 2))
  ref = nl.empirical_ntk(CNTK, params, x1, x2, method="jacobian", trace_outputs=False)
  for method in ("ntvp", "auto"):
    assert rel_err(nl.empirical_ntk(CNTK, params, x1, x2, method=method, trace_outputs=False), ref) <= 1e-10
  with pytest.raises(ValueError, match=r"Conv"):
    nl.empirical_ntk(CNTK, params, x1, x2, method="structured")


@pytest.mark.slow
def test_empirical_ntk_converges_to_the_limit_in_width():
  def net(width):
    return L.serial(
      L.Conv(width, (3, 3), padding="SAME", b_std=0.1),
      L.Relu(),
      L.Conv(width, (3, 3)),
      L.Relu(),
      L.GlobalAvgPool(),
      L.Dense(1),
    )

  x = jax.random.normal(jax.random.PRNGKey(7), (3, 5, 5, 2))
  limit = nl.analytic_kernel(net(1), x).ntk
  errors = []
  for width in (8, 64, 512):
    params = net(width).init(jax.random.PRNGKey(8), (5, 5, 2))
    errors.append(rel_err(nl.empirical_ntk(net(width), params, x), limit))
  assert errors[2] < errors[0] / 4 and errors[2] < 0.1, errors


def test_kernels_under_jit_and_grad():
  net = ONE_HIDDEN["conv-erf-avgpool-gap"]
  x = jax.random.normal(jax.random.PRNGKey(9), (3, 4, 5, 2))
  k = nl.analytic_kernel(net, x)
  jitted = jax.jit(lambda x: nl.analytic_kernel(net, x).ntk)(x)
  np.testing.assert_allclose(jitted, k.ntk, rtol=1e-12)
  f = lambda s: nl.analytic_kernel(net, x, W_std=s).ntk.sum()
  g, h = jax.grad(f)(1.3), 1e-5
  assert abs(g - (f(1.3 + h) - f(1.3 - h)) / (2 * h)) <= 1e-6 * abs(g)


@pytest.mark.slow
def test_training_a_cnn_through_the_layer_model():
  """optax training and gradient flow of a CNN, with the NTK observable, and its linearisation:
  a wide CNN trained a short time stays close to its linearised model (Lee et al. 2019)."""
  import optax

  net = L.serial(L.Conv(256, (3, 3), padding="SAME", b_std=0.1), L.Relu(), L.GlobalAvgPool(), L.Dense(1))
  x = jax.random.normal(jax.random.PRNGKey(10), (6, 4, 4, 1))
  y = jnp.sin(x.sum(axis=(1, 2, 3)))[:, None]
  params = net.init(jax.random.PRNGKey(0), (4, 4, 1))
  lin = nl.linearize(net, params)
  np.testing.assert_allclose(lin.apply(params, x), net.apply(params, x), rtol=1e-12)
  run = nl.train(net, params, x, y, optimizer=optax.sgd(0.5), steps=60, every=30)
  first, last = (float(jnp.sum((run.train_outputs[i] - y) ** 2)) for i in (0, -1))
  assert last < 0.5 * first
  flow = nl.gradient_flow(net, params, x, y, times=jnp.array([0.0, 2.0]))
  flow_lin = nl.gradient_flow(lin, params, x, y, times=jnp.array([0.0, 2.0]))
  assert rel_err(flow.train_outputs[-1], flow_lin.train_outputs[-1]) < 0.05


@pytest.mark.parametrize(
  "build,match",
  [
    (lambda: L.Conv(0, (3, 3)), r"out_chan"),
    (lambda: L.Conv(4, (3, 0)), r"filter_shape"),
    (lambda: L.Conv(4, (3, 3), strides=(1,)), r"strides: needs 2 entries"),
    (lambda: L.Conv(4, (3, 3), padding="REFLECT"), r"padding"),
    (lambda: L.AvgPool((2, 2), padding="full"), r"padding"),
    (lambda: L.LayerNorm(axis=1), r"axis"),
    (lambda: L.LayerNorm(eps=0.0), r"eps"),
  ],
)
def test_bad_arguments_name_themselves(build, match):
  with pytest.raises((ValueError, TypeError), match=match):
    build()


def test_networks_that_cannot_take_the_inputs_are_refused_before_running():
  x = jnp.ones((2, 4, 4, 1))
  with pytest.raises(ValueError, match=r"spatial axes.*Flatten\(\) or GlobalAvgPool\(\)"):
    nl.analytic_kernel(L.serial(L.Conv(4, (3, 3)), L.Relu()), x)
  with pytest.raises(ValueError, match=r"does not fit"):
    nl.analytic_kernel(L.serial(L.Conv(4, (5, 5)), L.Flatten(), L.Dense(1)), x)
  with pytest.raises(ValueError, match=r"Gaussian"):
    nl.analytic_kernel(L.serial(L.Conv(4, (3, 3)), L.Relu(), L.LayerNorm(), L.Flatten(), L.Dense(1)), x)
  with pytest.raises(ValueError, match=r"needs .* GB"):
    big = L.serial(L.Conv(4, (3, 3), padding="SAME"), L.Relu(), L.GlobalAvgPool(), L.Dense(1))
    nl.analytic_kernel(big, jnp.ones((300_000, 2, 2, 1)))
