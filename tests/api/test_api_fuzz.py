"""Schemathesis over every served operation, with real keys of two tenants (issue 7, part 4).

Properties, for every generated case: no 5xx; the status, content type, headers and body
conform to the served OpenAPI document; no answer to tenant A's keys contains tenant B's
data. The suite runs a modest number of cases; the release gate's ``api-fuzz`` check runs
this same test with ``FG_FUZZ_CASES`` of at least 5,000 and judges the report it writes
(``FG_FUZZ_REPORT``); ``make fuzz`` runs a nightly-sized number.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from frostgate.config import Settings
from frostgate.store import Database
from tests.api.fuzz_harness import AUTH_KINDS, fuzz_settings, run_fuzz, served
from tests.egress import conftest as egress_fixtures
from tests.egress.receivers import Receiver

CASES = int(os.environ.get("FG_FUZZ_CASES", "400"))
REPORT = os.environ.get("FG_FUZZ_REPORT")
SEED = int(os.environ.get("FG_FUZZ_SEED", "0"))

receiver = egress_fixtures.receiver  # the loopback receiver B's webhooks point at


@pytest.fixture
def settings(tmp_path: Path, pg_url: str | None, receiver: Receiver) -> Settings:
    return fuzz_settings(tmp_path, pg_url or f"sqlite:///{tmp_path / 'fuzz.db'}", receiver.port)


# About 100 cases a second here; make fuzz runs 50,000 (docs/release-gate.md).
@pytest.mark.timeout(max(600, CASES // 20))
def test_every_operation_holds_its_contract_under_fuzzing(
    settings: Settings, db: Database, receiver: Receiver
) -> None:
    with served(settings, db, receiver) as target:
        report = run_fuzz(target, CASES, seed=SEED)
        declared = {
            f"{op.ok().method.upper()} {op.ok().path}" for op in target.schema.get_all_operations()
        }
    if REPORT:
        report.write(Path(REPORT))
    assert report.cases >= CASES
    assert set(report.operations) == declared, "an operation was never exercised"
    assert set(report.auth) == {*AUTH_KINDS, "signed-hook"}, "a credential was never sent"
    problems = "\n\n".join(
        f"{f.operation} [{f.auth}] -> {f.status}\n{f.problem}\n{f.curl}"
        for f in report.failures.values()
    )
    assert not report.failures, f"{len(report.failures)} distinct failures:\n\n{problems}"
