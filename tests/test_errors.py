"""Every argument check: a clear ValueError/TypeError naming the argument, plain and under jit."""

import jax
import jax.numpy as jnp
import pytest

import ntk_lab as nl
from tests.conftest import inputs


@pytest.mark.parametrize(
  "kwargs,exc,match",
  [
    (dict(hidden=(8, 0)), ValueError, r"hidden\[1\]: must be a positive integer, got 0"),
    (dict(hidden=(8, -3)), ValueError, r"hidden\[1\]"),
    (dict(hidden=(8.5,)), ValueError, r"hidden\[0\]"),
    (dict(hidden=512), TypeError, r"hidden: expected a sequence"),
    (dict(hidden=(8,), out_dim=0), ValueError, r"out_dim"),
    (dict(hidden=(8,), activation="rleu"), ValueError, r"unknown name 'rleu'.*did you mean 'relu'"),
    (dict(hidden=(8,), activation=3), TypeError, r"activation"),
    (dict(hidden=(8,), parametrization="NTK"), ValueError, r"parametrization: must be one of"),
    (dict(hidden=(8,), W_std=-1.0), ValueError, r"W_std: must be a finite number ≥ 0"),
    (dict(hidden=(8,), W_std=(1.0,)), ValueError, r"W_std: needs one value per layer"),
    (dict(hidden=(8,), b_std=-1.0), ValueError, r"b_std"),
    (dict(hidden=(8,), b_std=float("nan")), ValueError, r"b_std"),
    (dict(hidden=(8,), trainable=(True,)), ValueError, r"trainable: needs one bool per layer"),
    (dict(hidden=(8,), trainable=(False, False)), ValueError, r"no layer is trainable"),
    (dict(hidden=(8,), trainable="first"), ValueError, r"trainable"),
    (dict(hidden=(7,), readout_init="symmetric"), ValueError, r"even width"),
    (dict(hidden=(), readout_init="symmetric"), ValueError, r"even width"),
    (dict(hidden=(8,), readout_init="uniform"), ValueError, r"readout_init"),
  ],
)
def test_bad_spec(kwargs, exc, match):
  hidden = kwargs.pop("hidden")
  with pytest.raises(exc, match=match):
    nl.MLP(hidden, **kwargs)


NET = nl.MLP((6,), out_dim=2, b_std=0.1)
PARAMS = NET.init(jax.random.PRNGKey(0), 3)


def bad_params():
  other = nl.MLP((5,), out_dim=2, b_std=0.1).init(jax.random.PRNGKey(0), 3)
  nobias = nl.MLP((6,), out_dim=2, b_std=None).init(jax.random.PRNGKey(0), 3)
  return [
    (other, r"params\[0\]\['W'\]: has 5 columns"),
    (nobias, r"params\[0\]: expected a dict with keys"),
    (PARAMS[:1], r"expected a list of 2 layer dicts"),
  ]


@pytest.mark.parametrize("jit", [False, True])
def test_apply_checks(jit):
  call = lambda p, x: NET.apply(p, x)
  call = jax.jit(call) if jit else call
  with pytest.raises(
    ValueError, match=r"x: expected rank 2 \(N, in_dim\), got shape \(3,\)\. Use x\[None, :\]"
  ):
    call(PARAMS, jnp.ones(3))
  with pytest.raises(ValueError, match=r"x: has 4 features but the params were built for in_dim=3"):
    call(PARAMS, jnp.ones((2, 4)))
  for params, match in bad_params():
    with pytest.raises(ValueError, match=match):
      call(params, jnp.ones((2, 3)))


@pytest.mark.parametrize("jit", [False, True])
def test_empirical_ntk_shape_checks(jit):
  def call(p, x1, x2=None, **kw):
    f = lambda p, x1, x2: nl.empirical_ntk(NET, p, x1, x2, **kw)
    return (jax.jit(f) if jit else f)(p, x1, x2)

  with pytest.raises(ValueError, match=r"x1: expected rank 2"):
    call(PARAMS, jnp.ones((2, 3, 1)))
  with pytest.raises(ValueError, match=r"x2: has 5 features"):
    call(PARAMS, jnp.ones((2, 3)), jnp.ones((2, 5)))
  with pytest.raises(ValueError, match=r"x1: needs at least one point"):
    call(PARAMS, jnp.ones((0, 3)))
  with pytest.raises(ValueError, match=r"method: must be one of"):
    call(PARAMS, jnp.ones((2, 3)), method="jvp")
  with pytest.raises(ValueError, match=r"tile_size: must be a positive integer"):
    call(PARAMS, jnp.ones((2, 3)), tile_size=0)
  with pytest.raises(ValueError, match=r"memory_budget"):
    call(PARAMS, jnp.ones((2, 3)), memory_budget=-1)
  for params, match in bad_params():
    with pytest.raises(ValueError, match=match):
      call(params, jnp.ones((2, 3)))


def test_structured_needs_a_network_and_apply_fn_must_return_rank_2():
  with pytest.raises(
    ValueError, match=r"method='structured': it is not a network of ntk_lab layers.*Use method='jacobian'"
  ):
    nl.empirical_ntk(NET.apply, PARAMS, inputs(2, 3), method="structured")
  with pytest.raises(ValueError, match=r"must return shape \(N, O\)"):
    nl.empirical_ntk(lambda p, x: NET.apply(p, x)[:, 0], PARAMS, inputs(2, 3))
  with pytest.raises(TypeError, match=r"model: expected a network of ntk_lab layers"):
    nl.empirical_ntk("mlp", PARAMS, inputs(2, 3))
  with pytest.raises(ValueError, match=r"x2: per-point shape"):
    nl.empirical_ntk(NET.apply, PARAMS, inputs(2, 3), inputs(2, 4))
  with pytest.raises(ValueError, match=r"per_layer=True: params must be a list"):
    nl.empirical_ntk(lambda w, x: x @ w, jnp.ones((3, 1)), inputs(2, 3), per_layer=True)


@pytest.mark.parametrize("where", ["x1", "x2"])
def test_non_finite_inputs_plain_call(where):
  bad = inputs(3, 3).at[1, 2].set(jnp.nan)
  args = (bad, None) if where == "x1" else (inputs(3, 3), bad)
  with pytest.raises(
    ValueError, match=rf"{where}: contains NaN or Inf \(1 entries, first at index \(1, 2\)\)"
  ):
    nl.empirical_ntk(NET, PARAMS, *args)
  with pytest.raises(ValueError, match=rf"{where}: contains NaN or Inf"):
    nl.empirical_ntk(NET.apply, PARAMS, *args, method="jacobian")


def test_non_finite_inputs_under_jit_fail_at_run_time():
  f = jax.jit(lambda x: nl.empirical_ntk(NET, PARAMS, x))
  f(inputs(3, 3)).block_until_ready()  # finite: fine
  with pytest.raises(Exception, match=r"x1: contains NaN or Inf"):
    f(inputs(3, 3).at[0, 0].set(jnp.inf)).block_until_ready()


def test_run_time_checks_under_vmap_are_one_callback_that_checks_every_element():
  """A value check on traced values under vmap: one host callback whatever the batch (JAX's own
  rule repeats the program per element, so compiling a vmap over 2,000 seeds took minutes), and
  it still finds the one bad element."""
  net = nl.MLP((8,), b_std=0.1)
  x = jnp.ones((2, 3))
  fn = lambda p: nl.empirical_nngp(net, p, x)

  def callbacks(batch):
    params = jax.vmap(lambda k: net.init(k, 3))(jax.random.split(jax.random.PRNGKey(0), batch))
    return jax.jit(jax.vmap(fn)).lower(params).as_text().count("callback")

  assert callbacks(2) == callbacks(40) > 0
  params = jax.vmap(lambda k: net.init(k, 3))(jax.random.split(jax.random.PRNGKey(0), 6))
  params[0]["W"] = params[0]["W"].at[4, 0, 0].set(jnp.nan)
  with pytest.raises((ValueError, jax.errors.JaxRuntimeError), match=r"params\[0\]\['W'\]: contains NaN"):
    jax.block_until_ready(jax.jit(jax.vmap(fn))(params))
