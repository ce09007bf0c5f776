"""The golden corpus: reviewed, complete, replayed without a difference, and decided
byte-identically in every run and every process (whatever the hash seed).

The real engine and real child processes; nothing under test is replaced.
"""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from frostgate.engine import load_policy
from frostgate.jobs.simulate import (
    check_determinism,
    check_golden,
    default_corpus_path,
    digests,
    load_corpus,
)
from tests.simulation import corpus_cases

CORPUS = default_corpus_path()


def test_golden_file_is_what_the_reviewed_cases_give() -> None:
    # build() raises ClaimError if the engine disagrees with any hand-stated claim.
    assert corpus_cases.build(CORPUS) == CORPUS.read_bytes()


def test_packaged_corpus_replays_without_a_difference() -> None:
    report = check_golden(CORPUS)
    assert len(report.results) >= 200
    assert [r.case.id for r in report.failed] == []


def test_corpus_covers_every_rule_level_doctrine_branch_and_alias() -> None:
    cases = load_corpus(CORPUS)
    decisions = [(c, c.expected["decision"]) for c in cases if "decision" in c.expected]
    default = [(c, d) for c, d in decisions if c.policy == "default"]
    fired = {r for _, d in default for r in d["rules_triggered"]}
    assert fired == {r["id"] for r in load_policy().document["rules"]}
    assert {d["threat_level"] for _, d in default} == {"none", "low", "medium", "critical", "high"}
    assert {d["score"] for c, d in decisions if c.policy == "thresholds"} >= {
        19,
        20,
        49,
        50,
        79,
        80,
        94,
        95,
        100,
        0,
    }
    tie_ds = [d["tie_d"] for _, d in decisions]
    for key, value in [
        ("gating_decision", "require_approval"),
        ("gating_decision", "allow"),
        ("disruption_limited", True),
        ("roe_applied", True),
        ("persona", "sentinel"),
    ]:
        assert any(t[key] == value for t in tie_ds), (key, value)
    # Limited with and without remaining disruptive actions, and impact clamped to zero.
    limited = [t for t in tie_ds if t["disruption_limited"]]
    assert {t["gating_decision"] for t in limited} == {"allow", "require_approval"}
    assert any(t["service_impact"] == 0.0 for t in limited)

    def keys_of(event: object) -> set[str]:
        if not isinstance(event, dict):
            return set()
        payload = event.get("payload")
        return set(event) | (set(payload) if isinstance(payload, dict) else set())

    used = set().union(*(keys_of(c.event) for c, _ in decisions))
    for alias in ("src_ip", "source_ip", "ip", "client_ip", "remote_ip", "source", "event"):
        assert alias in used, alias
    assert set(corpus_cases._COUNT_KEYS) <= used
    assert {"timestamp", "@timestamp", "persona", "classification", "user", "username"} <= used
    assert sum(1 for c in cases if "error" in c.expected) >= 40


# --------------------------------------------------------------------------- determinism


def test_decisions_are_byte_identical_across_processes_and_hash_seeds() -> None:
    report = check_determinism(CORPUS)
    assert report.ok, report.mismatched
    names = [name for name, _ in report.runs]
    assert names == [
        "this process, run 1",
        "this process, run 2",
        "process PYTHONHASHSEED=1",
        "process PYTHONHASHSEED=4242",
    ]
    first = report.runs[0][1]
    assert len(first) == len(load_corpus(CORPUS))
    assert all(run == first for _, run in report.runs)
    # Digests of the real outputs: aliases of one event share one, different outcomes don't.
    assert first["ip-alias-src_ip"] == first["ip-alias-payload-remote_ip"]
    assert len(set(first.values())) > 150


def test_child_process_digests_match_with_randomized_hash_seed() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    proc = subprocess.run(
        [sys.executable, "-m", "frostgate.jobs.simulate", str(CORPUS)],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert orjson.loads(proc.stdout) == digests(CORPUS)
