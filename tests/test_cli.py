"""The ``ntk-lab`` command as a hostile user meets it: every failure is one line on stderr with exit
code 2 (usage or config), 1 (a failure while running) or 130 (Ctrl-C); ``--debug`` adds the
traceback; no result is lost or mixed, and the atlas never overwrites a larger atlas. The
computation is stubbed (as in test_runner.py): these tests check the bookkeeping only."""

import csv
import json
import re
import subprocess
import sys

import jax
import pytest
import yaml

from ntk_lab import cli, runner
from tests.test_runner import TINY, patch_experiment, stub_report, stub_results


@pytest.fixture
def stubbed(monkeypatch):
  patch_experiment(monkeypatch, run_seeds=stub_results, report=stub_report)


@pytest.fixture
def config(tmp_path):
  path = tmp_path / "tiny.yaml"
  path.write_text(yaml.safe_dump(TINY))
  return path


def fails(capsys, argv, code, match):
  """Runs the CLI and checks: exit `code`, exactly one line on stderr, matching `match`."""
  assert cli.main([str(a) for a in argv]) == code
  err = capsys.readouterr().err
  lines = err.splitlines()
  assert len(lines) == 1 and lines[0].startswith("ntk-lab: error: "), err
  assert re.search(match, lines[0]), lines[0]
  return lines[0]


@pytest.mark.parametrize(
  "text,extra,match",
  [
    (
      "experiment: kernel_convergence\nmodel: {width: 8}\nmodel: {width: 16}\n",
      [],
      r"key 'model' appears twice \(lines 2 and 3\); keep one",
    ),
    (
      "experiment: kernel_convergence\ntraining: {solver: euler}\n",
      [],
      r"training.dt0: solver 'euler' takes fixed steps",
    ),
    (
      "experiment: kernel_convergence\ntraining: {n_times: 1}\n",
      [],
      r"training.n_times: must be an integer ≥ 2, got 1",
    ),
    (
      "experiment: kernel_convergence\nsweep: {widths: [8]}\n",
      ["--set", "sweep.widths=[16,"],
      r"--set 'sweep.widths=\[16,': not valid YAML",
    ),
    (
      "experiment: kernel_convergence\nsweep: {widths: [8]}\n",
      ["--set", "model.width=512"],
      r"sweep.widths is set \(\[8\]\) and overrides model.width; set sweep.widths=\[512\] instead",
    ),
    ("- experiment\n- kernel_convergence\n", ["--set", "model.width=5"], r"expected a mapping .* got a list"),
    ("experiment: kernel_convergence\noptions: {draws: 3}\n", [], r"options: unknown key 'draws'"),
    (
      "experiment: kernel_convergence\nsweep: {widths: [8, 16, -5]}\n",
      [],
      r"sweep.widths\[2\]: must be a positive",
    ),
  ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_configs_exit_2_in_one_line(tmp_path, capsys, stubbed, command, text, extra, match):
  path = tmp_path / "c.yaml"
  path.write_text(text)
  fails(capsys, [command, path, *extra, *(["--out", tmp_path / "r"] if command == "run" else [])], 2, match)
  assert not (tmp_path / "r").exists()  # refused before anything is written


def test_config_paths_are_named(tmp_path, capsys):
  fails(capsys, ["validate", tmp_path / "missing.yaml"], 2, r"no such file '.*missing.yaml'")
  (tmp_path / "c.yaml").write_text("experiment: quickstart\n")
  fails(capsys, ["validate", tmp_path / "c"], 2, r"no such file '.*/c'; did you mean '.*/c.yaml'\?")
  (tmp_path / "bad.yaml").write_bytes(b"experiment: quickstart # caf\xe9\n")
  fails(capsys, ["validate", tmp_path / "bad.yaml"], 2, r"'.*bad.yaml' is not UTF-8 text")
  fails(capsys, ["validate", tmp_path], 2, r"is a directory")


def test_usage_errors_exit_2_in_one_line(tmp_path, capsys, config):
  fails(capsys, ["run", config, "--shard", "3/2"], 2, r"ntk-lab run: argument --shard: expected 1 ≤ K ≤ N")
  fails(capsys, ["frobnicate"], 2, r"invalid choice: 'frobnicate'.*see ntk-lab --help")
  fails(capsys, ["run"], 2, r"the following arguments are required: config")
  fails(capsys, ["atlas", "--jobs", "0"], 2, r"--jobs")
  fails(capsys, ["run", config, "--out", config], 2, r"--out '.*tiny.yaml': is a file, not a directory")
  fails(capsys, ["report", tmp_path / "nowhere"], 2, r"no such run directory")
  fails(capsys, ["report", tmp_path], 2, r"not a run directory \(no config.yaml\)")


def test_device_not_here_is_refused_and_blocks_nothing(tmp_path, capsys, stubbed, config):
  if jax.default_backend() != "cpu":
    pytest.skip("needs a machine without a GPU")
  fails(capsys, ["validate", config, "--set", "device=gpu"], 2, r"device: 'gpu' is not available here")
  fails(capsys, ["run", config, "--out", tmp_path / "r", "--set", "device=gpu"], 2, r"not available here")
  assert cli.main(["run", str(config), "--out", str(tmp_path / "r")]) == 0  # the corrected rerun
  assert len(list((tmp_path / "r" / "cells").glob("*.json"))) == 4


@pytest.mark.parametrize(
  "error,code,match",
  [
    (
      lambda: __import__("ntk_lab").training.SolverError(
        "max_steps=10 reached at t = 0.5;\nraise max_steps."
      ),
      1,
      r"cells w16_d1_erf_n6_lr1_s0_\w+, w16_d1_erf_n6_lr1_s1_\w+: SolverError: max_steps=10 reached at t = 0.5;",
    ),
    (
      lambda: __import__("ntk_lab").training.DivergenceError("loss is nan at t = 3"),
      1,
      r"DivergenceError: loss is nan",
    ),
    (
      lambda: jax.errors.JaxRuntimeError(
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2TiB.\n" + "x" * 5000
      ),
      1,
      r"out of memory; reduce sweep.widths",
    ),
    (lambda: MemoryError(), 1, r"out of memory"),
    (
      lambda: KeyboardInterrupt(),
      130,
      r"interrupted; the cells finished so far are kept \(rerun with --resume",
    ),
  ],
)
def test_failures_while_running(tmp_path, capsys, monkeypatch, config, error, code, match):
  def failing(cfg, cells, options):
    if cells[0].width == 16:
      raise error()
    return stub_results(cfg, cells, options)

  patch_experiment(monkeypatch, run_seeds=failing, report=stub_report, vmap_seeds_on_cpu=True)
  line = fails(capsys, ["run", config, "--out", tmp_path / "r"], code, match)
  assert len(line) < 700
  assert cli.main(["--debug", "run", str(config), "--out", str(tmp_path / "r"), "--resume"]) == code
  err = capsys.readouterr().err
  assert err.startswith("Traceback (most recent call last)") and err.splitlines()[-1].startswith(
    "ntk-lab: error:"
  )


def test_file_system_failures_exit_1(tmp_path, capsys, monkeypatch, stubbed, config):
  def read_only(path, text):
    raise PermissionError(13, "Permission denied", str(path))

  monkeypatch.setattr(runner, "_write_atomic", read_only)  # as root, chmod cannot make one read-only
  fails(
    capsys, ["run", config, "--out", tmp_path / "r"], 1, r"Permission denied: .*config.yaml \(file system\)"
  )


def test_debug_shows_the_traceback_wherever_it_is_given(tmp_path, capsys):
  for argv in (["--debug", "validate", tmp_path / "x.yaml"], ["validate", tmp_path / "x.yaml", "--debug"]):
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConfigError" in err and err.splitlines()[-1].startswith("ntk-lab: error:")


def test_abused_run_directory_through_the_cli(tmp_path, capsys, stubbed, config):
  """Learning rates that print alike, a truncated cell, an empty cell: nothing lost, mixed or fatal."""
  out = tmp_path / "r"
  over = ["--set", "sweep.learning_rates=[1.0, 1.0000001]", "--set", "sweep.seeds=[0]"]
  assert cli.main(["run", str(config), "--out", str(out), *over]) == 0
  rows = list(csv.DictReader(open(out / "summary.csv")))
  assert len(rows) == 4 and len({r["cell"] for r in rows}) == 4
  assert sorted({float(r["learning_rate"]) for r in rows}) == [1.0, 1.0000001]
  truncated, empty = sorted((out / "cells").glob("*.json"))[:2]
  truncated.write_text(truncated.read_text()[:40])
  empty.write_text("{}")
  capsys.readouterr()
  assert cli.main(["report", str(out)]) == 0  # skips both, says which
  err = capsys.readouterr().err
  assert "2 damaged cell files skipped" in err and truncated.name in err and empty.name in err
  assert cli.main(["run", str(config), "--out", str(out), "--resume", *over]) == 0  # recomputes them
  assert len(list((out / "cells" / "damaged").iterdir())) == 2
  assert capsys.readouterr().err.count("moved to") == 2
  assert len(list(csv.DictReader(open(out / "summary.csv")))) == 4
  fails(capsys, ["run", config, "--out", out, *over], 2, r"already has results; pass --resume")
  fails(capsys, ["run", config, "--out", out, "--resume"], 2, r"holds a run of a different config")


# ------------------------------------------------------------------------------------------ atlas
@pytest.fixture
def repo_with_atlas(tmp_path, monkeypatch):
  """A working directory holding a full committed atlas, and a stand-in for run_atlas that records
  where it would write (and writes a one-claim atlas there)."""
  from ntk_lab import atlas

  atlas._load()
  full = tmp_path / "results" / "atlas"
  full.mkdir(parents=True)
  (full / "atlas.json").write_text(
    json.dumps({"meta": {"quick": False}, "claims": [{"id": cid} for cid in atlas.CLAIMS]})
  )
  (full / "atlas.md").write_text("the full atlas\n")
  calls = []

  def fake_run_atlas(*, quick, only, out, jobs, progress):
    calls.append((only, str(out)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "atlas.md").write_text(f"atlas of {only}\n")
    (out / "atlas.json").write_text(
      json.dumps({"meta": {"quick": quick}, "claims": [{"id": cid} for cid in only or atlas.CLAIMS]})
    )
    return []

  monkeypatch.setattr(atlas, "run_atlas", fake_run_atlas)
  monkeypatch.chdir(tmp_path)
  return full, calls


def test_atlas_subset_never_clobbers_the_full_atlas(repo_with_atlas, capsys):
  full, calls = repo_with_atlas
  before = {p.name: p.read_bytes() for p in full.iterdir()}
  assert cli.main(["atlas", "--only", "C0.6"]) == 0  # from the repository root, no --out
  assert calls == [(["C0.6"], "runs/atlas_C0.6")] and "atlas of ['C0.6']" in capsys.readouterr().out
  fails(
    capsys,
    ["atlas", "--only", "C0.6", "--out", "results/atlas"],
    2,
    rf"holds an atlas of {len(json.loads(before['atlas.json'])['claims'])} claims; this run "
    r"\(--only C0.6\) would replace it and lose",
  )
  fails(capsys, ["atlas", "--quick", "--out", "results/atlas"], 2, r"holds a full \(not --quick\) atlas")
  fails(capsys, ["atlas", "--only", ""], 2, r"--only: expected comma-separated claim ids")
  fails(capsys, ["atlas", "--only", " , "], 2, r"--only: expected comma-separated claim ids")
  fails(capsys, ["atlas", "--only", "C0.66"], 2, r"unknown claim 'C0.66'.*did you mean 'C0.6'\?")
  (full.parent / "afile").write_text("")
  fails(capsys, ["atlas", "--out", "results/afile"], 2, r"is a file, not a directory")
  assert len(calls) == 1 and {p.name: p.read_bytes() for p in full.iterdir()} == before
  assert cli.main(["atlas", "--only", "C0.6,C0.6", "--out", "runs/atlas_C0.6"]) == 0  # same subset: fine
  assert calls[-1] == (["C0.6"], "runs/atlas_C0.6")
  assert cli.main(["atlas", "--out", "results/atlas"]) == 0  # a full run may replace the full atlas
  assert calls[-1] == (None, "results/atlas")


def test_atlas_md_without_json_is_not_replaced_by_a_subset(repo_with_atlas, capsys):
  full, calls = repo_with_atlas
  (full / "atlas.json").unlink()
  fails(
    capsys, ["atlas", "--only", "C0.6", "--out", full], 2, r"holds an atlas.md without a readable atlas.json"
  )
  assert not calls


# ------------------------------------------------------------------------------ as a shell runs it
def test_shell_gets_one_line_and_the_exit_code(tmp_path):
  bad = tmp_path / "bad.yaml"
  bad.write_text("experiment: kernel_convergence\ntraining: {n_times: 1}\n")
  proc = subprocess.run(
    [sys.executable, "-m", "ntk_lab", "run", str(bad), "--out", str(tmp_path / "r")],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr == f"ntk-lab: error: {bad}: training.n_times: must be an integer ≥ 2, got 1.\n"
  proc = subprocess.run(
    [sys.executable, "-m", "ntk_lab", "run", str(bad), "--bogus"], capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1
  assert "unrecognized arguments: --bogus" in proc.stderr
