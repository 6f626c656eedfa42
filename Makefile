# hbert: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned to the CPU build when it is missing (an unpinned torch can pull a multi-gigabyte CUDA build);
# a venv that already has a torch (e.g. a CUDA build installed by hand) keeps it.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup test lint demo bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

test: setup lint
	$(VENV)/bin/pytest -q tests

demo: setup
	$(VENV)/bin/hbert demo --out runs/demo

bench: setup
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
