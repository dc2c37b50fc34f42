# Everything a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install test lint demo bench docs clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its test extras

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check trials cli.py tests bench
	$(BIN)/mypy

test: $(STAMP) lint ## run the whole suite (database tests on SQLite and PostgreSQL)
	$(BIN)/python -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

demo: $(STAMP) ## run the main job end to end on a SQLite database in demo-output/
	$(BIN)/python -m trials.demo

bench: $(STAMP) ## run the benchmarks and write bench/RESULTS.md
	$(BIN)/python -m bench

docs: $(STAMP) ## regenerate docs/cli.md from the commands' --help
	$(BIN)/python -m trials.cli.docs > docs/cli.md

clean: ## remove the venv and build products
	rm -rf $(VENV) build dist *.egg-info demo-output
