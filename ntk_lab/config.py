"""Experiment configs: YAML files loaded into frozen, typed dataclasses, validated before anything runs.

A config names an experiment and sets its data, model, training and sweep; every key is checked:

    experiment: kernel_convergence
    dtype: float64            # or float32
    device: auto              # auto (JAX's default), cpu or gpu
    data:     {n: 32, n_test: 16, in_dim: 2, inputs: sphere, target: sin, noise: 0.0}
    model:    {width: 256, depth: 1, activation: relu, parametrization: ntk, W_std: 1.0, b_std: null}
    training: {time: 10.0, n_times: 21, learning_rate: 1.0, solver: tsit5, rtol: 1.0e-4, atol: 1.0e-6,
               dt0: null,     # dt0: the step of a fixed-step solver (euler, heun, rk4)
               error_control: outputs}   # what rtol/atol bound: outputs, params or both
    sweep:    {widths: [64, 256, 1024], seeds: [0, 1, 2]}
    options:  {}              # experiment-specific keys, checked by the experiment

An unknown key is an error that names it, lists the valid keys and suggests the closest; a wrong
type or range names the key path and the value (``sweep.widths[2]: must be a positive integer,
got -5``). The sweep is the grid (product) of its lists; a list left out uses the single value
of the section it overrides (``widths`` ↔ ``model.width``, ``depths`` ↔ ``model.depth``,
``activations`` ↔ ``model.activation``, ``n`` ↔ ``data.n``, ``learning_rates`` ↔
``training.learning_rate``; ``seeds`` defaults to [0]). ``sweep.vmap_seeds`` (``auto``, ``always``
or ``never``) says whether a grid point's seeds are computed together under `jax.vmap`; ``auto``
leaves it to the experiment, by backend.

The choices of ``experiment``, ``model.activation`` and ``training.solver`` are the library's
registries (`ntk_lab.experiments.EXPERIMENTS`, `ntk_lab.activations.ACTIVATIONS`,
`ntk_lab.training.SOLVERS`), read when a config is checked, so a registered experiment of your own
is a valid ``experiment:``. A YAML key given twice in one mapping is an error (YAML itself keeps the
last one silently); so is ``--set model.width=…`` while ``sweep.widths`` is set (the sweep list
would override it), and a fixed-step solver without ``training.dt0``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import pathlib
import types
import typing

import yaml

from ntk_lab import _checks
from ntk_lab.experiments.registry import ConfigError  # defined beside the registry that raises it too
from ntk_lab.mlp import PARAMETRIZATIONS

ConfigError.__module__ = __name__  # users meet it as ntk_lab.config.ConfigError

__all__ = [
  "Cell",
  "Config",
  "ConfigError",
  "DataConfig",
  "ModelConfig",
  "SweepConfig",
  "TrainingConfig",
  "apply_overrides",
  "cell_config",
  "cells",
  "check_contract",
  "fingerprint",
  "load_config",
  "load_saved",
]


def _choice(*options):
  return {"choices": options}


# The registries are read when a value is checked (not copied here), so the config offers exactly
# what the library can run, including experiments registered after import.
def _experiments():
  from ntk_lab.experiments import EXPERIMENTS

  return tuple(EXPERIMENTS)


def _activations():
  from ntk_lab.activations import ACTIVATIONS

  return tuple(ACTIVATIONS)


def _solvers():
  from ntk_lab.training import SOLVERS

  return tuple(SOLVERS)


def _error_controls():
  from ntk_lab.training.flow import ERROR_CONTROLS

  return tuple(ERROR_CONTROLS)


def _contract(name: str):
  """The registered experiment `name` (its contract), or None when there is none."""
  from ntk_lab.experiments import EXPERIMENTS

  return EXPERIMENTS.get(name)


def _fixed_step(solver: str) -> bool:
  """Whether the registered solver takes fixed steps (and so needs ``training.dt0``)."""
  from ntk_lab.training import SOLVERS

  entry = SOLVERS[solver]
  adaptive = getattr(entry, "adaptive", None)
  return not (entry[1] if adaptive is None else adaptive)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Synthetic inputs and targets: n training and n_test test points in in_dim dimensions."""

  n: int = 32
  n_test: int = 16
  in_dim: int = 2
  inputs: str = dataclasses.field(default="sphere", metadata=_choice("sphere", "gaussian"))
  target: str = dataclasses.field(default="sin", metadata=_choice("sin", "linear", "teacher"))
  noise: float = dataclasses.field(default=0.0, metadata={"min": 0.0})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """An `ntk_lab.MLP` with `depth` hidden layers of `width` units."""

  width: int = 256
  depth: int = 1
  activation: str = dataclasses.field(default="relu", metadata={"choices": _activations})
  parametrization: str = dataclasses.field(default="ntk", metadata=_choice(*PARAMETRIZATIONS))
  W_std: float = dataclasses.field(default=1.0, metadata={"positive": True})
  b_std: float | None = dataclasses.field(default=None, metadata={"min": 0.0})
  out_dim: int = 1


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Gradient flow (or GD) settings; `time` is the final gradient-flow time, sampled at `n_times`
  equally spaced times from 0 (so at least 2). `dt0` is the step of a fixed-step solver (required
  for one) and the first step of an adaptive one (None: chosen by the solver). `error_control`
  says what rtol/atol bound (`gradient_flow`): the outputs (default), or also the parameters
  (``both``) when the experiment measures parameter-space quantities such as the kernel's drift."""

  time: float = dataclasses.field(default=10.0, metadata={"positive": True})
  n_times: int = dataclasses.field(default=21, metadata={"min": 2})
  learning_rate: float = dataclasses.field(default=1.0, metadata={"positive": True})
  solver: str = dataclasses.field(default="tsit5", metadata={"choices": _solvers})
  rtol: float = dataclasses.field(default=1e-4, metadata={"positive": True})
  atol: float = dataclasses.field(default=1e-6, metadata={"positive": True})
  dt0: float | None = dataclasses.field(default=None, metadata={"positive": True})
  error_control: str = dataclasses.field(default="outputs", metadata={"choices": _error_controls})


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """Lists to take the grid of; None keeps the single value of the section."""

  widths: tuple[int, ...] | None = None
  seeds: tuple[int, ...] = dataclasses.field(default=(0,), metadata={"min": 0})
  depths: tuple[int, ...] | None = None
  activations: tuple[str, ...] | None = dataclasses.field(default=None, metadata={"choices": _activations})
  n: tuple[int, ...] | None = None
  learning_rates: tuple[float, ...] | None = dataclasses.field(default=None, metadata={"positive": True})
  # Whether the seeds of one grid point are computed together under jax.vmap: "auto" lets the
  # experiment decide by backend (adaptive ODE solves vmap in lockstep, which costs on a CPU).
  vmap_seeds: str = dataclasses.field(default="auto", metadata=_choice("auto", "always", "never"))


@dataclasses.dataclass(frozen=True)
class Config:
  """A whole experiment config (see the module docstring for the YAML layout)."""

  experiment: str = dataclasses.field(metadata={"choices": _experiments})
  name: str | None = None
  dtype: str = dataclasses.field(default="float64", metadata=_choice("float32", "float64"))
  device: str = dataclasses.field(default="auto", metadata=_choice("auto", "cpu", "gpu"))
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  training: TrainingConfig = TrainingConfig()
  sweep: SweepConfig = SweepConfig()
  options: dict = dataclasses.field(default_factory=dict)

  def to_dict(self) -> dict:
    """Plain YAML-able dict (tuples as lists), the inverse of `load_config`: every key the
    experiment honours, defaults filled in (the keys it does not honour are left out, since a
    config holding them is refused)."""
    full = _plain(dataclasses.asdict(self))
    exp = _contract(self.experiment)
    if exp is None:
      return full
    out = {}
    for key, value in full.items():
      if isinstance(value, dict) and key != "options":
        kept = {k: v for k, v in value.items() if exp.honours(f"{key}.{k}")}
        if kept:  # a section it does not use at all is left out
          out[key] = kept
      elif exp.honours(key):
        out[key] = value
    return out


def _plain(v):
  if isinstance(v, dict):
    return {k: _plain(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_plain(x) for x in v]
  return v


# ----------------------------------------------------------------------------- validation
def _unknown(path, key, valid):
  hint = _checks.did_you_mean(key, valid) or "."
  where = f"{path}: unknown key {key!r}" if path else f"unknown top-level key {key!r}"
  return ConfigError(f"{where}; valid keys: {', '.join(valid)}{hint}")


def _build(cls, raw, path):
  if not isinstance(raw, dict):
    raise ConfigError(f"{path or 'config'}: expected a mapping of keys to values, got {raw!r}.")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  for key in raw:
    if key not in fields:
      raise _unknown(path, key, list(fields))
  hints = typing.get_type_hints(cls)
  values = {}
  for name, f in fields.items():
    sub = f"{path}.{name}" if path else name
    if name not in raw:
      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        raise ConfigError(f"{sub}: is required (e.g. `{name}: quickstart`).")
      continue
    values[name] = _value(hints[name], raw[name], sub, f.metadata)
  return cls(**values)


def _value(tp, v, path, meta):
  if dataclasses.is_dataclass(tp):
    return _build(tp, v if v is not None else {}, path)
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    if v is None and type(None) in args:
      return None
    (inner,) = [a for a in args if a is not type(None)]
    return _value(inner, v, path, meta)
  if origin is tuple:
    if not isinstance(v, (list, tuple)) or not v:
      raise ConfigError(f"{path}: must be a non-empty list, got {v!r}.")
    return tuple(_value(args[0], x, f"{path}[{i}]", meta) for i, x in enumerate(v))
  if tp is dict:
    if not isinstance(v, dict):
      raise ConfigError(f"{path}: must be a mapping, got {v!r}.")
    return dict(v)
  if tp is bool:
    try:
      return _checks.boolean(v, path)
    except ValueError as e:
      raise ConfigError(str(e).replace("True or False", "true or false")) from None
  if tp is int:
    try:
      return _checks.integer(v, path, low=meta.get("min", 1))
    except ValueError as e:
      raise ConfigError(str(e)) from None
  if tp is float:
    if isinstance(v, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
      try:
        v = float(v)
      except ValueError:
        pass
    try:  # the library's number policy: NumPy scalars are numbers; bools, NaN and ±inf are not
      v = _checks.number(v, path, static=True)
    except (TypeError, ValueError) as e:
      raise ConfigError(str(e)) from None
    if meta.get("positive") and v <= 0:
      raise ConfigError(f"{path}: must be > 0, got {v!r}.")
    if "min" in meta and v < meta["min"]:
      raise ConfigError(f"{path}: must be ≥ {meta['min']}, got {v!r}.")
    return float(v)
  if tp is str:
    choices = meta.get("choices")
    choices = choices() if callable(choices) else choices
    if not isinstance(v, str):
      # YAML reads yes/no/on/off as booleans: name the words the key takes
      words = f" ({', '.join(choices)})" if choices else ""
      raise ConfigError(f"{path}: must be a string{words}, got {v!r}.")
    if choices and v not in choices:
      hint = _checks.did_you_mean(v, choices) or "."
      raise ConfigError(f"{path}: must be one of {', '.join(choices)}, got {v!r}{hint}")
    return v
  raise TypeError(f"{path}: unsupported field type {tp}")  # a bug in the schema, not the config


def load_config(source, *, overrides=()) -> Config:
  """A validated `Config` from a YAML path, YAML text or a dict, after ``key=value`` overrides.

  A `pathlib.Path` is always read as a file; a one-line string is a path when it ends in .yaml/.yml,
  names a file or holds no ``": "``, else YAML text. A missing or unreadable file, text that is not
  UTF-8 or not YAML, and a key given twice are `ConfigError`s that name the file (and line).

  Example:
    >>> from ntk_lab.config import load_config
    >>> cfg = load_config({"experiment": "quickstart", "sweep": {"widths": [64, 128]}})
    >>> cfg.sweep.widths, cfg.model.activation
    ((64, 128), 'relu')
    >>> load_config({"experiment": "quickstart", "modle": {}})
    Traceback (most recent call last):
    ...
    ntk_lab.config.ConfigError: unknown top-level key 'modle'; valid keys: experiment, name, dtype, device, data, model, training, sweep, options; did you mean 'model'?
    >>> load_config("experiment: quickstart\\nmodel: {width: 8}\\nmodel: {width: 16}")
    Traceback (most recent call last):
    ...
    ntk_lab.config.ConfigError: config: key 'model' appears twice (lines 2 and 3); keep one.
  """
  return _load(source, overrides, contract=True)


def load_saved(path) -> Config:
  """The config.yaml of a run directory: checked as `load_config` checks a config, except against
  the experiment's contract (checked when the run started; a key outside it changes no result, and
  the directory's cells are still matched by the fingerprint)."""
  return _load(pathlib.Path(path), (), contract=False)


def _load(source, overrides, *, contract: bool) -> Config:
  where = "config"
  if isinstance(source, dict):
    raw = source
  elif _is_path(source):
    path = pathlib.Path(source)
    where = str(path)
    raw = parse_yaml(_read_text(path), where)
  else:
    raw = parse_yaml(str(source), where)
  raw = apply_overrides(raw, overrides, where=where)
  try:
    cfg = _build(Config, raw, "")
    _check_together(cfg)
    if contract:
      check_contract(cfg, _given(raw))
  except ConfigError as e:
    if where == "config":
      raise
    raise ConfigError(f"{where}: {e}") from None  # a file's errors name the file
  return cfg


def _read_text(path: pathlib.Path) -> str:
  if not path.exists():
    hint = ""
    if not path.suffix and path.with_suffix(".yaml").is_file():
      hint = f"; did you mean {str(path.with_suffix('.yaml'))!r}?"
    raise ConfigError(f"config: no such file {str(path)!r}{hint or '.'}")
  if path.is_dir():
    raise ConfigError(
      f"config: {str(path)!r} is a directory; give a YAML file such as configs/quickstart.yaml."
    )
  try:
    return path.read_bytes().decode("utf-8")
  except UnicodeDecodeError as e:
    raise ConfigError(
      f"config: {str(path)!r} is not UTF-8 text (byte {e.start}); save it as UTF-8 YAML."
    ) from None
  except OSError as e:
    raise ConfigError(f"config: cannot read {str(path)!r}: {e.strerror}.") from None


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
  """YAML's safe loader (libyaml's parser where PyYAML has it: a sweep of 10⁵ seeds parses in a
  second), refusing a key given twice in one mapping (YAML keeps the last silently)."""

  def construct_mapping(self, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
      key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
      try:
        if key in seen and key != "<<":
          raise ConfigError(
            f"{self._where}: key {key!r} appears twice (lines {seen[key]} and {line}); keep one."
          )
        seen[key] = line
      except TypeError:  # an unhashable key: the base class names it
        pass
    return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str = "config"):
  """`text` parsed as YAML, duplicated keys refused; errors are one-line `ConfigError`s naming
  `where` and the line."""
  loader = _UniqueKeyLoader(text)
  loader._where = where
  try:
    return loader.get_single_data()
  except yaml.YAMLError as e:
    mark = getattr(e, "problem_mark", None)
    at = ""
    if mark is not None:
      line, column, lines = mark.line + 1, mark.column + 1, text.split("\n")
      if line > len(lines):  # libyaml marks the end of the text on the line after it
        line, column = len(lines), len(lines[-1]) + 1
      at = f" at line {line}, column {column}"
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    raise ConfigError(f"{where}: not valid YAML{at}: {problem}.") from None
  finally:
    loader.dispose()


def _is_path(source) -> bool:
  if isinstance(source, pathlib.Path):
    return True
  return (
    isinstance(source, str)
    and "\n" not in source
    and (source.endswith((".yaml", ".yml")) or pathlib.Path(source).is_file() or ": " not in source)
  )


# A sweep list overrides the single value of its section: --set on the single value would be ignored.
SWEEP_OF = {
  "model.width": "widths",
  "model.depth": "depths",
  "model.activation": "activations",
  "data.n": "n",
  "training.learning_rate": "learning_rates",
}


def apply_overrides(raw, overrides, *, where: str = "config") -> dict:
  """Applies ``dotted.key=value`` strings (values parsed as YAML) to a copy of `raw`.

  A value that is not YAML, a key path through a non-section, and an override of a single value
  that a sweep list in the config overrides in turn (``model.width`` while ``sweep.widths`` is
  set) are `ConfigError`s naming the ``--set`` item.
  """
  if raw is None:
    raw = {}
  if not isinstance(raw, dict):
    raise ConfigError(
      f"{where}: expected a mapping of keys to values at the top level (such as "
      f"`experiment: quickstart`), got a {type(raw).__name__}: {raw!r:.60}."
    )
  raw = _copy(raw)
  if isinstance(overrides, str):
    overrides = [overrides]
  for item in overrides:
    if not isinstance(item, str) or "=" not in item:
      raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set model.width=512.")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
      raise ConfigError(f"--set {item!r}: expected a dotted key such as model.width before '='.")
    value = parse_yaml(text, f"--set {item!r}")
    dotted = ".".join(parts)
    if dotted in SWEEP_OF:
      sweep = raw.get("sweep")
      if isinstance(sweep, dict) and sweep.get(SWEEP_OF[dotted]) is not None:
        lst = f"sweep.{SWEEP_OF[dotted]}"
        raise ConfigError(
          f"--set {item!r}: {lst} is set ({sweep[SWEEP_OF[dotted]]}) and overrides "
          f"{dotted}; set {lst}=[{text.strip()}] instead."
        )
    node = raw
    for i, part in enumerate(parts[:-1]):
      if node.get(part) is None:
        node[part] = {}
      node = node[part]
      if not isinstance(node, dict):
        raise ConfigError(f"--set {item!r}: {'.'.join(parts[: i + 1])!r} is not a section.")
    node[parts[-1]] = value
  return raw


def _copy(value):
  """A copy of nested dicts and lists (tuples become lists), so overrides never touch the caller's."""
  if isinstance(value, dict):
    return {k: _copy(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_copy(v) for v in value]
  return value


def _check_together(cfg: Config):
  """What no single key can check: a value listed twice in a sweep (the same cell twice), and a
  fixed-step solver without its step."""
  for f in dataclasses.fields(SweepConfig):
    values = getattr(cfg.sweep, f.name)
    if isinstance(values, tuple):
      # a set: linear in the list's length (a sweep of 10⁶ seeds); equal values are exactly the
      # values that give equal cell keys (the keys hash the values' exact repr)
      seen = set()
      for v in values:
        if v in seen:
          shown = list(values) if len(values) <= 20 else f"{len(values)} values"
          raise ConfigError(f"sweep.{f.name}: {v!r} is listed twice ({shown}); list each value once.")
        seen.add(v)
  tr = cfg.training
  if tr.dt0 is None and _fixed_step(tr.solver):
    raise ConfigError(
      f"training.dt0: solver {tr.solver!r} takes fixed steps, so it needs training.dt0 "
      f"(e.g. dt0: {tr.time / 1000:g}, small against 1/(η λ_max) of the NTK); or use an "
      "adaptive solver such as tsit5."
    )


# The single value each sweep list replaces, and back.
SWEEP_AXES = {v: k for k, v in SWEEP_OF.items()}


def _given(raw: dict) -> set:
  """The dotted keys a raw config sets (a sweep list set to null is not set)."""
  given = set()
  for key, value in raw.items():
    if isinstance(value, dict) and key != "options":
      given |= {f"{key}.{k}" for k, v in value.items() if not (key == "sweep" and v is None)}
    elif value is not None or key not in ("data", "model", "training", "sweep"):
      given.add(key)
  return given


def _differs_from_default(cfg: Config) -> set:
  """The dotted keys of `cfg` whose values differ from the defaults (for a `Config` built in Python,
  whose given keys are unknown)."""
  out = set()
  for f in dataclasses.fields(Config):
    value = getattr(cfg, f.name)
    if dataclasses.is_dataclass(value):
      default = type(value)()
      out |= {
        f"{f.name}.{g.name}"
        for g in dataclasses.fields(value)
        if getattr(value, g.name) != getattr(default, g.name)
      }
    elif f.name == "options":
      out |= {"options"} if value else set()
    elif f.default is dataclasses.MISSING or value != f.default:
      out.add(f.name)
  return out


def check_contract(cfg: Config, given=None):
  """Refuses what the experiment's contract does not cover (`ntk_lab.experiments.Experiment`):
  a key it does not honour (in `given`, the dotted keys the config sets; None: those differing from
  the defaults), a sweep list it does not tell apart, and a value outside the values it allows.

  Raises:
    ConfigError: naming the key, the experiment and what to do.
  """
  exp = _contract(cfg.experiment)
  if exp is None:
    return
  given = _differs_from_default(cfg) if given is None else set(given)
  name = cfg.experiment
  for key in sorted(given, key=_key_order):
    if exp.honours(key):
      continue
    section, _, field = key.partition(".")
    single = SWEEP_AXES.get(field) if section == "sweep" else None
    if single is not None and exp.honours(single):
      swept = [k for k in exp.keys if k.startswith("sweep.") and k not in ("sweep.seeds", "sweep.vmap_seeds")]
      raise ConfigError(
        f"{key}: experiment {name!r} does not sweep {field} (its report tells apart only "
        f"{', '.join(swept + ['sweep.seeds'])}); set {single} for one value, or run one config per value."
      )
    ours = [k for k in exp.keys if k.startswith(section + ".")]
    uses = ", ".join(ours) if ours else f"no {section} key"
    raise ConfigError(
      f"{key}: experiment {name!r} does not use this key, so its value would be silently ignored; "
      f"remove it (of {section}, {name} uses {uses}){_closest(field or key, ours, exp.options)}"
    )
  for key, values in exp.allowed.items():
    section, _, field = key.partition(".")
    swept_name = SWEEP_OF.get(key)
    swept = getattr(cfg.sweep, swept_name) if swept_name else None
    if swept:
      pairs = [(v, f"sweep.{swept_name}") for v in swept]
    else:
      pairs = [(getattr(getattr(cfg, section), field) if field else getattr(cfg, section), key)]
    for v, where in pairs:
      if v not in values:
        default = "" if where in given else " (the default)"
        shown = " or ".join(repr(x) for x in values)
        raise ConfigError(
          f"{where}: experiment {name!r} reproduces a fixed setting and allows only {shown}, "
          f"got {v!r}{default}; set {key}: {_yaml_word(values[0])}."
        )


def _closest(field: str, keys, options) -> str:
  """ "; did you mean …?" for a key or option of the experiment named like `field`, else "."."""
  import difflib

  names = {k.rpartition(".")[2]: k for k in keys} | {o: f"options.{o}" for o in options}
  close = difflib.get_close_matches(field, list(names), n=1)
  return f"; did you mean {names[close[0]]!r}?" if close else "."


def _yaml_word(v) -> str:
  return "null" if v is None else str(v)


def _key_order(key: str):
  order = [f.name for f in dataclasses.fields(Config)]
  section = key.partition(".")[0]
  return (order.index(section) if section in order else len(order), key)


def cell_config(cfg: Config, cell: Cell) -> Config:
  """`cfg` with the cell's sweep values substituted into their sections: its width, depth and
  activation in ``model``, its n in ``data`` and its learning rate in ``training``, so an
  experiment reads every value of the cell from its config.

  Example:
    >>> from ntk_lab.config import cell_config, cells, load_config
    >>> cfg = load_config({"experiment": "generalization_bound", "data": {"target": "linear"},
    ...                    "sweep": {"n": [8, 16]}})
    >>> [cell_config(cfg, c).data.n for c in cells(cfg)]
    [8, 16]
  """
  return dataclasses.replace(
    cfg,
    model=dataclasses.replace(cfg.model, width=cell.width, depth=cell.depth, activation=cell.activation),
    data=dataclasses.replace(cfg.data, n=cell.n),
    training=dataclasses.replace(cfg.training, learning_rate=cell.learning_rate),
  )


def fingerprint(cfg: Config) -> str:
  """A hash of the whole resolved config (16 hex digits): every cell of a run directory carries it,
  so a cell computed under another config is recognised, whatever its file name.

  Example:
    >>> from ntk_lab.config import fingerprint, load_config
    >>> a = load_config({"experiment": "quickstart"})
    >>> b = load_config({"experiment": "quickstart", "model": {"W_std": 1.0000001}})
    >>> len(fingerprint(a)), fingerprint(a) == fingerprint(b)
    (16, False)
  """
  # every key, honoured or not (a key outside the contract is refused before a run, so this equals
  # a hash of the honoured keys in effect), in one form across versions of the contracts
  return _digest(_plain(dataclasses.asdict(cfg)), 16)


def _digest(value, n: int) -> str:
  # json writes floats with repr (the shortest exact form), so no two distinct values share a text
  text = json.dumps(value, sort_keys=True, default=str, allow_nan=True)
  return hashlib.sha256(text.encode()).hexdigest()[:n]


# ---------------------------------------------------------------------------------- cells
@dataclasses.dataclass(frozen=True)
class Cell:
  """One point of the sweep grid."""

  width: int
  depth: int
  activation: str
  n: int
  learning_rate: float
  seed: int

  @property
  def key(self) -> str:
    """A file-name-safe id, stable across runs and shards, that no other cell shares: a readable
    prefix (the learning rate rounded by ``:g``) and a hash of the exact parameters.

    Example:
      >>> from ntk_lab.config import Cell
      >>> a, b = Cell(16, 1, "erf", 6, 1.0, 0), Cell(16, 1, "erf", 6, 1.0000001, 0)
      >>> a.key[:21], a.key == b.key
      ('w16_d1_erf_n6_lr1_s0_', False)
    """
    return (
      f"w{self.width}_d{self.depth}_{self.activation}_n{self.n}_"
      f"lr{self.learning_rate:g}_s{self.seed}_{_digest(dataclasses.asdict(self), 10)}"
    )


def cells(cfg: Config, *, shard: tuple[int, int] | None = None) -> list[Cell]:
  """The sweep grid in a fixed order; ``shard=(k, n)`` keeps every n-th cell from the k-th
  (1-based), so n processes with k = 1 … n cover the grid exactly once."""
  s = cfg.sweep
  grid = itertools.product(
    s.widths or (cfg.model.width,),
    s.depths or (cfg.model.depth,),
    s.activations or (cfg.model.activation,),
    s.n or (cfg.data.n,),
    s.learning_rates or (cfg.training.learning_rate,),
    s.seeds,
  )
  all_cells = [Cell(*c) for c in grid]
  if shard is None:
    return all_cells
  k, n = shard
  return all_cells[k - 1 :: n]
