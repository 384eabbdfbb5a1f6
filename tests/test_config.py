"""Configs: every key checked, with messages that name the key path and the fix; overrides; the
sweep grid and its shards."""

import pathlib

import pytest
import yaml

from ntk_lab import runner
from ntk_lab.config import Config, ConfigError, cells, load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE = {"experiment": "kernel_convergence"}


@pytest.mark.parametrize("raw,match", [
    ({**BASE, "modle": {}}, r"unknown top-level key 'modle'; valid keys: experiment, .*did you mean 'model'\?"),
    ({**BASE, "model": {"widht": 3}}, r"model: unknown key 'widht'; valid keys: width, depth, .*did you mean 'width'\?"),
    ({**BASE, "sweep": {"widths": [8, 16, -5]}}, r"sweep.widths\[2\]: must be a positive integer, got -5"),
    ({**BASE, "sweep": {"seeds": [0, -1]}}, r"sweep.seeds\[1\]: must be an integer ≥ 0, got -1"),
    ({**BASE, "sweep": {"widths": []}}, r"sweep.widths: must be a non-empty list"),
    ({**BASE, "model": {"W_std": "big"}}, r"model.W_std: must be a finite number, got 'big'"),
    ({**BASE, "model": {"W_std": 0}}, r"model.W_std: must be > 0, got 0"),
    ({**BASE, "model": {"activation": "rleu"}}, r"model.activation: must be one of .*got 'rleu'; did you mean 'relu'\?"),
    ({**BASE, "sweep": {"activations": ["relu", "tahn"]}}, r"sweep.activations\[1\]: .*did you mean 'tanh'\?"),
    ({**BASE, "dtype": "float16"}, r"dtype: must be one of float32, float64"),
    ({**BASE, "data": {"n": 2.5}}, r"data.n: must be a positive integer, got 2.5"),
    ({**BASE, "training": {"rtol": -1e-3}}, r"training.rtol: must be > 0"),
    ({**BASE, "sweep": {"vmap_seeds": True}}, r"sweep.vmap_seeds: must be a string \(auto, always, never\), got True"),
    ({**BASE, "sweep": {"vmap_seeds": "alway"}}, r"sweep.vmap_seeds: must be one of auto, always, never, got 'alway'; did you mean 'always'\?"),
    ({"model": {}}, r"experiment: is required"),
    ({**BASE, "data": [1, 2]}, r"data: expected a mapping"),
])
def test_bad_configs_name_the_key_and_the_fix(raw, match):
  with pytest.raises(ConfigError, match=match):
    load_config(raw)


def test_unknown_experiment_and_option_are_named():
  with pytest.raises(ConfigError, match=r"experiment: unknown 'kernel_convergnce'.*did you mean 'kernel_convergence'"):
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
