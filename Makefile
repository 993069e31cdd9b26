# One command on a fresh machine: `make run` or `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint run bench clean

install: $(STAMP)

# torch first, pinned: pip then takes the CPU wheel on this machine's disk instead of a CUDA build of several GB
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check knowledge tests
	$(VENV)/bin/ruff format --check knowledge tests
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

run: install
	$(PY) -m bot run

bench: install
	$(PY) -m knowledge bench $(if $(wildcard ../shared/eval/questions.jsonl),--eval ../shared/eval/questions.jsonl,)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
