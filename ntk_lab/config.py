"""Experiment configs: YAML files loaded into frozen, typed dataclasses, validated before anything runs.

A config names an experiment and sets its data, model, training and sweep; every key is checked:

    experiment: kernel_convergence
    dtype: float64            # or float32
    device: auto              # auto (JAX's default), cpu or gpu
    data:     {n: 32, n_test: 16, in_dim: 2, inputs: sphere, target: sin, noise: 0.0}
    model:    {width: 256, depth: 1, activation: relu, parametrization: ntk, W_std: 1.0, b_std: null}
    training: {time: 10.0, n_times: 21, learning_rate: 1.0, solver: tsit5, rtol: 1.0e-4, atol: 1.0e-6}
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
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import pathlib
import types
import typing

import yaml

from ntk_lab.activations import ACTIVATIONS
from ntk_lab.mlp import PARAMETRIZATIONS

__all__ = ["Cell", "Config", "ConfigError", "DataConfig", "ModelConfig", "SweepConfig",
           "TrainingConfig", "apply_overrides", "cells", "load_config"]

SOLVER_NAMES = ("tsit5", "dopri5", "dopri8", "bosh3", "heun", "euler", "rk4")


class ConfigError(ValueError):
  """A config that does not validate; the message names the key path and how to fix it."""


def _choice(*options):
  return {"choices": options}


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
  activation: str = dataclasses.field(default="relu", metadata=_choice(*ACTIVATIONS))
  parametrization: str = dataclasses.field(default="ntk", metadata=_choice(*PARAMETRIZATIONS))
  W_std: float = dataclasses.field(default=1.0, metadata={"positive": True})
  b_std: float | None = dataclasses.field(default=None, metadata={"min": 0.0})
  out_dim: int = 1


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Gradient flow (or GD) settings; `time` is the final gradient-flow time."""
  time: float = dataclasses.field(default=10.0, metadata={"positive": True})
  n_times: int = 21
  learning_rate: float = dataclasses.field(default=1.0, metadata={"positive": True})
  solver: str = dataclasses.field(default="tsit5", metadata=_choice(*SOLVER_NAMES))
  rtol: float = dataclasses.field(default=1e-4, metadata={"positive": True})
  atol: float = dataclasses.field(default=1e-6, metadata={"positive": True})


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """Lists to take the grid of; None keeps the single value of the section."""
  widths: tuple[int, ...] | None = None
  seeds: tuple[int, ...] = dataclasses.field(default=(0,), metadata={"min": 0})
  depths: tuple[int, ...] | None = None
  activations: tuple[str, ...] | None = dataclasses.field(default=None, metadata=_choice(*ACTIVATIONS))
  n: tuple[int, ...] | None = None
  learning_rates: tuple[float, ...] | None = dataclasses.field(default=None, metadata={"positive": True})
  # Whether the seeds of one grid point are computed together under jax.vmap: "auto" lets the
  # experiment decide by backend (adaptive ODE solves vmap in lockstep, which costs on a CPU).
  vmap_seeds: str = dataclasses.field(default="auto", metadata=_choice("auto", "always", "never"))


@dataclasses.dataclass(frozen=True)
class Config:
  """A whole experiment config (see the module docstring for the YAML layout)."""
  experiment: str
  name: str | None = None
  dtype: str = dataclasses.field(default="float64", metadata=_choice("float32", "float64"))
  device: str = dataclasses.field(default="auto", metadata=_choice("auto", "cpu", "gpu"))
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  training: TrainingConfig = TrainingConfig()
  sweep: SweepConfig = SweepConfig()
  options: dict = dataclasses.field(default_factory=dict)

  def to_dict(self) -> dict:
    """Plain YAML-able dict (tuples as lists), the inverse of `load_config`."""
    return _plain(dataclasses.asdict(self))


def _plain(v):
  if isinstance(v, dict):
    return {k: _plain(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_plain(x) for x in v]
  return v


# ----------------------------------------------------------------------------- validation
def _unknown(path, key, valid):
  close = difflib.get_close_matches(str(key), valid, n=1)
  hint = f"; did you mean {close[0]!r}?" if close else "."
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
    if not isinstance(v, bool):
      raise ConfigError(f"{path}: must be true or false, got {v!r}.")
    return v
  if tp is int:
    low = meta.get("min", 1)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
      kind = "a positive integer" if low == 1 else f"an integer ≥ {low}"
      raise ConfigError(f"{path}: must be {kind}, got {v!r}.")
    return v
  if tp is float:
    if isinstance(v, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
      try:
        v = float(v)
      except ValueError:
        pass
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      raise ConfigError(f"{path}: must be a finite number, got {v!r}.")
    if meta.get("positive") and v <= 0:
      raise ConfigError(f"{path}: must be > 0, got {v!r}.")
    if "min" in meta and v < meta["min"]:
      raise ConfigError(f"{path}: must be ≥ {meta['min']}, got {v!r}.")
    return float(v)
  if tp is str:
    choices = meta.get("choices")
    if not isinstance(v, str):
      # YAML reads yes/no/on/off as booleans: name the words the key takes
      words = f" ({', '.join(choices)})" if choices else ""
      raise ConfigError(f"{path}: must be a string{words}, got {v!r}.")
    if choices and v not in choices:
      close = difflib.get_close_matches(v, choices, n=1)
      hint = f"; did you mean {close[0]!r}?" if close else "."
      raise ConfigError(f"{path}: must be one of {', '.join(choices)}, got {v!r}{hint}")
    return v
  raise TypeError(f"{path}: unsupported field type {tp}")  # a bug in the schema, not the config


def load_config(source, *, overrides=()) -> Config:
  """A validated `Config` from a YAML path, YAML text or a dict, after ``key=value`` overrides.

  Example:
    >>> from ntk_lab.config import load_config
    >>> cfg = load_config({"experiment": "quickstart", "sweep": {"widths": [64, 128]}})
    >>> cfg.sweep.widths, cfg.model.activation
    ((64, 128), 'relu')
    >>> load_config({"experiment": "quickstart", "modle": {}})
    Traceback (most recent call last):
    ...
    ntk_lab.config.ConfigError: unknown top-level key 'modle'; valid keys: experiment, name, dtype, device, data, model, training, sweep, options; did you mean 'model'?
  """
  if isinstance(source, dict):
    raw = source
  else:
    text = pathlib.Path(source).read_text() if _is_path(source) else str(source)
    try:
      raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
      raise ConfigError(f"config: not valid YAML: {e}") from e
  raw = apply_overrides(raw if raw is not None else {}, overrides)
  return _build(Config, raw, "")


def _is_path(source) -> bool:
  if isinstance(source, pathlib.Path):
    return True
  return isinstance(source, str) and "\n" not in source and (
      source.endswith((".yaml", ".yml")) or pathlib.Path(source).is_file())


def apply_overrides(raw: dict, overrides) -> dict:
  """Applies ``dotted.key=value`` strings (values parsed as YAML) to a copy of `raw`."""
  raw = yaml.safe_load(yaml.safe_dump(raw)) if raw else {}
  for item in overrides:
    if "=" not in item:
      raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set model.width=512.")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
      node = node.setdefault(part, {})
      if not isinstance(node, dict):
        raise ConfigError(f"--set {item!r}: {part!r} is not a section.")
    node[parts[-1]] = yaml.safe_load(text)
  return raw


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
    """A file-name-safe id, stable across runs and shards."""
    return (f"w{self.width}_d{self.depth}_{self.activation}_n{self.n}_"
            f"lr{self.learning_rate:g}_s{self.seed}")


def cells(cfg: Config, *, shard: tuple[int, int] | None = None) -> list[Cell]:
  """The sweep grid in a fixed order; ``shard=(k, n)`` keeps every n-th cell from the k-th
  (1-based), so n processes with k = 1 … n cover the grid exactly once."""
  s = cfg.sweep
  grid = itertools.product(s.widths or (cfg.model.width,), s.depths or (cfg.model.depth,),
                           s.activations or (cfg.model.activation,), s.n or (cfg.data.n,),
                           s.learning_rates or (cfg.training.learning_rate,), s.seeds)
  all_cells = [Cell(*c) for c in grid]
  if shard is None:
    return all_cells
  k, n = shard
  return all_cells[k - 1::n]
