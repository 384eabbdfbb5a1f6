"""The package boundary: what the installed `ntk_lab` may import. Every import statement of the
library (module level or inside a function) names the standard library, ntk_lab itself, a declared
dependency (or an optional extra's), and never JAX's internals."""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
LIBRARY = sorted((ROOT / "ntk_lab").rglob("*.py"))
# pyproject's dependencies (jax brings jaxlib; diffrax brings equinox), and its extras: scikit-learn
# for the digits data set (`experiments`), scipy with it.
ALLOWED = {"ntk_lab", "jax", "numpy", "optax", "diffrax", "equinox", "matplotlib", "yaml", "sklearn", "scipy"}
JAX_INTERNALS = ("jax._src", "jax.core", "jax.interpreters", "jax.extend", "jax.experimental", "jaxlib")


def _imports(path):
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      yield node.lineno, node.module
      for alias in node.names:  # `from jax import core` reaches jax.core
        yield node.lineno, f"{node.module}.{alias.name}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_only_stdlib_itself_and_declared_dependencies(path):
  bad = []
  for line, name in _imports(path):
    top = name.split(".")[0]
    if top not in ALLOWED and top not in sys.stdlib_module_names and top != "__future__":
      bad.append(
        f"line {line}: {name} (not installed with ntk_lab: benchmarks/, tests/ and "
        "experiments/ stay outside the package)"
      )
    if any(name == m or name.startswith(m + ".") for m in JAX_INTERNALS):
      bad.append(f"line {line}: {name} (JAX internals: public jax API only)")
  assert not bad, "\n".join(bad)


def test_the_scan_sees_function_level_imports(tmp_path):
  """The oracle of the scan: an import inside a function body is found."""
  p = tmp_path / "m.py"
  p.write_text("def f():\n  from benchmarks._timing import markdown_table\n  from jax import core\n")
  names = [n for _, n in _imports(p)]
  assert "benchmarks._timing" in names and "jax.core" in names
