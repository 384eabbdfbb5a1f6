"""The ``ntk-lab`` command (also ``python -m ntk_lab``).

    ntk-lab run CONFIG.yaml [--out DIR] [--resume] [--shard K/N] [--set key=value ...]
    ntk-lab validate CONFIG.yaml [--set key=value ...]
    ntk-lab list
    ntk-lab report RUN_DIR
    ntk-lab atlas [--quick] [--only C0.1,C3.4] [--out DIR] [--jobs N] [--docs PAGE]

Every command takes ``--debug`` (before or after the command name).

Every failure is one line on stderr, ``ntk-lab: error: …``, naming what was wrong and how to fix
it, and the exit code says what kind of failure it was:

* 0: done;
* 1: a failure while running: a solver or divergence error, out of memory, a file that cannot be
  written; also `atlas` when a claim fails as printed and no corrected statement
  held (`ntk_lab.atlas.unresolved`);
* 2: bad usage or config (an unknown key, a key the experiment does not use, a value out of range
  or too large for memory, a path that is not a config file or a run directory, an empty --out, an
  output directory holding other results or being written by another run);
* 130: interrupted (Ctrl-C); the cells finished so far are kept, and ``--resume`` finishes the run.

``--debug`` prints the traceback before that line.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import traceback

from ntk_lab import _checks
from ntk_lab.config import ConfigError, cells, load_config

__all__ = ["main"]

FULL_ATLAS_DIR = "results/atlas"


class UsageError(ValueError):
  """Bad command-line usage (exit code 2)."""


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors: the usage block is what ``--help`` is for."""

  def error(self, message):
    raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _shard(text):
  try:
    k, n = (int(v) for v in text.split("/"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected K/N such as 2/8, got {text!r}") from None
  if not 1 <= k <= n:
    raise argparse.ArgumentTypeError(f"expected 1 ≤ K ≤ N, got {text!r}")
  return k, n


def _jobs(text):
  try:
    return _checks.positive_int(int(text), "--jobs")
  except ValueError:
    raise argparse.ArgumentTypeError(
      f"expected a positive number of worker processes, got {text!r}"
    ) from None


def _parser():
  debug = argparse.ArgumentParser(add_help=False)
  # SUPPRESS: a subcommand's default must not undo a --debug given before the command name
  debug.add_argument(
    "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of a failure"
  )
  parser = _Parser(prog="ntk-lab", description="Neural tangent kernel experiments.")
  parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  run = sub.add_parser("run", parents=[debug], help="run an experiment config (a sweep) into a run directory")
  run.add_argument("config", help="a YAML config, e.g. configs/quickstart.yaml")
  run.add_argument("--out", help="run directory (default: runs/<config name>)")
  run.add_argument(
    "--resume",
    action="store_true",
    help="keep finished cells of this config, set aside damaged and foreign ones, run the rest",
  )
  run.add_argument("--shard", type=_shard, metavar="K/N", help="run the K-th of N slices of the grid")
  run.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="override a config key, e.g. --set model.width=512 (repeatable)",
  )
  val = sub.add_parser(
    "validate",
    parents=[debug],
    help="check a config (and that this machine can run it); print its resolved form",
  )
  val.add_argument("config")
  val.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  sub.add_parser("list", parents=[debug], help="list the experiments with one-line descriptions")
  rep = sub.add_parser(
    "report", parents=[debug], help="re-make plots, tables and summary.csv of a run directory"
  )
  rep.add_argument("run_dir")
  atl = sub.add_parser("atlas", parents=[debug], help="check every claim; write atlas.md and atlas.json")
  atl.add_argument("--quick", action="store_true", help="reduced sweeps (under 3 minutes on 2 cores)")
  atl.add_argument("--only", help="comma-separated claim ids, e.g. C0.6,C3.4")
  atl.add_argument(
    "--out",
    help=f"output directory (default: {FULL_ATLAS_DIR} for every claim, "
    "runs/atlas_<ids> with --only); never one holding more claims",
  )
  atl.add_argument("--jobs", type=_jobs, default=2, help="worker processes (default: 2)")
  atl.add_argument(
    "--docs",
    metavar="PAGE",
    help="re-write the atlas block of PAGE (e.g. docs/atlas.md) from "
    "OUT/atlas.json; with --docs alone (no --only, --quick) nothing is re-run",
  )
  return parser


def main(argv=None) -> int:
  """Runs the command line `argv` (default: ``sys.argv[1:]``) and returns the exit code."""
  argv = sys.argv[1:] if argv is None else list(argv)
  debug = "--debug" in argv
  try:
    args = _parser().parse_args(argv)
    return _command(args)
  except KeyboardInterrupt:
    _fail(debug, "interrupted; the cells finished so far are kept (rerun with --resume to finish).")
    return 130
  except (ConfigError, UsageError) as e:
    _fail(debug, str(e))
    return 2
  except MemoryError as e:
    _fail(debug, f"out of memory ({e or 'MemoryError'}); reduce sweep.widths, data.n or sweep.seeds.")
    return 1
  except OSError as e:
    where = " → ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    _fail(debug, f"{e.strerror or e}{': ' + where if where else ''} (file system).")
    return 1
  except Exception as e:  # RunError, SolverError, DivergenceError, anything else while running
    from ntk_lab.runner import RunError

    text = str(e) if isinstance(e, RunError) else f"{type(e).__name__}: {e}"
    _fail(debug, text + ("" if debug else " (rerun with --debug for the traceback)"))
    return 1


def _fail(debug: bool, message: str):
  if debug:
    traceback.print_exc()
  line = " ".join(message.split())  # one line, whatever the exception's message holds
  if len(line) > 600 and not debug:
    line = line[:600] + " …"
  print(f"ntk-lab: error: {line}", file=sys.stderr, flush=True)


def _command(args) -> int:
  from ntk_lab import runner

  if args.command == "list":
    for name in runner.EXPERIMENTS:
      print(f"{name:22s} {runner.EXPERIMENTS[name].description}")
    return 0
  if args.command == "validate":
    import yaml

    cfg = load_config(pathlib.Path(args.config), overrides=args.set)
    runner.check_run(cfg)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: 10⁵ seeds print in a second
    print(yaml.dump(cfg.to_dict(), Dumper=dumper, sort_keys=False), end="")
    print(f"# {len(cells(cfg))} cells")
    return 0
  if args.command == "run":
    out = f"runs/{pathlib.Path(args.config).stem}" if args.out is None else _nonblank(args.out, "--out")
    runner.run(pathlib.Path(args.config), out, resume=args.resume, shard=args.shard, overrides=args.set)
    print(f"results in {out}")
    return 0
  if args.command == "atlas":
    return _atlas(args)
  runner.report(_nonblank(args.run_dir, "RUN_DIR"))
  return 0


def _nonblank(path: str, name: str) -> str:
  """`path` unless it is empty or blank (which would mean the working directory, not what was meant)."""
  if not path.strip():
    raise UsageError(
      f"{name} {path!r}: is empty; name a directory such as runs/quickstart"
      + (", or leave --out out for the default." if name.startswith("--") else ".")
    )
  return path


def _atlas(args) -> int:
  from ntk_lab import atlas

  if args.out is not None:
    _nonblank(args.out, "--out")
  ids = None
  if args.only is not None:
    ids = list(dict.fromkeys(c.strip() for c in args.only.split(",") if c.strip()))
    if not ids:
      raise UsageError(
        f"--only: expected comma-separated claim ids such as C0.6,C3.4, got {args.only!r}; "
        "leave --only out to check every claim."
      )
    atlas._load()  # registers the claims (what run_atlas does first)
    for cid in ids:
      if cid not in atlas.CLAIMS:
        raise UsageError(
          f"--only: unknown claim {cid!r} ({len(atlas.CLAIMS)} claims, "
          f"C0.1 … C4.5){_checks.did_you_mean(cid, atlas.CLAIMS) or '.'}"
        )
  default = FULL_ATLAS_DIR if ids is None else f"runs/atlas_{'_'.join(ids)}"
  out = pathlib.Path(default if args.out is None else _nonblank(args.out, "--out"))
  if args.docs and not (ids or args.quick):  # re-render the page from the files in `out`, no run
    return _atlas_docs(atlas, out, args.docs, echo=True)
  _check_atlas_out(out, ids, args.quick)  # before any claim is computed
  results = atlas.run_atlas(quick=args.quick, only=ids, out=out, jobs=args.jobs, progress=True)
  print((out / "atlas.md").read_text())
  if args.docs:
    _atlas_docs(atlas, out, args.docs, echo=False)
  return 1 if any(atlas.unresolved(r) for r in results) else 0


def _atlas_docs(atlas, out, page, *, echo):
  try:
    block = atlas.update_docs(out, page)
  except ValueError as e:
    raise UsageError(str(e)) from None
  if echo:
    print(block, end="")
  return 0


def _check_atlas_out(out: pathlib.Path, ids, quick: bool):
  """Refuses an output directory whose atlas this run would replace with a smaller or quicker one,
  and one that is a file or cannot be written."""
  if out.exists() and not out.is_dir():
    raise UsageError(f"--out {str(out)!r}: is a file, not a directory; choose a directory.")
  held, held_quick = _atlas_in(out)
  if held is not None:
    from ntk_lab import atlas

    atlas._load()
    wanted = set(atlas.CLAIMS) if ids is None else set(ids)
    lost = sorted(set(held) - wanted) if held != "?" else None
    subset = f"this run ({'--only ' + ','.join(ids) if ids else 'every claim'})"
    if held == "?" and ids is not None:
      raise UsageError(
        f"--out {str(out)!r}: holds an atlas.md without a readable atlas.json; {subset} "
        "would replace it; choose another --out."
      )
    if lost:
      raise UsageError(
        f"--out {str(out)!r}: holds an atlas of {len(held)} claims; {subset} would replace it "
        f"and lose {len(lost)} of them; leave --out out (a subset goes to runs/) or choose "
        "another directory."
      )
    if quick and held_quick is False:
      raise UsageError(
        f"--out {str(out)!r}: holds a full (not --quick) atlas; a --quick run would replace "
        "it; choose another --out."
      )
  out.mkdir(parents=True, exist_ok=True)
  probe = out / ".ntk-lab-write-test"
  probe.write_text("")  # an OSError here (read-only, full) is said before hours of computation
  probe.unlink()


def _atlas_in(out: pathlib.Path):
  """(claim ids, quick) of the atlas in `out`; ("?", None) for an atlas.md without a readable
  atlas.json; (None, None) when there is none."""
  if not (out / "atlas.json").exists():
    return ("?", None) if (out / "atlas.md").exists() else (None, None)
  try:
    data = json.loads((out / "atlas.json").read_text())
    return [c["id"] for c in data["claims"]], bool(data["meta"]["quick"])
  except (OSError, ValueError, KeyError, TypeError):
    return "?", None


if __name__ == "__main__":
  sys.exit(main())
