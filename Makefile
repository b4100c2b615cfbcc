# ViralSpot intake. `make test` and `make run` work on a fresh machine: they build
# the virtualenv they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint typecheck unit cfn-lint checkov security run bench sam-build sam-validate clean

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

# checkov pins an older boto3/botocore than the project's, so it gets a virtualenv of
# its own (inside .venv, so `make clean` removes it). Skips, with reasons: .checkov.yaml.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := $(VENV)/tools/checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f infra/template.yaml

# Just the security checks: checkov, then bandit, the template's IAM/API/data policies
# and the local stack's API key (tests/security; they also run in `make unit`).
security: $(STAMP) checkov
	$(BIN)/pytest tests/security -q

test: lint typecheck cfn-lint checkov unit

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
	@echo "== bench/local_stack.py: resident memory of the local stack over 1,000 jobs"
	PYTHONPATH=layers/common:. $(BIN)/python bench/local_stack.py $(BENCH_LOCAL_STACK_ARGS)

# Needs the SAM CLI (pip install aws-sam-cli) and a python3.13 on PATH.
sam-validate:
	sam validate --lint -t infra/template.yaml

sam-build:
	sam build -t infra/template.yaml

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
