"""The atlas machinery: verdicts, the table, the files, the docs block and the `ntk-lab atlas` command."""

import json

import pytest

from ntk_lab import atlas
from ntk_lab.cli import main


def test_verdict_rules():
  O = atlas.Outcome
  assert atlas.verdict(O({"x": 1}, True)) == atlas.HOLDS
  assert atlas.verdict(O({}, False, "ce", "fixed", True)) == atlas.FAILS  # a correction does not make it hold
  assert atlas.verdict(O({}, False, "ce", "fixed", False)) == atlas.FAILS
  assert atlas.verdict(O({}, False, "ce", reading="for n ≤ d", reading_holds=True)) == atlas.READING
  assert atlas.verdict(O({}, False, "ce", reading="for n ≤ d", reading_holds=False)) == atlas.FAILS
  assert atlas.verdict(O({}, True, decided=False, power="±0.1")) == atlas.UNDECIDED
  assert atlas.verdict(O({}, False, decided=False)) == atlas.UNDECIDED
  assert set(atlas.VERDICTS) == {atlas.HOLDS, atlas.FAILS, atlas.READING, atlas.UNDECIDED}


def _result(verdict, corrected_holds=None, **kw):
  base = dict(
    id="C0.6",
    topic="t",
    statement="s",
    verdict=verdict,
    measured={"a": 1.0},
    counterexample=None,
    corrected=None,
    corrected_holds=corrected_holds,
    reading=None,
    power=None,
    search=None,
    note=None,
    twin=False,
    seconds=0.0,
  )
  base.update(kw)
  return atlas.ClaimResult(**base)


def test_unresolved_and_counts():
  assert atlas.unresolved(_result(atlas.FAILS, False))
  assert not atlas.unresolved(_result(atlas.FAILS, True))
  assert not atlas.unresolved(_result(atlas.READING))
  rs = [_result(atlas.HOLDS), _result(atlas.FAILS, True), _result(atlas.HOLDS)]
  assert atlas.counts(rs) == {atlas.HOLDS: 2, atlas.FAILS: 1, atlas.READING: 0, atlas.UNDECIDED: 0}


def test_markdown_lists_readings_searches_and_power():
  r = _result(
    atlas.READING,
    reading="for n ≤ d",
    power="1e-3",
    counterexample="n = 4 > d = 3",
    search={"worst ratio": 0.7, "where": {"n": 1, "d": 3}, "evaluations": 10},
  )
  md = atlas.atlas_markdown([r], {"quick": True, "date": "d", "commit": "c", "jax": "j"})
  assert "0 holds, 0 fails as printed, 1 holds under a stated reading, 0 not decided" in md
  assert "reading: for n ≤ d" in md and "power: 1e-3" in md and "worst LHS/RHS 0.7 at n = 1, d = 3" in md


def test_twin_of_a_cheap_claim_fails_and_the_claim_holds():
  assert atlas.check_claim("C4.1", quick=True).verdict == atlas.HOLDS
  r = atlas.check_claim("C4.1", quick=True, twin=True)
  assert r.verdict == atlas.FAILS and r.twin and "2j/N" in r.statement


def test_unknown_id_names_the_valid_ones():
  with pytest.raises(ValueError, match=r"id: unknown claim 'C9.9'.*C0.1 … C4.5"):
    atlas.check_claim("C9.9")
  with pytest.raises(ValueError, match="did you mean 'C3.1'"):
    atlas.check_claim("C3.1 ")


@pytest.mark.slow  # runs claims end to end (~15 s)
def test_cli_writes_markdown_json_and_docs(tmp_path, capsys):
  page = tmp_path / "page.md"
  page.write_text("intro\n<!-- atlas:begin -->\nSTALE-BLOCK\n<!-- atlas:end -->\noutro\n")
  assert (
    main(["atlas", "--only", "C4.2,C3.10", "--out", str(tmp_path), "--jobs", "1", "--docs", str(page)]) == 0
  )
  md = (tmp_path / "atlas.md").read_text()
  assert "| C4.2 |" in md and "| C3.10 |" in md and "reading:" in md and "corrected (holds)" in md
  data = json.loads((tmp_path / "atlas.json").read_text())
  assert [c["id"] for c in data["claims"]] == ["C4.2", "C3.10"]
  assert data["meta"]["date"] and "quick" in data["meta"]
  assert [c["verdict"] for c in data["claims"]] == [atlas.READING, atlas.HOLDS]
  assert "| C4.2 |" in capsys.readouterr().out
  text = page.read_text()
  assert text.startswith("intro\n<!-- atlas:begin -->\n") and text.endswith("<!-- atlas:end -->\noutro\n")
  assert "STALE-BLOCK" not in text and md.strip() in text
  # --docs alone re-renders from the json without re-running
  page.write_text("<!-- atlas:begin -->\n<!-- atlas:end -->\n")
  assert main(["atlas", "--out", str(tmp_path), "--docs", str(page)]) == 0
  assert md.strip() in page.read_text()


def test_docs_without_markers_is_an_error(tmp_path, capsys):
  assert main(["atlas", "--only", "C4.2", "--out", str(tmp_path), "--jobs", "1"]) == 0
  page = tmp_path / "page.md"
  page.write_text("no markers\n")
  assert main(["atlas", "--out", str(tmp_path), "--docs", str(page)]) == 2
  assert "atlas:begin" in capsys.readouterr().err


def test_cli_bad_id_exits_2(tmp_path, capsys):
  assert main(["atlas", "--only", "C7.1", "--out", str(tmp_path)]) == 2
  assert "unknown claim" in capsys.readouterr().err


def test_docs_show_the_committed_atlas():
  """docs/atlas.md's atlas block is results/atlas/atlas.md verbatim (re-made by `ntk-lab atlas --docs`)."""
  import pathlib

  root = pathlib.Path(__file__).resolve().parents[1]
  page = (root / "docs" / "atlas.md").read_text()
  shown = page.split(atlas.BEGIN + "\n", 1)[1].split(atlas.END, 1)[0]
  assert shown.strip() == (root / "results" / "atlas" / "atlas.md").read_text().strip()
  data = json.loads((root / "results" / "atlas" / "atlas.json").read_text())
  assert len(data["claims"]) == 33 and not data["meta"]["quick"]
  from tests.theory.test_claims import EXPECTED

  assert {c["id"]: c["verdict"] for c in data["claims"]} == EXPECTED
