"""The registry of experiments the runner can run: each experiment module registers itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ntk_lab import _checks

__all__ = ["EXPERIMENTS", "Experiment", "experiment", "register"]


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One experiment of the runner.

  Attributes:
    name: the ``experiment:`` key of a config.
    description: one line for ``ntk-lab list``.
    options: the defaults of its ``options:`` keys (unknown keys are refused).
    run_seeds: ``run_seeds(cfg, cells, options) -> [dict]``, one result per cell; the cells differ
      only in the seed, and are computed together (vmapped) where the experiment can.
    report: ``report(out, cfg, options, results)`` writes the plots and tables.
    vmap_seeds_on_cpu: whether ``sweep.vmap_seeds: auto`` computes a grid point's seeds together on
      a CPU (False where a vmapped adaptive solve measured slower than one seed at a time).
  """

  name: str
  description: str
  options: Mapping[str, Any]
  run_seeds: Callable
  report: Callable
  vmap_seeds_on_cpu: bool = True


EXPERIMENTS: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
  """Adds `exp` to `EXPERIMENTS` (replacing one of the same name) and returns it."""
  if not isinstance(exp, Experiment):
    raise TypeError(f"exp: expected an ntk_lab.experiments.Experiment, got {type(exp).__name__}.")
  EXPERIMENTS[exp.name] = exp
  return exp


def experiment(name: str) -> Experiment:
  """The registered experiment `name`; an unknown name is a `ConfigError` with a suggestion."""
  from ntk_lab.config import ConfigError

  if name not in EXPERIMENTS:
    raise ConfigError(
      f"experiment: unknown {name!r}; valid: {', '.join(EXPERIMENTS)}"
      f"{_checks.did_you_mean(name, EXPERIMENTS)}"
    )
  return EXPERIMENTS[name]
