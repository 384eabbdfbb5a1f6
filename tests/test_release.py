"""The release metadata agrees with itself: one version (ntk_lab/_version.py) read by the package
metadata, `ntk_lab.__version__`, CITATION.cff and the changelog; the license declared as an SPDX
expression with its text shipped; the citation file well-formed; CI building the site and checking
the wheel. (`make wheel-check` builds and installs the wheel itself; that is too slow for here.)"""

from __future__ import annotations

import pathlib
import re
import tomllib

import yaml

import ntk_lab
from ntk_lab import _version

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_version_everywhere():
  project = PYPROJECT["project"]
  assert "version" not in project and "version" in project["dynamic"]
  assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ntk_lab._version.__version__"}
  version = _version.__version__
  assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
  assert ntk_lab.__version__ == version
  cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
  assert str(cff["version"]) == version, "CITATION.cff's version is not ntk_lab/_version.py's"
  released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
  assert released and released[0] == version, (
    f"the changelog's latest release {released[:1]} is not {version}"
  )


def test_license_is_an_spdx_expression_with_its_text():
  project = PYPROJECT["project"]
  assert project["license"] == "Apache-2.0"
  assert project["license-files"] == ["LICENSE"]
  # a "License ::" classifier beside an SPDX expression is an error for setuptools
  assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
  requires = PYPROJECT["build-system"]["requires"]
  assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in requires), (
    requires
  )
  text = (ROOT / "LICENSE").read_text()
  assert "Apache License" in text and "Version 2.0, January 2004" in text
  assert "END OF TERMS AND CONDITIONS" in text


def test_citation_file_is_cff_1_2():
  cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
  assert cff["cff-version"] == "1.2.0"
  assert cff["type"] == "software" and cff["title"] and cff["message"]
  assert cff["authors"] == [{"name": "ntk_lab developers"}]
  assert cff["license"] == PYPROJECT["project"]["license"]


def test_changelog_keeps_a_changelog():
  text = (ROOT / "CHANGELOG.md").read_text()
  versions = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
  assert versions[0] == "Unreleased", versions
  sections = set(re.findall(r"^### (\w+)", text, flags=re.MULTILINE))
  assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, sections
  assert not re.search(r"\bissues? #?\d+\b|#\d+\b", text, flags=re.IGNORECASE), "no issue numbers"


def test_ci_builds_the_site_and_checks_the_wheel():
  ci = (ROOT / ".ci" / "run").read_text()
  makefile = (ROOT / "Makefile").read_text()
  for target in ("docs", "wheel-check"):
    assert re.search(rf"^make {target}$", ci, flags=re.MULTILINE), f".ci/run does not run make {target}"
    assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE)
  (build,) = re.findall(r"^\t.*mkdocs build.*$", makefile, flags=re.MULTILINE)
  # mkdocs 1.6's --quiet drops warnings before --strict counts them: a broken link would pass
  assert "--strict" in build and "--quiet" not in build.split("#")[0], build
  extras = PYPROJECT["project"]["optional-dependencies"]
  assert any(d.startswith("mkdocs") for d in extras["docs"]) and any(
    d.startswith("build") for d in extras["test"]
  )
  ignored = (ROOT / ".gitignore").read_text().split()
  assert {"site/", "dist/", "build/"} <= set(ignored)
