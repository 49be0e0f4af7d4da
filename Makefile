# strdiff_edu — one-command setup, tests, demo and book. Works on a fresh machine with
# Python 3.11, pip and Node 20; everything installs into .venv/ (created once, then reused).
.PHONY: help setup test test-fast test-slow test-notebooks demo book book-check weights ablations bench gpu-wheels clean
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

help:
	@echo "make demo   - set up .venv and run the inpainting demo on the embedded eval split (_build/demo)"
	@echo "make test   - set up .venv and run all tests (unit tests, every notebook, book check)"
	@echo "make book   - execute every notebook and render the book to _build/html (offline)"
	@echo "make bench  - CPU benchmarks of the cpu preset (benchmarks/results/cpu.json)"
	@echo "make weights - retrain the weights of the STRDIFF_PROFILE preset (default cpu) into weights/<preset> (cpu: about 100 min on 2 cores)"
	@echo "make ablations - Part V's ablations: structure pairings and resampling cases A-D (about 75 min on one CPU thread)"

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml _theme/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,book]'
	cd _theme && npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

setup: $(STAMP)

# The browser test of the book (tests/test_site.py) needs Chromium: scripts/ensure_chromium.sh
# installs Debian's package when it is missing and it can (root, apt-get), else the test skips.
test: setup
	scripts/ensure_chromium.sh
	STRDIFF_PROFILE=tiny $(PY) -m pytest

# The tiers of `make test` (markers in conftest.py).
test-fast: setup
	STRDIFF_PROFILE=tiny $(PY) -m pytest -m "not slow and not notebook"

test-slow: setup
	scripts/ensure_chromium.sh
	STRDIFF_PROFILE=tiny $(PY) -m pytest -m slow

test-notebooks: setup
	STRDIFF_PROFILE=tiny $(PY) -m pytest -m notebook book

# The inpainting demo on the embedded eval split with the shipped weights (<= 5 min on 2 CPU cores).
demo: setup
	STRDIFF_PROFILE=$${STRDIFF_PROFILE:-cpu} $(PY) -m strdiff_edu.cli demo --out $(CURDIR)/_build/demo
	@echo "Demo outputs (tables, figure grids, results.json) are in $(CURDIR)/_build/demo"

book: setup
	STRDIFF_PROFILE=$${STRDIFF_PROFILE:-cpu} scripts/build_book.sh --execute

book-check: setup
	scripts/build_book.sh --check

# Retrain the shipped cpu-preset weights (about 100 minutes on 2 CPU cores, two lanes; resumable).
weights: setup
	scripts/train_weights.sh $${STRDIFF_PROFILE:-cpu}

# Part V's ablations -> book/part5_inference/ablations.json (about 75 min on one CPU thread; resumable).
ablations: setup
	$(PY) scripts/ablations.py

# CPU benchmarks of the cpu preset (tables + benchmarks/results/cpu.json; 707 s measured with one thread).
bench: setup
	$(PY) -m strdiff_edu.cli bench --plan cpu --out benchmarks/results/cpu.json

# Wheels for Python 3.12 that benchmarks/gpu_check.sh and scripts/gpu_train.sh unpack on a GPU
# machine lacking them (PyWavelets: three of the embedded training sources).
gpu-wheels: setup
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 numpy tqdm PyWavelets -d .gpu_wheels

clean:
	rm -rf _build
