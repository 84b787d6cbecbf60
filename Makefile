# Facet. A newcomer needs two commands, `make demo` and `make test`: each sets up what it needs on
# first use (and again only when pyproject.toml, constraints.txt or package-lock.json change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAGE ?= dev
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# What a set-up machine has, stamped with the files it was built from.
SETUP_STAMP := $(VENV)/.facet-setup
LOCALSTACK_STAMP := .venv-localstack/.facet-setup
# The serving Lambda's dependencies, installed for its runtime from constraints.txt: an install
# like .venv's (~10 s of both CPUs), so setup does it, not the first test worker to synthesize
# (on its one CPU; another worker synthesizing meanwhile waits for its lock). Every synth
# refreshes the code in it.
SERVING_PACKAGE_STAMP := build/lambda/serving/.dependencies.sha256

.PHONY: setup demo demo-localstack rehearse test check lint bench synth assets notebook deploy destroy \
	deploy-delivery clean

$(SETUP_STAMP): pyproject.toml constraints.txt package-lock.json scripts/system-packages.sh
	./scripts/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[serving,training,torch,emulation,infra,dev]"
	npm ci --no-audit --no-fund --silent
	touch $@

$(LOCALSTACK_STAMP): local_emulation/localstack.py | $(SETUP_STAMP)
	$(BIN)/python -m local_emulation.localstack install
	touch $@

$(SERVING_PACKAGE_STAMP): pyproject.toml constraints.txt | $(SETUP_STAMP)
	$(BIN)/python -m infra.packaging --code-only
	touch $@

setup: $(SETUP_STAMP) $(LOCALSTACK_STAMP) $(SERVING_PACKAGE_STAMP) ## Everything, ahead of time (demo and test do it on first use).

demo: $(SETUP_STAMP) ## The main job: the whole system on an embedded AWS emulator (Ctrl-C to stop).
	$(BIN)/facet demo $(ARGS)

demo-localstack: $(SETUP_STAMP) $(LOCALSTACK_STAMP) ## The same against LocalStack in host mode.
	$(BIN)/facet demo --backend localstack $(ARGS)

rehearse: $(SETUP_STAMP) $(LOCALSTACK_STAMP) ## Rehearse `cdk deploy` into host-mode LocalStack and read it back.
	$(BIN)/facet rehearse --stage $(STAGE) $(ARGS)

# Two pytest workers, one test file per worker (files share module fixtures such as LocalStack).
TEST_WORKERS ?= 2

# ruff and mypy run beside pytest, their output printed after its own: on a fresh clone mypy is
# ~45 s of one CPU, which the suite's two workers absorb instead of waiting for it at the end.
LINT_LOG := $(VENV)/.lint.log

test: $(SETUP_STAMP) $(LOCALSTACK_STAMP) $(SERVING_PACKAGE_STAMP) ## Every test suite, ruff and mypy: exactly what CI runs.
	@$(MAKE) --no-print-directory lint > $(LINT_LOG) 2>&1 & lint=$$!; \
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile; code=$$?; \
	wait $$lint; lint_code=$$?; cat $(LINT_LOG); \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: that is a failure"; fi; \
	if [ $$code -ne 0 ]; then exit $$code; fi; \
	if [ $$lint_code -ne 0 ]; then echo "ruff or mypy failed (above)"; fi; exit $$lint_code

check: $(SETUP_STAMP) ## The inner loop: unit tests, ruff and mypy (no emulator, no LocalStack).
	$(BIN)/python -m pytest -q tests/unit
	@$(MAKE) --no-print-directory lint

lint: $(SETUP_STAMP) ## ruff, its formatter's check and mypy (what test and check run).
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy contracts training pipeline local_emulation serving infra

bench: $(SETUP_STAMP) $(LOCALSTACK_STAMP) ## Measured targets, printed (not tests). Needs Debian's wrk.
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_lambda_cold_start.py
	$(BIN)/python benchmarks/bench_pipeline.py --repeats 2
	$(BIN)/python benchmarks/bench_pipeline.py --backend localstack
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_infra.py
	$(BIN)/python benchmarks/bench_shadow.py
	$(BIN)/python benchmarks/bench_tracking.py
	$(BIN)/python benchmarks/bench_scoring.py
	$(BIN)/python benchmarks/figures.py

synth: $(SETUP_STAMP) $(SERVING_PACKAGE_STAMP) ## Synthesize the CDK app offline (no credentials, no Docker) into cdk.out/.
	time npx cdk synth -q -c stage=$(STAGE)

deploy: $(SETUP_STAMP) ## Deploy a stage to the AWS account of your credentials (docs/deploy.md).
	$(BIN)/python scripts/deploy.py deploy --stage $(STAGE) \
		$(if $(PIPELINE_IMAGE),--pipeline-image $(PIPELINE_IMAGE)) \
		$(if $(SERVING_IMAGE),--serving-image $(SERVING_IMAGE))

destroy: $(SETUP_STAMP) ## Delete a stage's stacks (retained resources stay: docs/deploy.md).
	$(BIN)/python scripts/deploy.py destroy --stage $(STAGE)

deploy-delivery: $(SETUP_STAMP) ## Once per account, by an admin: GitHub OIDC, image repos, roles.
	$(BIN)/python scripts/deploy.py delivery --repository $(REPOSITORY)

assets: $(SETUP_STAMP) ## Build the deployables' code packages under build/ (the CDK app's assets).
	$(BIN)/python -m infra.packaging

notebook: $(SETUP_STAMP) ## Rebuild the notebook and execute it (outputs kept), refreshing docs/figures.
	$(BIN)/python docs/notebooks/build_notebook.py
	$(BIN)/jupyter nbconvert --execute --to notebook --inplace docs/notebooks/model_development.ipynb

clean:
	rm -rf build cdk.out .pytest_cache .mypy_cache .ruff_cache
