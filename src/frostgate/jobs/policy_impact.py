"""What a candidate policy would change: replay events under it and count the differences.

Reviewing a policy change by reading YAML is guesswork; replaying real inputs is not.
Each event is decided again under the candidate (at the instant it was originally
decided, so clock fields are comparable) and compared with the decision it got: the
golden corpus's reviewed outcome, or what the service stored and answered. The report
says how many decisions change and how: threat-level transitions, and per rule how often
it fired before and after.

Policy identity (``policy_hash``, ``tie_d.policy_version``/``policy_hash``) always
differs between two policies and is not a change of decision; ``explain`` repeats the
decision (its summary follows from level, score, rules and gating), so it is left out of
the comparison too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from frostgate.engine import THREAT_LEVELS, Policy, WindowState, evaluate, normalize
from frostgate.errors import FrostGateError
from frostgate.jobs.simulate import DEFAULT_POLICY, load_corpus
from frostgate.store import Database
from frostgate.store.decisions import DecisionFilter, list_page

__all__ = [
    "Change",
    "Impact",
    "Replay",
    "RuleImpact",
    "assess",
    "corpus_replays",
    "impact_json",
    "stored_replays",
]

_COMPARED: Final = (
    "threat_level",
    "score",
    "anomaly_score",
    "ai_adversarial_score",
    "rules_triggered",
    "mitigations",
    "clock_drift_ms",
    "clock_stale",
)
_IDENTITY: Final = frozenset({"policy_version", "policy_hash"})
_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class Replay:
    """One event decided twice: ``before`` as recorded, ``after`` under the candidate."""

    key: str  # corpus case id or stored event_id
    before: Mapping[str, Any]
    after: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    before_level: str
    after_level: str
    fields: tuple[str, ...]  # what differs, e.g. ("score", "tie_d.gating_decision")
    rules_gained: tuple[str, ...]
    rules_lost: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleImpact:
    fired_before: int
    fired_after: int
    gained: int  # decisions where the rule fires only under the candidate
    lost: int  # decisions where it fired and no longer does


@dataclass(frozen=True, slots=True)
class Impact:
    source: str
    policy_version: str
    policy_hash: str
    replayed: int
    skipped: int  # not comparable: fixture-policy cases, refused events
    changes: tuple[Change, ...]
    levels_before: Mapping[str, int]
    levels_after: Mapping[str, int]
    transitions: Mapping[tuple[str, str], int]  # (before, after) -> changed decisions
    rules: Mapping[str, RuleImpact]


def _fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    out = [key for key in _COMPARED if before.get(key) != after.get(key)]
    tie_before, tie_after = before.get("tie_d") or {}, after.get("tie_d") or {}
    out += [
        f"tie_d.{key}"
        for key in dict.fromkeys([*tie_before, *tie_after])
        if key not in _IDENTITY and tie_before.get(key) != tie_after.get(key)
    ]
    return tuple(out)


def assess(
    replays: Iterable[Replay], *, source: str, candidate: Policy, skipped: int = 0
) -> Impact:
    """Compare every replayed decision and tally what changed."""
    levels_before: Counter[str] = Counter()
    levels_after: Counter[str] = Counter()
    transitions: Counter[tuple[str, str]] = Counter()
    fired_before: Counter[str] = Counter()
    fired_after: Counter[str] = Counter()
    gained: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    changes: list[Change] = []
    replayed = 0
    for r in replays:
        replayed += 1
        b_level, a_level = str(r.before["threat_level"]), str(r.after["threat_level"])
        levels_before[b_level] += 1
        levels_after[a_level] += 1
        b_rules, a_rules = list(r.before["rules_triggered"]), list(r.after["rules_triggered"])
        fired_before.update(set(b_rules))
        fired_after.update(set(a_rules))
        fields = _fields(r.before, r.after)
        if not fields:
            continue
        plus = tuple(rule for rule in a_rules if rule not in b_rules)
        minus = tuple(rule for rule in b_rules if rule not in a_rules)
        gained.update(plus)
        lost.update(minus)
        transitions[(b_level, a_level)] += 1
        changes.append(Change(r.key, b_level, a_level, fields, plus, minus))
    names = sorted(set(fired_before) | set(fired_after))
    rank: dict[str, int] = {level: i for i, level in enumerate(THREAT_LEVELS)}
    return Impact(
        source=source,
        policy_version=candidate.version,
        policy_hash=candidate.hash,
        replayed=replayed,
        skipped=skipped,
        changes=tuple(changes),
        levels_before={lv: levels_before[lv] for lv in THREAT_LEVELS},
        levels_after={lv: levels_after[lv] for lv in THREAT_LEVELS},
        transitions=dict(
            sorted(transitions.items(), key=lambda kv: [rank.get(level, 9) for level in kv[0]])
        ),
        rules={n: RuleImpact(fired_before[n], fired_after[n], gained[n], lost[n]) for n in names},
    )


def _decide(
    raw: Any,
    candidate: Policy,
    now: datetime,
    windows: Mapping[str, WindowState] | None = None,
) -> dict[str, Any] | None:
    try:
        return evaluate(normalize(raw), candidate, now=now, windows=windows).as_dict()
    except FrostGateError:
        return None


def corpus_replays(path: Path, candidate: Policy) -> tuple[list[Replay], int]:
    """The corpus's default-policy decisions replayed under ``candidate``; the count of
    cases left out (fixture-policy cases and events the normalizer refuses)."""
    replays: list[Replay] = []
    skipped = 0
    for case in load_corpus(path):
        before = case.expected.get("decision")
        after = None
        if case.policy == DEFAULT_POLICY and before is not None:
            after = _decide(case.event, candidate, case.now, case.windows)
        if before is None or after is None:
            skipped += 1
            continue
        replays.append(Replay(case.id, before, after))
    return replays, skipped


def stored_replays(
    db: Database, tenant_id: str, candidate: Policy, *, limit: int
) -> tuple[list[Replay], int]:
    """The tenant's newest ``limit`` stored decisions replayed under ``candidate`` at their
    own decision time; the count of stored requests that no longer normalize."""
    replays: list[Replay] = []
    skipped = 0
    before_seq: int | None = None
    with db.read.connect() as conn:
        while len(replays) + skipped < limit:
            page = list_page(
                conn,
                tenant_id,
                DecisionFilter(),
                before_seq=before_seq,
                limit=min(_PAGE, limit - len(replays) - skipped),
            )
            if not page:
                break
            for row in page:
                before = _as_proposed(orjson.loads(row["response_json"]))
                now = datetime.fromisoformat(before["decided_at"])
                after = _decide(orjson.loads(row["request_json"]), candidate, now)
                if after is None:
                    skipped += 1
                else:
                    replays.append(Replay(str(row["event_id"]), before, after))
            before_seq = int(page[-1]["seq"])
    return replays, skipped


def _as_proposed(answer: dict[str, Any]) -> dict[str, Any]:
    """A stored answer as the engine gave it: what became of each mitigation (``status``,
    ``status_reason``) was the tenant's envelope's doing at the time, which replaying a
    policy does not redo."""
    for mitigation in answer.get("mitigations", ()):
        mitigation.pop("status", None)
        mitigation.pop("status_reason", None)
    return answer


def impact_json(impact: Impact) -> dict[str, Any]:
    """The report as JSON-ready data (``frostgate simulate --policy ... --json``)."""
    return {
        "source": impact.source,
        "candidate": {"policy_version": impact.policy_version, "policy_hash": impact.policy_hash},
        "replayed": impact.replayed,
        "skipped": impact.skipped,
        "changed": len(impact.changes),
        "levels": {
            lv: {"before": impact.levels_before[lv], "after": impact.levels_after[lv]}
            for lv in impact.levels_before
        },
        "transitions": [
            {"from": b, "to": a, "count": n} for (b, a), n in impact.transitions.items()
        ],
        "rules": {
            name: {
                "fired_before": r.fired_before,
                "fired_after": r.fired_after,
                "gained": r.gained,
                "lost": r.lost,
            }
            for name, r in impact.rules.items()
        },
        "changes": [
            {
                "key": c.key,
                "from": c.before_level,
                "to": c.after_level,
                "fields": list(c.fields),
                "rules_gained": list(c.rules_gained),
                "rules_lost": list(c.rules_lost),
            }
            for c in impact.changes
        ],
    }
