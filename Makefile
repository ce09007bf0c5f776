# FrostGate developer entry points. Every target installs what it needs from the lock.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
FG := $(VENV)/bin/frostgate
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run test test-sqlite test-postgres lint release-gate ci-checks fuzz bench bench-tools soak clean

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

# Nightly-sized fuzzing (docs/release-gate.md): schemathesis over every API operation
# (FUZZ_CASES generated cases, a new seed each run, report in var/fuzz/api-fuzz.json), then
# each atheris target for FUZZ_SECONDS (corpus kept in var/fuzz/, crashes written there).
FUZZ_CASES ?= 50000
FUZZ_SECONDS ?= 60
fuzz: install
	mkdir -p var/fuzz/corpus-keys var/fuzz/corpus-webhooks
	FG_FUZZ_CASES=$(FUZZ_CASES) FG_FUZZ_REPORT=var/fuzz/api-fuzz.json FG_FUZZ_SEED=$$(date +%s) \
		$(PY) -m pytest -q -p no:cacheprovider tests/api/test_api_fuzz.py
	$(PY) tests/fuzz/atheris_key_parser.py -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=var/fuzz/ -print_final_stats=1 var/fuzz/corpus-keys
	$(PY) tests/fuzz/atheris_webhook_signature.py -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=var/fuzz/ -print_final_stats=1 var/fuzz/corpus-webhooks

# The load generator and the reference the bouncer benchmark compares against, from
# Debian's packages (root). CrowdSec's installer registers with its online API unless
# that file has content; there is no internet here, and the benchmark keeps it off.
bench-tools:
	command -v wrk >/dev/null || apt-get install -y -q wrk
	command -v crowdsec >/dev/null || { mkdir -p /etc/crowdsec && \
	  echo "# online API off (benchmark reference only)" > /etc/crowdsec/online_api_credentials.yaml && \
	  apt-get install -y -q crowdsec; }

bench: install bench-tools
	$(PY) bench/run.py
	$(PY) bench/ledger_proofs.py
	$(PY) bench/verify_speed.py
	$(PY) bench/enforcement.py

# 10 minutes at 70 % of the measured peak /v1/defend rate; SOAK_MINUTES=3 to try it out.
# Exits non-zero on any 5xx, lost event or RSS growth >= 10 % (docs/benchmarks.md).
soak: install bench-tools
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
