# hbert: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned to the CPU build when it is missing (an unpinned torch can pull a multi-gigabyte CUDA build);
# a venv that already has a torch (e.g. a CUDA build installed by hand) keeps it.
TORCH_PIN ?= torch==2.13.0
# The exact versions of everything else (pyproject.toml declares ranges); the lowest supported set for test-lowest.
CONSTRAINTS ?= constraints.txt
LOWEST_VENV ?= .venv-lowest

.PHONY: setup test test-lowest lint docs findings demo bench gpu-check gpu-carry clean

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks docs/hooks
	$(VENV)/bin/ruff format --check src tests benchmarks docs/hooks

# pytest includes the strict documentation build (tests/test_docs.py) and runs every code block of the docs.
test: setup lint
	$(VENV)/bin/pytest -q tests

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on a broken link or a page missing from the nav.
docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

# Regenerate the report quotations of docs/findings.md from results/*/REPORT.md (after rerunning a recipe).
findings: setup
	$(PY) -m hbert.experiments.findings docs/findings.md

demo: setup
	$(VENV)/bin/hbert demo --out runs/demo

bench: setup
	$(PY) benchmarks/bench_model.py

# The lowest supported versions (constraints-lowest.txt, no optional extras) in a venv of their own, then hbert
# installed with --no-deps on top, as into an existing GPU environment: import, every preset, a pretraining step.
test-lowest:
	rm -rf $(LOWEST_VENV) && $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q -r constraints-lowest.txt pytest
	$(LOWEST_VENV)/bin/python -m pip install -q --no-deps -e .
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_install.py::test_lowest_smoke \
		tests/test_bert_equivalence.py tests/test_config.py

# Correctness and speed on the GPU at hand (see benchmarks/GPU_README.md); GPU_CHECK_ARGS=--tiny on a CPU.
GPU_CHECK_OUT ?= benchmarks
gpu-check: setup
	$(PY) benchmarks/gpu_check.py --out $(GPU_CHECK_OUT) $(GPU_CHECK_ARGS)

# What a GPU machine without internet needs for recipes/gpu-smoke.yaml: the prepared offline corpus, in an ignored
# folder that travels with the working tree (at most 64 MiB in all). GPU_TEACHER=FOLDER also carries a local
# masked-LM teacher with the bert-base-uncased vocabulary (e.g. an hbert checkpoint of MiniLM with its fitted MLM
# head) to .gpu-carry/teacher, in bf16, for reference=.gpu-carry/teacher: a hub id cannot load there.
GPU_TEACHER ?=
gpu-carry: setup
	rm -rf .gpu-carry/offline-en-128 && mkdir -p .gpu-carry
	cp -r "$$($(VENV)/bin/hbert data prepare --corpus offline-en --seq-len 128 --quiet --json \
		| $(PY) -c 'import json, sys; print(json.load(sys.stdin)["path"])')" .gpu-carry/offline-en-128
	$(if $(GPU_TEACHER),$(PY) benchmarks/carry_teacher.py "$(GPU_TEACHER)" .gpu-carry/teacher)

clean:
	rm -rf $(VENV) $(LOWEST_VENV) runs site .pytest_cache .ruff_cache
