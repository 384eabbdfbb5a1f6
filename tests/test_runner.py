"""Run directories: atomic cell files, resume after an interruption without recomputing, shards
that fill one directory, reports re-made from saved cells, and the CLI's exit codes."""

import csv
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
import yaml

from ntk_lab import cli, runner
from ntk_lab.experiments import EXPERIMENTS
from ntk_lab.config import ConfigError

TINY = {"experiment": "kernel_convergence", "data": {"n": 6, "in_dim": 2},
        "model": {"depth": 1, "activation": "erf"}, "sweep": {"widths": [16, 32], "seeds": [0, 1]}}


def stub_results(cfg, cells, options):
  """What kernel_convergence.run_seeds returns, without computing it (for tests of the runner's
  bookkeeping only)."""
  return [{"rel_error": 0.1 / c.width, "max_abs_error": 0.2} for c in cells]


def patch_experiment(monkeypatch, **changes):
  """Replaces fields of the registered kernel_convergence experiment for one test."""
  import dataclasses
  exp = EXPERIMENTS["kernel_convergence"]
  monkeypatch.setitem(EXPERIMENTS, "kernel_convergence", dataclasses.replace(exp, **changes))
  return exp


def files(out):
  return sorted(p.name for p in (out / "cells").iterdir())


def test_run_writes_cells_summary_plot_and_environment(tmp_path):
  out = runner.run(TINY, tmp_path / "run", progress=False)
  assert files(out) == ["w16_d1_erf_n6_lr1_s0.json", "w16_d1_erf_n6_lr1_s1.json",
                        "w32_d1_erf_n6_lr1_s0.json", "w32_d1_erf_n6_lr1_s1.json"]
  rows = list(csv.DictReader(open(out / "summary.csv")))
  assert len(rows) == 4 and float(rows[0]["rel_error"]) > 0
  assert (out / "kernel_convergence.png").stat().st_size > 5_000
  assert "log-log slope" in (out / "kernel_convergence.md").read_text()
  env = json.loads((out / "environment.json").read_text())
  assert {"ntk_lab", "jax", "devices", "git_commit", "dtype"} <= set(env)
  with pytest.raises(ConfigError, match="already has results; pass --resume"):
    runner.run(TINY, out, progress=False)
  with pytest.raises(ConfigError, match="holds a run of a different config"):
    runner.run({**TINY, "data": {"n": 7, "in_dim": 2}}, out, resume=True, progress=False)


@pytest.mark.parametrize("caller_x64", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_run_uses_the_config_dtype_and_leaves_the_callers_setting(tmp_path, monkeypatch, dtype, caller_x64):
  # A float32 run used to switch float64 off for the rest of the process (a notebook's, or a pytest worker's).
  seen = []

  def recording(cfg, group, options):
    seen.append(jnp.zeros(()).dtype.name)
    return stub_results(cfg, group, options)

  patch_experiment(monkeypatch, run_seeds=recording)
  with jax.enable_x64(caller_x64):
    runner.run({**TINY, "dtype": dtype}, tmp_path / "run", progress=False)
    assert jax.config.jax_enable_x64 == caller_x64
  assert seen and set(seen) == {dtype}


@pytest.mark.parametrize("mode,vmaps_on_cpu", [("auto", True), ("auto", False), ("always", False),
                                                ("never", True)])
def test_vmap_seeds_decides_how_seeds_are_grouped(tmp_path, monkeypatch, mode, vmaps_on_cpu):
  sizes = []
  patch_experiment(monkeypatch, vmap_seeds_on_cpu=vmaps_on_cpu,
                   run_seeds=lambda cfg, cells, o: sizes.append(len(cells)) or stub_results(cfg, cells, o))
  runner.run({**TINY, "sweep": {**TINY["sweep"], "vmap_seeds": mode}}, tmp_path, progress=False)
  together = mode == "always" or (mode == "auto" and (vmaps_on_cpu or jax.default_backend() != "cpu"))
  assert sizes == ([2, 2] if together else [1, 1, 1, 1])
  assert len(files(tmp_path)) == 4


def test_interrupted_run_resumes_without_recomputing(tmp_path, monkeypatch):
  """Killed after two seed groups (kernel_convergence computes a grid point's seeds together):
  the finished cells stay, nothing partial is left, and a resume computes only the rest."""
  calls = []
  real = EXPERIMENTS["kernel_convergence"].run_seeds

  def flaky(cfg, cells, options):
    if len(calls) == 2:
      raise KeyboardInterrupt  # killed mid-sweep
    calls.extend(c.key for c in cells)
    return real(cfg, cells, options)

  patch_experiment(monkeypatch, run_seeds=flaky)
  with pytest.raises(KeyboardInterrupt):
    runner.run(TINY, tmp_path, progress=False)
  assert files(tmp_path) == sorted(f"{k}.json" for k in calls)  # finished cells only, no partials
  before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cells").iterdir()}
  calls.clear()
  patch_experiment(monkeypatch,
                   run_seeds=lambda cfg, cells, o: calls.extend(c.key for c in cells) or real(cfg, cells, o))
  runner.run(TINY, tmp_path, resume=True, progress=False)
  assert len(calls) == 2 and not set(f"{k}.json" for k in calls) & set(before)
  assert all((tmp_path / "cells" / n).stat().st_mtime_ns == t for n, t in before.items())
  assert len(files(tmp_path)) == 4 and not list(tmp_path.glob("**/*.tmp"))


def test_shards_fill_one_directory_and_report_merges(tmp_path):
  runner.run(TINY, tmp_path, shard=(1, 2), progress=False)
  assert len(files(tmp_path)) == 2 and not (tmp_path / "summary.csv").exists()
  runner.run(TINY, tmp_path, shard=(2, 2), progress=False)  # the last shard completes the grid
  assert len(files(tmp_path)) == 4 and len(runner.report(tmp_path)) == 4
  assert (tmp_path / "summary.csv").exists()


def test_cli_exit_codes_and_messages(tmp_path, capsys):
  cfg = tmp_path / "c.yaml"
  cfg.write_text("experiment: kernel_convergence\nsweep: {widths: [8, 16, -5]}\n")
  assert cli.main(["validate", str(cfg)]) == 2
  assert "sweep.widths[2]: must be a positive integer, got -5" in capsys.readouterr().err
  assert cli.main(["validate", str(cfg), "--set", "sweep.widths=[8, 16]"]) == 0
  assert "# 2 cells" in capsys.readouterr().out
  assert cli.main(["list"]) == 0
  assert "kernel_convergence" in capsys.readouterr().out
  assert cli.main(["report", str(tmp_path / "nothing")]) == 2
  with pytest.raises(SystemExit) as e:
    cli.main(["run", str(cfg), "--shard", "3/2"])
  assert e.value.code == 2


def test_module_entry_point_runs_end_to_end(tmp_path):
  cfg = tmp_path / "tiny.yaml"
  cfg.write_text(yaml.safe_dump(TINY))
  proc = subprocess.run([sys.executable, "-m", "ntk_lab", "run", str(cfg), "--out", str(tmp_path / "r"),
                         "--set", "sweep.seeds=[0]"], capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  assert "[2/2]" in proc.stderr and len(files(tmp_path / "r")) == 2
  help_ = subprocess.run([sys.executable, "-m", "ntk_lab", "run", "--help"], capture_output=True, text=True)
  assert help_.returncode == 0 and "--resume" in help_.stdout
