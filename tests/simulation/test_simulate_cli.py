"""``frostgate simulate`` (the CLI): a corrupted expectation fails with a readable diff, a
malformed corpus is a usage error, and a candidate policy's impact on the corpus and on
stored events is counted right, by threat level and by rule.

Everything here runs the real engine, the real CLI and (for stored events) the real
service and database; nothing under test is replaced.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner, Result

from frostgate.cli import app
from frostgate.config import get_settings
from frostgate.engine import load_policy
from frostgate.jobs.policy_impact import assess, stored_replays
from frostgate.jobs.simulate import (
    default_corpus_path,
    load_corpus,
)
from tests.conftest import Env

CORPUS = default_corpus_path()
RUNNER = CliRunner()


def run(*args: str) -> Result:
    return RUNNER.invoke(app, ["simulate", *args])


def golden_decisions() -> list[tuple[str, dict[str, Any]]]:
    """(case id, golden decision) of every default-policy case that is a decision."""
    return [
        (c.id, c.expected["decision"])
        for c in load_corpus(CORPUS)
        if c.policy == "default" and "decision" in c.expected
    ]


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the packaged corpus with its fixture policies."""
    target = tmp_path / "simulation"
    shutil.copytree(CORPUS.parent, target)
    return target / CORPUS.name


def candidate(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    doc = copy.deepcopy(load_policy().document)
    mutate(doc)
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def rule(doc: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["id"] == rule_id)


# --------------------------------------------------------------------------- the corpus


def test_cli_passes_on_the_packaged_corpus() -> None:
    result = run("--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["ok"] is True
    assert report["passed"] == report["cases"] >= 200
    assert report["failed"] == []
    assert report["determinism"]["ok"] is True
    assert report["coverage"]["default"]["brute_force"] > 0


# --------------------------------------------------------------------------- failures


def corrupt(path: Path, case_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    lines = path.read_bytes().splitlines()
    for i, line in enumerate(lines):
        case = orjson.loads(line)
        if case["id"] == case_id:
            change(case["expected"])
            lines[i] = orjson.dumps(case)
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_corrupted_golden_score_fails_with_a_readable_diff(corpus_copy: Path) -> None:
    corrupt(corpus_copy, "bf-6-failures", lambda e: e["decision"].update(score=89))

    result = run("--corpus", str(corpus_copy))
    assert result.exit_code == 1
    assert "bf-6-failures" in result.stdout
    assert "decision.score" in result.stdout
    assert "FAIL" in result.stdout

    report = orjson.loads(run("--corpus", str(corpus_copy), "--json").stdout)
    assert report["ok"] is False
    assert report["passed"] == report["cases"] - 1
    (failed,) = report["failed"]
    assert failed["id"] == "bf-6-failures"
    assert failed["differences"] == [{"path": "decision.score", "expected": "89", "actual": "90"}]
    assert report["determinism"]["ok"] is True  # determinism is about actual outputs


def test_int_for_float_in_golden_is_a_difference(corpus_copy: Path) -> None:
    # 0.0 -> 0: equal as Python numbers, different bytes on the wire.
    corrupt(corpus_copy, "allow-empty", lambda e: e["decision"].update(ai_adversarial_score=0))
    report = orjson.loads(run("--corpus", str(corpus_copy), "--json").stdout)
    assert [f["id"] for f in report["failed"]] == ["allow-empty"]
    assert report["failed"][0]["differences"][0]["path"] == "decision.ai_adversarial_score"


def test_expected_error_that_now_decides_is_a_difference(corpus_copy: Path) -> None:
    def swap(expected: dict[str, Any]) -> None:
        expected.clear()
        expected["error"] = {"error_code": "EVENT_INVALID", "reason": "made up"}

    corrupt(corpus_copy, "bf-type-auth", swap)
    result = run("--corpus", str(corpus_copy), "--json")
    assert result.exit_code == 1
    (failed,) = orjson.loads(result.stdout)["failed"]
    paths = {d["path"] for d in failed["differences"]}
    assert {"error.error_code", "decision.score"} <= paths


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"id": "x"\n', "not JSON"),
        (
            b'{"id": "x", "why": "y", "now": "2025-01-01T00:00:00", "event": {}, '
            b'"expected": {"decision": {}}}\n',
            "UTC offset",
        ),
        (
            b'{"id": "x", "why": "y", "now": "2025-01-01T00:00:00Z", "event": {}, '
            b'"expected": {"verdict": {}}}\n',
            "expected must be",
        ),
        (b"\n", "no cases"),
    ],
)
def test_malformed_corpus_is_a_usage_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    result = run("--corpus", str(path))
    assert result.exit_code == 2
    assert message in result.stderr


def test_duplicate_case_id_is_refused(corpus_copy: Path) -> None:
    first = corpus_copy.read_bytes().splitlines()[0]
    corpus_copy.write_bytes(corpus_copy.read_bytes() + first + b"\n")
    result = run("--corpus", str(corpus_copy))
    assert result.exit_code == 2
    assert "duplicate case id 'bf-type-auth'" in result.stderr


def test_missing_fixture_policy_is_a_usage_error(corpus_copy: Path) -> None:
    (corpus_copy.parent / "policies" / "doctrine.yaml").unlink()
    result = run("--corpus", str(corpus_copy))
    assert result.exit_code == 2
    assert "doctrine" in result.stderr


# --------------------------------------------------------------------------- policy impact


def test_unchanged_rules_under_a_new_version_change_nothing(tmp_path: Path) -> None:
    path = candidate(tmp_path, lambda doc: doc.update(version="2099.9"))
    report = orjson.loads(run("--policy", str(path), "--json").stdout)
    assert report["candidate"]["policy_hash"] != load_policy().hash
    assert report["changed"] == 0
    assert report["replayed"] == len(golden_decisions())
    assert report["warnings"] == []


def test_lower_brute_force_points_move_high_to_medium(tmp_path: Path) -> None:
    path = candidate(tmp_path, lambda doc: rule(doc, "brute_force").update(points=70))
    # 70 alone is medium; with suspicious_llm_usage 70 + 60 still clamps to 100 (critical).
    expected = sorted(
        case_id
        for case_id, d in golden_decisions()
        if "brute_force" in d["rules_triggered"]
        and "suspicious_llm_usage" not in d["rules_triggered"]
    )
    assert len(expected) > 50

    result = run("--policy", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["changed"] == len(expected)
    assert sorted(c["key"] for c in report["changes"]) == expected
    assert report["transitions"] == [{"from": "high", "to": "medium", "count": len(expected)}]
    assert {tuple(c["fields"]) for c in report["changes"]} == {("threat_level", "score")}
    assert report["rules"]["brute_force"]["gained"] == 0
    assert report["rules"]["brute_force"]["lost"] == 0
    levels = report["levels"]
    assert levels["high"]["before"] - levels["high"]["after"] == len(expected)
    assert levels["medium"]["after"] - levels["medium"]["before"] == len(expected)
    critical = sum(1 for _, d in golden_decisions() if d["threat_level"] == "critical")
    assert levels["critical"]["before"] == levels["critical"]["after"] == critical
    assert "bump 'version'" in report["warnings"][0]  # the document changed, the version not

    table = run("--policy", str(path))
    assert table.exit_code == 0
    assert f"{len(expected)} of {report['replayed']}" in table.stdout
    assert "by rule" in table.stdout


def test_raising_the_failure_threshold_loses_brute_force_at_exactly_five(tmp_path: Path) -> None:
    def six(doc: dict[str, Any]) -> None:
        rule(doc, "brute_force")["when"]["all"][1]["value"] = 6

    path = candidate(tmp_path, six)
    at_five = {
        case_id: d
        for case_id, d in golden_decisions()
        if "brute_force" in d["rules_triggered"]
        and d["mitigations"][0]["reason"].startswith("5 failed")
    }
    with_llm = {k for k, d in at_five.items() if "suspicious_llm_usage" in d["rules_triggered"]}
    assert len(at_five) > 30
    assert len(with_llm) == 1

    report = orjson.loads(run("--policy", str(path), "--json").stdout)
    assert report["changed"] == len(at_five)
    assert report["rules"]["brute_force"]["lost"] == len(at_five)
    assert report["rules"]["default_allow"]["gained"] == len(at_five) - len(with_llm)
    assert report["rules"]["brute_force_implicit"]["gained"] == 0  # 5 < 10: nothing else fires
    assert report["transitions"] == [
        {"from": "high", "to": "none", "count": len(at_five) - len(with_llm)},
        {"from": "critical", "to": "medium", "count": 1},
    ]
    changed_fields = {f for c in report["changes"] for f in c["fields"]}
    assert {"mitigations", "tie_d.service_impact", "rules_triggered"} <= changed_fields


def test_invalid_candidate_policy_is_a_usage_error(tmp_path: Path) -> None:
    path = candidate(tmp_path, lambda doc: rule(doc, "brute_force").update(points="ninety"))
    result = run("--policy", str(path))
    assert result.exit_code == 2
    assert "brute_force" in result.stderr
    missing = run("--policy", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2


def test_tenant_needs_a_candidate_policy() -> None:
    result = run("--tenant", "acme")
    assert result.exit_code == 2
    assert "--tenant needs --policy" in result.stderr


# --------------------------------------------------------------------------- stored events

BRUTE = {"source": "sshd", "event_type": "auth", "src_ip": "203.0.113.5", "failed_auths": 7}


@pytest.fixture
def stored(env: Env) -> Env:
    """acme: 3 brute-force, 2 benign, 1 LLM decision; globex: 1 brute force."""
    events = [BRUTE, BRUTE, {**BRUTE, "src_ip": "198.51.100.1"}, {"event_type": "ping"}, {}]
    events.append({"event_type": "suspicious_llm_usage"})
    for event in events:
        assert env.client.post("/v1/defend", json=event, headers=env.headers()).status_code == 200
    globex = env.client.post("/v1/defend", json=BRUTE, headers=env.headers("globex"))
    assert globex.status_code == 200
    return env


def test_stored_events_are_replayed_under_the_candidate(stored: Env, tmp_path: Path) -> None:
    policy = load_policy(
        candidate(tmp_path, lambda doc: rule(doc, "brute_force").update(points=70))
    )
    replays, skipped = stored_replays(stored.db, "acme", policy, limit=100)
    assert skipped == 0
    impact = assess(replays, source="acme", candidate=policy)
    assert impact.replayed == 6  # acme's only: globex's decision is not visible
    assert len(impact.changes) == 3
    assert dict(impact.transitions) == {("high", "medium"): 3}
    assert impact.rules["brute_force"].fired_before == impact.rules["brute_force"].fired_after == 3

    same = load_policy(candidate(tmp_path, lambda doc: doc.update(version="x")))
    unchanged = assess(
        stored_replays(stored.db, "acme", same, limit=100)[0], source="a", candidate=same
    )
    assert unchanged.replayed == 6
    assert unchanged.changes == ()  # replayed at its own decision time: clock fields agree


def test_stored_replay_takes_the_newest_events_up_to_the_limit(stored: Env) -> None:
    replays, _ = stored_replays(stored.db, "acme", load_policy(), limit=2)
    assert [r.before["rules_triggered"] for r in replays] == [
        ["suspicious_llm_usage"],
        ["default_allow"],
    ]


@pytest.fixture
def cli_db(stored: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("FG_DB_URL", stored.settings.database_url)
    monkeypatch.setenv("FG_DATA_DIR", str(stored.settings.data_dir))
    get_settings.cache_clear()
    yield stored
    get_settings.cache_clear()


def test_cli_reviews_a_policy_against_stored_events(cli_db: Env, tmp_path: Path) -> None:
    path = candidate(tmp_path, lambda doc: rule(doc, "suspicious_llm_usage").update(points=20))
    result = run("--policy", str(path), "--tenant", "acme", "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["source"].startswith("tenant acme")
    assert report["replayed"] == 6
    assert report["changed"] == 1
    assert report["transitions"] == [{"from": "medium", "to": "low", "count": 1}]
