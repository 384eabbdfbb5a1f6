# Everything runs inside a git-ignored virtual environment at .venv/, made on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NT_VENV := .venv-nt

.PHONY: install run notebook docs wheel-check lint test test-slow test-nt atlas bench bench-analytic bench-training bench-conv reference golden clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,experiments,flax]"
	touch $(STAMP)

install: $(STAMP)

## The main job: a small default experiment that ends in a plot and a table (--resume: a second
## `make run` keeps the finished cells and only re-makes the report).
run: $(STAMP)
	$(VENV)/bin/ntk-lab run configs/quickstart.yaml --out runs/quickstart --resume

## The tour notebook in JupyterLab (installs the `notebook` extra into .venv on first use).
notebook: $(STAMP)
	$(PY) -c "import jupyterlab, ipykernel" 2>/dev/null || $(PY) -m pip install --quiet -e ".[notebook]"
	$(VENV)/bin/jupyter lab experiments/notebooks/tour.ipynb

## The documentation site into site/ (installs the `docs` extra into .venv on first use): the guides
## of docs/, the API pages generated from the docstrings, the tour notebook. Offline; --strict, so a
## warning or a broken link fails it (no --quiet: mkdocs 1.6 then drops the warnings --strict counts).
## Open site/index.html. DOCS_EXECUTE_NOTEBOOK=true also runs the notebook (minutes on 2 cores).
docs: $(STAMP)
	$(PY) -c "import mkdocs, material, mkdocstrings_handlers.python, mkdocs_jupyter" 2>/dev/null || $(PY) -m pip install --quiet -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

## The release check: builds the sdist and the wheel into dist/ (a build that prints a packaging
## warning fails), installs the wheel into a clean virtual environment outside the repository and
## runs tests/scripts/wheel_smoke.py and `ntk-lab list` there.
wheel-check: $(STAMP)
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	rm -rf dist; \
	$(PY) -m build --outdir dist . > "$$tmp/build.log" 2>&1 || { cat "$$tmp/build.log"; exit 1; }; \
	if grep -E "Warning|[Dd]eprecat" "$$tmp/build.log"; then echo "wheel-check: the build warned (above)"; exit 1; fi; \
	ls dist; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip install --quiet dist/*.whl; \
	cd "$$tmp"; \
	venv/bin/python "$(CURDIR)/tests/scripts/wheel_smoke.py" "$(CURDIR)/dist"; \
	venv/bin/ntk-lab list

## Lint: ruff's checks and its formatting, over the library, tests and benchmarks (CI runs it).
lint: $(STAMP)
	$(VENV)/bin/ruff check ntk_lab tests benchmarks reference docs/hooks.py
	$(VENV)/bin/ruff format --check ntk_lab tests benchmarks reference docs/hooks.py

## The default (fast) test suite, in two worker processes (the tests are mostly compile-bound).
test: $(STAMP)
	$(PY) -m pytest -q -n 2

## The slower suite (large N, blocking at scale, the claims atlas); CI runs it after `make test`.
test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow || [ $$? -eq 5 ]  # 5: no slow tests collected, not a failure

## The claims atlas: every checkable statement of the seeds, a verdict each (results/atlas/atlas.md).
atlas: $(STAMP)
	$(VENV)/bin/ntk-lab atlas --out results/atlas --docs docs/atlas.md

## Live cross-checks against neural-tangents (builds its pinned environment first); CI runs them.
test-nt: $(STAMP) reference
	$(PY) -m pytest -q -m nt -n 2 --dist loadfile  # two files, one batched NT call each

## Benchmarks of the empirical NTK (writes JSON + Markdown under results/).
bench: $(STAMP)
	$(PY) -m benchmarks.bench_empirical_ntk --out results

## Benchmark of the infinite-width kernels against NT, and of the quadrature kernels against the
## rule they replaced (writes JSON + Markdown under results/).
bench-analytic: $(STAMP)
	$(PY) -m benchmarks.bench_analytic --out results --quadrature --quad-n 100

## Benchmark of convolutional kernels (CNN, CNTK, Myrtle-5; empirical CNN NTK) beside neural-tangents.
bench-conv: $(STAMP) reference
	$(PY) -m benchmarks.bench_conv --out results

## Benchmark of gradient flow (diffrax) and optax GD over widths (writes JSON + Markdown under results/).
bench-training: $(STAMP)
	$(PY) -m benchmarks.bench_training --out results

## One-command check on a CUDA machine with JAX for CUDA installed system-wide (pip install -U "jax[cuda12]"):
## a venv that sees the system's jax (never replaces it: the installed jax/jaxlib are pinned) gets
## ntk_lab and its other dependencies, then reduced GPU-sized benchmark cells and width sweeps run
## in under 8 minutes (writes results/gpu_check/gpu_check.{json,md}). CPU smoke mode: the test
## tests/test_gpu_check.py, or `python -m benchmarks.gpu_check --cpu-smoke`.
GPU_VENV := .venv-gpu
.PHONY: gpu-check
gpu-check:
	$(PYTHON) -c "import jax" || { echo 'gpu-check: no jax here; first: pip install -U "jax[cuda12]"'; exit 2; }
	[ -x $(GPU_VENV)/bin/python ] || $(PYTHON) -m venv --system-site-packages $(GPU_VENV)
	$(PYTHON) -c "import jax, jaxlib; print(f'jax=={jax.__version__}'); print(f'jaxlib=={jaxlib.__version__}')" > $(GPU_VENV)/constraints.txt
	$(GPU_VENV)/bin/python -m pip install --quiet -c $(GPU_VENV)/constraints.txt --no-deps -e .
	$(GPU_VENV)/bin/python -m pip install --quiet -c $(GPU_VENV)/constraints.txt "optax>=0.2" "diffrax>=0.6" equinox "matplotlib>=3.8" "pyyaml>=6"
	$(GPU_VENV)/bin/python -m benchmarks.gpu_check --out results/gpu_check

## neural-tangents 0.6.5 in its own pinned environment, for cross-checks and side-by-side timings.
reference: $(NT_VENV)/.installed
$(NT_VENV)/.installed: reference/requirements-nt.txt
	$(PYTHON) -m venv $(NT_VENV)
	$(NT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(NT_VENV)/bin/python -m pip install --quiet -r reference/requirements-nt.txt
	touch $@

clean:
	rm -rf $(VENV) $(NT_VENV) runs .pytest_cache site dist build .cache

## Regenerate the golden files of NT's answers (needs `make reference`).
golden: $(STAMP) reference
	$(PY) reference/make_golden.py
