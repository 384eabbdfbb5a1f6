"""A hostile-input table for the application layer: configs, the runner, the command line, the
statistics and the data sets.

Each row is (input → expected outcome): either the error type and the words its message must
contain (a refusal that names the key or argument, the experiment and the fix), or a check of the
returned value against an independent route (a NumPy scalar must give what the Python number
gives; a fit must give what `numpy.polyfit` gives). Nothing here computes an experiment: the
refusals come before any cell, so the table runs in seconds. The policy behind the rows is
docs/runner.md (configs and runs) and docs/checks.md (arguments).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_lab import _checks, cli, datasets, runner, stats
from ntk_lab.config import Config, ConfigError, cell_config, cells, load_config
from tests.test_runner import TINY


class Raises(NamedTuple):
  exc: type
  words: str  # a regex the message must match


class Value(NamedTuple):
  check: Callable  # out -> bool


def validate(raw, *overrides):
  """What `ntk-lab validate` does: load (the contract included), then every run-time check."""
  cfg = load_config(raw, overrides=list(overrides))
  runner.check_run(cfg)
  return cfg


def config(name, *overrides):
  return validate(f"configs/{name}.yaml", *overrides)


def exit_code(argv):
  return cli.main([str(a) for a in argv])


ROOT = pathlib.Path(__file__).resolve().parents[1]
KEY = jax.random.PRNGKey(0)
QUICK = {"experiment": "quickstart", "data": {"n": 6}}
NOT_USED = r"does not use this key, so its value would be silently ignored; remove it"
CASES = [
  # ----------------------------------------------------------- the contract: keys an experiment ignores
  (
    "real_data sweep.n",
    lambda: config("real_data", "sweep.n=[40, 200]"),
    Raises(ConfigError, r"sweep.n: experiment 'real_data' does not sweep n .*set data.n for one value"),
  ),
  (
    "real_data sweep.learning_rates",
    lambda: config("real_data", "sweep.learning_rates=[0.05, 0.1]"),
    Raises(ConfigError, r"sweep.learning_rates: experiment 'real_data' does not sweep"),
  ),
  (
    "real_data data.in_dim",
    lambda: config("real_data", "data.in_dim=3"),
    Raises(
      ConfigError, rf"data.in_dim: experiment 'real_data' {NOT_USED} \(of data, real_data uses data.n, "
    ),
  ),
  (
    "real_data data.target",
    lambda: config("real_data", "data.target=linear"),
    Raises(ConfigError, rf"data.target: experiment 'real_data' {NOT_USED}"),
  ),
  (
    "real_data out_dim",
    lambda: config("real_data", "model.out_dim=1"),
    Raises(
      ConfigError, r"model.out_dim: experiment 'real_data' .*allows only 10, got 1; set model.out_dim: 10"
    ),
  ),
  (
    "real_data out_dim left at the default",
    lambda: validate({"experiment": "real_data", "data": {"n": 40}}),
    Raises(ConfigError, r"model.out_dim: .*allows only 10, got 1 \(the default\)"),
  ),
  (
    "real_data dataset",
    lambda: config("real_data", "options.dataset=mnist"),
    Raises(ConfigError, r"options.dataset: only 'digits'"),
  ),
  (
    "real_data more images than the digits",
    lambda: config("real_data", "data.n=1700"),
    Raises(ConfigError, r"data.n \+ data.n_test: the digits have 1797 images, asked for 1700 \+ 500"),
  ),
  (
    "arora2019 W_std",
    lambda: config("arora2019", "model.W_std=2"),
    Raises(
      ConfigError, r"model.W_std: experiment 'arora2019' .*allows only 1.0, got 2.0; set model.W_std: 1.0"
    ),
  ),
  (
    "arora2019 b_std",
    lambda: config("arora2019", "model.b_std=0.1"),
    Raises(
      ConfigError, r"model.b_std: experiment 'arora2019' .*allows only None, got 0.1; set model.b_std: null"
    ),
  ),
  (
    "arora2019 activation refused by validate",
    lambda: config("arora2019", "model.activation=tanh"),
    Raises(ConfigError, r"model.activation: experiment 'arora2019' .*allows only 'relu', got 'tanh'"),
  ),
  (
    "arora2019 depth",
    lambda: config("arora2019", "model.depth=2"),
    Raises(ConfigError, r"model.depth: .*allows only 1, got 2"),
  ),
  (
    "arora2019 parametrization",
    lambda: config("arora2019", "model.parametrization=standard"),
    Raises(ConfigError, r"model.parametrization: .*allows only 'ntk'"),
  ),
  (
    "arora2019 training",
    lambda: config("arora2019", "training.time=5"),
    Raises(
      ConfigError, rf"training.time: experiment 'arora2019' {NOT_USED} \(of training, arora2019 uses no"
    ),
  ),
  (
    "arora2019 data.inputs",
    lambda: config("arora2019", "data.inputs=gaussian"),
    Raises(ConfigError, rf"data.inputs: experiment 'arora2019' {NOT_USED}"),
  ),
  (
    "arora2019 sweep.depths",
    lambda: config("arora2019", "sweep.depths=[1]"),
    Raises(ConfigError, r"sweep.depths: experiment 'arora2019' does not sweep depths"),
  ),
  (
    "arora2019 too many images of two classes",
    lambda: config("arora2019", "data.n=300", "data.n_test=100"),
    Raises(ConfigError, r"options.classes / data.n / data.n_test: n_train \+ n_test: the chosen classes"),
  ),
  (
    "arora2019 corrupt out of range",
    lambda: config("arora2019", "options.corrupt=[0.0, 1.5]"),
    Raises(ConfigError, r"options.corrupt: must be a non-empty list of fractions"),
  ),
  (
    "cntk_small_data momentum",
    lambda: config("cntk_small_data", "options.momentum=1"),
    Raises(ConfigError, r"options.momentum: the heavy-ball β must be in \[0, 1\), got 1"),
  ),
  (
    "cntk_small_data negative ridge",
    lambda: config("cntk_small_data", "options.ridge=-0.1"),
    Raises(ConfigError, r"options.ridge: the ridge .* must be a number ≥ 0"),
  ),
  (
    "cntk_small_data more images than the digits",
    lambda: config("cntk_small_data", "sweep.n=[10, 1700]"),
    Raises(
      ConfigError,
      r"data.n \+ data.n_test: the digits have 1797 images, asked for a training set of up to 1700",
    ),
  ),
  (
    "cntk_small_data a balanced subset the pool cannot give",
    lambda: config("cntk_small_data", "sweep.n=[10, 1590]"),
    Raises(
      ConfigError,
      r"data.n: a class-balanced subset of 1590 needs 159 images of each class; .*balanced: false",
    ),
  ),
  (
    "cntk_small_data activation",
    lambda: config("cntk_small_data", "model.activation=tanh"),
    Raises(ConfigError, rf"model.activation: experiment 'cntk_small_data' {NOT_USED}"),
  ),
  (
    "myrtle depth",
    lambda: config("myrtle", "sweep.depths=[5, 6]"),
    Raises(ConfigError, r"sweep.depths: experiment 'myrtle' .*allows only 5 or 7 or 10, got 6"),
  ),
  (
    "myrtle width",
    lambda: config("myrtle", "model.width=64"),
    Raises(ConfigError, rf"model.width: experiment 'myrtle' {NOT_USED}"),
  ),
  (
    "kernel_convergence learning rate",
    lambda: config("kernel_convergence", "training.learning_rate=0.5"),
    Raises(ConfigError, rf"training.learning_rate: experiment 'kernel_convergence' {NOT_USED}"),
  ),
  (
    "kernel_convergence noise",
    lambda: config("kernel_convergence", "data.noise=0.1"),
    Raises(ConfigError, rf"data.noise: experiment 'kernel_convergence' {NOT_USED}"),
  ),
  (
    "kernel_convergence sweep.depths",
    lambda: config("kernel_convergence", "sweep.depths=[1, 2]"),
    Raises(ConfigError, r"sweep.depths: experiment 'kernel_convergence' does not sweep depths .*model.depth"),
  ),
  (
    "generalization_bound width",
    lambda: config("generalization_bound", "model.width=64"),
    Raises(
      ConfigError, rf"model.width: experiment 'generalization_bound' {NOT_USED} \(of model, .*uses no model"
    ),
  ),
  (
    "generalization_bound sweep.widths",
    lambda: config("generalization_bound", "sweep.widths=[64]"),
    Raises(ConfigError, rf"sweep.widths: experiment 'generalization_bound' {NOT_USED}"),
  ),
  (
    "generalization_bound target",
    lambda: config("generalization_bound", "data.target=sin"),
    Raises(ConfigError, r"data.target: experiment 'generalization_bound' .*allows only 'linear', got 'sin'"),
  ),
  (
    "generalization_bound target left at the default",
    lambda: validate({"experiment": "generalization_bound"}),
    Raises(ConfigError, r"data.target: .*got 'sin' \(the default\); set data.target: linear"),
  ),
  (
    "concentration relu refused by validate",
    lambda: config("concentration", "model.activation=relu"),
    Raises(ConfigError, r"model.activation: the bounds need a smooth σ"),
  ),
  (
    "concentration depth",
    lambda: config("concentration", "model.depth=2"),
    Raises(ConfigError, rf"model.depth: experiment 'concentration' {NOT_USED}"),
  ),
  (
    "concentration draws",
    lambda: config("concentration", "options.draws=1"),
    Raises(ConfigError, r"options.draws: must be an integer ≥ 2"),
  ),
  (
    "deep_linear solver",
    lambda: config("deep_linear", "training.solver=dopri5"),
    Raises(ConfigError, rf"training.solver: experiment 'deep_linear' {NOT_USED}"),
  ),
  (
    "deep_linear activation",
    lambda: config("deep_linear", "model.activation=relu"),
    Raises(ConfigError, rf"model.activation: experiment 'deep_linear' {NOT_USED}"),
  ),
  (
    "deep_linear init_scale",
    lambda: config("deep_linear", "options.init_scale=-1"),
    Raises(ConfigError, r"options.init_scale: must be a finite number > 0"),
  ),
  (
    "jacot2018 steps",
    lambda: config("jacot2018", "options.steps=0"),
    Raises(ConfigError, r"options.steps: must be a positive integer"),
  ),
  (
    "jacot2018 in_dim",
    lambda: config("jacot2018", "data.in_dim=3"),
    Raises(ConfigError, rf"data.in_dim: experiment 'jacot2018' {NOT_USED}"),
  ),
  (
    "lee2019 lr_fraction",
    lambda: config("lee2019", "options.lr_fraction=2"),
    Raises(ConfigError, r"options.lr_fraction: .*must be in \(0, 1\)"),
  ),
  (
    "lee2019 training.time",
    lambda: config("lee2019", "training.time=3"),
    Raises(ConfigError, rf"training.time: experiment 'lee2019' {NOT_USED}"),
  ),
  (
    "quickstart out_dim",
    lambda: validate({**QUICK, "model": {"out_dim": 2}}),
    Raises(ConfigError, rf"model.out_dim: experiment 'quickstart' {NOT_USED}"),
  ),
  (
    "lazy_training n_test",
    lambda: config("lazy_training", "data.n_test=8"),
    Raises(ConfigError, rf"data.n_test: experiment 'lazy_training' {NOT_USED}"),
  ),
  (
    "a Config built in Python",
    lambda: runner.check_run(
      dataclasses.replace(
        load_config("configs/arora2019.yaml"),
        training=dataclasses.replace(Config(experiment="arora2019").training, time=3.0),
      )
    ),
    Raises(ConfigError, rf"training.time: experiment 'arora2019' {NOT_USED}"),
  ),
  (
    "every shipped key of arora2019 honoured",
    lambda: config("arora2019").to_dict(),
    Value(
      lambda d: (
        set(d) >= {"data", "model", "options"} and "training" not in d and set(d["data"]) == {"n", "n_test"}
      )
    ),
  ),
  (
    "a sweep value substituted into its cell's config",
    lambda: [
      (cell_config(cfg, c).data.n, c.n)
      for cfg in [config("generalization_bound", "sweep.n=[8, 16]", "sweep.seeds=[0]")]
      for c in cells(cfg)
    ],
    Value(lambda pairs: pairs == [(8, 8), (16, 16)]),
  ),
  # ------------------------------------------------------------------------------- sizes and widths
  (
    "width not an integer",
    lambda: validate({**QUICK, "model": {"width": 2.5}}),
    Raises(ConfigError, r"model.width: must be a positive integer, got 2.5 \(float\)"),
  ),
  (
    "width a float written 1.0e+20",
    lambda: validate({**QUICK, "model": {"width": 1.0e20}}),
    Raises(ConfigError, r"model.width: must be a positive integer, got 1e\+20 \(float\)"),
  ),
  (
    "width 1e20 through --set (YAML reads a string)",
    lambda: validate(QUICK, "model.width=1e20"),
    Raises(ConfigError, r"model.width: must be a positive integer, got '1e20' \(str\)"),
  ),
  (
    "width 10**20, an integer",
    lambda: validate({**QUICK, "model": {"width": 10**20}}),
    Raises(
      ConfigError,
      r"model.width / data.n: experiment 'quickstart' at model.width 100,000,000,000,000,000,000.* more than .* of memory",
    ),
  ),
  (
    "a swept width too large",
    lambda: validate({**QUICK, "sweep": {"widths": [64, 10**12]}}),
    Raises(ConfigError, r"model.width 1,000,000,000,000, data.n 6 needs at least"),
  ),
  (
    "n too large for its kernel",
    lambda: config("kernel_convergence", "data.n=10000000", "sweep.seeds=[0]"),
    Raises(ConfigError, r"data.n 10,000,000 needs at least 728 TiB"),
  ),
  (
    "seeds vmapped together too large",
    lambda: config(
      "kernel_convergence", "data.n=100000", "sweep.seeds=[0, 1, 2, 3, 4, 5, 6, 7]", "sweep.vmap_seeds=always"
    ),
    Raises(
      ConfigError,
      r"for the 8 seeds computed together \(sweep.vmap_seeds: never computes them one at a time\)",
    ),
  ),
  (
    "width bool",
    lambda: validate({**QUICK, "model": {"width": True}}),
    Raises(ConfigError, r"model.width: .*got the bool True"),
  ),
  (
    "seed negative",
    lambda: validate(QUICK, "sweep.seeds=[0, -1]"),
    Raises(ConfigError, r"sweep.seeds\[1\]: must be an integer ≥ 0"),
  ),
  (
    "seed listed twice in a long list",
    lambda: validate({**QUICK, "sweep": {"seeds": [*range(1000), 999]}}),
    Raises(ConfigError, r"sweep.seeds: 999 is listed twice \(1001 values\); list each value once"),
  ),
  (
    "config numpy scalars",
    lambda: load_config({**QUICK, "model": {"W_std": np.float32(1.5), "width": np.int64(8)}}).model,
    Value(lambda m: (m.W_std, m.width) == (1.5, 8) and type(m.W_std) is float and type(m.width) is int),
  ),
  (
    "config number a bool",
    lambda: load_config({**QUICK, "training": {"rtol": True}}),
    Raises(ConfigError, r"training.rtol: must be a finite number, got the bool True"),
  ),
  (
    "config number the string nan",
    lambda: load_config({**QUICK, "training": {"atol": "nan"}}),
    Raises(ConfigError, r"training.atol: must be a finite number, got nan"),
  ),
  # -------------------------------------------------------------------------- booleans and out dirs
  (
    "boolean the string False",
    lambda: _checks.boolean("False", "trace_outputs"),
    Raises(
      ValueError, r"trace_outputs: must be True or False, got the string 'False' .*pass False without quotes"
    ),
  ),
  (
    "boolean the string yes",
    lambda: _checks.boolean("yes", "flag"),
    Raises(ValueError, r"flag: .*pass True or False"),
  ),
  (
    "boolean 0",
    lambda: _checks.boolean(0, "flag"),
    Raises(ValueError, r"flag: must be True or False, got 0 \(int\)"),
  ),
  (
    "boolean None",
    lambda: _checks.boolean(None, "flag"),
    Raises(ValueError, r"flag: must be True or False, got None"),
  ),
  ("boolean numpy", lambda: _checks.boolean(np.bool_(True), "flag"), Value(lambda b: b is True)),
  ("boolean 0-d array", lambda: _checks.boolean(np.array(False), "flag"), Value(lambda b: b is False)),
  (
    "run resume 'False'",
    lambda: runner.run(TINY, "/nonexistent/r", resume="False"),
    Raises(ValueError, r"resume: must be True or False, got the string 'False'"),
  ),
  (
    "run progress 1",
    lambda: runner.run(TINY, "/nonexistent/r", progress=1),
    Raises(ValueError, r"progress: must be True or False"),
  ),
  (
    "run out empty",
    lambda: runner.run(TINY, ""),
    Raises(ConfigError, r"--out '': is empty; name a run directory"),
  ),
  ("run out blank", lambda: runner.run(TINY, "  "), Raises(ConfigError, r"--out '  ': is empty")),
  (
    "run out None",
    lambda: runner.run(TINY, None),
    Raises(ConfigError, r"--out: expected a directory path, got NoneType"),
  ),
  ("report empty", lambda: runner.report(""), Raises(ConfigError, r"--out '': is empty")),
  (
    "cli run --out ''",
    lambda: exit_code(["run", "configs/quickstart.yaml", "--out", ""]),
    Value(lambda code: code == 2),
  ),
  ("cli report ''", lambda: exit_code(["report", ""]), Value(lambda code: code == 2)),
  (
    "cli atlas --out ''",
    lambda: exit_code(["atlas", "--only", "C0.1", "--out", ""]),
    Value(lambda code: code == 2),
  ),
  # ------------------------------------------------------------------------------------------ stats
  (
    "loglog zero and negative y",
    lambda: stats.loglog_fit([1, 2, 4], [1.0, 0.0, -2.0]),
    Raises(
      ValueError, r"y: a log-log fit needs positive, finite values; y\[1\] = 0.0, y\[2\] = -2.0 are not"
    ),
  ),
  (
    "loglog zero x",
    lambda: stats.loglog_fit([0, 2, 4], [1, 2, 3]),
    Raises(ValueError, r"x\[0\] = 0.0 is not"),
  ),
  (
    "loglog nan y",
    lambda: stats.loglog_fit([1, 2, 4], [1, np.nan, 3]),
    Raises(ValueError, r"y\[1\] = nan is not"),
  ),
  ("loglog inf y", lambda: stats.loglog_fit([1, 2], [1, np.inf]), Raises(ValueError, r"y\[1\] = inf is not")),
  (
    "loglog lengths",
    lambda: stats.loglog_fit([1, 2, 4], [1, 2]),
    Raises(ValueError, r"x, y: must have the same length, got 3 and 2"),
  ),
  ("loglog one point", lambda: stats.loglog_fit([2], [3]), Raises(ValueError, r"at least two points, got 1")),
  (
    "loglog equal x",
    lambda: stats.loglog_fit([4, 4, 4], [1, 2, 3]),
    Raises(ValueError, r"x: every point has the same x \(4\)"),
  ),
  (
    "loglog level",
    lambda: stats.loglog_fit([1, 2, 4], [1, 2, 3], level=1.5),
    Raises(ValueError, r"level: must be a confidence level in \(0, 1\)"),
  ),
  (
    "loglog level bool",
    lambda: stats.loglog_fit([1, 2, 4], [1, 2, 3], level=True),
    Raises(ValueError, r"level: .*bool"),
  ),
  (
    "loglog float32 against polyfit",
    lambda: stats.loglog_fit(np.array([8, 16, 64], np.float32), np.array([0.5, 0.3, 0.1], np.float32)),
    Value(
      lambda f: (
        abs(
          f.slope - np.polyfit(np.log([8.0, 16, 64]), np.log(np.float32([0.5, 0.3, 0.1]).astype(float)), 1)[0]
        )
        < 1e-12
      )
    ),
  ),
  (
    "loglog two points",
    lambda: stats.loglog_fit([2, 8], [3.0, 0.75]),
    Value(lambda f: abs(f.slope + 1) < 1e-14 and np.isnan(f.low)),
  ),
  # --------------------------------------------------------------------- data sets: one number policy
  (
    "circle np.int64",
    lambda: datasets.circle(np.int64(4)),
    Value(lambda x: np.array_equal(x, datasets.circle(4))),
  ),
  (
    "circle 0-d jax int",
    lambda: datasets.circle(jnp.asarray(4)),
    Value(lambda x: np.array_equal(x, datasets.circle(4))),
  ),
  (
    "circle float",
    lambda: datasets.circle(4.0),
    Raises(ValueError, r"n: must be a positive integer, got 4.0 \(float\)"),
  ),
  (
    "circle bool",
    lambda: datasets.circle(True),
    Raises(ValueError, r"n: must be a positive integer, got the bool True"),
  ),
  (
    "sphere np.int32 dim",
    lambda: datasets.sphere(5, np.int32(3), key=KEY),
    Value(lambda x: np.array_equal(x, datasets.sphere(5, 3, key=KEY))),
  ),
  (
    "gaussian dim string",
    lambda: datasets.gaussian(5, "3", key=KEY),
    Raises(ValueError, r"dim: must be a positive integer, got '3' \(str\)"),
  ),
  (
    "gaussian n zero",
    lambda: datasets.gaussian(0, 3, key=KEY),
    Raises(ValueError, r"n: must be a positive integer, got 0"),
  ),
  (
    "digits numpy sizes",
    lambda: datasets.digits(n_train=np.int64(20), n_test=np.int32(5), key=np.int64(3)).x_train,
    Value(lambda x: np.array_equal(x, datasets.digits(n_train=20, n_test=5, key=3).x_train)),
  ),
  (
    "digits np.float32 corrupt",
    lambda: datasets.digits(n_train=40, n_test=5, corrupt=np.float32(0.5), key=1).y_train,
    Value(lambda y: np.array_equal(y, datasets.digits(n_train=40, n_test=5, corrupt=0.5, key=1).y_train)),
  ),
  (
    "digits corrupt nan",
    lambda: datasets.digits(corrupt=np.nan),
    Raises(ValueError, r"corrupt: must be a finite number"),
  ),
  (
    "digits corrupt bool",
    lambda: datasets.digits(corrupt=True),
    Raises(ValueError, r"corrupt: .*got the bool True"),
  ),
  (
    "digits n_test negative",
    lambda: datasets.digits(n_test=-1),
    Raises(ValueError, r"n_test: must be an integer ≥ 0, got -1"),
  ),
  (
    "digits n_train float",
    lambda: datasets.digits(n_train=10.0),
    Raises(ValueError, r"n_train: must be a positive integer, got 10.0 \(float\)"),
  ),
  (
    "digits n_train nan",
    lambda: datasets.digits(n_train=np.nan),
    Raises(ValueError, r"n_train: must be a positive integer, got nan"),
  ),
  (
    "digits class bool",
    lambda: datasets.digits(classes=(0, True)),
    Raises(ValueError, r"classes\[1\]: .*got the bool True"),
  ),
  (
    "digits class np.int8",
    lambda: datasets.digits(classes=(np.int8(3), 5), n_train=10, n_test=4).y_train.shape,
    Value(lambda s: s == (10, 2)),
  ),
  (
    "digits key bool",
    lambda: datasets.digits(key=True),
    Raises(ValueError, r"key: expected an integer seed or a JAX PRNG key, got the bool"),
  ),
  (
    "digits key negative",
    lambda: datasets.digits(key=-1),
    Raises(ValueError, r"key \(an integer seed\): must be an integer ≥ 0"),
  ),
  (
    "teacher noise np.float32",
    lambda: datasets.teacher_student(6, 2, 3, key=KEY, hidden=(8,), noise=np.float32(0.25)).y_train,
    Value(
      lambda y: np.allclose(
        y, datasets.teacher_student(6, 2, 3, key=KEY, hidden=(8,), noise=0.25).y_train, rtol=1e-14, atol=0
      )
    ),
  ),
  (
    "teacher noise inf",
    lambda: datasets.teacher_student(6, 2, 3, key=KEY, noise=np.inf),
    Raises(ValueError, r"noise: must be a finite number ≥ 0"),
  ),
  (
    "teacher noise string",
    lambda: datasets.teacher_student(6, 2, 3, key=KEY, noise="0.1"),
    Raises(ValueError, r"noise: must be a finite number"),
  ),
  (
    "teacher noise bool",
    lambda: datasets.teacher_student(6, 2, 3, key=KEY, noise=False),
    Raises(ValueError, r"noise: .*bool"),
  ),
  (
    "teacher n_test np.int64",
    lambda: datasets.teacher_student(6, np.int64(2), 3, key=KEY, hidden=(8,)).x_test.shape,
    Value(lambda s: s == (2, 3)),
  ),
  (
    "teacher hidden float",
    lambda: datasets.teacher_student(6, 2, 3, key=KEY, hidden=(8.0,)),
    Raises(ValueError, r"hidden\[0\]: must be a positive integer, got 8.0"),
  ),
  (
    "teacher out_dim bool",
    lambda: datasets.teacher_student(6, 2, 3, key=KEY, out_dim=True),
    Raises(ValueError, r"out_dim: .*bool"),
  ),
  (
    "teacher dim zero",
    lambda: datasets.teacher_student(6, 2, 0, key=KEY),
    Raises(ValueError, r"dim: must be a positive integer, got 0"),
  ),
  (
    "teacher b_std nan",
    lambda: datasets.teacher_student(6, 2, 3, key=KEY, b_std=np.nan),
    Raises(ValueError, r"b_std: must be a finite number ≥ 0"),
  ),
]


def test_table_is_large_and_unique():
  ids = [c[0] for c in CASES]
  assert len(ids) >= 60 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("name,call,expect", CASES, ids=[c[0] for c in CASES])
def test_hostile(name, call, expect, monkeypatch):
  monkeypatch.chdir(ROOT)  # the rows name configs/*.yaml
  if isinstance(expect, Raises):
    with pytest.raises(expect.exc) as err:
      call()
    assert re.search(expect.words, str(err.value), re.S), f"{name}: message was {err.value}"
    assert "\n" not in str(err.value), f"{name}: not one line"
  else:
    assert expect.check(call()), name


def test_every_shipped_config_honours_its_contract():
  """Every config in configs/ validates whole (contract, options, each grid point, memory), and
  its resolved form, which config.yaml holds, loads back to the same config."""
  import yaml

  for path in sorted((ROOT / "configs").glob("*.yaml")):
    cfg = load_config(path)
    runner.check_run(cfg)
    assert load_config(yaml.safe_dump(cfg.to_dict())) == cfg, path.name


def test_a_sweep_of_300000_seeds_validates():
  """The duplicate check is linear: 300,000 seeds validate (the quadratic check took minutes)."""
  raw = {**TINY, "sweep": {"widths": [16], "seeds": list(range(300_000))}}
  cfg = validate(raw)
  assert len(cfg.sweep.seeds) == 300_000 and len(cells(cfg)) == 300_000
  with pytest.raises(ConfigError, match=r"sweep.seeds: 0 is listed twice \(300001 values\)"):
    load_config({**raw, "sweep": {"widths": [16], "seeds": [*range(300_000), 0]}})
