"""Runs an experiment's sweep into a run directory: resumable, shardable, one file per cell.

A run directory holds

    config.yaml         the resolved config (every default filled in)
    environment.json    ntk_lab / jax / python versions, devices, git commit, start time
    cells/KEY.json      one result per sweep cell, written to a temporary name and renamed, so a
                        killed run never leaves a partial file
    cells/damaged/      cell files that could not be read (set aside by a resumed run)
    cells/foreign/      cell files computed under another config (set aside by a resumed run)
    summary.csv         one row per finished cell (scalar results)
    *.png, *.md         the experiment's plots and tables (`report`)

What the runner guarantees (docs/runner.md has the details):

* **One run per directory.** A run holds a `fcntl.flock` lock on ``.lock`` in its directory for
  its whole length; a second run into it is refused naming the holder's pid, except a shard of the
  same config joining shards of that config.
* **The experiment's contract.** A config key the experiment does not honour is refused before
  anything runs (`ntk_lab.config.check_contract`), and each group of cells gets its own resolved
  config, the sweep's values substituted (`ntk_lab.config.cell_config`).

* **Exact cell identity.** A cell's KEY is a readable prefix plus a hash of its exact parameters
  (`ntk_lab.config.Cell.key`), so two different cells (learning rates 1.0 and 1.0000001) never share
  a file.
* **Fingerprints.** Every cell file carries the fingerprint of the resolved config
  (`ntk_lab.config.fingerprint`); a cell of another config is never taken for one of this run:
  `run(resume=True)` moves it to ``cells/foreign/`` and recomputes it (and moves there any file that
  is no cell of this grid), `report` moves it there too and leaves it out.
* **Damaged cells** (empty, truncated, not UTF-8 or JSON, fields missing) are named, moved to
  ``cells/damaged/`` and recomputed by a resumed run; `report` skips them and lists them.
* **Non-finite values**: a cell holding NaN or ±inf is kept and marked (the ``nonfinite`` column of
  summary.csv), but left out of the experiment's fits, medians and plots, and the report says how
  many were left out.
* A failure while computing raises `RunError` naming the cells (the cause chained); nothing is
  written for them, and everything finished before stays.

Rerunning with ``resume=True`` keeps every finished cell of this config; ``shard=(k, n)`` runs the
k-th of n interleaved slices of the grid, so n processes (or a SLURM array) fill one directory and
`report` merges what is there. A directory whose config.yaml differs from the config is refused,
unless it holds no cells (a run that failed at its start does not block the corrected rerun).

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
import fcntl
import itertools
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import time

import yaml

from ntk_lab import _checks
from ntk_lab.config import (
  Cell,
  Config,
  ConfigError,
  cell_config,
  cells,
  check_contract,
  fingerprint,
  load_config,
  load_saved,
)
from ntk_lab.experiments import EXPERIMENTS, Experiment, experiment

__all__ = ["EXPERIMENTS", "RunContents", "RunError", "check_run", "experiment", "report", "run", "scan"]

# The cell's parameters, as stored in its file beside the experiment's results.
CELL_FIELDS = ("width", "depth", "activation", "n", "learning_rate", "seed")
_BOOKKEEPING = ("cell", *CELL_FIELDS, "seconds", "provenance")


class RunError(RuntimeError):
  """A failure while computing cells (solver, divergence, memory): the message names the cells and
  the cause; the original exception is chained as ``__cause__``."""


def check_options(cfg: Config, exp: Experiment) -> dict:
  """The experiment's options with defaults filled in; unknown keys are a `ConfigError`."""
  for key in cfg.options:
    if key not in exp.options:
      valid = ", ".join(exp.options) or "(none)"
      raise ConfigError(
        f"options: unknown key {key!r} for experiment {cfg.experiment!r}; valid keys: "
        f"{valid}{_checks.did_you_mean(key, exp.options) or '.'}"
      )
  return {**exp.options, **cfg.options}


def git_commit(*, short: bool = False) -> str | None:
  """The commit of the checkout ntk_lab runs from (None outside a git checkout)."""
  try:
    return (
      subprocess.run(
        ["git", "rev-parse", *(["--short"] if short else []), "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
        cwd=pathlib.Path(__file__).resolve().parents[1],
      ).stdout.strip()
      or None
    )
  except (OSError, subprocess.SubprocessError):
    return None


def _environment(cfg: Config) -> dict:
  import jax

  import ntk_lab

  commit = git_commit()
  return {
    "ntk_lab": ntk_lab.__version__,
    "jax": jax.__version__,
    "python": sys.version.split()[0],
    "platform": platform.platform(),
    "devices": [str(d) for d in jax.devices()],
    "dtype": cfg.dtype,
    "git_commit": commit,
    "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
  }


def _write_atomic(path: pathlib.Path, text: str):
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  tmp.write_text(text)
  tmp.replace(path)


def _device(cfg: Config):
  """The config's device (None for ``auto``); one that is not here is a `ConfigError`."""
  import jax

  if cfg.device == "auto":
    return None
  try:
    return jax.devices(cfg.device)[0]
  except RuntimeError as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ConfigError(
      f"device: {cfg.device!r} is not available here ({reason}); use device: auto or cpu."
    ) from None


def check_run(cfg: Config) -> tuple[Experiment, dict]:
  """Everything a run of `cfg` needs besides the computation: the experiment's contract (the keys
  it honours, the values it allows), its options and its own check of every grid point's resolved
  config, the device, and that one grid point fits in memory. Returns (experiment, options with
  defaults); raises `ConfigError`."""
  exp = experiment(cfg.experiment)
  check_contract(cfg)
  options = check_options(cfg, exp)
  _device(cfg)
  limit = None
  for point in _grid_points(cfg):
    cell_cfg = cell_config(cfg, point)
    if exp.check is not None:
      exp.check(cell_cfg, options)
    limit = limit or _memory_limit(cfg)
    _check_memory(cell_cfg, exp, limit)
  return exp, options


def _grid_points(cfg: Config):
  """One cell per point of the grid without its seeds (the first seed's): what `check` sees."""
  s = cfg.sweep
  for w, d, a, n, lr in itertools.product(
    s.widths or (cfg.model.width,),
    s.depths or (cfg.model.depth,),
    s.activations or (cfg.model.activation,),
    s.n or (cfg.data.n,),
    s.learning_rates or (cfg.training.learning_rate,),
  ):
    yield Cell(w, d, a, n, lr, s.seeds[0])


def memory_estimate(cfg: Config, exp: Experiment) -> int:
  """A lower bound, in bytes, of what one draw of a grid point's resolved config `cfg` allocates:
  the experiment's own estimate (`Experiment.memory`), else the MLP's parameters (when it honours
  ``model.width``) plus one n × n kernel matrix over its training and test points."""
  if exp.memory is not None:
    return int(exp.memory(cfg))
  entries = 0
  if exp.honours("model.width"):
    w, depth = cfg.model.width, cfg.model.depth if exp.honours("model.depth") else 1
    d = cfg.data.in_dim if exp.honours("data.in_dim") else 1
    o = cfg.model.out_dim if exp.honours("model.out_dim") else 1
    entries += (d + 1) * w + (depth - 1) * (w + 1) * w + (w + 1) * o
  if exp.honours("data.n"):
    n = cfg.data.n + (cfg.data.n_test if exp.honours("data.n_test") else 0)
    entries += n * n
  return entries * (4 if cfg.dtype == "float32" else 8)


def _memory_limit(cfg: Config) -> tuple[int, str]:
  """(bytes, what) of the memory a run can use: the accelerator's, else this machine's RAM."""
  try:
    import jax

    dev = _device(cfg) or jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
      return int(stats["bytes_limit"]), f"the {dev.platform.upper()}'s"
  except Exception:  # no statistics on this backend: the host's memory bounds it anyway
    pass
  return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's"


def _check_memory(cfg: Config, exp: Experiment, limit: tuple[int, str]):
  """Refuses a grid point whose draws cannot be allocated, naming the sizes."""
  need = memory_estimate(cfg, exp)
  together = len(cfg.sweep.seeds) if _vmap_seeds(cfg, exp) else 1
  if need * together <= limit[0]:
    return
  sizes = [
    f"{key} {getattr(getattr(cfg, key.split('.')[0]), key.split('.')[1]):,}"
    for key in ("model.width", "data.n")
    if exp.honours(key)
  ]
  total = (
    f"{_bytes(need)} per draw, {_bytes(need * together)} for the {together} seeds computed together "
    "(sweep.vmap_seeds: never computes them one at a time)"
    if together > 1
    else _bytes(need)
  )
  raise ConfigError(
    f"{' / '.join(k.split()[0] for k in sizes) or 'config'}: experiment {cfg.experiment!r} at "
    f"{', '.join(sizes)} needs at least {total}, more than {limit[1]} {_bytes(limit[0])} of memory; "
    "lower them."
  )


def _bytes(n: int) -> str:
  for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= size:
      return f"{n / size:.3g} {unit}"
  return f"{n} bytes"


@contextlib.contextmanager
def _jax_settings(cfg: Config, *, device: bool = True):
  """The config's dtype and (with `device`) device, for the duration of a run or report only.

  Scoped (not `jax.config.update`) so that running a float32 config from a notebook or a test
  session does not switch off the caller's float64, nor move its default device. A report does not
  ask for the device: a GPU run's report can be re-made on a machine without one.
  """
  import jax

  with contextlib.ExitStack() as stack:
    stack.enter_context(jax.enable_x64(cfg.dtype == "float64"))
    device = _device(cfg) if device else None
    if device is not None:
      stack.enter_context(jax.default_device(device))
    yield


def _say(message: str):
  print(f"ntk-lab: {message}", file=sys.stderr, flush=True)


def run(
  config,
  out,
  *,
  resume: bool = False,
  shard: tuple[int, int] | None = None,
  overrides=(),
  progress: bool | None = None,
) -> pathlib.Path:
  """Runs the sweep of `config` (a path, YAML text, dict or `Config`) into directory `out`.

  Everything is checked before anything is computed: the config against its experiment's
  contract, the experiment's options, the device, the shard and that `out` is (or can be) a
  directory that no other run is writing. The run holds a lock on `out` until it returns: a second
  run into it is refused while the first lasts, except a shard of the same config (shards of one
  config fill one directory together).

  Raises:
    ConfigError: the config does not validate, or `out` is empty, a file, holds another config's
      cells, (without ``resume``) a finished run, or is being written by another run.
    RunError: computing a cell failed (the cells finished before are kept).
    OSError: `out` cannot be written.
  """
  resume = _checks.boolean(resume, "resume")
  if progress is not None:
    progress = _checks.boolean(progress, "progress")
  cfg = config if isinstance(config, Config) else load_config(config, overrides=overrides)
  exp, options = check_run(cfg)
  if shard is not None and not (1 <= shard[0] <= shard[1]):
    raise ConfigError(f"--shard: expected K/N with 1 ≤ K ≤ N, got {shard[0]}/{shard[1]}.")
  out = _out_dir(out)
  resolved = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
  out.mkdir(parents=True, exist_ok=True)
  with _RunLock(out, resolved, resume=resume, shard=shard):
    fp = fingerprint(cfg)
    cell_dir = out / "cells"
    with _jax_settings(cfg):
      _write_atomic(out / "environment.json", json.dumps(_environment(cfg), indent=2))
      _set_aside_strays(cell_dir, cfg)
      todo = [c for c in cells(cfg, shard=shard) if not _finished(cell_dir, c, fp)]
      show = sys.stderr.isatty() if progress is None else progress
      start, done_now = time.perf_counter(), 0
      for group in _seed_groups(todo) if _vmap_seeds(cfg, exp) else [[c] for c in todo]:
        t0 = time.perf_counter()
        results = _compute(exp, cfg, group, options)
        seconds = (time.perf_counter() - t0) / len(group)
        for cell, result in zip(group, results, strict=True):
          # provenance: which config computed the cell, and which fields a whole result has
          record = {
            "cell": cell.key,
            **{k: getattr(cell, k) for k in CELL_FIELDS},
            "seconds": seconds,
            **result,
            "provenance": {"config_fingerprint": fp, "result_fields": list(result)},
          }
          _write_atomic(cell_dir / f"{cell.key}.json", json.dumps(record))
        done_now += len(group)
        _progress(done_now, len(todo), time.perf_counter() - start, group[-1].key, show)
      if shard is None or all((cell_dir / f"{c.key}.json").exists() for c in cells(cfg)):
        report(out)
  return out


def _out_dir(out) -> pathlib.Path:
  """`out` as a directory path: empty or blank (which would mean the working directory) and a file
  are refused."""
  if isinstance(out, str) and not out.strip():
    raise ConfigError(
      f"--out {out!r}: is empty; name a run directory such as runs/quickstart (the CLI's default "
      "is runs/<config name>)."
    )
  if not isinstance(out, (str, os.PathLike)):
    raise ConfigError(f"--out: expected a directory path, got {type(out).__name__} {out!r}.")
  out = pathlib.Path(out)
  if out.exists() and not out.is_dir():
    raise ConfigError(f"--out {str(out)!r}: is a file, not a directory; choose a directory.")
  return out


LOCK, CLAIM, HOLDERS = ".lock", ".claim", ".holders"


@contextlib.contextmanager
def _claim(out: pathlib.Path):
  """An exclusive lock on ``out/.claim`` for the moments a run or a report decides what the
  directory holds (checks the config, sets files aside); others wait for it (milliseconds)."""
  fd = os.open(out / CLAIM, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the lock


class _RunLock:
  """A run's hold on its directory: a shared `fcntl.flock` on ``out/.lock`` for the whole run.

  A run that finds no holder (it gets the lock exclusively) checks the directory against its config
  and writes config.yaml; one that finds holders may join only as a shard of the same config while
  every holder is a shard, and is otherwise refused naming the holders' pids (``out/.holders``).
  The kernel drops a killed process's lock, so a crash never leaves the directory locked.
  """

  def __init__(self, out: pathlib.Path, resolved: str, *, resume: bool, shard):
    self.out, self.resolved, self.resume, self.shard = out, resolved, resume, shard
    self.fd = None

  def __enter__(self):
    out = self.out
    with _claim(out):
      fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        try:
          fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
          holders = []  # nobody runs: entries left by killed runs are stale
        except BlockingIOError:
          holders = _holders(out)
          same = _same_config(out / "config.yaml", self.resolved)
          if self.shard is None or not same or any(h["shard"] is None for h in holders):
            pids = ", ".join(str(h["pid"]) for h in holders) or "unknown"
            why = (
              "shards of one config may share a directory; this is not one"
              if self.shard is None or not same
              else "it runs the whole grid"
            )
            raise ConfigError(
              f"--out {str(out)!r}: another ntk-lab run (pid {pids}) is writing into it ({why}); "
              "wait for it to finish, or choose another --out."
            ) from None
        if not holders:
          _check_directory(out, self.resolved, resume=self.resume, shard=self.shard)
          (out / "cells").mkdir(parents=True, exist_ok=True)
          _write_atomic(out / "config.yaml", self.resolved)
        # shared from here on: shards of this config may join; the conversion is safe, since every
        # run changes its lock only while holding the claim, as this one does
        fcntl.flock(fd, fcntl.LOCK_SH)
        me = {"pid": os.getpid(), "shard": None if self.shard is None else list(self.shard)}
        _write_atomic(out / HOLDERS, json.dumps([*holders, me]))
      except BaseException:
        os.close(fd)
        raise
      self.fd = fd
    return self

  def __exit__(self, *exc):
    try:
      with _claim(self.out):
        rest = [h for h in _holders(self.out) if h["pid"] != os.getpid()]
        _write_atomic(self.out / HOLDERS, json.dumps(rest))
    except OSError:
      pass  # the lock itself goes with the descriptor
    finally:
      os.close(self.fd)
    return False


def _holders(out: pathlib.Path) -> list:
  try:
    data = json.loads((out / HOLDERS).read_text())
    return [h for h in data if isinstance(h, dict) and "pid" in h and "shard" in h]
  except (OSError, ValueError, TypeError):
    return []


def _check_directory(out: pathlib.Path, resolved: str, *, resume: bool, shard):
  """Refuses a directory holding cells of another config, or (without resume or shard) results."""
  cell_dir = out / "cells"
  has_cells = cell_dir.is_dir() and any(cell_dir.glob("*.json"))
  saved = out / "config.yaml"
  if saved.exists() and not _same_config(saved, resolved) and has_cells:
    raise ConfigError(f"{out}: holds a run of a different config; use another --out, or the same config.")
  if has_cells and not resume and shard is None:
    raise ConfigError(
      f"{out}: already has results; pass --resume to finish it (cells of another config "
      "are set aside), or use another --out."
    )


def _same_config(saved: pathlib.Path, resolved: str) -> bool:
  """Whether the directory's config.yaml holds the config whose resolved YAML is `resolved` (the
  same config, whatever keys outside the contract or text layout the file has)."""
  text = _read_or_none(saved)
  if text == resolved:
    return True
  try:
    return text is not None and load_saved(saved) == load_config(resolved)
  except ConfigError:
    return False


def _read_or_none(path):
  try:
    return path.read_text()
  except (OSError, UnicodeDecodeError):
    return None


def _finished(cell_dir: pathlib.Path, cell: Cell, fp: str) -> bool:
  """Whether the cell's file holds a result of this config; a damaged file or one of another
  config is moved aside (and said so), so that the cell is recomputed."""
  path = cell_dir / f"{cell.key}.json"
  if not path.exists():
    return False
  status, detail = _read_cell(path, cell, fp)
  if status == "ok":
    return True
  moved = _set_aside(path, status)
  what = "damaged cell" if status == "damaged" else "cell of another config"
  _say(f"{what} {path} ({detail}) moved to {moved.parent}/; it will be recomputed.")
  return False


def _set_aside_strays(cell_dir: pathlib.Path, cfg: Config):
  """Moves cell files that are no cell of this config's grid (left by another config) to foreign/."""
  keys = {f"{c.key}.json" for c in cells(cfg)}  # every shard's: shards share the grid
  strays = [p for p in sorted(cell_dir.glob("*.json")) if p.name not in keys]
  for path in strays:
    _set_aside(path, "foreign")
  if strays:
    _say(
      f"{len(strays)} files in {cell_dir} are no cells of this config's grid; moved to "
      f"{cell_dir / 'foreign'}/."
    )


def _set_aside(path: pathlib.Path, sub: str) -> pathlib.Path:
  target_dir = path.parent / sub
  target_dir.mkdir(exist_ok=True)
  target, i = target_dir / path.name, 1
  while target.exists():  # never overwrite an earlier one
    target, i = target_dir / f"{path.stem}.{i}{path.suffix}", i + 1
  os.replace(path, target)
  return target


def _read_cell(path: pathlib.Path, cell: Cell, fp: str) -> tuple[str, object]:
  """("ok", result), ("damaged", why) or ("foreign", why) for one cell file."""
  try:
    data = path.read_bytes()
  except OSError as e:
    return "damaged", f"unreadable: {e.strerror}"
  if not data.strip():
    return "damaged", "empty file"
  try:
    result = json.loads(data.decode("utf-8"))
  except UnicodeDecodeError:
    return "damaged", "not UTF-8 text"
  except json.JSONDecodeError as e:
    return "damaged", f"truncated or not JSON: {e.msg} at line {e.lineno}, column {e.colno}"
  if not isinstance(result, dict):
    return "damaged", f"not a JSON object but a {type(result).__name__}"
  prov = result.get("provenance")
  theirs = prov.get("config_fingerprint") if isinstance(prov, dict) else None
  if isinstance(theirs, str) and theirs != fp:
    return "foreign", f"config fingerprint {theirs}, this run's is {fp}"
  missing = [k for k in _BOOKKEEPING if k not in result]
  if not missing:
    fields = prov.get("result_fields") if isinstance(prov, dict) else None
    if not isinstance(theirs, str) or not isinstance(fields, list):
      missing = ["provenance.config_fingerprint, provenance.result_fields"]
    else:
      missing = [k for k in fields if not isinstance(k, str) or k not in result]
  if missing:
    return "damaged", f"missing fields {', '.join(map(str, missing))}"
  if result["cell"] != cell.key:
    return "damaged", f"holds cell {result['cell']!r}, not {cell.key!r}"
  return "ok", result


def _compute(exp: Experiment, cfg: Config, group: list[Cell], options: dict) -> list[dict]:
  """`exp.run_seeds` on one group; any failure but a config error or Ctrl-C becomes a `RunError`
  that names the cells."""
  try:
    # the group's own config: its sweep values substituted (the cells differ only in the seed)
    results = list(exp.run_seeds(cell_config(cfg, group[0]), group, options))
  except ConfigError:
    raise
  except Exception as e:
    raise RunError(f"{_cells_named(group)}: {_describe(e)}") from e
  if len(results) != len(group) or not all(isinstance(r, dict) for r in results):
    raise RunError(
      f"{_cells_named(group)}: experiment {exp.name!r} returned {len(results)} results "
      f"for {len(group)} cells (expected one dict per cell)."
    )
  clash = sorted({k for r in results for k in r} & set(_BOOKKEEPING))
  if clash:  # would overwrite the cell's own bookkeeping in its file
    raise RunError(
      f"{_cells_named(group)}: experiment {exp.name!r} returned the reserved fields "
      f"{', '.join(clash)}; rename them."
    )
  return results


def _cells_named(group):
  return f"cell {group[0].key}" if len(group) == 1 else f"cells {', '.join(c.key for c in group)}"


def _describe(e: BaseException) -> str:
  """One line for an exception: its type and the first line of its message; out of memory said so."""
  text = str(e).strip()
  if isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower():
    return (
      "out of memory; reduce sweep.widths, data.n or sweep.seeds, or set sweep.vmap_seeds: never "
      f"({type(e).__name__}: {text.splitlines()[0][:200] if text else 'no message'})"
    )
  first = text.splitlines()[0] if text else "no message"
  return f"{type(e).__name__}: {first}"


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


@dataclasses.dataclass(frozen=True)
class RunContents:
  """What a run directory holds, as `report` reads it.

  Attributes:
    config: the run's resolved config.
    results: the cells of this config that read back whole, in grid order (including those with
      non-finite values).
    missing: keys of grid cells with no file (not computed yet, or set aside).
    damaged: (file, why) for each grid cell file that cannot be read or lacks fields.
    foreign: (file, why) for each grid cell file computed under another config.
    stray: files in cells/ that are not cells of this grid.
    nonfinite: (key, fields) for each result holding NaN or ±inf.
  """

  config: Config
  results: list
  missing: list
  damaged: list
  foreign: list
  stray: list
  nonfinite: list


def scan(out) -> RunContents:
  """Reads a run directory without changing it (see `RunContents`)."""
  out = pathlib.Path(out)
  if not out.is_dir():
    raise ConfigError(f"{out}: no such run directory; run `ntk-lab run CONFIG --out {out}` first.")
  if not (out / "config.yaml").exists():
    raise ConfigError(f"{out}: not a run directory (no config.yaml); run `ntk-lab run` first.")
  cfg = load_saved(out / "config.yaml")
  fp = fingerprint(cfg)
  grid = cells(cfg)
  results, missing, damaged, foreign, nonfinite = [], [], [], [], []
  for cell in grid:
    path = out / "cells" / f"{cell.key}.json"
    if not path.exists():
      missing.append(cell.key)
      continue
    status, detail = _read_cell(path, cell, fp)
    if status == "ok":
      results.append(detail)
      bad = [k for k in detail["provenance"]["result_fields"] if not _finite(detail[k])]
      if bad:
        nonfinite.append((cell.key, bad))
    else:
      (damaged if status == "damaged" else foreign).append((str(path), detail))
  keys = {f"{c.key}.json" for c in grid}
  stray = sorted(str(p) for p in (out / "cells").glob("*.json") if p.name not in keys)
  return RunContents(cfg, results, missing, damaged, foreign, stray, nonfinite)


def load_results(out) -> tuple[Config, list[dict]]:
  """The run's config and every finished cell's result, in grid order."""
  contents = scan(out)
  return contents.config, contents.results


def _finite(v) -> bool:
  if isinstance(v, float):
    return math.isfinite(v)
  if isinstance(v, dict):
    return all(_finite(x) for x in v.values())
  if isinstance(v, (list, tuple)):
    return all(_finite(x) for x in v)
  return True


def report(out) -> list[dict]:
  """Re-makes summary.csv, plots and tables from the saved cells (merging every shard's).

  Cell files computed under another config (their fingerprint is not the directory's) and files
  that are no cell of the grid are set aside to ``cells/foreign/``, as a resumed run does, so the
  directory never holds another config's results beside its own; damaged cells are skipped; cells
  with non-finite values are listed in summary.csv (column ``nonfinite``) but left out of the
  experiment's fits and plots. Each is said on stderr and in a note at the end of the experiment's
  Markdown tables. Returns the results read back (non-finite ones included).

  Raises:
    ConfigError: `out` is empty or not a run directory, or holds no finished cell of its config.
  """
  out = _out_dir(out)
  if out.is_dir() and (out / "config.yaml").exists() and (out / "cells").is_dir():
    with _claim(out):  # no run changes config.yaml meanwhile
      c = scan(out)
      c = _set_aside_foreign(out, c)
  else:
    c = scan(out)
  note = _left_out_note(c)
  if not c.results:
    raise ConfigError(
      f"{out}: no finished cells to report ({len(c.missing)} of {len(cells(c.config))} "
      f"not computed{'; ' + note if note else ''}); run `ntk-lab run CONFIG --out {out} "
      "--resume` first."
    )
  exp = experiment(c.config.experiment)
  excluded = {key for key, _ in c.nonfinite}
  marks = {key: ";".join(fields) for key, fields in c.nonfinite}
  with _jax_settings(c.config, device=False):
    scalars = [
      {k: v for k, v in r.items() if isinstance(v, (int, float, str))}
      | {"nonfinite": marks.get(r["cell"], "")}
      for r in c.results
    ]
    fields = list(dict.fromkeys(k for r in scalars for k in r))
    tmp = out / f".summary.csv.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=fields)
      writer.writeheader()
      writer.writerows(scalars)
    tmp.replace(out / "summary.csv")
    finite = [r for r in c.results if r["cell"] not in excluded]
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.md")}
    if finite:
      exp.report(out, c.config, check_options(c.config, exp), finite)
    else:
      _say(f"{out}: every finished cell has non-finite values; no fits or plots made.")
  if note:
    _say(f"{out}: {note}")
    for md in out.glob("*.md"):  # the tables the experiment (re)wrote just now
      if before.get(md) != md.stat().st_mtime_ns:
        with open(md, "a") as f:
          f.write(f"\n**Left out of this report.** {note}\n")
  return c.results


def _set_aside_foreign(out: pathlib.Path, c: RunContents) -> RunContents:
  """Moves the foreign and stray cell files of `c` to ``cells/foreign/`` (said on stderr); returns
  `c` with them listed at their new places."""
  moved = {}
  for path in [p for p, _ in c.foreign] + list(c.stray):
    with contextlib.suppress(FileNotFoundError):  # set aside meanwhile by a resumed run
      moved[path] = str(_set_aside(pathlib.Path(path), "foreign"))
  if moved:
    _say(f"{len(moved)} cell files of another config or grid moved to {out / 'cells' / 'foreign'}/.")
  foreign = [(moved.get(p, p), why) for p, why in c.foreign]
  stray = [moved.get(p, p) for p in c.stray]
  return dataclasses.replace(c, foreign=foreign, stray=stray)


def _left_out_note(c: RunContents) -> str:
  """One paragraph (one line) naming what the report leaves out and why; "" when nothing."""
  parts = []
  if c.nonfinite:
    named = ", ".join(f"{key} ({', '.join(fields)})" for key, fields in c.nonfinite)
    parts.append(
      f"{len(c.nonfinite)} of {len(c.results)} finished cells have non-finite values and are "
      f"excluded from the fits, medians and plots: {named}"
    )
  if c.damaged:
    parts.append(
      f"{len(c.damaged)} damaged cell files skipped (`ntk-lab run --resume` recomputes them): "
      + ", ".join(f"{p} ({why})" for p, why in c.damaged)
    )
  if c.foreign:
    parts.append(
      f"{len(c.foreign)} cell files of another config skipped and set aside to cells/foreign/: "
      + ", ".join(p for p, _ in c.foreign)
    )
  if c.stray:
    parts.append(
      f"{len(c.stray)} files in cells/ that are not cells of this grid ignored: {', '.join(c.stray)}"
    )
  if c.missing and c.results:
    parts.append(
      f"{len(c.missing)} of {len(c.missing) + len(c.results) + len(c.damaged) + len(c.foreign)} "
      "grid cells not computed yet"
    )
  return "; ".join(parts) + ("." if parts else "")
