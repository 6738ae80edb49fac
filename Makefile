# Conveyor — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0

.PHONY: demo test lint typecheck cfn-lint statelint unit functional e2e bench build validate clean

$(STAMP): requirements-dev.txt layers/conveyor/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/conveyor demo

test: lint typecheck cfn-lint statelint
	$(BIN)/pytest --cov --cov-branch --cov-report=term:skip-covered tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/conveyor/conveyor functions

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml --region us-east-1

statelint: $(STAMP)
	$(BIN)/statelint --ignore=URI statemachine/deployment.asl.json

unit: $(STAMP)
	$(BIN)/pytest tests/unit

functional: $(STAMP)
	$(BIN)/pytest tests/functional

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

build: $(STAMP)
	$(BIN)/sam build --template template.yaml

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage .conveyor
