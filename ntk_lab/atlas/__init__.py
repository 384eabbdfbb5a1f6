"""The claims atlas: every checkable statement of the seed exercises, executable.

Each claim of ``shared/claims.md`` (ids C0.1 … C4.5) is a check function registered with `claim`.
A check tests the statement *as printed* on random instances that span small and large values of
its free quantities and returns an `Outcome`: what it measured (worst cases: both sides of each
inequality, fitted slopes with 95 % intervals, tail frequencies with confidence limits) and whether
the printed statement held. When it does not, the check also records a counterexample and tests a
corrected statement. The verdict is then

* ``holds``: the printed statement held on every instance;
* ``fails as printed; corrected holds``: a counterexample to the printed statement, and the
  corrected statement held on every instance (both are reported);
* ``fails``: neither.

Checks run in float64. ``quick=True`` shrinks the sweeps (the whole atlas in under 3 minutes on
2 CPU cores); the tests in ``tests/theory/`` run the quick checks and pin each verdict.

Example:
  >>> import ntk_lab.atlas as atlas
  >>> r = atlas.check_claim("C0.6", quick=True)
  >>> r.id, r.verdict
  ('C0.6', 'holds')
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import time
from typing import Callable

__all__ = ["CLAIMS", "ClaimResult", "Outcome", "check_claim", "run_atlas", "atlas_markdown",
           "HOLDS", "CORRECTED", "FAILS"]

HOLDS = "holds"
CORRECTED = "fails as printed; corrected holds"
FAILS = "fails"


@dataclasses.dataclass
class Outcome:
  """What a check found.

  Attributes:
    measured: name → value (floats, ints or short strings), worst cases over the instances.
    holds: whether the printed statement held on every instance.
    counterexample: when it did not: the inputs and both sides, in words.
    corrected: the corrected statement that was then checked.
    corrected_holds: whether it held on every instance.
    note: anything a reader needs to interpret the result (conventions, loose constants).
  """

  measured: dict
  holds: bool
  counterexample: str | None = None
  corrected: str | None = None
  corrected_holds: bool | None = None
  note: str | None = None


@dataclasses.dataclass(frozen=True)
class ClaimResult:
  """One row of the atlas."""

  id: str
  seed: str
  statement: str
  verdict: str
  measured: dict
  counterexample: str | None
  corrected: str | None
  note: str | None
  seconds: float


@dataclasses.dataclass(frozen=True)
class _Claim:
  id: str
  seed: str
  statement: str
  check: Callable


CLAIMS: dict[str, _Claim] = {}


def claim(id: str, seed: str, statement: str):
  """Registers a check ``fn(quick: bool) -> Outcome`` under `id`."""
  def register(fn):
    CLAIMS[id] = _Claim(id, seed, statement, fn)
    return fn
  return register


def _load():
  import pkgutil
  for m in pkgutil.iter_modules(__path__):
    if m.name.startswith("c") and m.name[1:].isdigit():  # c0 … c4: one module per seed
      importlib.import_module(f"ntk_lab.atlas.{m.name}")


def _key(cid):
  major, minor = cid[1:].split(".")
  return int(major), int(minor)


def verdict(outcome: Outcome) -> str:
  if outcome.holds:
    return HOLDS
  if outcome.corrected is not None and outcome.corrected_holds:
    return CORRECTED
  return FAILS


def _check_id(id):
  if id not in CLAIMS:
    import difflib
    close = difflib.get_close_matches(id, list(CLAIMS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"id: unknown claim {id!r}; valid ids are C0.1 … C4.5 ({len(CLAIMS)} claims){hint}")


def check_claim(id: str, *, quick: bool = False) -> ClaimResult:
  """Runs one claim's check (in float64) and returns its `ClaimResult`."""
  import jax
  _load()
  _check_id(id)
  c = CLAIMS[id]
  t0 = time.perf_counter()
  with jax.enable_x64(True):
    out = c.check(quick)
  return ClaimResult(c.id, c.seed, c.statement, verdict(out), dict(out.measured), out.counterexample,
                     out.corrected, out.note, time.perf_counter() - t0)


def run_atlas(*, quick: bool = False, only=None, out=None, jobs: int = 1,
              progress: bool = False) -> list[ClaimResult]:
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
      print(f"[{len(done)}/{len(ids)}] {r.id:6s} {r.verdict:34s} {r.seconds:6.1f} s", file=sys.stderr, flush=True)

  if jobs > 1:
    import concurrent.futures
    import multiprocessing
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
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
    (out / "atlas.json").write_text(json.dumps({"meta": meta, "claims": [dataclasses.asdict(r) for r in results]},
                                               indent=1, default=_jsonable))
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
  return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), "commit": git_commit(short=True),
          "quick": quick, "jax": jax.__version__}


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


def atlas_markdown(results, meta=None) -> str:
  """The atlas as a Markdown table (one row per claim) plus the counterexamples and corrections."""
  def cell(text):  # a "|" inside a cell (|x|, |F|) would end it
    return str(text).replace("|", "\\|")

  rows = []
  for r in results:
    measured = "; ".join(f"{k} = {_fmt(v)}" for k, v in r.measured.items())
    rows.append(f"| {r.id} | {r.seed} | {cell(r.statement)} | {cell(measured)} | {r.verdict} |")
  head = ""
  if meta:
    head = (f"Claims atlas, {'quick' if meta.get('quick') else 'full'} run of {meta.get('date')} on commit "
            f"{meta.get('commit')} (jax {meta.get('jax')}): "
            + ", ".join(f"{sum(r.verdict == v for r in results)} {v}" for v in (HOLDS, CORRECTED, FAILS)) + ".\n\n")
  table = ("| id | seed | statement tested | measured (worst case) | verdict |\n|---|---|---|---|---|\n"
           + "\n".join(rows) + "\n")
  notes = []
  for r in results:
    if r.counterexample or r.note:
      lines = [f"- **{r.id}**"]
      if r.counterexample:
        lines.append(f"  - counterexample: {r.counterexample}")
      if r.corrected:
        lines.append(f"  - corrected: {r.corrected}")
      if r.note:
        lines.append(f"  - note: {r.note}")
      notes.append("\n".join(lines))
  return head + table + ("\n" + "\n".join(notes) + "\n" if notes else "")
