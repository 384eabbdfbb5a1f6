"""Runs an experiment's sweep into a run directory: resumable, shardable, one file per cell.

A run directory holds

    config.yaml         the resolved config (every default filled in)
    environment.json    ntk_lab / jax / python versions, devices, git commit, start time
    cells/KEY.json      one result per sweep cell, written to a temporary name and renamed, so a
                        killed run never leaves a partial file
    summary.csv         one row per finished cell (scalar results)
    *.png, *.md         the experiment's plots and tables (`report`)

Rerunning with ``resume=True`` skips every cell whose file exists; ``shard=(k, n)`` runs the k-th
of n interleaved slices of the grid, so n processes (or a SLURM array) fill one directory and
`report` merges what is there.

An experiment is an `ntk_lab.experiments.Experiment` in the registry: its ``options`` (defaults of the
``options:`` keys), ``run_seeds(cfg, cells, options) -> [dict]`` (one result per cell) and
``report(out, cfg, options, results)``. `run_seeds` gets unfinished cells that differ only in the
seed and computes them together, vmapped over the seeds; each cell still gets its own file. With
``sweep.vmap_seeds: never`` it gets one cell at a time. ``auto`` (the default) vmaps unless the
experiment sets ``vmap_seeds_on_cpu=False`` and JAX runs on a CPU.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import yaml

from ntk_lab import _checks
from ntk_lab.config import Config, ConfigError, cells, load_config
from ntk_lab.experiments import EXPERIMENTS, Experiment, experiment

__all__ = ["EXPERIMENTS", "experiment", "report", "run"]

def check_options(cfg: Config, exp: Experiment) -> dict:
  """The experiment's options with defaults filled in; unknown keys are a `ConfigError`."""
  for key in cfg.options:
    if key not in exp.options:
      valid = ", ".join(exp.options) or "(none)"
      raise ConfigError(f"options: unknown key {key!r} for experiment {cfg.experiment!r}; valid keys: "
                        f"{valid}{_checks.did_you_mean(key, exp.options) or '.'}")
  return {**exp.options, **cfg.options}


def git_commit(*, short: bool = False) -> str | None:
  """The commit of the checkout ntk_lab runs from (None outside a git checkout)."""
  try:
    return subprocess.run(["git", "rev-parse", *(["--short"] if short else []), "HEAD"], capture_output=True,
                          text=True, timeout=10, cwd=pathlib.Path(__file__).resolve().parents[1]).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    return None


def _environment(cfg: Config) -> dict:
  import jax

  import ntk_lab
  commit = git_commit()
  return {"ntk_lab": ntk_lab.__version__, "jax": jax.__version__, "python": sys.version.split()[0],
          "platform": platform.platform(), "devices": [str(d) for d in jax.devices()],
          "dtype": cfg.dtype, "git_commit": commit,
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _write_atomic(path: pathlib.Path, text: str):
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  tmp.write_text(text)
  tmp.replace(path)


@contextlib.contextmanager
def _jax_settings(cfg: Config):
  """The config's dtype and device, for the duration of a run or report only.

  Scoped (not `jax.config.update`) so that running a float32 config from a notebook or a test
  session does not switch off the caller's float64, nor move its default device.
  """
  import jax
  with contextlib.ExitStack() as stack:
    stack.enter_context(jax.enable_x64(cfg.dtype == "float64"))
    if cfg.device != "auto":
      try:
        devices = jax.devices(cfg.device)
      except RuntimeError as e:
        raise ConfigError(f"device: {cfg.device!r} is not available here ({e}); use device: auto.") from e
      stack.enter_context(jax.default_device(devices[0]))
    yield


def run(config, out, *, resume: bool = False, shard: tuple[int, int] | None = None,
        overrides=(), progress: bool | None = None) -> pathlib.Path:
  """Runs the sweep of `config` (a path, YAML text, dict or `Config`) into directory `out`.

  Raises:
    ConfigError: the config does not validate, or `out` holds another config / a finished run
      without ``resume``.
  """
  cfg = config if isinstance(config, Config) else load_config(config, overrides=overrides)
  exp = experiment(cfg.experiment)
  options = check_options(cfg, exp)
  if shard is not None and not (1 <= shard[0] <= shard[1]):
    raise ConfigError(f"--shard: expected K/N with 1 ≤ K ≤ N, got {shard[0]}/{shard[1]}.")
  out = pathlib.Path(out)
  saved = out / "config.yaml"
  resolved = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
  if saved.exists():
    if saved.read_text() != resolved:
      raise ConfigError(f"{out}: holds a run of a different config; use another --out, or the same config.")
    if not resume and shard is None and any((out / "cells").glob("*.json")):
      raise ConfigError(f"{out}: already has results; pass --resume to finish it, or use another --out.")
  (out / "cells").mkdir(parents=True, exist_ok=True)
  _write_atomic(saved, resolved)
  with _jax_settings(cfg):
    _write_atomic(out / "environment.json", json.dumps(_environment(cfg), indent=2))
    todo = [c for c in cells(cfg, shard=shard) if not (out / "cells" / f"{c.key}.json").exists()]
    show = sys.stderr.isatty() if progress is None else progress
    start, done_now = time.perf_counter(), 0
    for group in _seed_groups(todo) if _vmap_seeds(cfg, exp) else [[c] for c in todo]:
      t0 = time.perf_counter()
      results = exp.run_seeds(cfg, group, options)
      seconds = (time.perf_counter() - t0) / len(group)
      for cell, result in zip(group, results, strict=True):
        result = {"cell": cell.key, **{k: getattr(cell, k) for k in ("width", "depth", "activation", "n",
                                                                       "learning_rate", "seed")},
                  "seconds": seconds, **result}
        _write_atomic(out / "cells" / f"{cell.key}.json", json.dumps(result))
      done_now += len(group)
      _progress(done_now, len(todo), time.perf_counter() - start, group[-1].key, show)
    if shard is None or all((out / "cells" / f"{c.key}.json").exists() for c in cells(cfg)):
      report(out)
  return out


def _vmap_seeds(cfg, exp: Experiment) -> bool:
  import jax
  if cfg.sweep.vmap_seeds != "auto":
    return cfg.sweep.vmap_seeds == "always"
  backend = jax.default_backend() if cfg.device == "auto" else cfg.device
  return exp.vmap_seeds_on_cpu or backend != "cpu"


def _seed_groups(todo):
  """The cells grouped by everything but the seed, in grid order (for `run_seeds`)."""
  groups = {}
  for c in todo:
    groups.setdefault(dataclasses.replace(c, seed=0), []).append(c)
  return list(groups.values())


def _progress(done, total, elapsed, key, tty):
  eta = elapsed / done * (total - done)
  line = f"[{done}/{total}] {key}  elapsed {elapsed:.0f} s, eta {eta:.0f} s"
  if tty:
    bar = "#" * int(30 * done / total)
    print(f"\r{bar:<30} {line}", end="" if done < total else "\n", file=sys.stderr, flush=True)
  else:
    print(line, file=sys.stderr, flush=True)


def load_results(out) -> tuple[Config, list[dict]]:
  """The run's config and every finished cell's result, in grid order."""
  out = pathlib.Path(out)
  if not (out / "config.yaml").exists():
    raise ConfigError(f"{out}: not a run directory (no config.yaml); run `ntk-lab run` first.")
  cfg = load_config(out / "config.yaml")
  results = []
  for cell in cells(cfg):
    path = out / "cells" / f"{cell.key}.json"
    if path.exists():
      results.append(json.loads(path.read_text()))
  return cfg, results


def report(out) -> list[dict]:
  """Re-makes summary.csv, plots and tables from the saved cells (merging every shard's)."""
  out = pathlib.Path(out)
  cfg, results = load_results(out)
  with _jax_settings(cfg):
    exp = experiment(cfg.experiment)
    scalars = [{k: v for k, v in r.items() if isinstance(v, (int, float, str))} for r in results]
    if scalars:
      fields = list(dict.fromkeys(k for r in scalars for k in r))
      tmp = out / ".summary.csv.tmp"
      with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(scalars)
      tmp.replace(out / "summary.csv")
      exp.report(out, cfg, check_options(cfg, exp), results)
  return results
