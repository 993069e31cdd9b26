# One command on a fresh machine: `make run` or `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint run bench clean

install: $(STAMP)

# The project with its test tools (dev) and the sentence-transformers embedders the tests use (st);
# .ci/install installs torch==2.13.0 first (the CPU wheel) for `st`. The Dockerfile uses it too.
$(STAMP): pyproject.toml .ci/install
	PYTHON=$(PYTHON) EDITABLE=1 .ci/install $(VENV) dev,st
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check knowledge bot benchmarks tests eval
	$(VENV)/bin/ruff format --check knowledge bot benchmarks tests eval
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/pytest

run: install
	$(PY) -m bot run

# e.g. `make bench ARGS="--quick --json"` (python -m benchmarks --help lists the flags)
bench: install
	$(PY) -m benchmarks $(ARGS) $(if $(wildcard ../shared/eval/questions.jsonl),--eval ../shared/eval/questions.jsonl,)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
