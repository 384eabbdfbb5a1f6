"""Smoke tests of the experiment scripts (they are checked for output, never for timings)."""

import json
import pathlib

import numpy as np
import pytest

from benchmarks import bench_analytic, bench_empirical_ntk, quickstart_ntk

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quickstart_writes_plot_and_tables(tmp_path, capsys):
  quickstart_ntk.main(["--out", str(tmp_path), "--n", "24", "--width", "32", "--repeats", "1"])
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert (tmp_path / "ntk_heatmap.png").stat().st_size > 10_000
  assert all(d < 1e-5 for d in summary["rel_diff_vs_jacobian"].values())
  assert summary["lambda_min"] > 0
  assert "| structured |" in capsys.readouterr().out


def test_benchmark_report_reproduces_the_committed_table(tmp_path):
  data = (ROOT / "results" / "bench_empirical_ntk.json").read_text()
  (tmp_path / "bench_empirical_ntk.json").write_text(data)
  bench_empirical_ntk.main(["report", str(tmp_path)])
  assert (tmp_path / "bench_empirical_ntk.md").read_text() == (
    ROOT / "results" / "bench_empirical_ntk.md"
  ).read_text()


def test_analytic_benchmark_report_reproduces_the_committed_table(tmp_path):
  data = (ROOT / "results" / "bench_analytic.json").read_text()
  (tmp_path / "bench_analytic.json").write_text(data)
  bench_analytic.main(["report", str(tmp_path)])
  assert (tmp_path / "bench_analytic.md").read_text() == (ROOT / "results" / "bench_analytic.md").read_text()


def test_analytic_benchmark_cell_runs(capsys):
  bench_analytic.main(["cell", "--n", "300", "--repeats", "1"])
  res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert res["median_s"] > 0 and res["peak_rss_mb"] >= res["baseline_rss_mb"]


def test_quickstart_config_runs_reduced(tmp_path):
  """The main job's config and experiment module, on a reduced grid (the full one is `make run`)."""
  from ntk_lab import runner

  out = runner.run(
    ROOT / "configs" / "quickstart.yaml",
    tmp_path,
    progress=False,
    overrides=[
      "sweep.widths=[16, 64]",
      "sweep.seeds=[0, 1]",  # two: the solver error is estimated for the first seed only
      "data.n=8",
      "data.n_test=4",
      "training.time=1.0",
      "training.n_times=5",
    ],
  )
  assert (out / "quickstart.png").stat().st_size > 10_000
  md = (out / "quickstart.md").read_text()
  assert "| 16 |" in md and "log-log slope" in md and "Solver error" in md
  assert_no_cell_excluded(out)


def assert_no_cell_excluded(out):
  """Every finished cell is in the fits: none is marked non-finite in summary.csv."""
  import csv

  with open(out / "summary.csv") as f:
    marked = [row["cell"] + ": " + row["nonfinite"] for row in csv.DictReader(f) if row["nonfinite"]]
  assert not marked, marked


REDUCED = {
  "kernel_convergence": ["sweep.widths=[16, 32]", "sweep.seeds=[0, 1]", "data.n=6"],
  "lazy_training": [
    "sweep.widths=[16, 32]",
    "data.n=6",
    "training.time=1.0",
    "training.n_times=5",
  ],
  "nn_vs_ntk": [
    "sweep.widths=[16, 32]",
    "data.n=6",
    "data.n_test=3",
    "training.time=1.0",
    "training.n_times=5",
  ],
  "convergence_rate": [
    "sweep.widths=[16, 32]",
    "sweep.seeds=[0]",
    "data.n=6",
    "training.time=1.0",
    "training.n_times=5",
  ],
  "generalization_bound": ["sweep.n=[8, 16, 32]", "sweep.seeds=[0, 1]", "data.n_test=50"],
  "concentration": ["sweep.widths=[1, 16]", "sweep.seeds=[0, 1]", "options.draws=200", "data.n=4"],
  "deep_linear": [
    "sweep.depths=[1, 2]",
    "sweep.seeds=[0, 1]",
    "training.time=5.0",
    "training.n_times=6",
    "data.n=8",
  ],
  "real_data": [
    "sweep.widths=[16, 32]",
    "sweep.seeds=[0]",
    "data.n=40",
    "data.n_test=30",
    "training.time=2.0",
    "training.n_times=3",
  ],
  "jacot2018": [
    "sweep.widths=[16, 32]",
    "sweep.seeds=[0, 1]",
    "data.n=3",
    "options.angles=8",
    "options.steps=5",
  ],
  "lee2019": ["sweep.widths=[16, 32]", "data.n=6", "data.n_test=3", "options.steps=20", "options.every=10"],
  "arora2019": [
    "sweep.widths=[16, 32]",
    "data.n=20",
    "data.n_test=10",
    "options.steps=20",
    "options.every=10",
    "options.corrupt=[0.0, 1.0]",
  ],
  "cntk_small_data": [
    "sweep.n=[10, 20]",
    "data.n_test=10",
    "model.depth=1",
    "model.width=4",
    "options.steps=10",
    "options.every=5",
  ],
  "myrtle": ["sweep.n=[10, 20]", "sweep.depths=[5]", "data.n_test=10"],
}


def test_every_registered_experiment_has_a_reduced_run():
  from ntk_lab import runner

  assert set(REDUCED) | {"quickstart"} == set(runner.EXPERIMENTS)


# the heavier reduced runs (each compiles several solvers or kernels) run with the slow suite
SLOW = {
  "jacot2018",
  "deep_linear",
  "real_data",
  "nn_vs_ntk",
  "lazy_training",
  "generalization_bound",
  "concentration",
  "lee2019",
  "arora2019",
  "convergence_rate",
  "cntk_small_data",
  "myrtle",
}


@pytest.mark.parametrize(
  "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(REDUCED)]
)
def test_every_experiment_runs_reduced_and_reports(tmp_path, name):
  from ntk_lab import config, runner

  overrides = ["sweep.seeds=[0]"] + REDUCED[name]
  out = runner.run(ROOT / "configs" / f"{name}.yaml", tmp_path, progress=False, overrides=overrides)
  n_cells = len(config.cells(config.load_config(ROOT / "configs" / f"{name}.yaml", overrides=overrides)))
  assert (out / f"{name}.png").stat().st_size > 5_000
  md = (out / f"{name}.md").read_text()
  assert "|---|" in md and "nan" not in md
  assert len((out / "summary.csv").read_text().splitlines()) == 1 + n_cells
  assert_no_cell_excluded(out)


@pytest.mark.parametrize(
  "name", ["kernel_convergence", pytest.param("convergence_rate", marks=pytest.mark.slow)]
)
def test_seeds_computed_together_match_one_at_a_time(tmp_path, name):
  """A grid point's seeds in one vmapped call (a vmapped empirical NTK; a vmapped gradient flow,
  each draw with its own adaptive steps) give what each seed alone gives."""
  import json

  from ntk_lab import runner

  over = REDUCED[name] + ["sweep.widths=[16]", "sweep.seeds=[0, 1]"]
  runs = {
    mode: runner.run(
      ROOT / "configs" / f"{name}.yaml",
      tmp_path / mode,
      progress=False,
      overrides=over + [f"sweep.vmap_seeds={mode}"],
    )
    for mode in ("always", "never")
  }
  cells = sorted(p.name for p in (runs["always"] / "cells").glob("*.json"))
  assert len(cells) == 2 and cells == sorted(p.name for p in (runs["never"] / "cells").glob("*.json"))
  for cell in cells:
    a, b = (json.loads((runs[m] / "cells" / cell).read_text()) for m in ("always", "never"))
    for key, value in b.items():
      if key == "solver_error" and value is not None:
        # a relative difference of two solves that agree to ~1e-4: their 1e-13 rounding differences
        # are amplified 1e4-fold, so it is compared in absolute terms (its budget is 1e-2)
        np.testing.assert_allclose(a[key], value, rtol=0, atol=1e-9, err_msg=f"{cell}: {key}")
      elif key != "seconds" and isinstance(value, (float, list)):
        np.testing.assert_allclose(a[key], value, rtol=1e-9, atol=1e-14, err_msg=f"{cell}: {key}")


def test_resume_recomputes_only_the_missing_seed_of_a_group(tmp_path):
  import json

  from ntk_lab import runner

  over = ["sweep.widths=[16]", "sweep.seeds=[0, 1]", "data.n=5"]
  out = runner.run(ROOT / "configs" / "kernel_convergence.yaml", tmp_path, progress=False, overrides=over)
  cells = sorted((out / "cells").glob("*.json"))
  assert len(cells) == 2
  (victim,) = (out / "cells").glob("w16_d2_relu_n5_lr1_s1_*.json")  # prefix + hash of the exact cell
  kept = {p.name: p.stat().st_mtime_ns for p in cells if p != victim}
  before = json.loads(victim.read_text())
  victim.unlink()
  runner.run(ROOT / "configs" / "kernel_convergence.yaml", out, resume=True, progress=False, overrides=over)
  assert {p.name: p.stat().st_mtime_ns for p in cells if p != victim} == kept
  assert json.loads(victim.read_text())["rel_error"] == before["rel_error"]


def test_real_data_loads_through_datasets_and_corrupts_training_labels_only():
  from ntk_lab.config import ConfigError, load_config
  from ntk_lab.experiments import real_data

  cfg = load_config(ROOT / "configs" / "real_data.yaml", overrides=["data.n=300", "data.n_test=100"])
  x, y, xt, yt, labels = real_data.load(cfg, {"dataset": "digits", "corrupt": 0.0})
  x2, y2, xt2, yt2, labels2 = real_data.load(cfg, {"dataset": "digits", "corrupt": 0.5})
  np.testing.assert_allclose(np.linalg.norm(x, axis=1), 8.0, rtol=1e-12)  # norm √64
  np.testing.assert_array_equal(x, x2)
  np.testing.assert_array_equal(yt, yt2)
  np.testing.assert_array_equal(np.argmax(yt, axis=1), labels)
  changed = np.mean(np.any(y != y2, axis=1))
  assert 0.35 < changed < 0.55  # half redrawn from 10 classes: 0.45 expected
  with pytest.raises(ConfigError, match="options.corrupt: must be a fraction"):
    real_data.load(cfg, {"dataset": "digits", "corrupt": 2})


def test_training_subsets_are_nested_class_balanced_and_seeded():
  from ntk_lab.experiments import _convnets

  _, labels, _, _ = _convnets.split(200)
  order = _convnets.subset_order(labels, 0, True)
  assert sorted(order) == list(range(len(labels)))  # an order of the whole pool
  np.testing.assert_array_equal(order, _convnets.subset_order(labels, 0, True))
  for n in (10, 25, 160):  # a prefix: nested subsets, each class ⌊n/10⌋ or ⌈n/10⌉ times
    counts = np.bincount(labels[order[:n]], minlength=10)
    assert counts.min() == n // 10 and counts.max() == -(-n // 10)
  assert set(order[:40]) != set(_convnets.subset_order(labels, 1, True)[:40])
  assert sorted(_convnets.subset_order(labels, 0, False)) == list(range(len(labels)))


@pytest.mark.parametrize("depth", [5, 7, 10])
def test_myrtle_adapted_to_8x8_images(depth):
  """Myrtle-d on 8×8 inputs: its convolutions at 8×8, 4×4 and 2×2 (2, 1, 1 of them for d = 5;
  2, 2, 2 for 7; 3, 3, 3 for 10), pooled to 1×1 before the readout; d counts them and it."""
  import ntk_lab as nl
  from ntk_lab.experiments import _convnets

  net = _convnets.network("myrtle", depth, 3, 2**0.5, None)
  shape, sizes = (8, 8, 1), []
  for layer in net.layers:
    if isinstance(layer, nl.layers.Conv):
      sizes.append(shape[0])
    shape = layer.output_shape_of(shape)
  blocks = _convnets.MYRTLE_BLOCKS[depth]
  assert sizes == [8] * blocks[0] + [4] * blocks[1] + [2] * blocks[2] and len(sizes) + 1 == depth
  assert shape == (10,)


def test_kernels_are_computed_once_per_run_and_sliced_per_cell(monkeypatch):
  """Every cell of a run reads the one kernel on the union of the seeds' subsets and the test
  images, and its slices are the kernel of the cell's own images."""
  import jax.numpy as jnp

  import ntk_lab as nl
  from ntk_lab.config import cell_config, cells, load_config
  from ntk_lab.experiments import _convnets

  cfg = load_config(
    ROOT / "configs" / "cntk_small_data.yaml",
    overrides=["sweep.n=[4, 8]", "sweep.seeds=[0, 1]", "data.n_test=5", "model.depth=1", "model.width=2"],
  )
  real, calls = nl.analytic_kernel, []
  monkeypatch.setattr(nl, "analytic_kernel", lambda *a, **k: calls.append(a) or real(*a, **k))
  monkeypatch.setattr(_convnets, "_KERNELS", {})
  net = _convnets.network("gap", 1, 2, 2**0.5, None)
  kerns = [_convnets.run_kernels(cell_config(cfg, c), net, True) for c in cells(cfg)]
  assert len(calls) == 1 and all(k is kerns[0] for k in kerns)
  kern = kerns[0]
  x_pool, labels_pool, x_test, _ = _convnets.split(5)
  mine = _convnets.subset_order(labels_pool, 1, True)[:8]
  rows = _convnets.subset_rows(kern, 1, 8)
  np.testing.assert_array_equal(kern["x"][rows], x_pool[mine])
  np.testing.assert_array_equal(kern["labels"][rows], labels_pool[mine])
  direct = real(net, jnp.asarray(x_test), jnp.asarray(x_pool[mine]))
  for field in ("nngp", "ntk"):
    got = np.asarray(getattr(kern["k"], field))[kern["test"]][:, rows]
    np.testing.assert_allclose(got, getattr(direct, field), rtol=1e-10, atol=1e-12)
