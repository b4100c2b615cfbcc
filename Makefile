# ViralSpot intake. `make test` and `make run` work on a fresh machine: they build
# the virtualenv they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint typecheck unit cfn-lint run bench sam-build sam-validate clean

$(STAMP): requirements-dev.txt layers/common/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint infra/template.yaml

unit: $(STAMP)
	$(BIN)/pytest -n 2

test: lint typecheck cfn-lint unit

run: $(STAMP)
	$(BIN)/python -m devstack

bench: $(STAMP)
	$(BIN)/python bench/intake.py

# Needs the SAM CLI (pip install aws-sam-cli) and a python3.13 on PATH.
sam-validate:
	sam validate --lint -t infra/template.yaml

sam-build:
	sam build -t infra/template.yaml

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
