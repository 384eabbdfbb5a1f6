"""The claims atlas: checkable statements of NTK theory, each one executable.

Every claim (ids C0.1 … C4.5) is a statement about neural tangent kernels and their training
dynamics — a gradient formula, a kernel limit, an inequality, a tail bound — written out in full in
its `claim` registration (hypotheses included, in words). The results are standard: Jacot et al.
2018 (NTK, GP limit, lazy training), Du et al. 2019 and Arora et al. 2019 ("Fine-grained
analysis", "On exact computation") for the two-layer ReLU NTK and its complexity bound, Lee et al.
2019 (wide networks evolve as linear models), Arora et al. 2018 (deep linear networks), Chizat et
al. 2019 (lazy training). Each check function measures the statement on instances that reach the
edges of its hypotheses (n = 1, m = 1, extreme scales, t → 0 and t → ∞) and, for inequalities and
tail bounds, runs an adversarial search (random points plus a local optimiser on LHS/RHS, see
`ntk_lab.atlas._search`). It returns an `Outcome`; the verdict is computed from it, never written:

* ``holds`` — the statement as printed held on every instance and in the search;
* ``fails as printed`` — a counterexample was found (recorded, with both sides); a corrected
  statement is then checked and reported with its own result;
* ``holds under a stated reading`` — the statement is ambiguous or under-specified (a symbol with
  two meanings, a missing hypothesis); one reading fails and the named reading holds;
* ``not decided`` — the test could not tell; the outcome says how large a violation it could
  have seen (its power).

Every claim also has a *false twin* (`claim`'s ``twin``): the statement with a constant halved, an
exponent doubled or a term dropped. ``check_claim(id, twin=True)`` runs the same check on the twin,
which must come out ``fails as printed`` (with a failing corrected statement) — the proof that the
check can fail; ``tests/theory`` asserts it for every claim.

Checks run in float64. ``quick=True`` shrinks the sweeps.

Example:
  >>> import ntk_lab.atlas as atlas
  >>> r = atlas.check_claim("C0.6", quick=True)
  >>> r.id, r.verdict
  ('C0.6', 'holds')
  >>> atlas.check_claim("C0.6", quick=True, twin=True).verdict
  'fails as printed'
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import pathlib
import time
from collections.abc import Callable

__all__ = [
  "CLAIMS",
  "ClaimResult",
  "Outcome",
  "check_claim",
  "run_atlas",
  "atlas_markdown",
  "update_docs",
  "verdict",
  "unresolved",
  "counts",
  "VERDICTS",
  "HOLDS",
  "FAILS",
  "READING",
  "UNDECIDED",
]

HOLDS = "holds"
FAILS = "fails as printed"
READING = "holds under a stated reading"
UNDECIDED = "not decided"
VERDICTS = (HOLDS, FAILS, READING, UNDECIDED)


@dataclasses.dataclass
class Outcome:
  """What a check found.

  Attributes:
    measured: name → value (floats, ints or short strings), worst cases over the instances.
    holds: whether the statement as printed held on every instance (computed from `measured`).
    counterexample: when it did not: the inputs and both sides, in words.
    corrected: a corrected statement that was then checked.
    corrected_holds: whether it held on every instance.
    note: the formalisation choices (how each symbol was read) and anything else a reader needs.
    reading: when the printed statement is ambiguous or under-specified: the reading under which
      it was checked to hold (e.g. "for n ≤ d").
    reading_holds: whether it held under that reading.
    decided: False when the measurements cannot tell (see `power`).
    power: the smallest violation the test could have seen.
    search: the adversarial search: {"worst ratio": …, "where": …, "evaluations": …}.
  """

  measured: dict
  holds: bool
  counterexample: str | None = None
  corrected: str | None = None
  corrected_holds: bool | None = None
  note: str | None = None
  reading: str | None = None
  reading_holds: bool | None = None
  decided: bool = True
  power: str | None = None
  search: dict | None = None


@dataclasses.dataclass(frozen=True)
class ClaimResult:
  """One row of the atlas (`twin`: whether the false twin was checked instead of the claim)."""

  id: str
  topic: str
  statement: str
  verdict: str
  measured: dict
  counterexample: str | None
  corrected: str | None
  corrected_holds: bool | None
  reading: str | None
  power: str | None
  search: dict | None
  note: str | None
  twin: bool
  seconds: float


@dataclasses.dataclass(frozen=True)
class _Claim:
  id: str
  topic: str
  statement: str
  twin: str
  check: Callable


CLAIMS: dict[str, _Claim] = {}


def claim(id: str, topic: str, statement: str, *, twin: str):
  """Registers a check ``fn(quick: bool, twin: bool) -> Outcome`` under `id`.

  `statement` is the claim in words with its hypotheses; `twin` says how its false twin differs
  (the check evaluates that twin instead when called with ``twin=True``).
  """

  def register(fn):
    CLAIMS[id] = _Claim(id, topic, statement, twin, fn)
    return fn

  return register


def _load():
  import pkgutil

  for m in pkgutil.iter_modules(__path__):
    if m.name.startswith("c") and m.name[1:].isdigit():  # c0 … c4: one module per topic
      importlib.import_module(f"ntk_lab.atlas.{m.name}")


def _key(cid):
  major, minor = cid[1:].split(".")
  return int(major), int(minor)


def verdict(outcome: Outcome) -> str:
  """The verdict an `Outcome` supports: `UNDECIDED` when the test could not tell, `HOLDS` when the
  printed statement held, `READING` when it failed but the named reading held, else `FAILS`."""
  if not outcome.decided:
    return UNDECIDED
  if outcome.holds:
    return HOLDS
  if outcome.reading is not None and outcome.reading_holds:
    return READING
  return FAILS


def unresolved(result) -> bool:
  """A result the atlas cannot account for: the printed statement fails and no corrected statement
  or reading holds (``ntk-lab atlas`` exits with 1 when there is one)."""
  return result.verdict == FAILS and not result.corrected_holds


def _check_id(id):
  if id not in CLAIMS:
    import difflib

    close = difflib.get_close_matches(id, list(CLAIMS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"id: unknown claim {id!r}; valid ids are C0.1 … C4.5 ({len(CLAIMS)} claims){hint}")


def check_claim(id: str, *, quick: bool = False, twin: bool = False) -> ClaimResult:
  """Runs one claim's check (in float64) and returns its `ClaimResult`; with ``twin=True`` the check
  runs on the claim's false twin (which must fail)."""
  import jax

  _load()
  _check_id(id)
  c = CLAIMS[id]
  t0 = time.perf_counter()
  with jax.enable_x64(True):
    out = c.check(quick, twin)
  return ClaimResult(
    c.id,
    c.topic,
    c.twin if twin else c.statement,
    verdict(out),
    dict(out.measured),
    out.counterexample,
    out.corrected,
    out.corrected_holds,
    out.reading,
    out.power,
    out.search,
    out.note,
    twin,
    time.perf_counter() - t0,
  )


def run_atlas(
  *, quick: bool = False, only=None, out=None, jobs: int = 1, progress: bool = False
) -> list[ClaimResult]:
  """Runs every claim (or the ids in `only`) and returns the results in id order.

  Args:
    quick: the reduced sweeps (the whole atlas in under 3 minutes on 2 cores with ``jobs=2``).
    only: ids to run, e.g. ``["C0.6", "C3.4"]``.
    out: a directory to write ``atlas.md`` and ``atlas.json`` into (with date, commit, jax version).
    jobs: worker processes (claims are independent; each worker is a fresh interpreter).
    progress: print one line per finished claim to stderr.
  """
  import sys

  _load()
  ids = sorted(CLAIMS, key=_key) if only is None else list(only)
  for cid in ids:
    _check_id(cid)
  done = {}

  def record(r):
    done[r.id] = r
    if progress:
      print(
        f"[{len(done)}/{len(ids)}] {r.id:6s} {r.verdict:34s} {r.seconds:6.1f} s", file=sys.stderr, flush=True
      )

  if jobs > 1:
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(
      jobs, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
      futures = [pool.submit(check_claim, cid, quick=quick) for cid in ids]
      for fut in concurrent.futures.as_completed(futures):
        record(fut.result())
  else:
    for cid in ids:
      record(check_claim(cid, quick=quick))
  results = [done[cid] for cid in ids]
  if out is not None:
    import pathlib

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = _meta(quick)
    (out / "atlas.md").write_text(atlas_markdown(results, meta))
    (out / "atlas.json").write_text(
      json.dumps(
        {"meta": meta, "claims": [dataclasses.asdict(r) for r in results]}, indent=1, default=_jsonable
      )
    )
  return results


def _jsonable(v):
  try:
    return float(v)
  except (TypeError, ValueError):
    return str(v)


def _meta(quick):
  import datetime

  import jax

  from ntk_lab.runner import git_commit

  return {
    "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
    "commit": git_commit(short=True),
    "quick": quick,
    "jax": jax.__version__,
  }


def _fmt(v):
  if isinstance(v, bool):
    return str(v)
  if isinstance(v, int):
    return f"{v:,}"
  if isinstance(v, float):
    if v == 0 or not math.isfinite(v):
      return str(v)
    return f"{v:.3g}"
  return str(v)


def counts(results) -> dict:
  """How many results have each verdict, in the order of `VERDICTS`."""
  return {v: sum(r.verdict == v for r in results) for v in VERDICTS}


def _search_text(search):
  if not search:
    return ""
  where = ", ".join(f"{k} = {_fmt(v)}" for k, v in search.get("where", {}).items())
  return (
    f"worst LHS/RHS {_fmt(search['worst ratio'])} at {where} ({search.get('evaluations', '?')} evaluations)"
  )


def atlas_markdown(results, meta=None) -> str:
  """The atlas as Markdown: a count of each verdict, a table (one row per claim), then per claim
  its readings, counterexamples, corrected statements, adversarial search and notes."""

  def cell(text):  # a "|" inside a cell (|x|, |F|) would end it
    return str(text).replace("|", "\\|")

  rows = []
  for r in results:
    measured = "; ".join(f"{k} = {_fmt(v)}" for k, v in r.measured.items())
    rows.append(f"| {r.id} | {r.topic} | {cell(r.statement)} | {cell(measured)} | {r.verdict} |")
  c = counts(results)
  head = ", ".join(f"{n} {v}" for v, n in c.items()) + ".\n\n"
  if meta:
    head = (
      f"Claims atlas, {'quick' if meta.get('quick') else 'full'} run of {meta.get('date')} on commit "
      f"{meta.get('commit')} (jax {meta.get('jax')}), {len(results)} claims: " + head
    )
  table = (
    "| id | topic | statement tested | measured (worst case) | verdict |\n|---|---|---|---|---|\n"
    + "\n".join(rows)
    + "\n"
  )
  notes = []
  for r in results:
    lines = [f"- **{r.id}** ({r.verdict})"]
    if r.reading:
      lines.append(f"  - reading: {r.reading}")
    if r.counterexample:
      lines.append(f"  - counterexample: {r.counterexample}")
    if r.corrected:
      lines.append(f"  - corrected ({'holds' if r.corrected_holds else 'fails'}): {r.corrected}")
    if r.search:
      lines.append(f"  - adversarial search: {_search_text(r.search)}")
    if r.power:
      lines.append(f"  - power: {r.power}")
    if r.note:
      lines.append(f"  - note: {r.note}")
    if len(lines) > 1:
      notes.append("\n".join(lines))
  return head + table + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _results_from_json(path):
  data = json.loads(pathlib.Path(path).read_text())
  fields = {f.name for f in dataclasses.fields(ClaimResult)}
  return [ClaimResult(**{k: v for k, v in c.items() if k in fields}) for c in data["claims"]], data["meta"]


BEGIN, END = "<!-- atlas:begin -->", "<!-- atlas:end -->"


def update_docs(results_dir="results/atlas", docs="docs/atlas.md") -> str:
  """Re-writes the block between ``<!-- atlas:begin -->`` and ``<!-- atlas:end -->`` of `docs`
  with the atlas table of ``results_dir/atlas.json`` (verdict counts, table, notes) and returns it.

  ``ntk-lab atlas --docs docs/atlas.md`` calls it after a run; it needs no re-run.
  """
  results, meta = _results_from_json(pathlib.Path(results_dir) / "atlas.json")
  block = atlas_markdown(results, meta)
  page = pathlib.Path(docs)
  text = page.read_text()
  if BEGIN not in text or END not in text:
    raise ValueError(
      f"docs: {str(page)!r} has no {BEGIN} … {END} block; add both markers where the table goes."
    )
  before, rest = text.split(BEGIN, 1)
  after = rest.split(END, 1)[1]
  page.write_text(f"{before}{BEGIN}\n{block}{END}{after}")
  return block
