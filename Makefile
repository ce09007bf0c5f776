# FrostGate developer entry points. Every target installs what it needs from the lock.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
FG := $(VENV)/bin/frostgate
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run test test-sqlite test-postgres lint release-gate ci-checks bench soak clean

$(UV): tools/uv-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes -r tools/uv-requirements.txt
	touch $(UV)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --quiet
	touch $@

install: $(VENV)/.synced

run: install
	$(FG) migrate
	$(FG) bootstrap
	$(FG) serve

test: install
	$(PY) -m pytest -q
	FG_TEST_DB_URL=$${FG_TEST_DB_URL:-postgresql://postgres@127.0.0.1:5432/postgres} $(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

# Every check, in parallel on two cores, one table; no way to skip one (docs/release-gate.md).
release-gate: install
	$(FG) release-gate

# The gate's fast subset that .ci/run adds after lint and test (not a release gate).
ci-checks: install
	$(FG) ci-checks

bench: install
	$(PY) bench/run.py
	$(PY) bench/ledger_proofs.py
	$(PY) bench/verify_speed.py
	$(PY) bench/enforcement.py

# 10 minutes at 70 % of the measured peak /v1/defend rate; SOAK_MINUTES=3 to try it out.
# Exits non-zero on any 5xx, lost event or RSS growth >= 10 % (docs/benchmarks.md).
soak: install
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
