"""Equinox and Flax NNX models through ntk_lab (`ntk_lab.interop`).

Independent routes: the same network written as an `nl.MLP` with the weights copied in (kernels,
linearization and training trajectories), jacobian against ntvp, and for the CNNs a hand-written
jax.numpy convolution (shifted slices, not `lax.conv`) with the weights copied in.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ntk_lab as nl
from ntk_lab.interop import from_equinox, from_nnx
from tests.conftest import rel_err

KEY = jax.random.PRNGKey(0)
D, WIDTH, OUT, N = 3, 8, 2, 5
X = jax.random.normal(jax.random.PRNGKey(1), (N, D))
TIMES = jnp.linspace(0.0, 0.5, 3)
OBSERVE = ("loss", "kernel_drift", "weight_change", "ntk_eigs", "lin_gap")


def _nnx():
  return pytest.importorskip("flax.nnx", reason="flax is not installed: pip install 'ntk_lab[flax]'")


def _mlp_reference(activation="relu"):
  """nl.MLP in standard parametrization: f = ρ(ρ(x W1 + b1) W2 + b2) W3 + b3, as both libraries."""
  return nl.MLP((WIDTH, WIDTH), out_dim=OUT, activation=activation, parametrization="standard", b_std=0.1)


def _equinox_mlp(activation=jax.nn.relu):
  net = eqx.nn.MLP(D, OUT, width_size=WIDTH, depth=2, activation=activation, key=KEY)
  copied = [{"W": l.weight.T, "b": l.bias} for l in net.layers]
  return net, copied


def _nnx_mlp():
  nnx = _nnx()

  class MLP(nnx.Module):
    def __init__(self, rngs):
      kw = dict(param_dtype=jnp.float64, rngs=rngs, bias_init=nnx.initializers.normal(0.1))
      self.l1, self.l2, self.l3 = (
        nnx.Linear(D, WIDTH, **kw),
        nnx.Linear(WIDTH, WIDTH, **kw),
        nnx.Linear(WIDTH, OUT, **kw),
      )

    def __call__(self, x):
      return self.l3(nnx.relu(self.l2(nnx.relu(self.l1(x)))))

  net = MLP(nnx.Rngs(0))
  copied = [{"W": l.kernel[...], "b": l.bias[...]} for l in (net.l1, net.l2, net.l3)]
  return net, copied


def _mlp(kind):
  net, copied = _equinox_mlp() if kind == "equinox" else _nnx_mlp()
  apply_fn, params = (from_equinox if kind == "equinox" else from_nnx)(net)
  return apply_fn, params, copied


# ------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("kind", ["equinox", "nnx"])
def test_mlp_kernels_equal_the_same_network_as_nl_mlp(kind):
  apply_fn, params, copied = _mlp(kind)
  ref = _mlp_reference()
  x2 = X[:3] + 0.5
  np.testing.assert_allclose(apply_fn(params, X), ref.apply(copied, X), rtol=1e-12, atol=1e-12)
  want = nl.empirical_ntk(ref, copied, X, x2, method="structured", trace_outputs=False)
  for method in ("jacobian", "ntvp", "auto"):
    got = nl.empirical_ntk(apply_fn, params, X, x2, method=method, trace_outputs=False)
    assert rel_err(got, want) <= 1e-10, method
  traced = nl.empirical_ntk(apply_fn, params, X)  # symmetric x2=None, output-averaged
  assert rel_err(traced, nl.empirical_ntk(ref, copied, X)) <= 1e-10
  assert rel_err(nl.empirical_nngp(apply_fn, params, X, x2), nl.empirical_nngp(ref, copied, X, x2)) <= 1e-12


@pytest.mark.parametrize("kind", ["equinox", "nnx"])
def test_linearize_matches_the_mlp_linearization(kind):
  apply_fn, params, copied = _mlp(kind)
  ref = _mlp_reference()
  step = 0.05
  moved = jax.tree.map(lambda p: p + step * jnp.cos(jnp.arange(p.size).reshape(p.shape)), params)
  moved_ref = jax.tree.map(lambda p: p + step * jnp.cos(jnp.arange(p.size).reshape(p.shape)), copied)
  if kind == "equinox":  # eqx stores W as (out, in): move the transposed weights alike
    moved_ref = [
      {"W": l["W"] + step * jnp.cos(jnp.arange(l["W"].size).reshape(l["W"].T.shape)).T, "b": m["b"]}
      for l, m in zip(copied, moved_ref)
    ]
  lin, lin_ref = nl.linearize(apply_fn, params), nl.linearize(ref, copied)
  assert rel_err(lin.apply(moved, X), lin_ref.apply(moved_ref, X)) <= 1e-12
  assert rel_err(apply_fn(moved, X), ref.apply(moved_ref, X)) <= 1e-12  # the move itself agrees


# The trainers see a pytree either way; the NNX run (same code path, ~5 s) joins the slow suite.
@pytest.mark.parametrize("kind", ["equinox", pytest.param("nnx", marks=pytest.mark.slow)])
def test_training_and_observables_follow_the_mlp(kind):
  apply_fn, params, copied = _mlp(kind)
  ref = _mlp_reference()
  y = jnp.sin(X[:, :OUT])
  opts = dict(optimizer=optax.sgd(0.05), steps=4, every=2, observe=OBSERVE, time_per_step=0.05)
  run = nl.train(apply_fn, params, X, y, **opts)
  want = nl.train(ref, copied, X, y, **opts)
  assert rel_err(run.train_outputs, want.train_outputs) <= 1e-10
  for name in ("loss", "kernel_drift", "ntk_min_eig", "ntk_max_eig", "lin_gap"):
    assert rel_err(run.observables[name], want.observables[name]) <= 1e-8, name
  # weight_change: per leaf here (W and b of each layer), per layer's W for the MLP.
  weights = [i for i, (p, l) in enumerate(jax.tree_util.tree_flatten_with_path(params)[0]) if l.ndim == 2]
  assert rel_err(run.observables["weight_change"][:, weights], want.observables["weight_change"]) <= 1e-8
  # The trained module comes back with the trained weights.
  rebuilt = apply_fn.module(run.final_params)
  out = jax.vmap(rebuilt)(X) if kind == "equinox" else rebuilt(X)
  assert rel_err(out, run.train_outputs[-1]) <= 1e-12


@pytest.mark.slow
def test_gradient_flow_follows_the_mlp():
  # tanh: a smooth vector field, so tight solver tolerances are cheap (ReLU kinks are not)
  net, copied = _equinox_mlp(jnp.tanh)
  apply_fn, params = from_equinox(net)
  ref = _mlp_reference("tanh")
  y = jnp.sin(X[:, :OUT])
  opts = dict(times=TIMES, observe=("loss", "kernel_drift"), rtol=1e-9, atol=1e-11)
  run, want = nl.gradient_flow(apply_fn, params, X, y, **opts), nl.gradient_flow(ref, copied, X, y, **opts)
  assert rel_err(run.train_outputs, want.train_outputs) <= 1e-8
  assert rel_err(run.observables["kernel_drift"], want.observables["kernel_drift"]) <= 1e-6


class NTKDense(eqx.Module):
  """A dense layer in NTK parametrization: z = σ_w/√n · x W + σ_b · b, W, b ~ N(0, 1)."""

  W: jax.Array
  b: jax.Array
  w_std: float = 1.0
  b_std: float = 0.1

  def __call__(self, x):
    return self.w_std / jnp.sqrt(self.W.shape[0]) * (x @ self.W) + self.b_std * self.b


def test_ntk_parametrized_equinox_mlp_equals_nl_mlp():
  ref = nl.MLP((WIDTH,), out_dim=OUT, activation="erf", b_std=0.1)
  copied = ref.init(KEY, D)

  class Net(eqx.Module):
    layers: tuple
    steps: jax.Array  # an integer array: held fixed, not trained

    def __call__(self, x):
      return self.layers[1](jax.scipy.special.erf(self.layers[0](x)))

  net = Net(tuple(NTKDense(l["W"], l["b"]) for l in copied), jnp.arange(3))
  apply_fn, params = from_equinox(net)
  assert params.steps is None and params.layers[0].w_std is None  # statics held in apply_fn
  want = nl.empirical_ntk(ref, copied, X, trace_outputs=False)
  for method in ("jacobian", "ntvp"):
    assert rel_err(nl.empirical_ntk(apply_fn, params, X, method=method, trace_outputs=False), want) <= 1e-10


# ---------------------------------------------------------------------------------------- CNNs
def _conv_valid(x, w, b):
  """Hand-written VALID convolution, NHWC: out[n,i,j,o] = Σ_{a,c,k} x[n,i+a,j+c,k] w[a,c,k,o] + b[o]."""
  kh, kw = w.shape[:2]
  H, W = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  patches = jnp.stack([x[:, a : a + H, c : c + W, :] for a in range(kh) for c in range(kw)], axis=3)
  return jnp.einsum("nijpk,pko->nijo", patches, w.reshape(kh * kw, *w.shape[2:])) + b


def _cnn_by_hand(params, x_nhwc):
  h = jax.nn.relu(_conv_valid(x_nhwc, params["w1"], params["b1"]))
  h = jax.nn.relu(_conv_valid(h, params["w2"], params["b2"]))
  return jnp.mean(h, axis=(1, 2)) @ params["w3"] + params["b3"]  # global average pool + readout


IMAGES = jax.random.normal(jax.random.PRNGKey(2), (3, 5, 5, 2))  # NHWC


class EqxCNN(eqx.Module):
  conv1: eqx.nn.Conv2d
  conv2: eqx.nn.Conv2d
  head: eqx.nn.Linear

  def __init__(self, key):
    k1, k2, k3 = jax.random.split(key, 3)
    self.conv1 = eqx.nn.Conv2d(2, 3, 3, key=k1)
    self.conv2 = eqx.nn.Conv2d(3, 4, 3, key=k2)
    self.head = eqx.nn.Linear(4, OUT, key=k3)

  def __call__(self, x):  # one image, CHW
    h = jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x))))
    return self.head(jnp.mean(h, axis=(1, 2)))


def _check_cnn(apply_fn, params, x, by_hand, x_by_hand):
  np.testing.assert_allclose(apply_fn(params, x), _cnn_by_hand(by_hand, x_by_hand), rtol=1e-12, atol=1e-12)
  want = nl.empirical_ntk(_cnn_by_hand, by_hand, x_by_hand, method="jacobian", trace_outputs=False)
  jac = nl.empirical_ntk(apply_fn, params, x, method="jacobian", trace_outputs=False)
  ntvp = nl.empirical_ntk(apply_fn, params, x, method="ntvp", trace_outputs=False)
  assert rel_err(jac, ntvp) <= 1e-10
  assert rel_err(jac, want) <= 1e-10


def test_equinox_cnn_against_a_hand_written_cnn():
  net = EqxCNN(KEY)
  hwio = lambda conv: jnp.transpose(conv.weight, (2, 3, 1, 0))  # (O, C, kh, kw) -> (kh, kw, C, O)
  by_hand = {
    "w1": hwio(net.conv1),
    "b1": net.conv1.bias[:, 0, 0],
    "w2": hwio(net.conv2),
    "b2": net.conv2.bias[:, 0, 0],
    "w3": net.head.weight.T,
    "b3": net.head.bias,
  }
  apply_fn, params = from_equinox(net)
  _check_cnn(apply_fn, params, jnp.transpose(IMAGES, (0, 3, 1, 2)), by_hand, IMAGES)


def test_nnx_cnn_against_a_hand_written_cnn():
  nnx = _nnx()
  rngs = nnx.Rngs(0)
  kw = dict(padding="VALID", param_dtype=jnp.float64, bias_init=nnx.initializers.normal(0.1), rngs=rngs)

  class CNN(nnx.Module):
    def __init__(self):
      self.conv1 = nnx.Conv(2, 3, (3, 3), **kw)
      self.conv2 = nnx.Conv(3, 4, (3, 3), **kw)
      self.head = nnx.Linear(4, OUT, param_dtype=jnp.float64, rngs=rngs)

    def __call__(self, x):  # a batch, NHWC
      h = nnx.relu(self.conv2(nnx.relu(self.conv1(x))))
      return self.head(jnp.mean(h, axis=(1, 2)))

  net = CNN()
  by_hand = {
    "w1": net.conv1.kernel[...],
    "b1": net.conv1.bias[...],
    "w2": net.conv2.kernel[...],
    "b2": net.conv2.bias[...],
    "w3": net.head.kernel[...],
    "b3": net.head.bias[...],
  }
  apply_fn, params = from_nnx(net)
  _check_cnn(apply_fn, params, IMAGES, by_hand, IMAGES)


# ------------------------------------------------------------------- frozen, stateful, refused
def test_equinox_trainable_filter_freezes_leaves():
  net, copied = _equinox_mlp()
  spec = jax.tree.map(lambda _: False, net)
  spec = eqx.tree_at(lambda m: (m.layers[2].weight, m.layers[2].bias), spec, replace=(True, True))
  apply_fn, params = from_equinox(net, trainable=spec)
  readout = nl.MLP((WIDTH, WIDTH), out_dim=OUT, parametrization="standard", b_std=0.1, trainable="readout")
  assert rel_err(nl.empirical_ntk(apply_fn, params, X), nl.empirical_ntk(readout, copied, X)) <= 1e-10


def test_equinox_batchnorm_with_state_and_dropout():
  class Net(eqx.Module):
    lin: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout

    def __call__(self, x, state):
      h, state = self.bn(self.lin(x), state)
      return self.drop(h), state

  net, state = eqx.nn.make_with_state(Net)(
    eqx.nn.Linear(D, OUT, key=KEY), eqx.nn.BatchNorm(OUT, "batch", mode="batch"), eqx.nn.Dropout(0.2)
  )
  with pytest.raises(ValueError, match=r"BatchNorm at model\.bn.*state=state"):
    from_equinox(eqx.nn.inference_mode(net))
  with pytest.raises(ValueError, match=r"BatchNorm at model\.bn is in training mode"):
    from_equinox(net, state=state)
  with pytest.raises(ValueError, match=r"Dropout at model\.drop.*inference_mode"):
    from_equinox(eqx.tree_at(lambda m: m.bn.inference, net, True), state=state)
  apply_fn, params = from_equinox(eqx.nn.inference_mode(net), state=state)
  # In inference mode the running statistics (mean 0, var 1 at creation) give x ↦ γ·(lin(x))/√(1+ε) + β.
  lin = lambda p, x: (x @ p[0].T + p[1]) / jnp.sqrt(1 + net.bn.eps)
  by_hand = (net.lin.weight, net.lin.bias)
  want = nl.empirical_ntk(lin, by_hand, X, trace_outputs=False)
  got = nl.empirical_ntk(apply_fn, params, X, method="jacobian", trace_outputs=False)
  assert rel_err(got, nl.empirical_ntk(apply_fn, params, X, method="ntvp", trace_outputs=False)) <= 1e-10
  # BatchNorm's γ and β train too; compare the linear layer's part alone by freezing γ and β.
  frozen_bn = eqx.tree_at(
    lambda m: (m.bn.weight, m.bn.bias), jax.tree.map(eqx.is_inexact_array, net), (False, False)
  )
  apply_lin, params_lin = from_equinox(eqx.nn.inference_mode(net), state=state, trainable=frozen_bn)
  assert rel_err(nl.empirical_ntk(apply_lin, params_lin, X, trace_outputs=False), want) <= 1e-10


def test_equinox_refusals():
  with pytest.raises(TypeError, match="equinox.Module"):
    from_equinox(lambda p, x: x)
  net, _ = _equinox_mlp()
  with pytest.raises(ValueError, match="no trainable arrays"):
    from_equinox(net, trainable=lambda leaf: False)
  with pytest.raises(ValueError, match="state: the model has no stateful layers"):
    from_equinox(net, state=object())
  with pytest.warns(UserWarning, match=r"float32\).*astype\(jnp.float64\)"):
    from_equinox(jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, net))
  complex_net = eqx.tree_at(lambda m: m.layers[0].bias, net, net.layers[0].bias.astype(jnp.complex128))
  with pytest.raises(TypeError, match=r"model\.layers\[0\]\.bias has dtype complex128"):
    from_equinox(complex_net)
  apply_fn, params = from_equinox(eqx.nn.Linear(D, "scalar", key=KEY))
  assert apply_fn(params, X).shape == (N, 1)  # a scalar per point becomes O = 1
  batched_fn, params = from_equinox(eqx.nn.Linear(D, OUT, key=KEY), batched=True)
  with pytest.raises(ValueError, match="leading axis must be the batch"):
    batched_fn(params, X[0])


def test_nnx_refuses_training_mode_and_stateful_calls():
  nnx = _nnx()

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.lin = nnx.Linear(D, OUT, param_dtype=jnp.float64, rngs=rngs)
      self.bn = nnx.BatchNorm(OUT, param_dtype=jnp.float64, rngs=rngs)
      self.drop = nnx.Dropout(0.3, rngs=rngs)

    def __call__(self, x):
      return self.drop(self.bn(self.lin(x)))

  net = Net(nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"BatchNorm at model\.bn.*model\.eval\(\)"):
    from_nnx(net)
  net.bn.use_running_average = True
  with pytest.raises(ValueError, match=r"Dropout at model\.drop.*model\.eval\(\)"):
    from_nnx(net)
  net.eval()
  apply_fn, params = from_nnx(net)
  assert "bn" in params and "mean" not in params["bn"]  # BatchStat held fixed, scale/bias train
  jac = nl.empirical_ntk(apply_fn, params, X, method="jacobian", trace_outputs=False)
  assert rel_err(jac, nl.empirical_ntk(apply_fn, params, X, method="ntvp", trace_outputs=False)) <= 1e-10
  net.lin.kernel[...] = net.lin.kernel[...] + 1.0  # the adapter copied the model: no effect
  assert rel_err(nl.empirical_ntk(apply_fn, params, X, method="jacobian", trace_outputs=False), jac) == 0

  class Counter(nnx.Variable):
    pass

  class Sneaky(nnx.Module):  # a custom layer that writes a variable each call
    def __init__(self):
      self.lin = nnx.Linear(D, OUT, param_dtype=jnp.float64, rngs=nnx.Rngs(1))
      self.calls = Counter(jnp.zeros(()))

    def __call__(self, x):
      self.calls[...] = self.calls[...] + 1
      return self.lin(x)

  apply_fn, params = from_nnx(Sneaky())
  with pytest.raises(ValueError, match=r"changed its variable \['calls'\]"):
    nl.empirical_ntk(apply_fn, params, X)
  with pytest.raises(TypeError, match="flax.nnx.Module"):
    from_nnx(eqx.nn.Linear(D, OUT, key=KEY))
  with pytest.warns(UserWarning, match="param_dtype=jnp.float64"):
    from_nnx(nnx.Linear(D, OUT, rngs=nnx.Rngs(0)))


def test_nnx_trainable_filter_and_per_kind_split():
  nnx = _nnx()
  net, copied = _nnx_mlp()
  apply_fn, params = from_nnx(net, trainable=nnx.All(nnx.Param, nnx.PathContains("l3")))
  readout = nl.MLP((WIDTH, WIDTH), out_dim=OUT, parametrization="standard", b_std=0.1, trainable="readout")
  assert rel_err(nl.empirical_ntk(apply_fn, params, X), nl.empirical_ntk(readout, copied, X)) <= 1e-10
