# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
PORT ?= 8000

.PHONY: demo demo-train serve test test-fast lint format typecheck clean

# Installed with uv (from PyPI, into the venv): it downloads and unpacks the ~150 wheels in
# parallel, a fresh install in well under a minute instead of about three with pip. Where uv
# cannot be installed, pip does it. uv compiles no bytecode at install: each command compiles
# what it imports the first time and caches it, so the commands must be allowed to write
# bytecode (a PYTHONDONTWRITEBYTECODE in the environment would make every command of the demo
# compile its imports again).
unexport PYTHONDONTWRITEBYTECODE

$(BIN)/nkpredict: pyproject.toml service/_plain_scan.c
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	if $(BIN)/python -m pip install --quiet "uv>=0.5"; then \
		$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev,dask,tune]"; \
	else \
		$(BIN)/python -m pip install --quiet --upgrade pip && \
		$(BIN)/python -m pip install --quiet -e ".[dev,dask,tune]"; \
	fi
	touch $(BIN)/nkpredict

# Simulate the demo cohort, train + evaluate + register + promote, write the report, then serve.
demo: demo-train serve

demo-train: $(BIN)/nkpredict
	$(BIN)/nkpredict simulate --out $(DEMO_DIR)/cohort
	$(BIN)/nkpredict features --expression $(DEMO_DIR)/cohort/expression.csv \
		--out $(DEMO_DIR)/features.csv --quiet
	$(BIN)/nkpredict train --expression $(DEMO_DIR)/cohort/expression.csv \
		--labels $(DEMO_DIR)/cohort/labels.csv --label-column resistant \
		--model-out $(DEMO_DIR)/model --report-out $(DEMO_DIR)/report.html
	$(BIN)/nkpredict predict --model models:/nk-resistance@champion \
		--expression $(DEMO_DIR)/cohort/expression.csv --out $(DEMO_DIR)/predictions.csv --quiet
	$(BIN)/nkpredict explain --model models:/nk-resistance@champion \
		--expression $(DEMO_DIR)/cohort/expression.csv --out $(DEMO_DIR)/explanations
	@echo "Report: $(abspath $(DEMO_DIR))/report.html"
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db"

serve: $(BIN)/nkpredict
	$(BIN)/nkpredict serve --model models:/nk-resistance@champion --port $(PORT)

lint: $(BIN)/nkpredict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(BIN)/nkpredict
	$(BIN)/mypy nkpredict service training

# Everything, integration tests included (real MLflow server, uvicorn, Dask, Chromium): what CI runs.
test: lint typecheck
	$(BIN)/pytest -q

# The tests that start no outside process: a quick check while working (under a minute).
test-fast: $(BIN)/nkpredict
	$(BIN)/pytest -q -m "not integration" -n 2

format: $(BIN)/nkpredict
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(DEMO_DIR) mlruns .pytest_cache .ruff_cache .mypy_cache
