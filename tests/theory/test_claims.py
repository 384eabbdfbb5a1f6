"""The claims atlas (shared/claims.md): one test per claim id, each running the claim's check (quick
sweeps, float64) and pinning its verdict. A check measures and decides by itself (see
ntk_lab/atlas/c*.py); these tests make sure every verdict stays what the atlas reports, so a
changed result (a printed statement that starts to fail, or a correction that stops holding)
turns the suite red. The whole atlas takes about 3 minutes of two cores, so these run with the
slow suite (`make test-slow`, which CI runs); `ntk-lab atlas --quick` runs the same checks."""

import pytest

from ntk_lab import atlas

H, C = atlas.HOLDS, atlas.CORRECTED
EXPECTED = {
    "C0.1": H, "C0.2": H, "C0.3": H, "C0.4": H, "C0.5": C, "C0.6": H,
    "C1.1": H, "C1.2": H, "C1.3": H, "C1.4": H, "C1.5": C, "C1.6": H,
    "C2.1": H, "C2.2": H, "C2.3": H, "C2.4": H, "C2.5": C,
    "C3.1": H, "C3.2": C, "C3.3": C, "C3.4": C, "C3.5": H, "C3.6": C, "C3.7": H, "C3.8": H, "C3.9": C,
    "C3.10": H, "C3.11": H,
    "C4.1": H, "C4.2": C, "C4.3": H, "C4.4": H, "C4.5": H,
}


def test_every_claim_of_the_atlas_is_registered():
  import pathlib
  import re
  atlas._load()
  assert set(atlas.CLAIMS) == set(EXPECTED)
  claims_md = pathlib.Path(__file__).resolve().parents[3] / "shared" / "claims.md"
  if claims_md.exists():  # the shared atlas sits beside the repository in the workspace
    assert set(re.findall(r"^\| (C\d\.\d+) \|", claims_md.read_text(), re.M)) == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("cid", list(EXPECTED))
def test_claim(cid):
  r = atlas.check_claim(cid, quick=True)
  assert r.measured and r.statement
  if r.verdict != EXPECTED[cid]:
    pytest.fail(f"{cid}: verdict {r.verdict!r}, expected {EXPECTED[cid]!r}; measured {r.measured}; "
                f"counterexample {r.counterexample}")
  if r.verdict == C:
    assert r.counterexample and r.corrected  # both statements are kept in the atlas
