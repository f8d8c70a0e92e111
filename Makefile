# make demo  - engine-only venv (no torch), convert examples/ into out/
# make test  - full venv (engine + training + Blender + dev tools), run the whole test suite
# make bench - run every benchmarks/bench_*.py (prints tables and side-by-side ratios)
# make gpu-check - on a machine with an NVIDIA GPU: TensorRT tests + backend benchmark (<= 8 min)
#
# Installs are guarded by stamp files that depend on pyproject.toml, so a second run with
# nothing changed goes straight to the work.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CONSTRAINTS := .ci/constraints.txt
# Blender 4.2 LTS as a module, in a venv of its own (bpy pins one numpy and Python per Blender
# version): tests/addon/test_blender42.py runs the extension's 4.2 code path with it.
VENV42 := .venv42
BPY42 := "bpy==4.2.*" "numpy<2"

.PHONY: demo test bench gpu-check clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-demo: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install -q -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[train,blender,dev,ray]'
	touch $@ $(VENV)/.stamp-demo

$(VENV42)/.stamp: Makefile
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip --disable-pip-version-check install -q $(BPY42)
	touch $@

demo: $(VENV)/.stamp-demo
	$(VENV)/bin/hdrcnf convert examples/ -o out/ --overwrite
	@echo "HDR images written to $(CURDIR)/out/"

test: $(VENV)/.stamp-test $(VENV42)/.stamp
	HDRCNF_BPY42_PYTHON=$(CURDIR)/$(VENV42)/bin/python $(PY) -m pytest -q tests

bench: $(VENV)/.stamp-test
	@shopt -s nullglob; found=0; \
	for f in benchmarks/bench_*.py; do found=1; echo "== $$f"; $(PY) "$$f" || exit $$?; done; \
	if [ $$found = 0 ]; then echo "no benchmarks/bench_*.py yet"; fi

gpu-check:
	bash benchmarks/gpu_check.sh

clean-venv:
	rm -rf $(VENV) $(VENV42)
