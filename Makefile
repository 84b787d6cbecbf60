# Facet: the three commands a newcomer needs are `make setup`, `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup demo demo-localstack test lint bench synth assets notebook clean

setup: ## Debian packages if missing, then .venv with every dependency set (torch: the CPU build).
	./scripts/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[serving,training,torch,emulation,infra,dev]"
	npm ci --no-audit --no-fund --silent
	$(BIN)/python -m local_emulation.localstack install

demo: ## The main job: the whole system on an embedded AWS emulator (Ctrl-C to stop).
	$(BIN)/facet demo

demo-localstack: ## The same against LocalStack in host mode (started if not running).
	$(BIN)/facet demo --backend localstack

test: ## Every test suite; pytest's exit 5 (nothing collected) counts as a failure here.
	$(BIN)/python -m pytest -q || { code=$$?; [ $$code -eq 5 ] && echo "pytest collected no tests: that is a failure"; exit $$code; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy contracts training pipeline local_emulation serving infra

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy contracts training pipeline local_emulation serving infra

bench: ## Measured targets, printed (not tests). Needs Debian's wrk for the load figure.
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_infra.py

synth: ## Synthesize the CDK app offline (no credentials, no Docker) into cdk.out/.
	time npx cdk synth -q

assets: ## Build the deployables' code packages under build/ (the CDK app's assets).
	$(BIN)/python -m infra.packaging

notebook: ## Rebuild the notebook from its source and execute it (outputs kept for readers), refreshing docs/figures.
	$(BIN)/python docs/notebooks/build_notebook.py
	$(BIN)/jupyter nbconvert --execute --to notebook --inplace docs/notebooks/model_development.ipynb

clean:
	rm -rf build cdk.out .pytest_cache .mypy_cache .ruff_cache
