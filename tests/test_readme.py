"""The README's notebook examples run as written, in order in one namespace (so they never rot)."""

import pathlib
import re


def test_readme_example_runs(tmp_path, monkeypatch):
  text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
  assert blocks, "README has no python example"
  monkeypatch.chdir(tmp_path)
  namespace = {}
  for block in blocks:
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
  assert (tmp_path / "ntk.png").exists()
  assert namespace["run"].observables["loss"][-1] < namespace["run"].observables["loss"][0]
