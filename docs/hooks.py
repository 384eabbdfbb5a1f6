"""MkDocs hooks of the documentation site (mkdocs.yml names this file; it is not a page).

* The README is the site's overview page: it is added as ``overview.md`` with its ``docs/…`` links
  made relative to the docs folder, so the repository's front page and the site's never diverge,
  and docs/index.md's link to ``../README.md`` points at it. The other files of the repository root
  that it links (`ROOT_FILES`: the changelog, the license, the citation) are added under their own
  names, so those links hold in the site too.
* An API page of a module that this checkout does not have yet (one of `EXPECTED_MODULES`, added on
  another branch) renders a short note instead of failing the build; any other missing module fails
  it as usual.
* The top-level API page (docs/api/ntk_lab.md) must document every name of ``ntk_lab.__all__``
  but the submodules (they have their own pages; tests/test_docs.py checks those exist): a name
  that renders nowhere is a warning, so the strict build fails rather than drop it silently.
* MathJax (from its CDN, in the browser) is added only to the pages with LaTeX math
  (pymdownx.arithmatex's output): the build fetches nothing, and pages without such math load
  nothing from outside the site. Most formulas here are Unicode text.
* `GoogleDocstrings` (a griffe extension, named in mkdocs.yml) reads the library's docstrings as
  written: an ``Example:`` section is a doctest section like ``Examples:`` (rendered as code), and
  an argument line ``x1, x2: …`` documents each name, so griffe's check that every documented
  argument is in the signature stays on.
"""

from __future__ import annotations

import ast
import logging
import pathlib
import re

try:
  import griffe
except ModuleNotFoundError:  # the test suite reads the text functions here without the `docs` extra
  griffe = None

log = logging.getLogger("mkdocs.hooks.ntk_lab")

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Modules whose API pages exist before the module itself is merged (from another branch); once
# present they render. Empty while every page's module is in the tree.
EXPECTED_MODULES: frozenset[str] = frozenset()

_DIRECTIVE = re.compile(r"^::: (ntk_lab(?:\.\w+)*)[ \t]*$", flags=re.MULTILINE)


def module_exists(name: str) -> bool:
  """Whether the module's source is in this checkout (griffe reads source; nothing is imported)."""
  path = ROOT.joinpath(*name.split("."))
  return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


# Files of the repository root that become files of the site under the same name.
ROOT_FILES = ("CHANGELOG.md", "LICENSE", "CITATION.cff")


def readme_as_page(text: str) -> str:
  """The README with its links into docs/ made relative to docs/."""
  return re.sub(r"\]\(docs/", "](", text)


def on_files(files, config):
  from mkdocs.structure.files import File

  files.append(
    File.generated(config, "overview.md", content=readme_as_page((ROOT / "README.md").read_text()))
  )
  for name in ROOT_FILES:
    files.append(File.generated(config, name, abs_src_path=str(ROOT / name)))
  return files


def on_page_markdown(markdown, page, config, files):
  markdown = markdown.replace("](../README.md)", "](overview.md)")
  for name in ROOT_FILES:  # docs/ pages link them as ../NAME (resolved in the repository)
    markdown = markdown.replace(f"](../{name})", f"]({name})")

  def stand_in(match: re.Match) -> str:
    name = match[1]
    if module_exists(name) or name not in EXPECTED_MODULES:
      return match[0]
    log.info("%s: %s is not in this checkout yet; its page shows a note", page.file.src_path, name)
    return f'!!! note "Not in this version"\n    `{name}` is not part of this checkout yet.\n'

  return _DIRECTIVE.sub(stand_in, markdown)


def top_level_names() -> tuple[list[str], set[str]]:
  """``ntk_lab.__all__`` and the submodules among it (``from ntk_lab import datasets, …``), read
  from the source (nothing is imported)."""
  tree = ast.parse((ROOT / "ntk_lab" / "__init__.py").read_text())
  submodules = {
    a.name
    for node in tree.body
    if isinstance(node, ast.ImportFrom) and node.module == "ntk_lab"
    for a in node.names
  }
  for node in tree.body:
    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
      return list(ast.literal_eval(node.value)), submodules
  raise ValueError("ntk_lab/__init__.py defines no __all__")


def undocumented_top_level_names(html: str) -> list[str]:
  """The names of ``ntk_lab.__all__`` without an entry in the top-level page's HTML (an id
  ``ntk_lab.NAME``, or ``ntk_lab.MODULE.NAME`` where a function shadows its module's name), other
  than the submodules, which have pages of their own under docs/api/."""
  ids = set(re.findall(r'id="(ntk_lab(?:\.\w+)+)"', html))
  documented = {i.rsplit(".", 1)[1] for i in ids if i.count(".") <= 2}
  names, submodules = top_level_names()
  return [n for n in names if n not in documented and n not in submodules]


MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"


def on_post_page(output, page, config):
  from mkdocs.utils import get_relative_url

  if page.file.src_uri == "api/ntk_lab.md" and (missing := undocumented_top_level_names(output)):
    log.warning(
      "api/ntk_lab.md renders no entry for ntk_lab.%s (add it to the page)", ", ntk_lab.".join(missing)
    )
  if 'class="arithmatex"' not in output:
    return output
  setup = get_relative_url("javascripts/mathjax.js", page.url)
  scripts = f'<script src="{setup}"></script><script async src="{MATHJAX}"></script>'
  return output.replace("</body>", scripts + "</body>", 1)


_SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")  # "Args:", "Example:", "Keyword Args:"
_ARGS_SECTIONS = frozenset(
  {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Other Parameters", "Attributes"}
)
_SHARED_ARG = re.compile(r"^(\s+)(\w+(?:, \w+)+): (.*)$")


def google_as_written(text: str) -> str:
  """The docstring with ``Example:`` renamed ``Examples:`` and shared argument (and attribute) lines split."""
  out, args_indent = [], None  # args_indent: the indentation of the open Args section's title
  for line in text.splitlines():
    indent = len(line) - len(line.lstrip())
    if args_indent is not None and line.strip() and indent <= args_indent:
      args_indent = None  # dedented: the Args section ended
    section = _SECTION.match(line) if args_indent is None else None
    shared = _SHARED_ARG.match(line) if args_indent is not None else None
    if section and section[2] in _ARGS_SECTIONS:
      args_indent = indent
    elif section and section[2] == "Example":
      line = f"{section[1]}Examples:"
    if shared:
      out.extend(f"{shared[1]}{name}: {shared[3]}" for name in shared[2].split(", "))
    else:
      out.append(line)
  return "\n".join(out)


if griffe is not None:

  class GoogleDocstrings(griffe.Extension):
    """Applies `google_as_written` to every docstring griffe loads."""

    def on_object(self, *, obj, **kwargs):
      if obj.docstring is not None:
        obj.docstring.value = google_as_written(obj.docstring.value)
