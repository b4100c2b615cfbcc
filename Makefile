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
	$(BIN)/pip install --quiet --no-deps -e .
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
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint typecheck cfn-lint unit

run: $(STAMP)
	$(BIN)/python -m devstack

# One table per benchmark (docs/benchmarks.md). Sizes can be overridden per script,
# e.g. make bench BENCH_LOAD_ARGS="--requests 500" BENCH_COLDSTART_ARGS=--no-sam
bench: $(STAMP)
	@echo "== bench/intake.py: AWS calls and latency per request path"
	PYTHONPATH=layers/common:. $(BIN)/python bench/intake.py $(BENCH_INTAKE_ARGS)
	@echo "== bench/pipeline.py: DynamoDB calls per processed profile"
	PYTHONPATH=layers/common:. $(BIN)/python bench/pipeline.py $(BENCH_PIPELINE_ARGS)
	@echo "== bench/sweeper.py: sweep cost against completed history"
	PYTHONPATH=layers/common:. $(BIN)/python bench/sweeper.py $(BENCH_SWEEPER_ARGS)
	@echo "== bench/seed_vs_project.py: the seed's algorithm against the project's"
	PYTHONPATH=layers/common:. $(BIN)/python bench/seed_vs_project.py $(BENCH_SEED_ARGS)
	@echo "== bench/coldstart.py: handler import time and artifact sizes"
	PYTHONPATH=layers/common:. $(BIN)/python bench/coldstart.py $(BENCH_COLDSTART_ARGS)
	@echo "== bench/load.py: concurrent load on the local stack"
	PYTHONPATH=layers/common:. $(BIN)/python bench/load.py $(BENCH_LOAD_ARGS)

# Needs the SAM CLI (pip install aws-sam-cli) and a python3.13 on PATH.
sam-validate:
	sam validate --lint -t infra/template.yaml

sam-build:
	sam build -t infra/template.yaml

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
