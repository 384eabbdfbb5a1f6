"""Large-N behaviour: memory-aware blocking at scale (marked slow; CI runs them with `make test-slow`)."""

import resource

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from tests.conftest import rel_err


def test_features_are_computed_once_however_many_tiles(monkeypatch):
  calls = []
  original = nl.empirical._features

  def counting(net, params, x):
    calls.append(x.shape)
    return original(net, params, x)

  monkeypatch.setattr(nl.empirical, "_features", counting)
  net = nl.MLP((13, 7), activation="tanh", b_std=0.2)  # a spec no other test compiles
  params = net.init(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(jax.random.PRNGKey(1), (50, 3))
  nl.empirical_ntk(net, params, x, tile_size=8)  # 7 × 7 tiles, 28 computed
  assert calls == [(50, 3)]
  calls.clear()
  nl.empirical_ntk(net, params, x, x[:20], tile_size=8)
  assert calls == [(50, 3), (20, 3)]


@pytest.mark.slow
def test_blocked_structured_matches_unblocked_at_n_3000():
  net = nl.MLP((256, 256), out_dim=2, activation="erf", b_std=0.1)
  params = net.init(jax.random.PRNGKey(0), 10)
  x = jax.random.normal(jax.random.PRNGKey(1), (3000, 10))
  whole = nl.empirical_ntk(net, params, x, tile_size=3000)
  for bs in (512, 1000):
    assert rel_err(nl.empirical_ntk(net, params, x, tile_size=bs), whole) <= 1e-13


@pytest.mark.slow
def test_20000_point_ntk_of_width_1024_depth_3_fits_this_machine():
  """Issue 2's target: N = 20,000, width 1024, 3 hidden layers, float32, on 24 GiB."""
  n, d = 20_000, 32
  net = nl.MLP((1024, 1024, 1024), activation="relu", b_std=0.1)
  params = net.init(jax.random.PRNGKey(0), d, dtype=jnp.float32)
  x = jax.random.normal(jax.random.PRNGKey(1), (n, d), jnp.float32)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB
  K = nl.empirical_ntk(net, params, x)  # tile_size=None: tiles chosen from the memory budget
  K.block_until_ready()
  growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20 - before
  assert K.shape == (n, n) and K.dtype == jnp.float32
  assert growth < 12, f"peak resident memory grew by {growth:.1f} GiB"
  # Spot checks against an independent route on scattered rows and columns, across tile borders.
  rows = np.array([0, 1, 4095, 4096, 9999, 15_000, 19_999])
  cols = np.array([2, 4096, 8191, 12_345, 19_998])
  direct = nl.empirical_ntk(net, params, x[rows], x[cols], method="ntvp")
  Kn = np.asarray(K)
  assert rel_err(Kn[np.ix_(rows, cols)], direct) <= 2e-5
  assert rel_err(Kn[np.ix_(cols, rows)], np.asarray(direct).T) <= 2e-5
  assert np.isfinite(Kn).all()


@pytest.mark.slow
def test_analytic_ntk_of_50000_points_stays_within_output_plus_tile_budget():
  """Issue 3: blockwise evaluation for N = 50,000 (float32: a 9.3 GiB output) in a fresh process,
  so peak memory is measured cleanly: it may exceed the output by at most the 2 GiB tile budget
  plus 1 GiB of slack — no second N² buffer — and the spot checks must agree to float32 rounding."""
  import json
  import pathlib
  import subprocess
  import sys

  script = pathlib.Path(__file__).parent / "scripts" / "analytic_large.py"
  run = subprocess.run(
    [sys.executable, str(script), "50000"],
    capture_output=True,
    text=True,
    timeout=1800,
    cwd=pathlib.Path(__file__).parent.parent,
  )
  assert run.returncode == 0, run.stderr[-3000:]
  res = json.loads(run.stdout.strip().splitlines()[-1])
  assert res["shape"] == [50_000, 50_000] and res["dtype"] == "float32" and res["finite"]
  assert res["growth_gib"] <= res["output_gib"] + 2 + 1, res
  assert res["spot_rel_err"] <= 1e-5, res
