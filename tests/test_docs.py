"""The README and the pages under docs/ point at things that exist and show the committed results.

* every relative link and image resolves to a file in the repository (and an anchor to a heading);
* every repository path and `make` target quoted in code exists;
* the tables copied from generated files (`<!-- include: PATH -->` … `<!-- end include -->`) are
  those files verbatim; after a new benchmark or quickstart run, refresh them with
  ``python -m tests.test_docs sync``;
* docs/index.md links every page; no page cites the course exercise sheets or issue numbers;
* the site (mkdocs.yml, `make docs`) has every page in its navigation and an API page for every
  public module, each naming a module that exists (or is expected from another branch).

Pages written on other branches are listed in EXPECTED_PAGES: a link to one of them is skipped only
while that file is absent, so once they are merged every link is checked.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Reference pages other branches add; links to them are skipped only while the file is absent.
EXPECTED_PAGES = frozenset(
  f"docs/{name}.md" for name in ("runner", "atlas", "kernels", "checks", "training", "nt_parity", "papers")
)

_FENCE = re.compile(r"^```.*?^```", flags=re.DOTALL | re.MULTILINE)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_REPO_PATH = re.compile(r"^(?:tests|configs|benchmarks|ntk_lab|experiments|results|docs|reference)/[\w./-]*$")
# `make X` at the start of a code span or a code line, or after && or ; (a shell command).
_MAKE = re.compile(r"(?:^|&&|;)\s*make ([a-z][\w-]*)", flags=re.MULTILINE)
_INCLUDE = re.compile(
  r"(<!-- include: (?P<path>[\w./-]+)(?:, from line (?P<line>\d+))? -->\n)"
  r"(?P<body>.*?)(<!-- end include -->)",
  flags=re.DOTALL,
)
# Sheet references ("seed 002 P2", "seeds 001/004") and issue numbers have no place in the docs.
_FORBIDDEN = re.compile(r"\bseeds? 0\d\d\b|\bissues? #?\d+\b|\.\./shared", flags=re.IGNORECASE)


def pages() -> list[pathlib.Path]:
  return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _rel(path: pathlib.Path) -> str:
  return path.relative_to(ROOT).as_posix()


def _prose(text: str) -> str:
  """The text outside fenced code blocks (links inside code are not links)."""
  return _FENCE.sub("", text)


def _slug(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
  text = re.sub(r"[`*_]", "", heading.strip().lower())
  return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
  heads = re.findall(r"^#{1,6} (.+)$", _prose(path.read_text()), flags=re.MULTILINE)
  return {_slug(h) for h in heads}


def _missing_but_expected(target: pathlib.Path) -> bool:
  return not target.exists() and _rel(target) in EXPECTED_PAGES


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_relative_links_resolve(page):
  bad = []
  for target in _LINK.findall(_prose(page.read_text())):
    if re.match(r"^[a-z][a-z+.-]*:", target):  # https:, mailto:
      continue
    file_part, _, anchor = target.partition("#")
    dest = (page.parent / file_part).resolve() if file_part else page
    if not dest.is_relative_to(ROOT):
      bad.append(f"{target} (outside the repository)")
    elif _missing_but_expected(dest):
      continue
    elif not dest.exists():
      bad.append(f"{target} (no such file)")
    elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
      bad.append(f"{target} (no heading with anchor #{anchor} in {_rel(dest)})")
  assert not bad, f"{_rel(page)}: broken links: {bad}"


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_quoted_paths_and_make_targets_exist(page):
  text = page.read_text()
  spans = _CODE_SPAN.findall(_prose(text)) + [w for block in _FENCE.findall(text) for w in block.split()]
  paths = {s.rstrip(".,:;") for s in spans if _REPO_PATH.match(s.rstrip(".,:;"))}
  missing = [p for p in sorted(paths) if not (ROOT / p).exists() and not _missing_but_expected(ROOT / p)]
  assert not missing, f"{_rel(page)} quotes paths that do not exist: {missing}"
  makefile = (ROOT / "Makefile").read_text()
  targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE))
  code = "\n".join(_CODE_SPAN.findall(_prose(text)) + _FENCE.findall(text))
  unknown = sorted(set(_MAKE.findall(code)) - targets)
  assert not unknown, f"{_rel(page)} names make targets the Makefile lacks: {unknown}"


def _included(match: re.Match) -> str:
  lines = (ROOT / match["path"]).read_text().splitlines(keepends=True)
  body = "".join(lines[int(match["line"] or 1) - 1 :])
  return body if body.endswith("\n") else body + "\n"


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_included_files_are_verbatim(page):
  for match in _INCLUDE.finditer(page.read_text()):
    assert (ROOT / match["path"]).is_file(), f"{_rel(page)} includes missing {match['path']}"
    assert match["body"] == _included(match), (
      f"{_rel(page)}: the copy of {match['path']} is out of date; run `python -m tests.test_docs sync`"
    )


def test_index_links_every_page_and_the_expected_ones():
  index = ROOT / "docs" / "index.md"
  linked = {
    _rel((index.parent / t.partition("#")[0]).resolve())
    for t in _LINK.findall(_prose(index.read_text()))
    if not re.match(r"^[a-z]+:", t)
  }
  on_disk = {_rel(p) for p in (ROOT / "docs").glob("*.md")} - {"docs/index.md"}
  assert not (on_disk | EXPECTED_PAGES) - linked, "docs/index.md does not link every page"


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_no_sheet_or_issue_references(page):
  found = _FORBIDDEN.findall(page.read_text())
  assert not found, f"{_rel(page)} cites {found}: state the result and cite the paper instead"


def test_readme_is_a_front_page():
  """A screenful or two: the reference material lives under docs/."""
  lines = (ROOT / "README.md").read_text().splitlines()
  assert len(lines) <= 130, f"README.md has {len(lines)} lines; move reference material to docs/"


def test_the_checks_can_fail(tmp_path):
  """The patterns above catch what they are meant to catch."""
  page = tmp_path / "p.md"
  page.write_text(
    "# A `b` c: d\n[x](missing.md) ![y](img.png) [z](#a-b-c-d) [w](https://x.org/a)\n"
    "```\n[not](a_link.md)\n```\nsee seed 002 P2 and issue 14\n"
  )
  text = page.read_text()
  assert _LINK.findall(_prose(text)) == ["missing.md", "img.png", "#a-b-c-d", "https://x.org/a"]
  assert _anchors(page) == {"a-b-c-d"}
  assert _FORBIDDEN.findall(text) == ["seed 002", "issue 14"]
  spans = _CODE_SPAN.findall("`make run` and `make reference && make bench`; `make` installs `it`")
  assert _MAKE.findall("\n".join(spans)) == ["run", "reference", "bench"]


def _mkdocs_config() -> dict:
  """mkdocs.yml as data (its ``!ENV`` tags read as None)."""

  class Loader(yaml.SafeLoader):
    pass

  Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
  return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


def _nav_pages(nav) -> list[str]:
  if isinstance(nav, str):
    return [nav]
  if isinstance(nav, dict):
    return [p for v in nav.values() for p in _nav_pages(v)]
  return [p for item in nav for p in _nav_pages(item)]


def _hooks():
  """docs/hooks.py, the site's MkDocs hooks (its text functions need neither mkdocs nor griffe)."""
  spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_site_navigation_lists_every_page():
  config = _mkdocs_config()
  nav = _nav_pages(config["nav"])
  generated = {"overview.md"} | {n for n in _hooks().ROOT_FILES if n.endswith(".md")}
  excluded = {"papers", "quickstart"}  # fragments copied from runs; papers.md and experiments.md show them
  on_disk = {
    _rel(p).removeprefix("docs/")
    for p in [*(ROOT / "docs").rglob("*.md"), *(ROOT / "docs").rglob("*.ipynb")]
    if p.relative_to(ROOT / "docs").parts[0] not in excluded
  }
  assert not on_disk - set(nav), f"pages missing from mkdocs.yml's nav: {sorted(on_disk - set(nav))}"
  stale = [p for p in nav if p not in on_disk | generated]
  assert not stale, f"mkdocs.yml's nav names pages that do not exist: {stale}"
  assert config["strict"] is True


def _public_modules() -> set[str]:
  names = {"ntk_lab"}
  for path in (ROOT / "ntk_lab").iterdir():
    name = path.stem if path.suffix == ".py" else path.name
    if name.startswith("_") or not (path.suffix == ".py" or (path / "__init__.py").is_file()):
      continue
    names.add(f"ntk_lab.{name}")
  return names


def test_every_public_module_has_an_api_page():
  hooks = _hooks()
  pages = {}
  for page in sorted((ROOT / "docs" / "api").glob("*.md")):
    for name in re.findall(r"^::: (\S+)", page.read_text(), flags=re.MULTILINE):
      pages[name] = _rel(page)
  missing = _public_modules() - set(pages)
  assert not missing, f"public modules without a page under docs/api/: {sorted(missing)}"
  # a directive names a module, or an object of one (`::: ntk_lab.linearize.linearize`)
  absent = [
    n
    for n in pages
    if not (hooks.module_exists(n) or hooks.module_exists(n.rpartition(".")[0]))
    and n not in hooks.EXPECTED_MODULES
  ]
  assert not absent, f"API pages name modules that do not exist: {absent}"
  for page in (ROOT / "docs" / "api").glob("*.md"):
    assert f"(api/{page.name})" in (ROOT / "docs" / "api.md").read_text(), (
      f"docs/api.md does not link {page.name}"
    )


def test_docstrings_read_as_written():
  """The griffe extension of the site: ``Example:`` is a doctest section, shared argument lines
  document each name, and nothing outside an Args section changes."""
  google_as_written = _hooks().google_as_written
  doc = (
    "Fits.\n\n  Args:\n    x, y: positive numbers.\n      More on x, y: here.\n    level: a level.\n\n"
    "  Returns:\n    a, b: not arguments.\n\n  Example:\n    >>> 1 + 1\n    2"
  )
  assert google_as_written(doc).splitlines() == [
    "Fits.",
    "",
    "  Args:",
    "    x: positive numbers.",
    "    y: positive numbers.",
    "      More on x, y: here.",
    "    level: a level.",
    "",
    "  Returns:",
    "    a, b: not arguments.",
    "",
    "  Examples:",
    "    >>> 1 + 1",
    "    2",
  ]


def test_the_site_sees_the_readme_from_docs():
  hooks = _hooks()
  assert hooks.readme_as_page("[API](docs/api.md) ![p](docs/q/p.png) [NT](https://x.org/docs/a)") == (
    "[API](api.md) ![p](q/p.png) [NT](https://x.org/docs/a)"
  )
  assert all((ROOT / name).is_file() for name in hooks.ROOT_FILES)


def sync() -> list[str]:
  """Rewrites every include block of the README and docs/ from its source file."""
  changed = []
  for page in pages():
    text = page.read_text()
    new = _INCLUDE.sub(lambda m: m.group(1) + _included(m) + m.group(5), text)
    if new != text:
      page.write_text(new)
      changed.append(_rel(page))
  return changed


if __name__ == "__main__":
  if sys.argv[1:] != ["sync"]:
    sys.exit("usage: python -m tests.test_docs sync")
  print("\n".join(sync()) or "up to date")


def test_the_architecture_example_runs():
  """docs/architecture.md's worked example (a new layer, checked against the Jacobian route and
  Monte Carlo) runs as written."""
  text = (ROOT / "docs" / "architecture.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  assert len(blocks) == 1
  import types

  module = types.ModuleType("architecture_example")  # dataclasses look their module up
  sys.modules[module.__name__] = module
  try:
    exec(compile(blocks[0], "docs/architecture.md", "exec"), module.__dict__)
  finally:
    del sys.modules[module.__name__]
