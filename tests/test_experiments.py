"""Smoke tests of the experiment scripts (they are checked for output, never for timings)."""

import json
import pathlib

import pytest

from experiments import bench_analytic, bench_empirical_ntk, quickstart_ntk

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
  assert (tmp_path / "bench_empirical_ntk.md").read_text() == \
      (ROOT / "results" / "bench_empirical_ntk.md").read_text()


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
  out = runner.run(ROOT / "configs" / "quickstart.yaml", tmp_path, progress=False,
                   overrides=["sweep.widths=[16, 64]", "sweep.seeds=[0]", "data.n=8", "data.n_test=4",
                              "training.time=1.0", "training.n_times=5"])
  assert (out / "quickstart.png").stat().st_size > 10_000
  md = (out / "quickstart.md").read_text()
  assert "| 16 |" in md and "log-log slope" in md


@pytest.mark.parametrize("name", ["kernel_convergence", "lazy_training", "nn_vs_ntk", "convergence_rate"])
def test_every_experiment_runs_reduced_and_reports(tmp_path, name):
  from ntk_lab import runner
  out = runner.run(ROOT / "configs" / f"{name}.yaml", tmp_path, progress=False,
                   overrides=["sweep.widths=[16, 32]", "sweep.seeds=[0]", "data.n=6", "data.n_test=3",
                              "training.time=1.0", "training.n_times=5"])
  assert (out / f"{name}.png").stat().st_size > 5_000
  assert "| 16 |" in (out / f"{name}.md").read_text()
  assert len((out / "summary.csv").read_text().splitlines()) == 3
