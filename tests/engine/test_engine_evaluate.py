"""evaluate(): baseline rules at their boundaries, score and levels, doctrine, clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from frostgate.engine import (
    THREAT_LEVELS,
    Decision,
    Mitigation,
    Policy,
    evaluate,
    load_policy,
    normalize,
)
from tests.engine.engine_policies import NOW, points_rule, variant, with_rules

IP = "203.0.113.9"


def decide(raw: dict[str, Any], policy: Policy | None = None, now: datetime = NOW) -> Decision:
    return evaluate(normalize(raw), policy or load_policy(), now=now)


def auth(failures: Any, **extra: Any) -> dict[str, Any]:
    return {
        "source": "sshd",
        "event_type": "auth.failed",
        "src_ip": IP,
        "failed_auths": failures,
        **extra,
    }


# --------------------------------------------------------------------------- output shape


def test_decision_body_has_exactly_the_contract_keys() -> None:
    body = decide(auth(7)).as_dict()
    assert list(body) == [
        "threat_level",
        "score",
        "anomaly_score",
        "ai_adversarial_score",
        "rules_triggered",
        "mitigations",
        "explain",
        "tie_d",
        "clock_drift_ms",
        "clock_stale",
        "policy_hash",
    ]
    assert list(body["explain"]) == [
        "summary",
        "rules_triggered",
        "score",
        "anomaly_score",
        "tie_d",
    ]
    assert list(body["tie_d"]) == [
        "roe_applied",
        "disruption_limited",
        "ao_required",
        "persona",
        "classification",
        "service_impact",
        "user_impact",
        "gating_decision",
        "policy_version",
        "policy_hash",
    ]
    assert list(body["mitigations"][0]) == [
        "action",
        "target",
        "reason",
        "confidence",
        "ttl_seconds",
    ]
    assert body["explain"]["tie_d"] == body["tie_d"]
    assert body["explain"]["rules_triggered"] == body["rules_triggered"]
    orjson.dumps(body)  # JSON-ready as is


def test_brute_force_decision_in_full() -> None:
    policy = load_policy()
    body = decide(auth(7, timestamp="2025-01-01T11:59:58.500Z")).as_dict()
    tie_d = {
        "roe_applied": False,
        "disruption_limited": False,
        "ao_required": False,
        "persona": None,
        "classification": None,
        "service_impact": 0.35,
        "user_impact": 0.2,
        "gating_decision": "allow",
        "policy_version": policy.version,
        "policy_hash": policy.hash,
    }
    assert body == {
        "threat_level": "high",
        "score": 90,
        "anomaly_score": 0.8,
        "ai_adversarial_score": 0.0,
        "rules_triggered": ["brute_force"],
        "mitigations": [
            {
                "action": "block_ip",
                "target": IP,
                "reason": f"7 failed auth attempts from {IP}",
                "confidence": 0.92,
                "ttl_seconds": 3600,
            }
        ],
        "explain": {
            "summary": "auth.failed from sshd: high (90) — brute_force",
            "rules_triggered": ["brute_force"],
            "score": 90,
            "anomaly_score": 0.8,
            "tie_d": tie_d,
        },
        "tie_d": tie_d,
        "clock_drift_ms": 1500,
        "clock_stale": False,
        "policy_hash": policy.hash,
    }


def test_as_dict_returns_fresh_containers() -> None:
    decision = decide(auth(7))
    body = decision.as_dict()
    body["rules_triggered"].append("x")
    body["mitigations"].clear()
    body["tie_d"]["gating_decision"] = "deny"
    assert decision.as_dict()["rules_triggered"] == ["brute_force"]
    assert decision.as_dict()["mitigations"]
    assert decision.as_dict()["tie_d"]["gating_decision"] == "allow"


def test_actionable_means_at_least_one_mitigation() -> None:
    assert decide(auth(7)).actionable is True
    assert decide(auth(4)).actionable is False
    assert decide({"event_type": "suspicious_llm_usage"}).actionable is False


def test_decision_types() -> None:
    decision = decide(auth(7))
    assert decision.mitigations == (
        Mitigation("block_ip", IP, f"7 failed auth attempts from {IP}", 0.92, 3600),
    )
    assert decision.rules_triggered == ("brute_force",)
    with pytest.raises(AttributeError):
        decision.score = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- brute_force


@pytest.mark.parametrize(
    ("failures", "fires"), [(0, False), (4, False), (5, True), (9, True), ("5", True)]
)
def test_brute_force_boundary_at_five(failures: Any, fires: bool) -> None:
    d = decide(auth(failures))
    if fires:
        assert d.rules_triggered == ("brute_force",)
        assert (d.score, d.threat_level, d.anomaly_score) == (90, "high", 0.8)
        assert d.mitigations[0].confidence == 0.92
        assert d.mitigations[0].target == IP
    else:
        assert d.rules_triggered == ("default_allow",)
        assert (d.score, d.threat_level, d.anomaly_score, d.mitigations) == (0, "none", 0.1, ())


def test_brute_force_needs_an_ip() -> None:
    raw = auth(50)
    del raw["src_ip"]
    d = decide(raw)
    assert d.rules_triggered == ("default_allow",)
    assert d.mitigations == ()


@pytest.mark.parametrize("event_type", list(load_policy().document["auth_event_types"]))
def test_every_auth_event_type_is_auth_like(event_type: str) -> None:
    assert decide(auth(5, event_type=event_type)).rules_triggered == ("brute_force",)


@pytest.mark.parametrize("event_type", ["ssh_brute", "BruteForce", "rdp_brute_force", "brute"])
def test_brute_in_event_type_is_auth_like(event_type: str) -> None:
    assert decide(auth(5, event_type=event_type)).rules_triggered == ("brute_force",)


def test_ecs_authentication_category_is_auth_like() -> None:
    raw = {
        "source": {"ip": IP},
        "observer": {"name": "fw"},
        "event": {"action": "logon-failed", "category": ["authentication"], "outcome": "failure"},
        "failures": 6,
    }
    d = decide(raw)
    assert d.rules_triggered == ("brute_force",)
    assert d.mitigations[0].reason == f"6 failed auth attempts from {IP}"
    assert d.summary == "logon-failed from fw: high (90) — brute_force"


@pytest.mark.parametrize("event_type", ["http_request", "authz", "logout", "unspecified"])
def test_non_auth_event_below_ten_does_not_fire(event_type: str) -> None:
    assert decide(auth(9, event_type=event_type)).rules_triggered == ("default_allow",)


# --------------------------------------------------------------------------- implicit


@pytest.mark.parametrize(("failures", "fires"), [(9, False), (10, True), (10**9, True)])
def test_implicit_brute_force_boundary_at_ten(failures: int, fires: bool) -> None:
    d = decide(auth(failures, event_type="http_request"))
    if fires:
        assert d.rules_triggered == ("brute_force_implicit",)
        assert (d.score, d.anomaly_score) == (90, 0.75)
        m = d.mitigations[0]
        assert (m.action, m.target, m.confidence, m.ttl_seconds) == ("block_ip", IP, 0.85, 3600)
        assert m.reason == f"{failures} failed auth attempts from {IP} (implicit: http_request)"
    else:
        assert d.rules_triggered == ("default_allow",)


def test_implicit_does_not_fire_when_brute_force_did() -> None:
    d = decide(auth(12))
    assert d.rules_triggered == ("brute_force",)
    assert len(d.mitigations) == 1


def test_implicit_needs_an_ip() -> None:
    assert decide({"event_type": "x", "failures": 100}).rules_triggered == ("default_allow",)


# --------------------------------------------------------------------------- missing count


@pytest.mark.parametrize("failures", [None, 0, "0"])
def test_missing_count_fires_for_brute_force_types(failures: Any) -> None:
    raw: dict[str, Any] = {"event_type": "ssh_bruteforce", "src_ip": IP}
    if failures is not None:
        raw["failures"] = failures
    d = decide(raw)
    assert d.rules_triggered == ("brute_force_missing_count",)
    assert (d.score, d.threat_level, d.anomaly_score, d.mitigations) == (40, "low", 0.4, ())


@pytest.mark.parametrize("failures", [1, 4])
def test_missing_count_needs_no_count(failures: int) -> None:
    raw = {"event_type": "brute_force_detected", "src_ip": IP, "failures": failures}
    assert decide(raw).rules_triggered == ("default_allow",)


def test_missing_count_only_for_brute_force_types() -> None:
    assert decide({"event_type": "auth.failed"}).rules_triggered == ("default_allow",)
    assert decide({"event_type": "brutal"}).rules_triggered == ("default_allow",)


def test_a_bad_count_is_an_error_not_a_missing_count() -> None:
    from frostgate.errors import ErrorCode, FrostGateError

    with pytest.raises(FrostGateError) as info:
        normalize({"event_type": "bruteforce", "failures": "many"})
    assert info.value.code is ErrorCode.EVENT_INVALID


# --------------------------------------------------------------------------- llm, score cap


def test_suspicious_llm_usage() -> None:
    d = decide({"event_type": "Suspicious_LLM_Usage", "source": "proxy"})
    assert d.rules_triggered == ("suspicious_llm_usage",)
    assert (d.score, d.threat_level, d.ai_adversarial_score, d.anomaly_score) == (
        60,
        "medium",
        0.7,
        0.1,
    )
    assert decide({"event_type": "llm_usage"}).ai_adversarial_score == 0.0


def test_score_is_capped_at_100() -> None:
    d = decide({"event_type": "suspicious_llm_usage", "src_ip": IP, "failures": 10})
    assert d.rules_triggered == ("brute_force_implicit", "suspicious_llm_usage")
    assert (d.score, d.threat_level) == (100, "critical")
    assert (d.anomaly_score, d.ai_adversarial_score) == (0.75, 0.7)


def test_negative_points_clamp_at_zero() -> None:
    policy = with_rules(points_rule(-30))
    d = decide({"event_type": "probe"}, policy)
    assert (d.score, d.threat_level) == (0, "none")


def test_default_allow_only_when_nothing_fired() -> None:
    assert decide({}).rules_triggered == ("default_allow",)
    assert "default_allow" not in decide(auth(5)).rules_triggered


def test_no_rule_fired_summary() -> None:
    policy = with_rules(points_rule(10))
    d = decide({"event_type": "other", "source": "s"}, policy)
    assert d.rules_triggered == ()
    assert d.summary == "other from s: none (0) — no rule"


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("points", "level"),
    [
        (0, "none"),
        (19, "none"),
        (20, "low"),
        (49, "low"),
        (50, "medium"),
        (79, "medium"),
        (80, "high"),
        (94, "high"),
        (95, "critical"),
        (100, "critical"),
    ],
)
def test_threshold_boundaries(points: int, level: str) -> None:
    d = decide({"event_type": "probe"}, with_rules(points_rule(points)))
    assert (d.score, d.threat_level) == (points, level)


def test_threat_levels_order() -> None:
    assert THREAT_LEVELS == ("none", "low", "medium", "high", "critical")


def test_thresholds_come_from_the_policy() -> None:
    def lower(doc: dict[str, Any]) -> None:
        doc["thresholds"] = {"low": 1, "medium": 2, "high": 3, "critical": 4}
        doc["rules"] = [points_rule(3)]

    assert decide({"event_type": "probe"}, variant(lower)).threat_level == "high"


# --------------------------------------------------------------------------- doctrine


def _mitigating(rule_id: str, action: str, target: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "points": 10,
        "when": {"all": [{"field": target, "op": "exists"}]},
        "mitigation": {
            "action": action,
            "target_field": target,
            "confidence": 0.5,
            "reason": f"{action} {{{target}}}",
        },
    }


DOCTRINE_RULES = [
    _mitigating("r_alert", "alert", "user"),
    _mitigating("r_block_ip", "block_ip", "src_ip"),
    _mitigating("r_quarantine", "quarantine", "user"),
    _mitigating("r_terminate", "terminate", "user"),
    _mitigating("r_block", "block", "source"),
]
DOCTRINE_EVENT = {"src_ip": IP, "user": "mallory", "source": "edr"}


def doctrine_decision(
    persona: str | None, classification: str | None, rules: list[dict[str, Any]] | None = None
) -> Decision:
    raw: dict[str, Any] = dict(DOCTRINE_EVENT)
    if persona is not None:
        raw["persona"] = persona
    if classification is not None:
        raw["classification"] = classification
    return decide(raw, with_rules(*(rules if rules is not None else DOCTRINE_RULES)))


def actions(d: Decision) -> list[str]:
    return [m.action for m in d.mitigations]


def test_no_persona_keeps_every_mitigation() -> None:
    d = doctrine_decision(None, None)
    assert actions(d) == ["alert", "block_ip", "quarantine", "terminate", "block"]
    t = d.tie_d
    assert (t.roe_applied, t.disruption_limited, t.ao_required, t.gating_decision) == (
        False,
        False,
        False,
        "allow",
    )
    assert (t.service_impact, t.user_impact) == (0.35, 0.2)
    assert (t.persona, t.classification) == (None, None)


def test_guardian_secret_keeps_only_the_first_disruptive_and_requires_approval() -> None:
    d = doctrine_decision("Guardian", "secret")
    assert actions(d) == ["alert", "block_ip"]
    t = d.tie_d
    assert (t.roe_applied, t.disruption_limited, t.ao_required) == (True, True, True)
    assert t.gating_decision == "require_approval"
    assert (t.service_impact, t.user_impact) == (0.25, 0.15)
    assert (t.persona, t.classification) == ("guardian", "SECRET")
    assert d.summary.endswith("; approval required")
    assert d.rules_triggered == tuple(r["id"] for r in DOCTRINE_RULES)


def test_guardian_secret_with_one_disruptive_is_not_limited() -> None:
    d = doctrine_decision("guardian", "SECRET", DOCTRINE_RULES[:2])
    assert actions(d) == ["alert", "block_ip"]
    t = d.tie_d
    assert (t.roe_applied, t.disruption_limited, t.ao_required) == (True, False, True)
    assert t.gating_decision == "require_approval"
    assert (t.service_impact, t.user_impact) == (0.35, 0.2)


def test_guardian_secret_without_disruptive_allows() -> None:
    d = doctrine_decision("guardian", "SECRET", DOCTRINE_RULES[:1])
    t = d.tie_d
    assert actions(d) == ["alert"]
    assert (t.roe_applied, t.ao_required, t.disruption_limited) == (True, True, False)
    assert t.gating_decision == "allow"
    assert (t.service_impact, t.user_impact) == (0.0, 0.0)


def test_guardian_secret_brute_force_requires_approval() -> None:
    d = decide(auth(7, persona="guardian", classification="SECRET"))
    assert d.tie_d.gating_decision == "require_approval"
    assert d.tie_d.roe_applied
    assert d.tie_d.ao_required
    assert not d.tie_d.disruption_limited
    assert actions(d) == ["block_ip"]


@pytest.mark.parametrize("classification", [None, "CONFIDENTIAL", "TOP_SECRET"])
def test_guardian_without_secret_is_unrestricted(classification: str | None) -> None:
    d = doctrine_decision("guardian", classification)
    assert actions(d) == ["alert", "block_ip", "quarantine", "terminate", "block"]
    t = d.tie_d
    assert (t.roe_applied, t.disruption_limited, t.ao_required, t.gating_decision) == (
        False,
        False,
        False,
        "allow",
    )
    assert (t.service_impact, t.user_impact) == (0.35, 0.2)
    assert (t.persona, t.classification) == ("guardian", classification)


def test_sentinel_caps_disruptive_at_three() -> None:
    d = doctrine_decision("sentinel", "SECRET")
    assert actions(d) == ["alert", "block_ip", "quarantine", "terminate"]
    t = d.tie_d
    assert (t.roe_applied, t.disruption_limited, t.ao_required, t.gating_decision) == (
        False,
        True,
        False,
        "allow",
    )
    assert (t.service_impact, t.user_impact) == (0.35, 0.2)


def test_sentinel_with_three_disruptive_is_not_limited() -> None:
    d = doctrine_decision("sentinel", None, DOCTRINE_RULES[:4])
    assert actions(d) == ["alert", "block_ip", "quarantine", "terminate"]
    assert d.tie_d.disruption_limited is False


def test_unknown_persona_is_recorded_but_unrestricted() -> None:
    d = doctrine_decision("analyst", "SECRET")
    assert len(d.mitigations) == 5
    assert (d.tie_d.persona, d.tie_d.classification, d.tie_d.gating_decision) == (
        "analyst",
        "SECRET",
        "allow",
    )


def test_no_disruptive_no_impact() -> None:
    d = doctrine_decision(None, None, DOCTRINE_RULES[:1])
    assert (d.tie_d.service_impact, d.tie_d.user_impact) == (0.0, 0.0)
    assert decide({}).tie_d.service_impact == 0.0


def test_same_mitigation_from_two_rules_is_emitted_once() -> None:
    rules = [_mitigating("a", "block_ip", "src_ip"), _mitigating("b", "block_ip", "src_ip")]
    d = decide(DOCTRINE_EVENT, with_rules(*rules))
    assert d.rules_triggered == ("a", "b")
    assert actions(d) == ["block_ip"]


def test_tie_d_carries_the_policy_fingerprint() -> None:
    policy = with_rules(*DOCTRINE_RULES)
    for persona in (None, "guardian"):
        d = decide({**DOCTRINE_EVENT, "persona": persona, "classification": "SECRET"}, policy)
        assert (d.tie_d.policy_version, d.tie_d.policy_hash) == (policy.version, policy.hash)
        assert d.policy_hash == policy.hash


# --------------------------------------------------------------------------- clock


def at(offset: timedelta) -> dict[str, Any]:
    return {"timestamp": (NOW - offset).isoformat()}


@pytest.mark.parametrize(
    ("offset", "drift", "stale"),
    [
        (timedelta(0), 0, False),
        (timedelta(seconds=1.5), 1500, False),
        (timedelta(seconds=-2), -2000, False),
        (timedelta(seconds=300), 300_000, False),
        (timedelta(seconds=-300), -300_000, False),
        (timedelta(seconds=300, milliseconds=1), 300_001, True),
        (timedelta(seconds=-300, milliseconds=-1), -300_001, True),
        (timedelta(days=3650), 3650 * 86_400_000, True),
        (timedelta(days=-3650), -3650 * 86_400_000, True),
    ],
)
def test_clock_drift_is_true_and_signed(offset: timedelta, drift: int, stale: bool) -> None:
    d = decide(at(offset))
    assert (d.clock_drift_ms, d.clock_stale) == (drift, stale)


@pytest.mark.parametrize(
    ("micros", "drift"),
    [(499, 0), (500, 0), (501, 1), (1500, 2), (2500, 2), (-500, 0), (-1500, -2), (-501, -1)],
)
def test_clock_drift_rounds_like_round(micros: int, drift: int) -> None:
    d = decide(at(timedelta(microseconds=micros)))
    assert d.clock_drift_ms == drift == round(micros / 1000)


def test_no_timestamp_no_drift() -> None:
    d = decide({})
    assert (d.clock_drift_ms, d.clock_stale) == (None, False)
    assert d.as_dict()["clock_drift_ms"] is None


def test_clock_skew_comes_from_the_policy() -> None:
    strict = variant(lambda doc: doc.update(clock_skew_seconds=1))
    assert decide(at(timedelta(seconds=2)), strict).clock_stale is True
    assert decide(at(timedelta(seconds=2))).clock_stale is False


def test_now_in_another_zone_is_the_same_instant() -> None:
    other = NOW.astimezone(timezone(timedelta(hours=9)))
    assert decide(at(timedelta(seconds=3)), now=other).clock_drift_ms == 3000


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(normalize({}), load_policy(), now=datetime(2025, 1, 1))


def test_evaluate_reads_no_clock() -> None:
    raw = auth(7, timestamp="2025-01-01T00:00:00Z")
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert decide(raw, now=later).as_dict() == decide(raw, now=later).as_dict()
    assert decide(raw, now=later).clock_drift_ms != decide(raw).clock_drift_ms
