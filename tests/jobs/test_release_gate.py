"""The release gate runs every check it declares and fails when any one fails (F8, F15).

Checks are injected through the module's own API (:func:`run_gate` takes the checks); the
gate itself is never replaced. The real declared checks are exercised too: the cheap
ones on this tree (and on a copy made to fail), and the whole ``frostgate release-gate``
command on a scratch project where some checks pass and some cannot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import typer

from frostgate.cli import app
from frostgate.jobs.chaos import SCENARIOS
from frostgate.jobs.chaos.rig import DATABASES
from frostgate.jobs.release_gate import (
    API_FUZZ_MIN_CASES,
    CI_CHECKS,
    CI_OMITS,
    MAX_WORKERS,
    Check,
    Step,
    declared_checks,
    judge_api_fuzz,
    judge_chaos,
    judge_dependency_audit,
    judge_route_inventory,
    run_gate,
)
from frostgate.security import ROUTES

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

#: What issue 7 says the gate runs; the declared list may grow, never lose one of these.
REQUIRED = {
    "ruff-check",
    "ruff-format",
    "mypy",
    "pytest-sqlite",
    "pytest-postgres",
    "route-inventory",
    "dependency-audit",
    "lock",
    "bandit",
    "egress-only",
    "forwarding-headers",
    "api-fuzz",
    "simulate",
    "chaos",
}
#: Run by ``make lint`` and ``make test`` in ``.ci/run``.
LINT_AND_TEST = {"ruff-check", "ruff-format", "mypy", "pytest-sqlite", "pytest-postgres"}


def _python(name: str, code: str, **kwargs: object) -> Check:
    return Check(name, f"test check {name}", (Step((PY, "-c", code)),), **kwargs)


def _marker(directory: Path, name: str, exit_code: int = 0) -> Check:
    """A check that leaves ``<name>.ran`` behind, then exits with ``exit_code``."""
    code = f"import pathlib, sys; pathlib.Path({str(directory / name)!r} + '.ran').touch(); "
    code += f"print('hello from {name}'); sys.exit({exit_code})"
    return _python(name, code)


# --- run_gate: every check runs, one failure fails the gate ---------------------------------


def test_every_check_runs_and_one_failing_check_fails_the_gate(tmp_path: Path) -> None:
    checks = [
        _marker(tmp_path, "first-fails", exit_code=1),
        _marker(tmp_path, "a"),
        _marker(tmp_path, "b"),
        Check("missing-tool", "a tool that is not there", (Step(("/nonexistent/tool",)),)),
        _marker(tmp_path, "c"),
        _marker(tmp_path, "last-fails", exit_code=3),
    ]
    report = run_gate(checks, cwd=tmp_path, evidence_dir=tmp_path / "evidence")

    assert not report.passed
    assert [r.name for r in report.results] == [c.name for c in checks]
    for name in ("first-fails", "a", "b", "c", "last-fails"):
        assert (tmp_path / f"{name}.ran").exists(), f"{name} was not executed"
    verdicts = {r.name: r.passed for r in report.results}
    assert verdicts == {
        "first-fails": False,
        "a": True,
        "b": True,
        "missing-tool": False,
        "c": True,
        "last-fails": False,
    }
    results = {r.name: r for r in report.results}
    assert "exited 1" in results["first-fails"].summary
    assert "could not start" in results["missing-tool"].summary
    evidence = results["first-fails"].evidence.read_text()
    assert "hello from first-fails" in evidence
    assert "# exit: 1" in evidence
    assert "# verdict: FAIL" in evidence


def test_the_same_checks_without_the_failing_one_pass(tmp_path: Path) -> None:
    checks = [_marker(tmp_path, "a"), _marker(tmp_path, "b")]
    assert run_gate(checks, cwd=tmp_path, evidence_dir=tmp_path / "ok").passed
    failing = [*checks, _python("injected", "raise SystemExit(1)")]
    assert not run_gate(failing, cwd=tmp_path, evidence_dir=tmp_path / "bad").passed


def test_a_gate_that_runs_nothing_does_not_pass(tmp_path: Path) -> None:
    assert not run_gate([], cwd=tmp_path, evidence_dir=tmp_path / "e").passed


def test_a_judge_fails_a_check_that_exited_zero(tmp_path: Path) -> None:
    def judge(runs: object) -> str:
        return "the output does not prove it\ndetails for the evidence file"

    def broken(runs: object) -> str | None:
        raise KeyError("report")

    checks = [
        _python("judged", "print('all good, honestly')", judge=judge),
        _python("unjudgeable", "print('{}')", judge=broken),
    ]
    report = run_gate(checks, cwd=tmp_path, evidence_dir=tmp_path / "e")
    judged, unjudgeable = report.results
    assert not judged.passed
    assert judged.summary == "the output does not prove it"
    assert "details for the evidence file" in judged.evidence.read_text()
    assert not unjudgeable.passed
    assert "could not judge" in unjudgeable.summary


def test_a_step_failure_stops_that_check_but_not_the_gate(tmp_path: Path) -> None:
    two_steps = Check(
        "two-steps",
        "second step never runs",
        (Step((PY, "-c", "raise SystemExit(2)")), Step((PY, "-c", "open('second', 'w')"))),
    )
    other = _marker(tmp_path, "other")
    report = run_gate([two_steps, other], cwd=tmp_path, evidence_dir=tmp_path / "e")
    assert [r.passed for r in report.results] == [False, True]
    assert not (tmp_path / "second").exists()


def test_a_check_past_its_time_limit_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time, pathlib; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid)); time.sleep(60)"
    )
    started = time.monotonic()
    report = run_gate(
        [_python("slow", code, timeout=2.0)], cwd=tmp_path, evidence_dir=tmp_path / "e"
    )
    assert time.monotonic() - started < 20
    (result,) = report.results
    assert not result.passed
    assert "time limit" in result.summary
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # reaped by init once its parent group is gone
    status = Path(f"/proc/{child}/status")
    assert not status.exists() or "zombie" in status.read_text()


def test_the_callers_environment_cannot_change_what_a_check_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-k nothing")
    monkeypatch.setenv("FG_TEST_DB_URL", "")
    monkeypatch.setenv("MYPYPATH", "/elsewhere")
    out = tmp_path / "env.json"
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    check = _python("env", code, env={"FG_TEST_DB_URL": "postgresql://db/x"})
    assert run_gate([check], cwd=tmp_path, evidence_dir=tmp_path / "e").passed
    seen = json.loads(out.read_text())
    assert "PYTEST_ADDOPTS" not in seen
    assert "MYPYPATH" not in seen
    assert seen["FG_TEST_DB_URL"] == "postgresql://db/x"
    assert seen["PATH"] == os.environ["PATH"]


def test_checks_run_in_parallel_but_never_more_than_the_cores(tmp_path: Path) -> None:
    code = (
        "import time, pathlib; s = time.time(); time.sleep(0.6); "
        "pathlib.Path({path!r}).write_text(f'{{s}} {{time.time()}}')"
    )
    checks = [_python(f"w{i}", code.format(path=str(tmp_path / f"w{i}"))) for i in range(5)]
    run_gate(checks, cwd=tmp_path, evidence_dir=tmp_path / "e")
    spans = [tuple(map(float, (tmp_path / f"w{i}").read_text().split())) for i in range(5)]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= MAX_WORKERS
    if MAX_WORKERS > 1:
        assert most >= 2


def test_summary_json_lists_every_result(tmp_path: Path) -> None:
    evidence = tmp_path / "e"
    report = run_gate(
        [_marker(tmp_path, "a"), _marker(tmp_path, "b", 1)], cwd=tmp_path, evidence_dir=evidence
    )
    summary = json.loads((evidence / "summary.json").read_text())
    assert summary["passed"] is False
    assert [(c["name"], c["passed"]) for c in summary["checks"]] == [("a", True), ("b", False)]
    assert all((evidence / c["evidence"]).is_file() for c in summary["checks"])
    assert report.evidence_dir == evidence


def test_check_names_must_be_unique_slugs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        run_gate(
            [_marker(tmp_path, "a"), _marker(tmp_path, "a")], cwd=tmp_path, evidence_dir=tmp_path
        )
    with pytest.raises(ValueError, match="slug"):
        run_gate([_python("../escape", "pass")], cwd=tmp_path, evidence_dir=tmp_path)


# --- the declared checks -----------------------------------------------------------------


def test_the_declared_checks_cover_the_release_contract(tmp_path: Path) -> None:
    checks = declared_checks(ROOT, tmp_path)
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED
    for check in checks:
        program = Path(check.steps[0].argv[0])
        assert program.is_file(), (check.name, program)
        assert os.access(program, os.X_OK), (check.name, program)


def test_ci_runs_every_declared_check_or_names_why_not(tmp_path: Path) -> None:
    names = {c.name for c in declared_checks(ROOT, tmp_path)}
    assert set(CI_CHECKS) <= names
    assert set(CI_OMITS) <= names
    assert names == LINT_AND_TEST | set(CI_CHECKS) | set(CI_OMITS)
    assert all(reason.strip() for reason in CI_OMITS.values())


def test_postgres_check_is_never_pointed_at_something_else(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgresql"):
        declared_checks(ROOT, tmp_path, postgres_url="sqlite:///x.db")
    with pytest.raises(ValueError, match="postgresql"):
        declared_checks(ROOT, tmp_path, postgres_url="")


def test_the_commands_have_no_option_that_skips_or_selects_checks() -> None:
    group = typer.main.get_command(app)
    commands = group.commands
    gate_options = {p.name for p in commands["release-gate"].params}
    assert gate_options == {"postgres_url"}
    assert {p.name for p in commands["ci-checks"].params} == set()


def _declared(name: str, root: Path, evidence: Path) -> Check:
    return next(c for c in declared_checks(root, evidence) if c.name == name)


def test_route_inventory_check_passes_here_and_fails_on_a_changed_snapshot(
    tmp_path: Path,
) -> None:
    check = _declared("route-inventory", ROOT, tmp_path)
    assert run_gate([check], cwd=ROOT, evidence_dir=tmp_path / "ok").passed

    snapshot = json.loads((ROOT / "tests/security/route_inventory.json").read_text())
    snapshot.pop()
    changed = tmp_path / "route_inventory.json"
    changed.write_text(json.dumps(snapshot))
    tampered = replace(check, judge=partial(judge_route_inventory, changed))
    (result,) = run_gate([tampered], cwd=ROOT, evidence_dir=tmp_path / "bad").results
    assert not result.passed
    assert "route inventory differs" in result.summary
    assert "+++ frostgate routes --json" in result.evidence.read_text()


def _bandit_project(root: Path, source: str, accepted: list[dict[str, str]]) -> None:
    (root / "src/frostgate").mkdir(parents=True)
    (root / "src/frostgate/__init__.py").write_text(source)
    (root / "tools").mkdir()
    (root / "tools/bandit-baseline.json").write_text(json.dumps({"accepted": accepted}))


def test_bandit_check_passes_on_this_tree(tmp_path: Path) -> None:
    check = _declared("bandit", ROOT, tmp_path)
    (result,) = run_gate([check], cwd=ROOT, evidence_dir=tmp_path).results
    assert result.passed, result.evidence.read_text()


@pytest.mark.parametrize(
    ("source", "accepted", "expected"),
    [
        ("import pickle\n", [], "new finding: src/frostgate/__init__.py | B403 | import pickle"),
        # a nosec comment does not hide a finding: only the reviewed baseline does
        ("import pickle  # nosec\n", [], "new finding"),
        # a second copy of an accepted line is new
        (
            "import pickle\nimport pickle\n",
            [{"file": "src/frostgate/__init__.py", "test_id": "B403", "line": "import pickle"}],
            "new finding",
        ),
        (
            "x = 1\n",
            [
                {
                    "file": "src/frostgate/__init__.py",
                    "test_id": "B101",
                    "line": "assert x",
                    "reason": "r",
                }
            ],
            "stale baseline entry",
        ),
        (
            "import pickle\n",
            [{"file": "src/frostgate/__init__.py", "test_id": "B403", "line": "import pickle"}],
            "entry without a reason",
        ),
    ],
)
def test_bandit_check_fails_unless_findings_are_exactly_the_reviewed_baseline(
    tmp_path: Path, source: str, accepted: list[dict[str, str]], expected: str
) -> None:
    _bandit_project(tmp_path, source, accepted)
    check = _declared("bandit", tmp_path, tmp_path / "e")
    (result,) = run_gate([check], cwd=tmp_path, evidence_dir=tmp_path / "e").results
    assert not result.passed
    assert expected in result.evidence.read_text()


def test_bandit_check_passes_with_a_reviewed_entry(tmp_path: Path) -> None:
    accepted = [
        {
            "file": "src/frostgate/__init__.py",
            "test_id": "B403",
            "line": "import pickle",
            "reason": "r",
        }
    ]
    _bandit_project(tmp_path, "import pickle\n", accepted)
    check = _declared("bandit", tmp_path, tmp_path / "e")
    assert run_gate([check], cwd=tmp_path, evidence_dir=tmp_path / "e").passed


# --- the dependency audit fails closed ---------------------------------------------------

#: As ``uv export`` writes it; the Windows-only package is locked but not audited here.
LOCKED = """\
alembic==1.20.1 \\
    --hash=sha256:aa
colorama==0.4.6 ; sys_platform == 'win32' \\
    --hash=sha256:bb
PyYAML==6.0.3 ; python_full_version >= '3.8' \\
    --hash=sha256:cc
"""


def _audit(tmp_path: Path, report: object | None) -> str | None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(LOCKED)
    path = tmp_path / "audit.json"
    if report is not None:
        path.write_text(json.dumps(report))
    return judge_dependency_audit(requirements, path, [])


def test_dependency_audit_passes_only_when_every_package_was_audited_clean(
    tmp_path: Path,
) -> None:
    clean = {
        "dependencies": [
            {"name": "alembic", "version": "1.20.1", "vulns": []},
            {"name": "pyyaml", "version": "6.0.3", "vulns": []},
        ]
    }
    assert _audit(tmp_path, clean) is None


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (None, "wrote no report"),
        ({"unexpected": True}, "unreadable"),
        (
            # what pip-audit writes here, with exit 0, when PyPI answers 404 for every package
            {
                "dependencies": [
                    {
                        "name": "alembic",
                        "skip_reason": "Dependency not found on PyPI and could not be audited",
                    },
                    {"name": "pyyaml", "skip_reason": "Dependency not found on PyPI"},
                ]
            },
            "not audited: alembic",
        ),
        (
            {
                "dependencies": [
                    {"name": "alembic", "version": "1.20.1", "vulns": [{"id": "PYSEC-1"}]},
                    {"name": "pyyaml", "version": "6.0.3", "vulns": []},
                ]
            },
            "vulnerable: alembic 1.20.1: PYSEC-1",
        ),
        (
            {"dependencies": [{"name": "alembic", "version": "1.20.1", "vulns": []}]},
            "missing from the report: pyyaml 6.0.3",
        ),
        (
            {
                "dependencies": [
                    {"name": "alembic", "version": "1.20.0", "vulns": []},
                    {"name": "pyyaml", "version": "6.0.3", "vulns": []},
                ]
            },
            "audited 1.20.0 but 1.20.1 is locked: alembic",
        ),
    ],
)
def test_dependency_audit_fails_closed(tmp_path: Path, report: object, expected: str) -> None:
    verdict = _audit(tmp_path, report)
    assert verdict is not None
    assert expected in verdict


def test_dependency_audit_fails_when_the_export_has_no_pins(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing\n")
    verdict = judge_dependency_audit(tmp_path / "requirements.txt", tmp_path / "none.json", [])
    assert verdict is not None
    assert "no pinned requirements" in verdict


# --- chaos: the judge reads the run's own result ----------------------------------------


def _chaos_result(path: Path, *, drop: int | None = None, break_one: bool = False) -> Path:
    """A result.json as ``frostgate chaos --rounds 2`` writes it, for a clean run."""
    scenarios = [
        {
            "round": number,
            "database": database,
            "name": scenario.name,
            "passed": True,
            "invariants": [{"name": "ledger verifies", "held": True, "detail": "ok"}],
        }
        for number in (1, 2)
        for database in DATABASES
        for scenario in SCENARIOS
        if database in scenario.databases
    ]
    if break_one:
        scenarios[-1]["invariants"] = [{"name": "ledger verifies", "held": False, "detail": "x"}]
    if drop is not None:
        del scenarios[drop]
    path.write_text(json.dumps({"passed": True, "errors": [], "scenarios": scenarios}))
    return path


def test_chaos_passes_every_scenario_twice_on_every_database(tmp_path: Path) -> None:
    assert judge_chaos(_chaos_result(tmp_path / "result.json"), []) is None


def test_chaos_fails_when_a_scenario_did_not_run_twice(tmp_path: Path) -> None:
    verdict = judge_chaos(_chaos_result(tmp_path / "result.json", drop=-1), [])
    assert verdict is not None
    assert "never ran: round 2 sqlite" in verdict


def test_chaos_fails_on_a_broken_invariant(tmp_path: Path) -> None:
    verdict = judge_chaos(_chaos_result(tmp_path / "result.json", break_one=True), [])
    assert verdict is not None
    assert "broken ['ledger verifies']" in verdict


def test_chaos_fails_without_a_result(tmp_path: Path) -> None:
    verdict = judge_chaos(tmp_path / "result.json", [])
    assert verdict is not None
    assert "did the chaos run happen?" in verdict


# --- api-fuzz: the judge counts the cases in the run's own report -----------------------


def _fuzz_report(path: Path, **changes: object) -> Path:
    """A report as ``tests/api/test_api_fuzz.py`` writes it, for a clean run."""
    operations = {f"{r.method} {r.path}": 100 for r in ROUTES if r.path != "/openapi.json"}
    report: dict[str, object] = {
        "requested": API_FUZZ_MIN_CASES,
        "cases": sum(operations.values()),
        "operations": operations,
        "failures": [],
    }
    report.update(changes)
    path.write_text(json.dumps(report))
    return path


def test_api_fuzz_passes_a_clean_report_of_enough_cases(tmp_path: Path) -> None:
    assert API_FUZZ_MIN_CASES >= 5000  # issue 7: at least 5,000 generated cases in the gate
    assert judge_api_fuzz(_fuzz_report(tmp_path / "r.json"), []) is None


def test_api_fuzz_fails_when_fewer_cases_were_sent(tmp_path: Path) -> None:
    report = _fuzz_report(tmp_path / "r.json", cases=API_FUZZ_MIN_CASES - 1)
    verdict = judge_api_fuzz(report, [])
    assert verdict is not None
    assert f"only {API_FUZZ_MIN_CASES - 1} cases" in verdict


def test_api_fuzz_fails_on_a_failure_a_missing_operation_or_no_report(tmp_path: Path) -> None:
    failure = {"operation": "GET /v1/stats", "problem": "ST103", "status": 500}
    failed = judge_api_fuzz(_fuzz_report(tmp_path / "f.json", failures=[failure]), [])
    assert failed is not None
    assert "GET /v1/stats" in failed
    operations = {f"{r.method} {r.path}": 200 for r in ROUTES[3:]}
    partial_run = judge_api_fuzz(_fuzz_report(tmp_path / "p.json", operations=operations), [])
    assert partial_run is not None
    assert "never exercised: GET /health/live" in partial_run
    inflated = judge_api_fuzz(_fuzz_report(tmp_path / "i.json", cases=10**6), [])
    assert inflated is not None
    assert "per operation" in inflated
    absent = judge_api_fuzz(tmp_path / "missing.json", [])
    assert absent is not None
    assert "no readable fuzz report" in absent
    (tmp_path / "garbled.json").write_text('{"cases": "many"}')
    garbled = judge_api_fuzz(tmp_path / "garbled.json", [])
    assert garbled is not None
    assert "no readable fuzz report" in garbled


def test_the_api_fuzz_check_asks_for_the_minimum_and_is_judged(tmp_path: Path) -> None:
    check = _declared("api-fuzz", ROOT, tmp_path)
    assert check.env["FG_FUZZ_CASES"] == str(API_FUZZ_MIN_CASES)
    assert Path(check.env["FG_FUZZ_REPORT"]).parent == tmp_path
    assert check.steps[0].argv[-1] == "tests/api/test_api_fuzz.py"
    assert (ROOT / check.steps[0].argv[-1]).is_file()
    assert isinstance(check.judge, partial)
    assert check.judge.func is judge_api_fuzz


# --- the command, end to end -------------------------------------------------------------


def test_release_gate_command_executes_every_declared_check(tmp_path: Path) -> None:
    """``frostgate release-gate`` in a scratch project: each declared check leaves
    evidence that its commands ran; the checks that cannot pass there fail the gate."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "scratch"\nversion = "0"\n')
    (tmp_path / "src").mkdir()
    (tmp_path / "src/ok.py").write_text('"""A module."""\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_ok.py").write_text(
        "def test_ok() -> None:\n    assert 'ok'.upper() == 'OK'\n"
    )
    (tmp_path / "tests/security").mkdir()
    shutil.copy(ROOT / "tests/security/route_inventory.json", tmp_path / "tests/security")

    done = subprocess.run(
        [PY, "-m", "frostgate.cli", "release-gate"],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "release gate: FAILED" in done.stdout
    (run_dir,) = (tmp_path / "var/release-gate").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    results = {c["name"]: c for c in summary["checks"]}
    declared = [c.name for c in declared_checks(tmp_path, run_dir)]
    assert list(results) == declared
    for name in declared:
        assert name in done.stdout
        evidence = (run_dir / results[name]["evidence"]).read_text()
        assert "# step 1: " in evidence, name
        assert "# verdict: " in evidence, name
    # what a scratch project can and cannot pass
    assert results["ruff-check"]["passed"]
    assert results["pytest-sqlite"]["passed"]
    assert results["route-inventory"]["passed"]
    assert not results["mypy"]["passed"]  # no package to type-check
    assert not results["lock"]["passed"]  # no uv, no lock: fails closed
    assert not results["dependency-audit"]["passed"]
    assert not results["api-fuzz"]["passed"]  # no fuzz test, no report: fails closed
    assert not results["chaos"]["passed"]  # no chaos test, no result: fails closed
    assert results["simulate"]["passed"]  # the packaged golden corpus replays anywhere
