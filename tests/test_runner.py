"""Run directories: atomic cell files, resume after an interruption without recomputing, shards
that fill one directory, reports re-made from saved cells, and the CLI's exit codes."""

import csv
import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from ntk_lab import cli, runner
from ntk_lab.config import ConfigError
from ntk_lab.experiments import EXPERIMENTS

TINY = {
  "experiment": "kernel_convergence",
  "data": {"n": 6, "in_dim": 2},
  "model": {"depth": 1, "activation": "erf"},
  "sweep": {"widths": [16, 32], "seeds": [0, 1]},
}


def stub_results(cfg, cells, options):
  """What kernel_convergence.run_seeds returns, without computing it (for tests of the runner's
  bookkeeping only)."""
  return [{"rel_error": 0.1 / c.width, "max_abs_error": 0.2} for c in cells]


def all_keys():
  """Every dotted key a config can set."""
  from ntk_lab.config import DataConfig, ModelConfig, SweepConfig, TrainingConfig

  return tuple(
    f"{section}.{f.name}"
    for section, cls in (("data", DataConfig), ("model", ModelConfig), ("training", TrainingConfig))
    + (("sweep", SweepConfig),)
    for f in dataclasses.fields(cls)
  )


def patch_experiment(monkeypatch, **changes):
  """Replaces fields of the registered kernel_convergence experiment for one test; a stubbed
  computation (`run_seeds` given) honours every key, so the tests of the runner's bookkeeping may
  sweep any axis."""
  exp = EXPERIMENTS["kernel_convergence"]
  if "run_seeds" in changes:
    changes.setdefault("keys", all_keys())
  monkeypatch.setitem(EXPERIMENTS, "kernel_convergence", dataclasses.replace(exp, **changes))
  return exp


@pytest.fixture
def open_contract(monkeypatch):
  """kernel_convergence honouring every key (for tests of the grid, not of the contract)."""
  exp = EXPERIMENTS["kernel_convergence"]
  monkeypatch.setitem(EXPERIMENTS, "kernel_convergence", dataclasses.replace(exp, keys=all_keys()))


def files(out):
  return sorted(p.name for p in (out / "cells").iterdir())


def test_run_writes_cells_summary_plot_and_environment(tmp_path):
  out = runner.run(TINY, tmp_path / "run", progress=False)
  # readable prefix + hash of the exact cell; pinned, since a resume finds finished cells by these names
  assert files(out) == [
    "w16_d1_erf_n6_lr1_s0_0d38bd1cef.json",
    "w16_d1_erf_n6_lr1_s1_346f3b2116.json",
    "w32_d1_erf_n6_lr1_s0_35a40f107b.json",
    "w32_d1_erf_n6_lr1_s1_e4aee92f01.json",
  ]
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


@pytest.mark.parametrize(
  "mode,vmaps_on_cpu", [("auto", True), ("auto", False), ("always", False), ("never", True)]
)
def test_vmap_seeds_decides_how_seeds_are_grouped(tmp_path, monkeypatch, mode, vmaps_on_cpu):
  sizes = []
  patch_experiment(
    monkeypatch,
    vmap_seeds_on_cpu=vmaps_on_cpu,
    run_seeds=lambda cfg, cells, o: sizes.append(len(cells)) or stub_results(cfg, cells, o),
  )
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
  patch_experiment(
    monkeypatch, run_seeds=lambda cfg, cells, o: calls.extend(c.key for c in cells) or real(cfg, cells, o)
  )
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
  assert cli.main(["run", str(cfg), "--shard", "3/2"]) == 2
  assert capsys.readouterr().err.count("\n") == 2  # one line per failure


def test_module_entry_point_runs_end_to_end(tmp_path):
  cfg = tmp_path / "tiny.yaml"
  cfg.write_text(yaml.safe_dump(TINY))
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "ntk_lab",
      "run",
      str(cfg),
      "--out",
      str(tmp_path / "r"),
      "--set",
      "sweep.seeds=[0]",
    ],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr
  assert "[2/2]" in proc.stderr and len(files(tmp_path / "r")) == 2
  help_ = subprocess.run([sys.executable, "-m", "ntk_lab", "run", "--help"], capture_output=True, text=True)
  assert help_.returncode == 0 and "--resume" in help_.stdout


# ------------------------------------------------------------------ cells never lost, mixed or hidden
def stub_report(out, cfg, options, results):
  """Stands in for the experiment's report: records which cells it was given."""
  (out / "stub.md").write_text(" ".join(sorted(r["cell"] for r in results)) + "\n")


def stubbed(monkeypatch, run_seeds=stub_results, **changes):
  patch_experiment(monkeypatch, run_seeds=run_seeds, report=stub_report, **changes)


def cell_of(out, key_prefix):
  (path,) = (out / "cells").glob(f"{key_prefix}_*.json")
  return path


def test_learning_rates_that_print_alike_get_their_own_cells(tmp_path, monkeypatch):
  # `lr{:g}` printed 1.0 and 1.0000001 alike, so the two cells shared one file and one result was lost
  stubbed(monkeypatch, run_seeds=lambda cfg, cells, o: [{"lr_seen": c.learning_rate} for c in cells])
  raw = {**TINY, "sweep": {"widths": [16], "learning_rates": [1.0, 1.0000001]}}
  out = runner.run(raw, tmp_path, progress=False)
  assert len(files(out)) == 2
  rows = list(csv.DictReader(open(out / "summary.csv")))
  assert sorted(float(r["lr_seen"]) for r in rows) == [1.0, 1.0000001]
  for row in rows:  # each file holds its own cell's result
    saved = json.loads((out / "cells" / f"{row['cell']}.json").read_text())
    assert saved["learning_rate"] == saved["lr_seen"] == float(row["learning_rate"])


@pytest.mark.parametrize(
  "sweep",
  [
    {"widths": [16, 32], "seeds": [0, 1]},
    {"widths": [16], "learning_rates": [0.1, 0.1 + 1e-16, 0.3]},
    {"depths": [1, 2], "activations": ["erf", "relu"], "n": [6, 7]},
  ],
)
def test_cell_keys_are_unique_and_stable(sweep, open_contract):
  from ntk_lab.config import cells, load_config

  grid = cells(load_config({**TINY, "sweep": sweep}))
  assert len({c.key for c in grid}) == len(set(grid)) == len(grid)
  assert [c.key for c in grid] == [c.key for c in cells(load_config({**TINY, "sweep": sweep}))]


def test_cells_of_another_config_are_set_aside_not_kept(tmp_path, monkeypatch, capsys):
  # config.yaml deleted, then --resume under another W_std: the old cells used to pass as new ones
  computed = []
  stubbed(
    monkeypatch,
    run_seeds=lambda cfg, cells, o: computed.extend(cells) or [{"w_std": cfg.model.W_std} for c in cells],
  )
  runner.run(TINY, tmp_path, progress=False)
  (tmp_path / "config.yaml").unlink()
  other = {**TINY, "model": {**TINY["model"], "W_std": 2.0}}
  with pytest.raises(ConfigError, match="already has results; pass --resume"):
    runner.run(other, tmp_path, progress=False)
  computed.clear()
  capsys.readouterr()
  runner.run(other, tmp_path, resume=True, progress=False)
  assert len(computed) == 4  # every cell recomputed under the new config
  assert capsys.readouterr().err.count("cell of another config") == 4
  assert len(list((tmp_path / "cells" / "foreign").glob("*.json"))) == 4  # set aside, not deleted
  assert {json.loads(p.read_text())["w_std"] for p in (tmp_path / "cells").glob("*.json")} == {2.0}
  # and a config whose grid differs: the old cells are no cells of the new grid, also set aside
  (tmp_path / "config.yaml").unlink()
  runner.run({**other, "sweep": {"widths": [8], "seeds": [0]}}, tmp_path, resume=True, progress=False)
  assert "4 files in" in capsys.readouterr().err and len(list((tmp_path / "cells").glob("*.json"))) == 1
  assert len(list((tmp_path / "cells" / "foreign").glob("*.json"))) == 8


def test_report_skips_cells_of_another_config_and_says_so(tmp_path, monkeypatch, capsys):
  stubbed(monkeypatch)
  runner.run(TINY, tmp_path / "a", progress=False)
  runner.run({**TINY, "data": {"n": 6, "in_dim": 2, "noise": 0.5}}, tmp_path / "b", progress=False)
  victim = cell_of(tmp_path / "a", "w16_d1_erf_n6_lr1_s0")
  victim.write_bytes((tmp_path / "b" / "cells" / victim.name).read_bytes())  # same key, other config
  capsys.readouterr()
  assert len(runner.report(tmp_path / "a")) == 3
  assert victim.stem not in (tmp_path / "a" / "stub.md").read_text().splitlines()[0]
  err = capsys.readouterr().err
  assert "1 cell files of another config skipped" in err and victim.name in err


@pytest.mark.parametrize(
  "damage,why",
  [
    (lambda t: t[: len(t) // 2], "truncated or not JSON"),
    (lambda t: "", "empty file"),
    (lambda t: "{}", "missing fields cell, width"),
    (
      lambda t: json.dumps({**json.loads(t), "provenance": None}),
      "missing fields provenance.config_fingerprint",
    ),
    (lambda t: "[1, 2]", "not a JSON object"),
    (
      lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "rel_error"}),
      "missing fields rel_error",
    ),
    (lambda t: b"\xff\xfe" + t.encode(), "not UTF-8"),
  ],
)
def test_damaged_cells_are_named_skipped_and_recomputed(tmp_path, monkeypatch, capsys, damage, why):
  computed = []
  stubbed(
    monkeypatch,
    run_seeds=lambda cfg, cells, o: computed.extend(c.key for c in cells) or stub_results(cfg, cells, o),
  )
  runner.run(TINY, tmp_path, progress=False)
  victim = cell_of(tmp_path, "w32_d1_erf_n6_lr1_s1")
  bad = damage(victim.read_text())
  victim.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
  capsys.readouterr()
  results = runner.report(tmp_path)  # never crashes: skips it and lists it
  assert len(results) == 3 and victim.stem not in (tmp_path / "stub.md").read_text().splitlines()[0]
  err = capsys.readouterr().err
  assert "1 damaged cell files skipped" in err and str(victim) in err and why in err
  assert "Left out of this report" in (tmp_path / "stub.md").read_text()
  computed.clear()
  runner.run(TINY, tmp_path, resume=True, progress=False)  # moved aside, named, recomputed
  assert computed == [victim.stem]
  err = capsys.readouterr().err
  assert f"damaged cell {victim}" in err and why in err
  assert (tmp_path / "cells" / "damaged" / victim.name).read_bytes() == (
    bad if isinstance(bad, bytes) else bad.encode()
  )
  assert len(runner.report(tmp_path)) == 4 and "Left out" not in (tmp_path / "stub.md").read_text()


def test_report_on_a_directory_without_cells_says_so(tmp_path, monkeypatch):
  stubbed(monkeypatch)
  runner.run(TINY, tmp_path, shard=(1, 2), progress=False)
  for p in (tmp_path / "cells").glob("*.json"):
    p.unlink()
  with pytest.raises(ConfigError, match=r"no finished cells to report \(4 of 4 not computed\)"):
    runner.report(tmp_path)


def test_non_finite_cells_are_marked_and_left_out_of_the_fit(tmp_path, monkeypatch, capsys):
  def one_nan(cfg, cells, options):
    return [
      {
        "rel_error": float("nan") if (c.width, c.seed) == (32, 1) else 0.1 / c.width**0.5 * (1 + c.seed),
        "max_abs_error": 0.2,
      }
      for c in cells
    ]

  patch_experiment(monkeypatch, run_seeds=one_nan)  # the experiment's own report and fit
  runner.run(TINY, tmp_path, progress=False)
  md = (tmp_path / "kernel_convergence.md").read_text()
  # the fit over the three finite cells, by hand: widths 16, 16, 32 against 0.1/√w·(1 + seed)
  w, e = np.array([16, 16, 32.0]), np.array([0.1 / 4, 0.2 / 4, 0.1 / 32**0.5])
  slope = np.polyfit(np.log(w), np.log(e), 1)[0]
  assert f"log-log slope {slope:.2f}" in md and "nan" not in md.split("Left out")[0]
  assert "1 of 4 finished cells have non-finite values and are excluded from the fits" in md
  assert "(rel_error)" in md and "excluded from the fits" in capsys.readouterr().err
  rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
  assert [r["nonfinite"] for r in rows] == ["", "", "", "rel_error"] and rows[3]["rel_error"] == "nan"


def test_a_failed_start_leaves_nothing_that_blocks_the_rerun(tmp_path, monkeypatch):
  stubbed(monkeypatch)
  with pytest.raises(ConfigError, match="device: 'tpu'|device: must be one of"):
    runner.run({**TINY, "device": "tpu"}, tmp_path, progress=False)
  if jax.default_backend() == "cpu":  # no GPU: refused before anything is written
    with pytest.raises(ConfigError, match="device: 'gpu' is not available here"):
      runner.run({**TINY, "device": "gpu"}, tmp_path, progress=False)
    assert not (tmp_path / "config.yaml").exists()
  # a start that got as far as writing config.yaml (then failed) does not block another config
  (tmp_path / "cells").mkdir(exist_ok=True)
  (tmp_path / "config.yaml").write_text("experiment: kernel_convergence\ndevice: gpu\n")
  runner.run(TINY, tmp_path, progress=False)
  assert len(files(tmp_path)) == 4


def test_a_failing_cell_names_itself_and_keeps_the_finished_ones(tmp_path, monkeypatch):
  from ntk_lab.training import SolverError

  def fail_at_32(cfg, cells, options):
    if cells[0].width == 32:
      raise SolverError("max_steps=4 reached at t = 0.3 of 10;\nraise max_steps or loosen rtol.")
    return stub_results(cfg, cells, options)

  stubbed(monkeypatch, run_seeds=fail_at_32)
  with pytest.raises(
    runner.RunError,
    match=r"cells w32_d1_erf_n6_lr1_s0_\w+, w32_d1_erf_n6_lr1_s1_\w+: "
    r"SolverError: max_steps=4 reached at t = 0.3 of 10;$",
  ) as e:
    runner.run(TINY, tmp_path, progress=False)
  assert isinstance(e.value.__cause__, SolverError)
  assert len(files(tmp_path)) == 2 and not list(tmp_path.glob("**/*.tmp"))


@pytest.mark.parametrize(
  "returned,match",
  [
    (lambda cells: [{"rel_error": 0.1}], r"returned 1 results for 2 cells"),
    (lambda cells: [{"width": 3, "rel_error": 0.1} for c in cells], r"returned the reserved fields width"),
  ],
)
def test_an_experiment_returning_malformed_results_is_named(tmp_path, monkeypatch, returned, match):
  stubbed(monkeypatch, run_seeds=lambda cfg, cells, o: returned(cells), vmap_seeds_on_cpu=True)
  with pytest.raises(runner.RunError, match=match):
    runner.run(TINY, tmp_path, progress=False)
  assert files(tmp_path) == []


# ------------------------------------------------------------------------- one run per directory
HOLDER = """
import dataclasses, pathlib, sys, time
from ntk_lab import cli
from ntk_lab.experiments import EXPERIMENTS
from tests.test_runner import all_keys, stub_report, stub_results

started, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

def waiting(cfg, cells, options):  # holds the run (and its lock) until told to go on
  started.write_text("computing")
  deadline = time.time() + 120
  while not go.exists() and time.time() < deadline:
    time.sleep(0.02)
  return stub_results(cfg, cells, options)

exp = EXPERIMENTS["kernel_convergence"]
EXPERIMENTS["kernel_convergence"] = dataclasses.replace(
  exp, run_seeds=waiting, report=stub_report, keys=all_keys(), vmap_seeds_on_cpu=True
)
sys.exit(cli.main(sys.argv[3:]))
"""


def test_a_second_process_into_a_running_directory_is_refused(tmp_path, open_contract):
  """Two real processes, two configs, one --out: the second is refused naming the first's pid,
  and the directory ends with the first config and only its cells."""
  import os
  import pathlib
  import time

  root = pathlib.Path(__file__).resolve().parents[1]
  mine, theirs, out = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "run"
  mine.write_text(yaml.safe_dump(TINY))
  theirs.write_text(yaml.safe_dump({**TINY, "model": {**TINY["model"], "W_std": 2.0}}))
  started, go = tmp_path / "started", tmp_path / "go"
  env = {**os.environ, "PYTHONPATH": str(root)}
  first = subprocess.Popen(
    [sys.executable, "-c", HOLDER, started, go, "run", mine, "--out", out],
    cwd=root,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    deadline = time.time() + 120
    while not started.exists() and first.poll() is None and time.time() < deadline:
      time.sleep(0.05)
    assert started.exists(), first.communicate()[1]
    second = subprocess.run(
      [sys.executable, "-m", "ntk_lab", "run", theirs, "--out", out],
      cwd=root,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
    )
  finally:
    go.write_text("")
    stdout, stderr = first.communicate(timeout=300)
  assert first.returncode == 0, stderr
  assert second.returncode == 2, second.stderr
  (line,) = second.stderr.splitlines()
  assert f"another ntk-lab run (pid {first.pid}) is writing into it" in line, line
  assert yaml.safe_load((out / "config.yaml").read_text())["model"]["W_std"] == 1.0
  fp = runner.fingerprint(runner.load_config(mine))  # under the holder's (open) contract
  saved = [
    json.loads(p.read_text())["provenance"]["config_fingerprint"] for p in (out / "cells").glob("*.json")
  ]
  assert saved == [fp] * 4
  assert json.loads((out / ".holders").read_text()) == []  # the holder left


def test_shards_of_one_config_share_a_directory_and_nothing_else_does(tmp_path, monkeypatch):
  """A run holds its directory (in-process here: flock locks are per open file, so a lock held
  through one descriptor refuses another in the same process): a shard of the same config joins a
  shard, anything else is refused naming the holder's pid."""
  import os

  stubbed(monkeypatch)
  cfg = runner.load_config(TINY)
  resolved = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
  tmp_path.mkdir(exist_ok=True)
  other = {**TINY, "model": {**TINY["model"], "W_std": 2.0}}
  with runner._RunLock(tmp_path, resolved, resume=False, shard=(1, 2)):
    holder = f"pid {os.getpid()}"
    with pytest.raises(ConfigError, match=rf"another ntk-lab run \({holder}\) is writing into it"):
      runner.run(TINY, tmp_path, progress=False)  # the whole grid: not a shard
    with pytest.raises(ConfigError, match=rf"\({holder}\) .*shards of one config may share"):
      runner.run(other, tmp_path, shard=(2, 2), progress=False)  # a shard of another config
    runner.run(TINY, tmp_path, shard=(2, 2), progress=False)  # joins
    assert len(files(tmp_path)) == 2
  with runner._RunLock(tmp_path, resolved, resume=True, shard=None):
    with pytest.raises(ConfigError, match=r"\(it runs the whole grid\)"):
      runner.run(TINY, tmp_path, shard=(1, 2), progress=False)
  runner.run(TINY, tmp_path, shard=(1, 2), progress=False)  # released: the last shard reports
  assert len(files(tmp_path)) == 4 and (tmp_path / "summary.csv").exists()


def test_the_report_sets_aside_cells_of_another_config(tmp_path, monkeypatch, capsys):
  """A cell file with another fingerprint (copied in, or left by a run of another config) is moved
  to cells/foreign/ by the report, as a resumed run would: the directory keeps only its config's
  results, and nothing is deleted."""
  stubbed(monkeypatch)
  runner.run(TINY, tmp_path / "a", progress=False)
  runner.run({**TINY, "model": {**TINY["model"], "W_std": 2.0}}, tmp_path / "b", progress=False)
  victim = cell_of(tmp_path / "a", "w16_d1_erf_n6_lr1_s0")
  intruder = (tmp_path / "b" / "cells" / victim.name).read_bytes()
  victim.write_bytes(intruder)
  (tmp_path / "a" / "cells" / "stray.json").write_text("{}")
  capsys.readouterr()
  assert len(runner.report(tmp_path / "a")) == 3
  err = capsys.readouterr().err
  assert "2 cell files of another config or grid moved to" in err
  assert (tmp_path / "a" / "cells" / "foreign" / victim.name).read_bytes() == intruder
  assert not victim.exists() and (tmp_path / "a" / "cells" / "foreign" / "stray.json").exists()
  rows = list(csv.DictReader(open(tmp_path / "a" / "summary.csv")))
  assert len(rows) == 3 and victim.stem not in {r["cell"] for r in rows}
  runner.run(TINY, tmp_path / "a", resume=True, progress=False)  # recomputes the cell set aside
  assert len(runner.report(tmp_path / "a")) == 4


def test_each_cell_gets_its_own_resolved_config(tmp_path, monkeypatch):
  """The runner substitutes a cell's sweep values into the config it hands the experiment: an
  experiment that reads data.n or model.width from its config computes each cell's own."""
  seen = []

  def recording(cfg, cells, options):
    seen.extend((cfg.model.width, cfg.model.depth, cfg.data.n, cfg.training.learning_rate, c) for c in cells)
    return stub_results(cfg, cells, options)

  stubbed(monkeypatch, run_seeds=recording)
  sweep = {"widths": [16, 32], "depths": [1, 2], "n": [5, 7], "learning_rates": [0.5, 1.0], "seeds": [0]}
  runner.run({**TINY, "sweep": sweep}, tmp_path, progress=False)
  assert len(seen) == 16
  assert all((w, d, n, lr) == (c.width, c.depth, c.n, c.learning_rate) for w, d, n, lr, c in seen)


@pytest.mark.slow
def test_generalization_bound_computes_each_n_of_its_sweep(tmp_path):
  """sweep.n reaches the computation: each cell equals the experiment's own function at that n
  (the independent route), and the two n differ."""
  from ntk_lab.experiments import generalization_bound as gb

  over = ["sweep.n=[6, 12]", "sweep.seeds=[0]", "data.n_test=5", "data.in_dim=3"]
  out = runner.run("configs/generalization_bound.yaml", tmp_path, overrides=over, progress=False)
  rows = {int(r["n"]): float(r["measure"]) for r in csv.DictReader(open(out / "summary.csv"))}
  for n in (6, 12):
    direct = float(gb._cell(jax.random.PRNGKey(20_000), n, 5, 3)["measure"])
    assert abs(rows[n] - direct) <= 1e-12 * abs(direct)
  assert rows[6] != rows[12]


def test_a_saved_config_with_every_key_still_reports_and_resumes(tmp_path, monkeypatch):
  """A config.yaml listing every key, those outside the contract too (as a hand-written or older
  one may), is the same config: the report reads it and --resume keeps its cells."""
  computed = []
  stubbed(
    monkeypatch,
    run_seeds=lambda cfg, cells, o: computed.extend(cells) or stub_results(cfg, cells, o),
    keys=EXPERIMENTS["kernel_convergence"].keys,  # the real contract
  )
  runner.run(TINY, tmp_path, progress=False)
  full = dataclasses.asdict(runner.load_config(TINY))
  (tmp_path / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(full)), sort_keys=False))
  assert "learning_rate" in (tmp_path / "config.yaml").read_text()
  assert len(runner.report(tmp_path)) == 4
  computed.clear()
  runner.run(TINY, tmp_path, resume=True, progress=False)
  assert computed == [] and len(files(tmp_path)) == 4
