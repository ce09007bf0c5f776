"""Properties: normalize never fails unexpectedly, evaluate is deterministic, levels monotone."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from frostgate.engine import (
    THREAT_LEVELS,
    Event,
    evaluate,
    load_policy,
    normalize,
    policy_from_document,
)
from frostgate.errors import FrostGateError
from tests.engine.engine_policies import NOW, default_document, variant

# Keys the normalizer reads, so generated bodies hit aliases and ECS shapes often.
KNOWN_KEYS = [
    "event_id",
    "tenant_id",
    "source",
    "event_type",
    "src_ip",
    "source_ip",
    "ip",
    "client_ip",
    "remote_ip",
    "failed_auths",
    "failed_attempts",
    "attempts",
    "fail_count",
    "failures",
    "num_failures",
    "failed_logins",
    "user",
    "username",
    "user_name",
    "timestamp",
    "@timestamp",
    "persona",
    "classification",
    "event",
    "observer",
    "agent",
    "host",
    "payload",
    "name",
    "ip",
    "action",
    "category",
    "outcome",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "203.0.113.9",
            "2001:db8::1",
            " 7 ",
            "auth",
            "bruteforce",
            "suspicious_llm_usage",
            "2025-01-01T00:00:00Z",
            "guardian",
            "SECRET",
            "authentication",
            "failure",
            "evt-1",
        ]
    )
)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=25,
)
bodies = st.dictionaries(keys, json_values, max_size=10)

# The default document compiled a second time: decisions must not depend on which
# compiled instance (closures, caches) evaluates them.
TWIN = policy_from_document(default_document())


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies)
@example(raw={"source": {"ip": "203.0.113.9"}, "event": {"category": ["authentication"]}})
@example(raw={"payload": {"failed_auths": "9" * 5000}})
def test_normalize_returns_an_event_or_raises_frostgate_error(raw: dict[str, Any]) -> None:
    try:
        event = normalize(raw)
    except FrostGateError:
        return
    assert isinstance(event, Event)
    assert event.event_type == event.event_type.lower()
    assert 0 < len(event.source) <= 256
    assert event.failures is None or 0 <= event.failures <= 10**9
    assert event.timestamp is None or event.timestamp.utcoffset() == timedelta(0)


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(raw=bodies, now=st.datetimes(timezones=st.just(UTC)))
def test_evaluate_is_deterministic(raw: dict[str, Any], now: datetime) -> None:
    try:
        event = normalize(raw)
    except FrostGateError:
        assume(False)
        return
    first = evaluate(event, load_policy(), now=now)
    second = evaluate(normalize(raw), TWIN, now=now)
    assert first == second
    assert first.as_dict() == second.as_dict()
    assert orjson.dumps(first.as_dict()) == orjson.dumps(second.as_dict())
    assert first.threat_level in THREAT_LEVELS
    assert 0 <= first.score <= 100


@settings(max_examples=200, deadline=None)
@given(
    failures=st.integers(min_value=0, max_value=100),
    src_ip=st.none() | st.ip_addresses().map(str),
    event_type=st.sampled_from(["auth", "login", "http", "bruteforce", "suspicious_llm_usage"]),
    persona=st.sampled_from([None, "guardian", "sentinel"]),
    classification=st.sampled_from([None, "SECRET", "PUBLIC"]),
    seconds=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_decisions_are_byte_identical_on_replay(
    failures: int,
    src_ip: str | None,
    event_type: str,
    persona: str | None,
    classification: str | None,
    seconds: int,
) -> None:
    raw = {
        "event_type": event_type,
        "failures": failures,
        "src_ip": src_ip,
        "persona": persona,
        "classification": classification,
        "timestamp": (NOW - timedelta(seconds=seconds)).isoformat(),
    }
    policy = load_policy()
    runs = {
        orjson.dumps(evaluate(normalize(dict(raw)), policy, now=NOW).as_dict()) for _ in range(3)
    }
    assert len(runs) == 1
    body = orjson.loads(runs.pop())
    assert body["clock_drift_ms"] == seconds * 1000
    assert body["clock_stale"] == (abs(seconds) > 300)


def _level_policy(bounds: list[int]) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        doc["thresholds"] = dict(zip(THREAT_LEVELS[1:], bounds, strict=True))
        doc["rules"] = [
            {
                "id": f"p{n}",
                "points": n,
                "when": {"field": "event_type", "op": "eq", "value": f"p{n}"},
            }
            for n in range(101)
        ]

    return variant(mutate)


@settings(max_examples=25, deadline=None)
@given(
    bounds=st.lists(
        st.integers(min_value=1, max_value=100), min_size=4, max_size=4, unique=True
    ).map(sorted),
    pair=st.tuples(st.integers(0, 100), st.integers(0, 100)).map(sorted),
)
def test_score_to_level_is_monotone(bounds: list[int], pair: list[int]) -> None:
    policy = _level_policy(bounds)
    low, high = pair
    a = evaluate(normalize({"event_type": f"p{low}"}), policy, now=NOW)
    b = evaluate(normalize({"event_type": f"p{high}"}), policy, now=NOW)
    assert (a.score, b.score) == (low, high)
    assert THREAT_LEVELS.index(a.threat_level) <= THREAT_LEVELS.index(b.threat_level)
    assert THREAT_LEVELS.index(a.threat_level) == sum(1 for x in bounds if low >= x)


def test_default_levels_are_monotone_over_every_score() -> None:
    policy = _level_policy([20, 50, 80, 95])
    indices = [
        THREAT_LEVELS.index(
            evaluate(normalize({"event_type": f"p{n}"}), policy, now=NOW).threat_level
        )
        for n in range(101)
    ]
    assert indices == sorted(indices)
    assert [indices[n] for n in (19, 20, 49, 50, 79, 80, 94, 95)] == [0, 1, 1, 2, 2, 3, 3, 4]


@given(
    n=st.integers(min_value=0, max_value=10**9),
    zeros=st.integers(min_value=0, max_value=5),
    pad=st.sampled_from(["", " ", "  ", "\t"]),
    key=st.sampled_from(["failed_auths", "attempts", "failed_logins"]),
    nested=st.booleans(),
)
def test_digit_strings_round_trip(n: int, zeros: int, pad: str, key: str, nested: bool) -> None:
    text = pad + "0" * zeros + str(n) + pad
    raw = {"payload": {key: text}} if nested else {key: text}
    assert normalize(raw).failures == n


@given(digits=st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_any_ascii_digit_string_is_its_value_or_out_of_range(digits: str) -> None:
    value = int(digits)
    try:
        failures = normalize({"failures": digits}).failures
    except FrostGateError:
        assert value > 10**9
    else:
        assert failures == value


@given(
    ts=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
    ),
    now=st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)),
)
def test_clock_drift_is_exact(ts: datetime, now: datetime) -> None:
    d = evaluate(normalize({"timestamp": ts.isoformat()}), load_policy(), now=now)
    delta = now - ts
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    assert d.clock_drift_ms == round(Fraction(micros, 1000))  # exact, half to even
    assert d.clock_stale == (abs(d.clock_drift_ms or 0) > 300_000)


_REPLAY_SCRIPT = """
import sys
from datetime import UTC, datetime
import orjson
from frostgate.engine import evaluate, load_policy, normalize
now = datetime(2025, 1, 1, tzinfo=UTC)
bodies = [
    {"event_type": "auth.failed", "src_ip": "203.0.113.9", "failed_auths": 7},
    {"event_type": "x", "src_ip": "2001:db8::1", "failures": 12, "persona": "guardian",
     "classification": "secret", "timestamp": "2024-12-31T23:59:00Z"},
    {"event_type": "ssh_bruteforce", "source": "sshd"},
    {"event_type": "suspicious_llm_usage", "persona": "sentinel"},
    {"event": {"category": ["authentication"]}, "source": {"ip": "192.0.2.1"}, "attempts": "5"},
]
policy = load_policy()
sys.stdout.buffer.write(b"\\n".join(
    orjson.dumps(evaluate(normalize(b), policy, now=now).as_dict()) for b in bodies
) + b"\\n" + policy.hash.encode())
"""


def test_decisions_do_not_depend_on_the_process_hash_seed() -> None:
    """Replaying in another process (other set/dict hash seeds) gives the same bytes."""
    outputs = []
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _REPLAY_SCRIPT], env=env, capture_output=True, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].endswith(load_policy().hash.encode())
    assert outputs[0].count(b"\n") == 5
