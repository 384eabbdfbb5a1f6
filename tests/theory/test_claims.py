"""The claims atlas: every claim's check on its quick sweeps, and every claim's false twin.

`test_claim` pins each verdict (a changed result — a statement that starts to fail, a reading or a
correction that stops holding — turns the suite red). `test_false_twin` runs the same check on the
claim's deliberately false twin (a constant halved, an exponent doubled, a term dropped; see the
``twin`` of each registration) and requires it to be reported failing, with no corrected statement
or reading left holding: the proof that each check can fail. The twins of the cheap checks run in
the default suite; those that need the full machinery of a check (gradient flows, tail sampling)
are marked slow, like `test_claim` (the slow suite runs in CI: `make test-slow`).
"""

import re

import pytest

from ntk_lab import atlas

H, F, R, U = atlas.HOLDS, atlas.FAILS, atlas.READING, atlas.UNDECIDED
EXPECTED = {
  "C0.1": H,
  "C0.2": R,
  "C0.3": H,
  "C0.4": H,
  "C0.5": F,
  "C0.6": H,
  "C1.1": H,
  "C1.2": H,
  "C1.3": H,
  "C1.4": H,
  "C1.5": F,
  "C1.6": H,
  "C2.1": H,
  "C2.2": H,
  "C2.3": H,
  "C2.4": H,
  "C2.5": R,
  "C3.1": H,
  "C3.2": R,
  "C3.3": F,
  "C3.4": F,
  "C3.5": F,
  "C3.6": F,
  "C3.7": H,
  "C3.8": H,
  "C3.9": F,
  "C3.10": H,
  "C3.11": H,
  "C4.1": H,
  "C4.2": R,
  "C4.3": H,
  "C4.4": H,
  "C4.5": U,
}
# twins whose quick check takes more than a few seconds (flows, sampling, wide sweeps)
SLOW_TWINS = {
  # ≥ 10 s each on 2 cores (compilation of their check): the slow suite
  "C0.1",
  "C0.2",
  "C1.1",
  "C1.2",
  "C2.1",
  "C2.2",
  "C3.6",
  "C3.1",
  "C3.2",
  "C0.3",
  "C0.4",
  "C0.5",
  "C1.3",
  "C1.4",
  "C1.5",
  "C1.6",
  "C2.3",
  "C2.4",
  "C2.5",
  "C3.4",
  "C3.5",
  "C3.7",
  "C3.11",
  "C4.3",
  "C4.5",
}


def test_every_claim_of_the_atlas_is_registered_with_a_twin():
  atlas._load()
  assert set(atlas.CLAIMS) == set(EXPECTED)
  for c in atlas.CLAIMS.values():
    assert c.twin and c.twin != c.statement, c.id


# references to exercise sheets ("seed 003", "Q2 (a)", "Ex 3.4", "P2", "eq (8)") do not belong in
# a self-contained statement
_SHEET = re.compile(r"\b[Ss]eed\s*\d|\bQ\d\b|\bEx\.?\s*\d|\bP\d\b|\beqs?\.? ?\(?\d|\b[Ss]heets?\b|shared/")


def test_statements_are_self_contained():
  import pathlib

  atlas._load()
  for c in atlas.CLAIMS.values():
    for text in (c.topic, c.statement, c.twin):
      assert not _SHEET.search(text), (c.id, text)
    assert len(c.statement.split()) >= 12, (c.id, "say the claim and its hypotheses in words")
  root = pathlib.Path(atlas.__file__).parent
  for path in root.glob("*.py"):
    hits = [m.group(0) for m in _SHEET.finditer(path.read_text())]
    assert not hits, (path.name, hits)


def test_no_verdict_is_a_literal():
  """Every `Outcome(…)` in the checks passes a computed `holds` (never True/False written out)."""
  import ast
  import pathlib

  for path in pathlib.Path(atlas.__file__).parent.glob("c[0-9].py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Outcome":
        args = list(node.args[1:2]) + [
          k.value for k in node.keywords if k.arg in ("holds", "corrected_holds", "reading_holds", "decided")
        ]
        args += list(node.args[4:5])
        for a in args:
          assert not isinstance(a, ast.Constant), (path.name, node.lineno, ast.unparse(a))


@pytest.mark.slow
@pytest.mark.parametrize("cid", list(EXPECTED))
def test_claim(cid):
  r = atlas.check_claim(cid, quick=True)
  assert r.measured and r.statement
  if r.verdict != EXPECTED[cid]:
    pytest.fail(
      f"{cid}: verdict {r.verdict!r}, expected {EXPECTED[cid]!r}; measured {r.measured}; "
      f"counterexample {r.counterexample}"
    )
  if r.verdict == F:
    assert r.counterexample and r.corrected and r.corrected_holds  # the mended statement is kept, and holds
  if r.verdict == R:
    assert r.reading
  if r.verdict == U:
    assert r.power


def _twin_params():
  return [pytest.param(cid, marks=pytest.mark.slow) if cid in SLOW_TWINS else cid for cid in EXPECTED]


@pytest.mark.parametrize("cid", _twin_params())
def test_false_twin(cid):
  r = atlas.check_claim(cid, quick=True, twin=True)
  assert r.twin and r.statement == atlas.CLAIMS[cid].twin
  assert r.verdict == F, (
    f"{cid}: the false twin ({r.statement}) came out {r.verdict!r}; measured {r.measured}"
  )
  assert not r.corrected_holds, f"{cid}: the twin's corrected statement still holds; measured {r.measured}"
