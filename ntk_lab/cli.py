"""The ``ntk-lab`` command (also ``python -m ntk_lab``).

    ntk-lab run CONFIG.yaml [--out DIR] [--resume] [--shard K/N] [--set key=value ...]
    ntk-lab validate CONFIG.yaml [--set key=value ...]
    ntk-lab list
    ntk-lab report RUN_DIR
    ntk-lab atlas [--quick] [--only C0.1,C3.4] [--out DIR] [--jobs N]

Exit codes: 0 ok, 2 bad config or arguments (the message names the key and how to fix it); `atlas`
exits 1 when a claim's verdict is "fails" (neither the printed nor a corrected statement held).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from ntk_lab.config import ConfigError, cells, load_config

__all__ = ["main"]


def _shard(text):
  try:
    k, n = (int(v) for v in text.split("/"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected K/N such as 2/8, got {text!r}") from None
  if not 1 <= k <= n:
    raise argparse.ArgumentTypeError(f"expected 1 ≤ K ≤ N, got {text!r}")
  return k, n


def _parser():
  parser = argparse.ArgumentParser(prog="ntk-lab", description="Neural tangent kernel experiments.")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  run = sub.add_parser("run", help="run an experiment config (a sweep) into a run directory")
  run.add_argument("config", help="a YAML config, e.g. configs/quickstart.yaml")
  run.add_argument("--out", help="run directory (default: runs/<config name>)")
  run.add_argument("--resume", action="store_true", help="keep finished cells, run the rest")
  run.add_argument("--shard", type=_shard, metavar="K/N", help="run the K-th of N slices of the grid")
  run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.width=512 (repeatable)")
  val = sub.add_parser("validate", help="check a config and print its resolved form and grid size")
  val.add_argument("config")
  val.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  sub.add_parser("list", help="list the experiments with one-line descriptions")
  rep = sub.add_parser("report", help="re-make plots, tables and summary.csv of a run directory")
  rep.add_argument("run_dir")
  atl = sub.add_parser("atlas", help="check every claim of the seed exercises; write atlas.md and atlas.json")
  atl.add_argument("--quick", action="store_true", help="reduced sweeps (under 3 minutes on 2 cores)")
  atl.add_argument("--only", help="comma-separated claim ids, e.g. C0.6,C3.4")
  atl.add_argument("--out", default="results/atlas", help="output directory (default: results/atlas)")
  atl.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
  return parser


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  from ntk_lab import runner
  try:
    if args.command == "list":
      for name in runner.EXPERIMENTS:
        print(f"{name:22s} {runner.EXPERIMENTS[name].description}")
      return 0
    if args.command == "validate":
      import yaml
      cfg = load_config(args.config, overrides=args.set)
      runner.check_options(cfg, runner.experiment(cfg.experiment))
      print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
      print(f"# {len(cells(cfg))} cells")
      return 0
    if args.command == "run":
      out = args.out or f"runs/{pathlib.Path(args.config).stem}"
      runner.run(args.config, out, resume=args.resume, shard=args.shard, overrides=args.set)
      print(f"results in {out}")
      return 0
    if args.command == "atlas":
      from ntk_lab import atlas
      only = [c.strip() for c in args.only.split(",")] if args.only else None
      results = atlas.run_atlas(quick=args.quick, only=only, out=args.out, jobs=max(1, args.jobs), progress=True)
      print((pathlib.Path(args.out) / "atlas.md").read_text())
      return 1 if any(r.verdict == atlas.FAILS for r in results) else 0
    runner.report(args.run_dir)
    return 0
  except (ConfigError, FileNotFoundError, ValueError) as e:
    print(f"ntk-lab: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
