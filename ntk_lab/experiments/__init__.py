"""The experiments of the `ntk-lab` runner (`ntk-lab list`), each a module here and a config under
``configs/``. Importing this package registers them in `EXPERIMENTS`; an experiment of your own
is an `Experiment` passed to `register`."""

from ntk_lab.experiments import (  # noqa: F401
  arora2019,
  cntk_small_data,
  concentration,
  convergence_rate,
  deep_linear,
  generalization_bound,
  jacot2018,
  kernel_convergence,
  lazy_training,
  lee2019,
  myrtle,
  nn_vs_ntk,
  quickstart,
  real_data,
)
from ntk_lab.experiments.registry import EXPERIMENTS, Experiment, experiment, register

__all__ = ["EXPERIMENTS", "Experiment", "experiment", "register"]
