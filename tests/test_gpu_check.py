"""`make gpu-check` (benchmarks/gpu_check.py) in its CPU smoke mode, so the script cannot rot."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import gpu_check
from tests.test_package import ROOT


def _check(out, sections, env=None):
  cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--cpu-smoke", "--out", str(out), *sections]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = json.loads((out / "gpu_check.json").read_text())
  md = (out / "gpu_check.md").read_text()
  assert report["meta"]["mode"] == "cpu-smoke" and report["meta"]["device"] in md
  return report, md


def test_the_budget_skips_the_sections_it_cannot_pay_for(tmp_path):
  report, md = _check(tmp_path, ["--only", "conv", "analytic", "--budget-s", "1"])
  for name in ("conv", "analytic"):
    section = report["sections"][name]
    assert section["status"] == "skipped" and "budget" in section["note"] and section["cells"] == []
    assert f"| {name} | skipped |" in md
  assert sum(spec["cap_s"] for spec in gpu_check.GPU.values()) <= 450


def test_a_section_stops_at_its_time_cap():
  status, err = gpu_check._run([sys.executable, "-c", "import time; time.sleep(30)"], 1, None)
  assert status == "time cap"
  status, err = gpu_check._run([sys.executable, "-c", "raise SystemExit('boom')"], 30, None)
  assert (status, err) == ("failed", "boom")


@pytest.mark.slow
def test_cpu_smoke_runs_every_section(tmp_path):
  report, md = _check(tmp_path, [])
  sections = report["sections"]
  assert list(sections) == list(gpu_check.SECTIONS)
  for name, s in sections.items():
    assert s["status"] == "ok", (name, s.get("note"))
    assert s["cells"] and not any("error" in c for c in s["cells"]), (name, s["cells"])
  emp = [c for c in sections["empirical_ntk"]["cells"] if "method" in c]
  assert {c["method"] for c in emp} == {"structured", "jacobian", "ntvp"}
  assert all(c["median_s"] > 0 for c in emp)
  assert sections["training"]["cells"][0]["loss_ratio"] < 1
  assert [c["width"] for c in sections["kernel_convergence"]["cells"]] == [16, 32]
  assert [c["n"] for c in sections["conv"]["cells"]] == [4, 4] and all(
    c["median_s"] > 0 for c in sections["conv"]["cells"]
  )
  for name in gpu_check.SECTIONS:
    assert f"## {name}" in md


def test_without_a_gpu_the_full_check_refuses_with_the_install_line(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path)]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
  assert (
    proc.returncode == 2 and 'pip install -U "jax[cuda12]"' in proc.stderr and "--cpu-smoke" in proc.stderr
  )
  assert not (tmp_path / "gpu_check.json").exists()
