"""Live cross-checks of networks of `nl.layers` against neural-tangents (marked `nt`; run with
`make test-nt`): residual blocks, parallel branches and convolutional networks (CNN, CNTK, Myrtle,
ResNet, 1-D convolutions, LayerNorm), NT's `kernel_fn` and `empirical_ntk_fn` on the same weights.

A file of its own, apart from the MLP grid of `test_nt_live.py`, so that `make test-nt` runs the
two files in two worker processes (`--dist loadfile`: each file's one batched call to NT's oracle
runs once, in the worker that runs the file).
"""

import json

import jax
import numpy as np
import pytest

import ntk_lab as nl
from ntk_lab import layers as L
from tests.conftest import rel_err
from tests.test_nt_live import NT_PYTHON, ask_oracle

pytestmark = pytest.mark.nt


# ------------------------------------------------------------------ networks of layers (nl.layers)
def _dense(n, W_std, b_std, kind="ntk"):
  return (L.Dense(n, W_std, b_std, kind), ["dense", n, W_std, b_std, kind])


def _act(name, **kw):
  layer = L.Activation(nl.Activation(name, **kw))
  return (layer, ["act", {"activation": name, **kw}])


def _serial(*items):
  return (L.serial(*(i[0] for i in items)), ["serial", [i[1] for i in items]])


def _parallel(*items):
  return (L.parallel(*(i[0] for i in items)), ["parallel", [i[1] for i in items]])


FANOUT2 = (L.FanOut(2), ["fanout", 2])
FANINSUM = (L.FanInSum(), ["faninsum"])
IDENTITY = (L.Identity(), ["identity"])


def _residual(act, kind, width=48):
  block = _serial(_dense(width, 1.4, 0.1, kind), _act(act), _dense(width, 1.2, 0.05, kind))
  return _serial(
    _dense(width, 1.5, 0.2, kind),
    FANOUT2,
    _parallel(block, IDENTITY),
    FANINSUM,
    _act(act),
    _dense(2, 1.1, 0.1, kind),
  )


NETWORKS = {
  "residual-relu-ntk": _residual("relu", "ntk"),
  "residual-erf-standard": _residual("erf", "standard"),
  "two-blocks-gelu": _serial(
    _dense(32, 1.3, 0.1),
    FANOUT2,
    _parallel(_serial(_act("gelu"), _dense(32, 1.2, None)), IDENTITY),
    FANINSUM,
    FANOUT2,
    _parallel(_serial(_act("abs"), _dense(32, 0.9, 0.1)), IDENTITY),
    FANINSUM,
    _act("sin", params=(0.3,)),
    _dense(1, 1.0, 0.0),
  ),
  "parallel-dense-branches": _serial(
    FANOUT2,
    _parallel(_dense(24, 1.0, 0.1), _dense(24, 2.0, None)),
    FANINSUM,
    _act("relu"),
    _dense(1, 1.0, 0.2),
  ),
}


def _ask_nt(networks, seed, timeout):
  """NT's kernel_fn and empirical_ntk_fn (impl 1–3) for each (net, tree, in_shape), in one run
  of the oracle: (answers, {name: (case index, net, params, x1, x2)})."""
  if not NT_PYTHON.exists():
    pytest.fail(f"{NT_PYTHON} is missing: run `make reference` (or `make test-nt`, which does).")
  request, local = {"n_cases": len(networks)}, {}
  for i, (name, ((net, tree), shape)) in enumerate(networks.items()):
    keys = jax.random.split(jax.random.PRNGKey(seed + i), 3)
    n1, n2 = (6, 5) if len(shape) == 1 else (4, 3)  # fewer images: NT's conv kernels are slow
    x1, x2 = jax.random.normal(keys[0], (n1, *shape)), jax.random.normal(keys[1], (n2, *shape))
    params = net.init(keys[2], shape)
    leaves = jax.tree.leaves(params)
    p = f"c{i}_"
    request.update(
      {p + "spec": json.dumps({"network": tree}), p + "modes": "[]", p + "n_leaves": len(leaves)}
    )
    request.update({p + "x1": np.asarray(x1), p + "x2": np.asarray(x2)})
    request.update({f"{p}leaf{j}": np.asarray(v) for j, v in enumerate(leaves)})
    local[name] = (i, net, params, x1, x2)
  return ask_oracle(request, timeout=timeout), local


@pytest.fixture(scope="module")
def nt_network_answers():
  return _ask_nt({name: (item, (4,)) for name, item in NETWORKS.items()}, 900, timeout=900)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_networks_of_layers_match_nt(nt_network_answers, name):
  """Residual blocks and parallel branches: NT's kernel_fn (closed forms, ≤ 1e-10) and its
  empirical_ntk_fn on the same weights (all three implementations) against every route."""
  answers, local = nt_network_answers
  i, net, params, x1, x2 = local[name]
  p = f"c{i}_"
  k = nl.analytic_kernel(net, x1, x2)
  for field in ("nngp", "ntk"):
    assert rel_err(getattr(k, field), answers[p + field]) <= 1e-10, field
  for method in ("structured", "jacobian", "ntvp"):
    ours = nl.empirical_ntk(net, params, x1, x2, method=method)
    for impl in (1, 2, 3):
      assert rel_err(ours, answers[p + f"ntk_trace_{impl}"]) <= 1e-10, (method, impl)


# ------------------------------------------------ convolutional networks (CNN, CNTK, Myrtle, ResNet)
def _conv(n, filt=(3, 3), strides=None, padding="SAME", W_std=1.4, b_std=0.1, kind="ntk"):
  layer = L.Conv(n, filt, strides, padding, W_std, b_std, kind)
  return (layer, ["conv", n, list(filt), strides and list(strides), padding, W_std, b_std, kind])


def _avgpool(window, strides=None, padding="VALID"):
  return (L.AvgPool(window, strides, padding), ["avgpool", list(window), strides and list(strides), padding])


GAP = (L.GlobalAvgPool(), ["gap"])
FLATTEN = (L.Flatten(), ["flatten"])
LAYERNORM = (L.LayerNorm(eps=1e-12), ["layernorm", 1e-12])


def _cntk(depth, act="relu", width=6, **conv):
  body = [item for _ in range(depth) for item in (_conv(width, **conv), _act(act))]
  return _serial(*body, GAP, _dense(1, 1.0, 0.05))


def _myrtle5(width=6):
  cr = lambda: (_conv(width), _act("relu"))
  pool = _avgpool((2, 2), (2, 2))
  return _serial(*cr(), *cr(), *cr(), pool, *cr(), pool, *cr(), pool, FLATTEN, _dense(1, 1.0, 0.0))


def _conv_residual(width=6):
  block = _serial(_conv(width, W_std=1.3), _act("relu"), _conv(width, W_std=1.1, b_std=0.05))
  return _serial(_conv(width), FANOUT2, _parallel(block, IDENTITY), FANINSUM, _act("relu"))


# name: ((net, tree), per-point input shape). Small sizes: NT's CPU kernels are the slow side.
CONV_NETWORKS = {
  "cnn-flatten-relu": (
    _serial(_conv(6, padding="VALID"), _act("relu"), _conv(6), _act("erf"), FLATTEN, _dense(2, 1.0, 0.1)),
    (5, 5, 2),
  ),
  "cnn-flatten-standard": (
    _serial(_conv(6, kind="standard"), _act("relu"), FLATTEN, _dense(1, 1.2, 0.1, "standard")),
    (4, 4, 2),
  ),
  "cntk-gap-depth3": (_cntk(3), (5, 5, 2)),
  "cntk-gap-depth11-circular": (_cntk(11, padding="CIRCULAR"), (4, 4, 1)),
  "cntk-gap-strided": (_cntk(2, act="gelu", strides=(2, 1), padding="VALID"), (9, 8, 2)),
  "myrtle5": (_myrtle5(), (8, 8, 1)),
  "resnet-two-blocks": (_serial(_conv_residual(), _conv_residual(), GAP, _dense(1, 1.0, 0.0)), (4, 4, 2)),
  "conv1d-sequence": (
    _serial(
      _conv(6, (3,), padding="SAME"),
      _act("erf"),
      _conv(6, (2,), strides=(2,), padding="VALID"),
      _act("relu"),
      GAP,
      _dense(1, 1.0, 0.1),
    ),
    (7, 2),
  ),
  "layernorm-after-conv": (
    _serial(
      _conv(6),
      LAYERNORM,
      _act("relu"),
      _avgpool((2, 2), padding="SAME"),
      _conv(6, padding="CIRCULAR"),
      _act("relu"),
      FLATTEN,
      _dense(1, 1.0, 0.1),
    ),
    (4, 4, 2),
  ),
}


@pytest.fixture(scope="module")
def nt_conv_answers():
  return _ask_nt(CONV_NETWORKS, 950, timeout=1200)


@pytest.mark.parametrize("name", list(CONV_NETWORKS))
def test_convolutional_networks_match_nt(nt_conv_answers, name):
  """CNNs, CNTKs with global average pooling (depth 3 and 11), Myrtle-5, a two-block ResNet, 1-D
  convolutions, LayerNorm after a convolution, strided/SAME/CIRCULAR: NT's kernel_fn (closed
  forms, ≤ 1e-10; gelu by quadrature, ≤ 1e-6) and its empirical_ntk_fn on the same weights (all
  three implementations) against our analytic kernel, full and diagonal, and every route."""
  answers, local = nt_conv_answers
  i, net, params, x1, x2 = local[name]
  p = f"c{i}_"
  tol = 1e-6 if "gelu" in name else 1e-10
  k = nl.analytic_kernel(net, x1, x2)
  for field in ("nngp", "ntk"):
    assert rel_err(getattr(k, field), answers[p + field]) <= tol, field
  kd = nl.analytic_kernel(net, x1[:3], x2, diagonal=True)
  assert rel_err(kd.ntk, np.diag(answers[p + "ntk"][:3])) <= tol
  for method in ("jacobian", "ntvp"):  # (auto takes one of these for a CNN)
    ours = nl.empirical_ntk(net, params, x1, x2, method=method)
    for impl in (1, 2, 3):
      assert rel_err(ours, answers[p + f"ntk_trace_{impl}"]) <= 1e-10, (method, impl)
