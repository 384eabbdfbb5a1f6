"""Configs: every key checked, with messages that name the key path and the fix; overrides; the
sweep grid and its shards."""

import pathlib

import pytest
import yaml

from ntk_lab import runner
from ntk_lab.config import Config, ConfigError, cells, load_config
from tests.test_runner import open_contract  # noqa: F401  (a fixture)

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE = {"experiment": "kernel_convergence"}


@pytest.mark.parametrize(
  "raw,match",
  [
    (
      {**BASE, "modle": {}},
      r"unknown top-level key 'modle'; valid keys: experiment, .*did you mean 'model'\?",
    ),
    (
      {**BASE, "model": {"widht": 3}},
      r"model: unknown key 'widht'; valid keys: width, depth, .*did you mean 'width'\?",
    ),
    ({**BASE, "sweep": {"widths": [8, 16, -5]}}, r"sweep.widths\[2\]: must be a positive integer, got -5"),
    ({**BASE, "sweep": {"seeds": [0, -1]}}, r"sweep.seeds\[1\]: must be an integer ≥ 0, got -1"),
    ({**BASE, "sweep": {"widths": []}}, r"sweep.widths: must be a non-empty list"),
    ({**BASE, "model": {"W_std": "big"}}, r"model.W_std: must be a finite number, got 'big'"),
    ({**BASE, "model": {"W_std": 0}}, r"model.W_std: must be > 0, got 0"),
    (
      {**BASE, "model": {"activation": "rleu"}},
      r"model.activation: must be one of .*got 'rleu'; did you mean 'relu'\?",
    ),
    (
      {**BASE, "sweep": {"activations": ["relu", "tahn"]}},
      r"sweep.activations\[1\]: .*did you mean 'tanh'\?",
    ),
    ({**BASE, "dtype": "float16"}, r"dtype: must be one of float32, float64"),
    ({**BASE, "data": {"n": 2.5}}, r"data.n: must be a positive integer, got 2.5"),
    ({**BASE, "training": {"rtol": -1e-3}}, r"training.rtol: must be > 0"),
    (
      {**BASE, "sweep": {"vmap_seeds": True}},
      r"sweep.vmap_seeds: must be a string \(auto, always, never\), got True",
    ),
    (
      {**BASE, "sweep": {"vmap_seeds": "alway"}},
      r"sweep.vmap_seeds: must be one of auto, always, never, got 'alway'; did you mean 'always'\?",
    ),
    ({"model": {}}, r"experiment: is required"),
    (
      {"experiment": "kernel_convergnce"},
      r"experiment: must be one of .*did you mean 'kernel_convergence'\?",
    ),
    ({**BASE, "training": {"n_times": 1}}, r"training.n_times: must be an integer ≥ 2, got 1"),
    ({**BASE, "sweep": {"widths": [16, 32, 16]}}, r"sweep.widths: 16 is listed twice \(\[16, 32, 16\]\)"),
    ({**BASE, "sweep": {"learning_rates": [1, 1.0]}}, r"sweep.learning_rates: 1.0 is listed twice"),
    ({**BASE, "sweep": {"seeds": [0, 1, 0]}}, r"sweep.seeds: 0 is listed twice"),
    (
      {**BASE, "training": {"solver": "euler"}},
      r"training.dt0: solver 'euler' takes fixed steps, so it needs",
    ),
    ({**BASE, "training": {"solver": "rk4", "dt0": 0}}, r"training.dt0: must be > 0, got 0"),
    ({**BASE, "training": {"solver": "tsit"}}, r"training.solver: must be one of .*did you mean 'tsit5'\?"),
    ({**BASE, "data": [1, 2]}, r"data: expected a mapping"),
    (
      {**BASE, "training": {"error_control": "output"}},
      r"training.error_control: must be one of outputs, params, both.*did you mean 'outputs'\?",
    ),
  ],
)
def test_bad_configs_name_the_key_and_the_fix(raw, match):
  with pytest.raises(ConfigError, match=match):
    load_config(raw)


def test_unknown_experiment_and_option_are_named():
  with pytest.raises(
    ConfigError, match=r"experiment: unknown 'kernel_convergnce'.*did you mean 'kernel_convergence'"
  ):
    runner.experiment("kernel_convergnce")
  cfg = load_config({**BASE, "options": {"draws": 3}})
  with pytest.raises(ConfigError, match=r"options: unknown key 'draws' for experiment 'kernel_convergence'"):
    runner.check_options(cfg, runner.experiment(cfg.experiment))


def test_overrides_defaults_and_round_trip(tmp_path):
  path = tmp_path / "c.yaml"
  path.write_text("experiment: quickstart\nmodel: {width: 64}\n")
  cfg = load_config(path, overrides=["model.width=512", "training.rtol=1e-3", "sweep.widths=[8, 16]"])
  assert cfg.model.width == 512 and cfg.training.rtol == 1e-3 and cfg.sweep.widths == (8, 16)
  assert cfg.model.b_std is None and cfg.dtype == "float64"
  assert load_config(yaml.safe_dump(cfg.to_dict())) == cfg
  with pytest.raises(ConfigError, match="--set 'model.width': expected key=value"):
    load_config(path, overrides=["model.width"])
  with pytest.raises(ConfigError, match=r"model: unknown key 'widht'"):
    load_config(path, overrides=["model.widht=3"])


@pytest.mark.usefixtures("open_contract")
def test_grid_and_shards_partition_it():
  cfg = load_config({**BASE, "sweep": {"widths": [8, 16, 32], "seeds": [0, 1], "depths": [1, 2]}})
  grid = cells(cfg)
  assert len(grid) == 12 and len({c.key for c in grid}) == 12
  shards = [cells(cfg, shard=(k, 5)) for k in range(1, 6)]
  assert sorted(c.key for s in shards for c in s) == sorted(c.key for c in grid)
  assert cells(cfg, shard=(2, 5)) == cells(cfg, shard=(2, 5))  # deterministic


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_validates(path):
  cfg = load_config(path)
  assert isinstance(cfg, Config)
  runner.check_options(cfg, runner.experiment(cfg.experiment))


def test_choices_are_the_library_registries(monkeypatch):
  """No copied lists: what the config offers is what the library can run, read at check time."""
  from ntk_lab import config
  from ntk_lab.activations import ACTIVATIONS
  from ntk_lab.experiments import EXPERIMENTS
  from ntk_lab.training import SOLVERS

  assert config._solvers() == tuple(SOLVERS) and config._activations() == tuple(ACTIVATIONS)
  assert config._experiments() == tuple(EXPERIMENTS)
  flow = {"experiment": "quickstart"}  # an experiment that trains by gradient flow
  for solver in SOLVERS:  # every solver is offered, and a fixed-step one with its step
    cfg = load_config({**flow, "training": {"solver": solver, "dt0": 0.01}})
    assert cfg.training.solver == solver and cfg.training.dt0 == 0.01
  for act in ACTIVATIONS:
    assert load_config({**flow, "model": {"activation": act}}).model.activation == act
  monkeypatch.setitem(EXPERIMENTS, "mine", EXPERIMENTS["kernel_convergence"])  # registered later
  assert load_config({"experiment": "mine"}).experiment == "mine"


@pytest.mark.parametrize(
  "text,match",
  [
    (
      "experiment: quickstart\nmodel: {width: 8}\nmodel: {width: 16}\n",
      r"key 'model' appears twice \(lines 2 and 3\)",
    ),
    (
      "experiment: quickstart\nmodel:\n  width: 8\n  depth: 1\n  width: 16\n",
      r"key 'width' appears twice \(lines 3 and 5\)",
    ),
    ("experiment: quickstart\nsweep: {widths: [8, 16\n", r"not valid YAML at line 3"),
    ("- experiment: quickstart\n", r"expected a mapping of keys to values at the top level .* got a list"),
  ],
)
def test_config_files_are_read_strictly(tmp_path, text, match):
  path = tmp_path / "c.yaml"
  path.write_text(text)
  with pytest.raises(ConfigError, match=match) as e:
    load_config(path)
  assert "\n" not in str(e.value) and str(path) in str(e.value)  # one line, naming the file


def test_config_paths_are_named(tmp_path):
  (tmp_path / "c.yaml").write_text("experiment: quickstart\n")
  with pytest.raises(ConfigError, match=r"config: no such file '.*/c'; did you mean '.*/c.yaml'\?"):
    load_config(tmp_path / "c")
  with pytest.raises(ConfigError, match=r"config: no such file '.*/d.yml'\."):
    load_config(str(tmp_path / "d.yml"))
  with pytest.raises(ConfigError, match=r"config: no such file 'configs/quickstart'"):
    load_config("configs/quickstart")  # one line, no colon: a path, not YAML text
  with pytest.raises(ConfigError, match=r"is a directory"):
    load_config(tmp_path)
  (tmp_path / "latin.yaml").write_bytes("experiment: quickstart\n# café\n".encode("latin-1"))
  with pytest.raises(ConfigError, match=r"'.*latin.yaml' is not UTF-8 text \(byte 28\)"):
    load_config(tmp_path / "latin.yaml")
  (tmp_path / "plain").write_text("experiment: quickstart\n")  # an existing file needs no extension
  assert load_config(tmp_path / "plain").experiment == "quickstart"


@pytest.mark.parametrize(
  "item,match",
  [
    ("sweep.widths=[16,", r"--set 'sweep.widths=\[16,': not valid YAML at line 1"),
    (
      "model.width=512",
      r"--set 'model.width=512': sweep.widths is set \(\[8, 16\]\) and overrides model.width; "
      r"set sweep.widths=\[512\] instead",
    ),
    ("=3", r"--set '=3': expected a dotted key"),
    ("model..width=3", r"expected a dotted key"),
    ("experiment.x=3", r"--set 'experiment.x=3': 'experiment' is not a section"),
    ("model.width", r"expected key=value"),
  ],
)
def test_bad_overrides_are_one_line_errors(item, match):
  with pytest.raises(ConfigError, match=match) as e:
    load_config({**BASE, "sweep": {"widths": [8, 16]}}, overrides=[item])
  assert "\n" not in str(e.value)


def test_overrides_of_swept_values_are_fine_without_the_sweep_list():
  cfg = load_config(
    {"experiment": "quickstart", "model": None}, overrides=["model.width=512", "training.learning_rate=0.5"]
  )
  assert cfg.model.width == 512 and cfg.training.learning_rate == 0.5
  assert [c.width for c in cells(cfg)] == [512]


@pytest.mark.parametrize("field", ["width", "depth", "activation", "n", "learning_rate", "seed"])
def test_cell_keys_tell_cells_apart_that_differ_in_one_field(field):
  from ntk_lab.config import Cell

  base = Cell(16, 1, "erf", 6, 1.0, 0)
  import dataclasses

  other = {
    "width": 17,
    "depth": 2,
    "activation": "relu",
    "n": 7,
    "learning_rate": 1.0000000000000002,
    "seed": 1,
  }[field]
  assert base.key != dataclasses.replace(base, **{field: other}).key
