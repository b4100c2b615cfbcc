# ViralSpot intake. `make test` and `make run` work on a fresh machine: they build
# the virtualenv they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint typecheck unit cfn-lint checkov security run bench sam-build sam-validate clean \
        dynamodb-local invoke event layer-lock

$(STAMP): requirements-dev.txt layers/common/requirements.in layers/common/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The tests run the layer's exact versions: its lock, as plain pins. Its hashes
	# would switch pip into hash-checking mode for every dev tool, which have none.
	sed -e '/--hash=/d' -e 's/ *\\$$//' layers/common/requirements.txt > $(VENV)/layer-pins.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt -c $(VENV)/layer-pins.txt
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

unit: $(STAMP) dynamodb-local
	$(BIN)/pytest -n 2 --dist loadgroup

# DynamoDB Local, AWS's own engine, for the tests and benchmarks whose answer depends on
# DynamoDB itself (devstack/dynamodb_local.py runs it). AWS ships it inside this npm
# package; the tarball is checked against npm's sha512 integrity pinned here
# (`npm view amplify-dynamodb-simulator@VERSION dist.integrity`), so a change upstream
# fails loudly. Without java or npm it says so and succeeds: those tests then skip.
DDBL_PACKAGE   := amplify-dynamodb-simulator
DDBL_VERSION   := 2.9.30
DDBL_INTEGRITY := sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==
DDBL_DIR       := .cache/dynamodb-local
DDBL_STAMP     := $(DDBL_DIR)/.installed-$(DDBL_VERSION)
SRI_SHA512     := import base64, hashlib, sys; \
	print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())

dynamodb-local:
	@if [ -f $(DDBL_STAMP) ]; then exit 0; fi; \
	if ! command -v java >/dev/null 2>&1; then \
		echo "DynamoDB Local not fetched: java not found (install a Java 17+ runtime, then run make dynamodb-local); its tests will skip"; exit 0; fi; \
	if ! command -v npm >/dev/null 2>&1; then \
		echo "DynamoDB Local not fetched: npm not found (install npm, then run make dynamodb-local); its tests will skip"; exit 0; fi; \
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "Fetching DynamoDB Local ($(DDBL_PACKAGE)@$(DDBL_VERSION)) into $(DDBL_DIR)"; \
	tarball=$$(cd "$$tmp" && npm pack --silent $(DDBL_PACKAGE)@$(DDBL_VERSION)); \
	got=$$($(PYTHON) -c '$(SRI_SHA512)' "$$tmp/$$tarball"); \
	if [ "$$got" != "$(DDBL_INTEGRITY)" ]; then \
		echo "DynamoDB Local: $$tarball has integrity $$got, expected $(DDBL_INTEGRITY)"; exit 1; fi; \
	tar -xzf "$$tmp/$$tarball" -C "$$tmp" package/emulator; \
	rm -rf $(DDBL_DIR); mkdir -p $(DDBL_DIR); \
	mv "$$tmp"/package/emulator/* $(DDBL_DIR)/; \
	touch $(DDBL_STAMP)

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

# ARGS goes to the command, e.g. make run ARGS="--no-workers --no-schedules" (jobs wait
# for `make event` / `make invoke`), make invoke ... ARGS="--parameter-overrides K=V".
run: $(STAMP)
	$(BIN)/python -m devstack $(ARGS)

# Against a running `make run`, in-process (no Docker): one function on one event, e.g.
#   make invoke FUNCTION=RequestProfileFunction EVENT=events/api_request_profile.json
# Only the function's answer goes to stdout; its logs go to stderr.
invoke: $(STAMP)
	@if [ -z "$(FUNCTION)" ] || [ -z "$(EVENT)" ]; then \
		echo "usage: make invoke FUNCTION=<logical id in infra/template.yaml> EVENT=<event file>" >&2; exit 2; fi
	@$(BIN)/python -m devstack invoke $(FUNCTION) $(EVENT) $(ARGS)

# The next message of a local queue (QUEUE=high or low) as the SQS event its worker
# gets, taken off the queue, in .events/$(QUEUE).json: a worker event for a real job.
QUEUE ?= high
event: $(STAMP)
	@$(BIN)/python -m devstack event $(QUEUE) --out .events/$(QUEUE).json $(ARGS)

# One table per benchmark (docs/benchmarks.md). Sizes can be overridden per script,
# e.g. make bench BENCH_LOAD_ARGS="--requests 500" BENCH_COLDSTART_ARGS=--no-sam
# BENCH_CAPACITY_ARGS=--big. intake.py exits 1 when a path is over its round-trip
# target; the '-' lets the other benchmarks still run (make reports the error).
bench: $(STAMP) dynamodb-local
	@echo "== bench/intake.py: round trips, AWS calls and latency per request path"
	-PYTHONPATH=layers/common:. $(BIN)/python bench/intake.py $(BENCH_INTAKE_ARGS)
	@echo "== bench/capacity.py: capacity units per request path on DynamoDB Local, project and seed"
	PYTHONPATH=layers/common:. $(BIN)/python bench/capacity.py $(BENCH_CAPACITY_ARGS)
	@echo "== bench/pipeline.py: DynamoDB calls per processed profile"
	PYTHONPATH=layers/common:. $(BIN)/python bench/pipeline.py $(BENCH_PIPELINE_ARGS)
	@echo "== bench/sweeper.py: sweep cost against completed history"
	PYTHONPATH=layers/common:. $(BIN)/python bench/sweeper.py $(BENCH_SWEEPER_ARGS)
	@echo "== bench/backlog.py: a crawler backlog of 100,000 jobs (sweeps, MEDIUM wait, admin routes)"
	PYTHONPATH=layers/common:. $(BIN)/python bench/backlog.py $(BENCH_BACKLOG_ARGS)
	@echo "== bench/seed_vs_project.py: the seed's algorithm against the project's"
	PYTHONPATH=layers/common:. $(BIN)/python bench/seed_vs_project.py $(BENCH_SEED_ARGS)
	@echo "== bench/coldstart.py: handler import time and artifact sizes"
	PYTHONPATH=layers/common:. $(BIN)/python bench/coldstart.py $(BENCH_COLDSTART_ARGS)
	@echo "== bench/feed.py: calls and capacity per viral-ideas feed page (DynamoDB Local)"
	PYTHONPATH=layers/common:. $(BIN)/python bench/feed.py --dynamodb-local $(BENCH_FEED_ARGS)
	@echo "== bench/load.py: concurrent load on the local stack"
	PYTHONPATH=layers/common:. $(BIN)/python bench/load.py $(BENCH_LOAD_ARGS)
	@echo "== bench/cost.py: what AWS bills, idle and per 1,000 requests"
	PYTHONPATH=layers/common:. $(BIN)/python bench/cost.py $(BENCH_COST_ARGS)
	@echo "== bench/local_stack.py: resident memory of the local stack over 1,000 jobs"
	PYTHONPATH=layers/common:. $(BIN)/python bench/local_stack.py $(BENCH_LOCAL_STACK_ARGS)

# Needs the SAM CLI (pip install aws-sam-cli) and a python3.13 on PATH. samconfig.toml
# names the template for every sam command (a -t here would make SAM ignore it).
sam-validate:
	sam validate --lint

# Then checks that the layer holds exactly the versions layers/common/requirements.txt
# pins (the ones the tests run).
sam-build: $(STAMP)
	sam build
	$(BIN)/python -m devstack.pins .aws-sam/build/CommonLayer/python

# layers/common/requirements.txt: every layer dependency pinned, with hashes, for the
# Lambda runtime (Python 3.13, x86_64), resolved by uv from requirements.in. The layer
# (layers/common/Makefile) installs from it with pip --require-hashes (each download
# checked against its pinned hash); make install constrains the test environment to it.
UV_VERSION := 0.13.9
UV_VENV    := $(VENV)/tools/uv
UV_STAMP   := $(UV_VENV)/.installed-$(UV_VERSION)

$(UV_STAMP):
	rm -rf $(UV_VENV)
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	touch $@

layer-lock: $(UV_STAMP)
	cd layers/common && ../../$(UV_VENV)/bin/uv pip compile requirements.in \
		--generate-hashes --python-version 3.13 --python-platform x86_64-manylinux2014 \
		--custom-compile-command "make layer-lock" --quiet -o requirements.txt

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .cache
