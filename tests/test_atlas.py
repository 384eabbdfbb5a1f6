"""The atlas machinery: verdicts, the table, the files and the `ntk-lab atlas` command."""

import json

import pytest

from ntk_lab import atlas
from ntk_lab.cli import main


def test_verdict_rules():
  assert atlas.verdict(atlas.Outcome({"x": 1}, True)) == atlas.HOLDS
  assert atlas.verdict(atlas.Outcome({}, False, "ce", "fixed", True)) == atlas.CORRECTED
  assert atlas.verdict(atlas.Outcome({}, False, "ce", "fixed", False)) == atlas.FAILS
  assert atlas.verdict(atlas.Outcome({}, False, "ce")) == atlas.FAILS


def test_unknown_id_names_the_valid_ones():
  with pytest.raises(ValueError, match=r"id: unknown claim 'C9.9'.*C0.1 … C4.5"):
    atlas.check_claim("C9.9")
  with pytest.raises(ValueError, match="did you mean 'C3.1'"):
    atlas.check_claim("C3.1 ")


def test_cli_writes_markdown_and_json(tmp_path, capsys):
  assert main(["atlas", "--only", "C3.9,C3.3", "--out", str(tmp_path), "--jobs", "1"]) == 0
  md = (tmp_path / "atlas.md").read_text()
  assert "| C3.9 |" in md and "| C3.3 |" in md and "counterexample" in md and "corrected" in md
  data = json.loads((tmp_path / "atlas.json").read_text())
  assert [c["id"] for c in data["claims"]] == ["C3.9", "C3.3"]
  assert data["meta"]["date"] and "quick" in data["meta"]
  assert {c["verdict"] for c in data["claims"]} == {atlas.CORRECTED}
  assert "| C3.9 |" in capsys.readouterr().out


def test_cli_bad_id_exits_2(tmp_path, capsys):
  assert main(["atlas", "--only", "C7.1", "--out", str(tmp_path)]) == 2
  assert "unknown claim" in capsys.readouterr().err


def test_committed_atlas_is_a_full_run():
  """results/atlas/ is a full run (re-made by `make atlas`) with the pinned verdicts. (The README no
  longer shows the table; a docs page that copies it is checked verbatim by tests/test_docs.py.)"""
  import pathlib
  root = pathlib.Path(__file__).resolve().parents[1]
  data = json.loads((root / "results" / "atlas" / "atlas.json").read_text())
  assert len(data["claims"]) == 33 and not data["meta"]["quick"]
  from tests.theory.test_claims import EXPECTED
  assert {c["id"]: c["verdict"] for c in data["claims"]} == EXPECTED
