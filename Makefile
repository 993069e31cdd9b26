# One command on a fresh machine: `make run` or `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint run bench clean

install: $(STAMP)

# .ci/install installs torch==2.13.0 first (the CPU wheel), then the project; the Dockerfile uses it too
$(STAMP): pyproject.toml .ci/install
	PYTHON=$(PYTHON) EDITABLE=1 .ci/install $(VENV) dev
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check knowledge bot tests
	$(VENV)/bin/ruff format --check knowledge bot tests
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

run: install
	$(PY) -m bot run

bench: install
	$(PY) -m knowledge bench $(if $(wildcard ../shared/eval/questions.jsonl),--eval ../shared/eval/questions.jsonl,)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
