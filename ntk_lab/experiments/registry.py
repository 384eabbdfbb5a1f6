"""The registry of experiments the runner can run: each experiment module registers itself.

Every experiment declares its contract: the config keys it honours (``keys``), the values it
allows where it restricts a key to the paper's setting (``allowed``), and a check of its options
and of what no single key can say (``check``). The config refuses every key outside the contract,
so no key is silently ignored (`ntk_lab.config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ntk_lab import _checks


class ConfigError(ValueError):
  """A config that does not validate; the message names the key path and how to fix it.

  Defined here, below the config module, so that experiments raise it without importing the
  config (which reads this registry): the import graph has no cycle."""


__all__ = [
  "ALWAYS",
  "DATA",
  "EXPERIMENTS",
  "FLOW",
  "MLP",
  "Experiment",
  "experiment",
  "register",
]

# The keys the runner itself honours for every experiment (it reads them, not the experiment).
ALWAYS = ("experiment", "name", "dtype", "device", "options", "sweep.seeds", "sweep.vmap_seeds")
# Shorthands for the contracts: the synthetic data of `_common.make_data` (with test points), the
# MLP of `_common.make_model`, and the gradient flow of `_common.flow`.
DATA = ("data.n", "data.n_test", "data.in_dim", "data.inputs", "data.target", "data.noise")
MLP = (
  "model.width",
  "model.depth",
  "model.activation",
  "model.parametrization",
  "model.W_std",
  "model.b_std",
)
FLOW = (
  "training.time",
  "training.n_times",
  "training.learning_rate",
  "training.solver",
  "training.rtol",
  "training.atol",
  "training.dt0",
  "training.error_control",
)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One experiment of the runner.

  Attributes:
    name: the ``experiment:`` key of a config.
    description: one line for ``ntk-lab list``.
    options: the defaults of its ``options:`` keys (unknown keys are refused).
    run_seeds: ``run_seeds(cfg, cells, options) -> [dict]``, one result per cell; the cells differ
      only in the seed, and are computed together (vmapped) where the experiment can. `cfg` is the
      cells' own resolved config: the sweep's values are substituted into it (``sweep.n`` sets
      ``data.n``), so the experiment reads every value from `cfg`.
    report: ``report(out, cfg, options, results)`` writes the plots and tables.
    vmap_seeds_on_cpu: whether ``sweep.vmap_seeds: auto`` computes a grid point's seeds together on
      a CPU (False where a vmapped adaptive solve measured slower than one seed at a time).
    keys: the config keys it honours, dotted (``"data.n"``, ``"model.width"``, ``"sweep.widths"``);
      `ALWAYS` is added. A config that sets any other key is refused. A sweep list
      (``sweep.widths``) is honoured only when listed, since the report must tell its cells apart.
    allowed: ``{dotted key: allowed values}`` where the experiment restricts a key it honours (the
      paper's setting); checked on the resolved value (a default too) and on every sweep value.
    check: ``check(cfg, options)`` raises `ntk_lab.config.ConfigError` for what no single key can
      say (options' values, sizes a data set does not have); called on each grid point's resolved
      config by ``ntk-lab validate`` and before a run.
    memory: ``memory(cfg) -> bytes``, an estimate of one grid point's largest allocation (for the
      refusal of sizes that cannot be allocated); None: the runner's estimate from the MLP's
      parameters and an n × n kernel.
  """

  name: str
  description: str
  options: Mapping[str, Any]
  run_seeds: Callable
  report: Callable
  vmap_seeds_on_cpu: bool = True
  keys: tuple[str, ...] | None = None
  allowed: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
  check: Callable | None = None
  memory: Callable | None = None

  def __post_init__(self):
    if self.keys is None:
      raise TypeError(
        f"Experiment {self.name!r}: keys: declare the config keys it honours, e.g. "
        "keys=(*ntk_lab.experiments.registry.DATA, 'model.width', 'sweep.widths')."
      )
    keys = tuple(dict.fromkeys((*ALWAYS, *self.keys)))
    object.__setattr__(self, "keys", keys)
    for key, values in self.allowed.items():
      if key not in keys:
        raise TypeError(f"Experiment {self.name!r}: allowed: {key!r} is not among its keys.")
      object.__setattr__(self, "allowed", {**self.allowed, key: tuple(values)})

  def honours(self, key: str) -> bool:
    """Whether the dotted config `key` is in the contract."""
    return key in self.keys


EXPERIMENTS: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
  """Adds `exp` to `EXPERIMENTS` (replacing one of the same name) and returns it."""
  if not isinstance(exp, Experiment):
    raise TypeError(f"exp: expected an ntk_lab.experiments.Experiment, got {type(exp).__name__}.")
  EXPERIMENTS[exp.name] = exp
  return exp


def experiment(name: str) -> Experiment:
  """The registered experiment `name`; an unknown name is a `ConfigError` with a suggestion."""

  if name not in EXPERIMENTS:
    raise ConfigError(
      f"experiment: unknown {name!r}; valid: {', '.join(EXPERIMENTS)}"
      f"{_checks.did_you_mean(name, EXPERIMENTS)}"
    )
  return EXPERIMENTS[name]
