"""The README's notebook example runs as written (so it never rots)."""

import pathlib
import re


def test_readme_example_runs(tmp_path, monkeypatch):
  text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
  assert blocks, "README has no python example"
  monkeypatch.chdir(tmp_path)
  namespace = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
  assert (tmp_path / "ntk.png").exists()
