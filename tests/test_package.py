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


# ------------------------------------------------------------------------- the layers of the package
# The application (configs, the runner and its CLI, registered experiments, the claims atlas) builds
# on the numerical core (layers, kernels, training, dynamics), never the reverse.
APPLICATION = (
  "ntk_lab.config",
  "ntk_lab.runner",
  "ntk_lab.cli",
  "ntk_lab.__main__",
  "ntk_lab.experiments",
  "ntk_lab.atlas",
)


def _module_name(path):
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in LIBRARY}


def _internal_edges(name):
  """The ntk_lab modules `name` imports, at module level, in functions or under TYPE_CHECKING:
  `from p import m` reaches the module p.m when there is one, else p."""
  out = set()
  for node in ast.walk(ast.parse(MODULES[name].read_text())):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      targets = [
        f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
      ]
    else:
      continue
    out.update(t for t in targets if t in MODULES and t not in (name, "ntk_lab"))
  return out


GRAPH = {name: _internal_edges(name) for name in MODULES if name != "ntk_lab"}


def _is_application(name):
  return any(name == a or name.startswith(a + ".") for a in APPLICATION)


def test_the_numerical_core_imports_nothing_of_the_application():
  bad = [
    f"{name} imports {target}"
    for name, targets in GRAPH.items()
    if not _is_application(name)
    for target in targets
    if _is_application(target)
  ]
  assert not bad, "\n".join(bad)


def _cycles(graph):
  """The strongly connected components with more than one module (Tarjan's algorithm)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = set()
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_no_import_cycles_even_through_function_level_imports():
  assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
