"""The golden corpus, authored: every case's input, why it is there, and what a reviewer
claims it must decide, derived by hand from the issue's rules (issue 2 part 4).

The committed ``golden.jsonl`` holds the engine's full output for each case. A snapshot
alone would pin bugs as easily as behaviour, so it is only ever written from here, and
only if the engine's output agrees with every hand-stated claim below plus the derived
checks in :func:`_check_default` (score = clamped sum of rule points, level from the
thresholds 20/50/80/95, anomaly, impact, reasons, explain mirroring the decision).

    python -m tests.simulation.corpus_cases --check   # the file is what these cases give
    python -m tests.simulation.corpus_cases --write   # rewrite it (then review the diff)

A policy change that changes decisions must change the claims here first; rewriting the
golden file cannot paper over a decision nobody claimed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from frostgate.engine import Policy, load_policy
from frostgate.jobs.simulate import (
    DEFAULT_POLICY,
    Case,
    default_corpus_path,
    parse_windows,
    policy_for,
    run_case,
)

NOW: Final = "2025-06-01T12:00:00Z"
NOW_DT: Final = datetime(2025, 6, 1, 12, tzinfo=UTC)
NOW_S: Final = 1748779200  # NOW as epoch seconds
IP: Final = "203.0.113.7"
IP2: Final = "198.51.100.23"

# The boundaries: none < 20 <= low < 50 <= medium < 80 <= high < 95 <= critical.
_BOUNDS: Final = ((95, "critical"), (80, "high"), (50, "medium"), (20, "low"), (0, "none"))
# The default policy's rules as the issue and default.yaml state them.
_POINTS: Final = {
    "brute_force": 90,
    "brute_force_implicit": 90,
    "brute_force_missing_count": 40,
    "suspicious_llm_usage": 60,
    "default_allow": 0,
    "brute_force_burst": 90,
    "password_spraying": 85,
}
_ANOMALY: Final = {
    "brute_force": 0.8,
    "brute_force_implicit": 0.75,
    "brute_force_missing_count": 0.4,
    "brute_force_burst": 0.8,
    "password_spraying": 0.85,
}
_CONFIDENCE: Final = {
    "brute_force": 0.92,
    "brute_force_implicit": 0.85,
    "brute_force_burst": 0.9,
    "password_spraying": 0.88,
}


def level_of(score: int) -> str:
    return next(name for bound, name in _BOUNDS if score >= bound)


@dataclass(frozen=True)
class Expect:
    """What a case must decide. ``actions`` are ``action:target`` in output order."""

    level: str
    score: int
    rules: tuple[str, ...]
    actions: tuple[str, ...] = ()
    et: str = "unspecified"  # normalized event_type, as the summary names it
    sensor: str | None = None  # None: the event's top-level source string, else "unspecified"
    n: int | None = None  # failure count the brute-force reasons must name
    gating: str = "allow"
    roe: bool = False
    limited: bool = False
    persona: str | None = None
    cls: str | None = None
    impact: tuple[float, float] | None = None  # None: derived (default policy only)
    drift: int | None = None
    stale: bool = False
    reasons: tuple[str, ...] | None = None  # fixture policies: exact reasons
    notes: tuple[str, ...] = ()  # what normalization did not use, as the summary says


@dataclass(frozen=True)
class Reject:
    """Normalization must refuse the event with this code; ``blames`` is in the reason."""

    code: str
    blames: str


@dataclass(frozen=True)
class Spec:
    id: str
    why: str
    event: Any
    expect: Expect | Reject
    policy: str = DEFAULT_POLICY
    now: str = NOW
    extra: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, dict[str, Any]] | None = None  # stateful-rule state (explicit input)


def _x(level: str, score: int, *rules: str, **kw: Any) -> Expect:
    return Expect(level, score, tuple(rules), **kw)


def _block(ip: str = IP) -> tuple[str]:
    return (f"block_ip:{ip}",)


def _auth(et: str = "auth", n: Any = 5, ip: str | None = IP, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"source": "sshd", "event_type": et}
    if ip is not None:
        event["src_ip"] = ip
    if n is not None:
        event["failed_auths"] = n
    event.update(extra)
    return event


BF = "brute_force"
IMPLICIT = "brute_force_implicit"
MISSING = "brute_force_missing_count"
LLM = "suspicious_llm_usage"
ALLOW = "default_allow"
BURST = "brute_force_burst"
SPRAY = "password_spraying"


# --------------------------------------------------------------------------- default rules


def _brute_force() -> list[Spec]:
    auth_types = load_policy().document["auth_event_types"]
    out = [
        Spec(
            f"bf-type-{t}",
            f"auth event type {t!r} with 5 failures and an IP is brute force",
            _auth(t),
            _x("high", 90, BF, actions=_block(), et=t, n=5),
        )
        for t in auth_types
    ]
    out += [
        Spec(
            "bf-4-failures",
            "4 failures is below the brute-force minimum of 5",
            _auth(n=4),
            _x("none", 0, ALLOW, et="auth"),
        ),
        Spec(
            "bf-0-failures",
            "an auth event with zero failures is benign",
            _auth(n=0),
            _x("none", 0, ALLOW, et="auth"),
        ),
        Spec(
            "bf-6-failures",
            "6 failures is brute force",
            _auth(n=6),
            _x("high", 90, BF, actions=_block(), et="auth", n=6),
        ),
        Spec(
            "bf-9-failures",
            "9 auth failures: brute force, not yet implicit territory",
            _auth(n=9),
            _x("high", 90, BF, actions=_block(), et="auth", n=9),
        ),
        Spec(
            "bf-10-auth-not-implicit",
            "auth-like with 10 failures fires brute_force only: implicit is unless_fired",
            _auth(n=10),
            _x("high", 90, BF, actions=_block(), et="auth", n=10),
        ),
        Spec(
            "bf-no-ip",
            "brute force needs a source IP to block; without one nothing fires",
            _auth(n=50, ip=None),
            _x("none", 0, ALLOW, et="auth"),
        ),
        Spec(
            "bf-max-count",
            "the largest accepted count (10**9) still decides normally",
            _auth(n=10**9),
            _x("high", 90, BF, actions=_block(), et="auth", n=10**9),
        ),
        Spec(
            "bf-ipv6",
            "IPv6 sources are blocked in canonical compressed form",
            _auth(ip="2001:DB8:0:0:0:0:0:1"),
            _x("high", 90, BF, actions=_block("2001:db8::1"), et="auth", n=5),
        ),
        Spec(
            "bf-uppercase-type",
            "event_type is lower-cased before matching auth types",
            _auth("LOGIN_FAILED"),
            _x("high", 90, BF, actions=_block(), et="login_failed", n=5),
        ),
        Spec(
            "bf-padded-type",
            "event_type is stripped before matching auth types",
            _auth("  auth  "),
            _x("high", 90, BF, actions=_block(), et="auth", n=5),
        ),
        Spec(
            "bf-brute-substring",
            "any event_type containing 'brute' is auth-like",
            _auth("ssh_brute_force"),
            _x("high", 90, BF, actions=_block(), et="ssh_brute_force", n=5),
        ),
        Spec(
            "bf-brute-hyphen",
            "'brute-force' contains 'brute', so it is auth-like",
            _auth("brute-force"),
            _x("high", 90, BF, actions=_block(), et="brute-force", n=5),
        ),
        Spec(
            "bf-ecs-authentication-category",
            "ECS event.category authentication makes an event auth-like whatever its action",
            {
                "source": "winlogbeat",
                "src_ip": IP,
                "failed_logins": 6,
                "event": {"action": "user_logon", "category": ["authentication"]},
            },
            _x("high", 90, BF, actions=_block(), et="user_logon", sensor="winlogbeat", n=6),
        ),
        Spec(
            "bf-authentication-second-category",
            "auth-likeness looks at every ECS category, the event_type only at the first",
            {"src_ip": IP, "attempts": 5, "event": {"category": ["network", "authentication"]}},
            _x("high", 90, BF, actions=_block(), et="network", n=5),
        ),
        Spec(
            "bf-not-auth-plural",
            "auth types match exactly: 'logins' is not 'login'",
            _auth("logins", n=7),
            _x("none", 0, ALLOW, et="logins"),
        ),
        Spec(
            "bf-not-auth-prefixed",
            "auth types match exactly: 'user_login' is not auth-like",
            _auth("user_login", n=9),
            _x("none", 0, ALLOW, et="user_login"),
        ),
        Spec(
            "bf-not-auth-success",
            "'authentication_success' is not in the auth list",
            _auth("authentication_success", n=5),
            _x("none", 0, ALLOW, et="authentication_success"),
        ),
        Spec(
            "bf-fullwidth-login",
            "fullwidth LOGIN is LOGIN in NFKC form: the auth type login",
            _auth("\uff2c\uff2f\uff27\uff29\uff2e"),
            _x("high", 90, BF, actions=_block(), et="login", n=5),
        ),
        Spec(
            "bf-turkish-dotted-i",
            "'LOGİN' (dotted capital I) lower-cases to 'logi̇n' with a combining dot: not auth",
            _auth("LOGİN"),
            _x("none", 0, ALLOW, et="logi̇n"),
        ),
        Spec(
            "bf-mixed-case-login",
            "'Login' is login",
            _auth("Login"),
            _x("high", 90, BF, actions=_block(), et="login", n=5),
        ),
        Spec(
            "bf-with-event-id",
            "an event_id does not change the decision",
            _auth(event_id="evt-0001.a:b"),
            _x("high", 90, BF, actions=_block(), et="auth", n=5),
        ),
        Spec(
            "bf-with-tenant-claim",
            "the claimed tenant_id is never used by the engine",
            _auth(tenant_id="acme"),
            _x("high", 90, BF, actions=_block(), et="auth", n=5),
        ),
        Spec(
            "bf-extra-fields-ignored",
            "unknown fields and nested payload noise are ignored",
            _auth(
                payload={
                    "raw": {"deep": [1, {"x": None}]},
                    "host": "web01",
                    "agent": "Mozilla/5.0",
                },
                note="extra",
            ),
            _x("high", 90, BF, actions=_block(), et="auth", n=5),
        ),
    ]
    # Failed logins as sensors name them, none of them in auth_event_types: brute force
    # through auth_failure (policy 2026.3; before, each scored none).
    out += [
        Spec(
            f"bf-named-failure-{t}",
            f"{t!r} names a failed login: with 5 failures and an IP it is brute force",
            _auth(t),
            _x("high", 90, BF, actions=_block(), et=t, n=5),
        )
        for t in (
            "auth.failure",
            "login.failed",
            "ssh_login_failed",
            "sshd.auth.failed",
            "authentication_failed",
            "user_login_failed",
            "signin.denied",
        )
    ]
    out += [
        Spec(
            "bf-ecs-outcome-failure",
            "a login-like type with ECS outcome failure is a failed login",
            _auth("user_login", event={"outcome": "failure"}),
            _x("high", 90, BF, actions=_block(), et="user_login", n=5),
        ),
        Spec(
            "bf-ecs-outcome-success-not-brute",
            "the same type with outcome success says the login worked: below implicit's 10",
            _auth("user_login", event={"outcome": "success"}),
            _x("none", 0, ALLOW, et="user_login"),
        ),
        Spec(
            "bf-login-success-not-brute",
            "a login name that does not say it failed is not a failed login",
            _auth("login.success"),
            _x("none", 0, ALLOW, et="login.success"),
        ),
    ]
    return out


def _implicit() -> list[Spec]:
    def ev(n: Any, et: str | None = "file_access", ip: str | None = IP) -> dict[str, Any]:
        event: dict[str, Any] = {"source": "edr", "src_ip": ip, "failures": n}
        if et is not None:
            event["event_type"] = et
        if ip is None:
            del event["src_ip"]
        return event

    def hit(n: int, et: str = "file_access", sensor: str = "edr") -> Expect:
        return _x("high", 90, IMPLICIT, actions=_block(), et=et, n=n, sensor=sensor)

    return [
        Spec(
            "implicit-9",
            "a non-auth event needs 10 failures; 9 decides nothing",
            ev(9),
            _x("none", 0, ALLOW, et="file_access"),
        ),
        Spec(
            "implicit-10",
            "10 failures from one IP is brute force whatever the type",
            ev(10),
            hit(10),
        ),
        Spec("implicit-11", "above the implicit threshold", ev(11), hit(11)),
        Spec(
            "implicit-huge",
            "the largest count is still an implicit brute force",
            ev(10**9),
            hit(10**9),
        ),
        Spec(
            "implicit-no-ip",
            "implicit brute force also needs a source IP",
            ev(25, ip=None),
            _x("none", 0, ALLOW, et="file_access"),
        ),
        Spec(
            "implicit-no-type",
            "no event_type at all: 'unspecified' is named in the implicit reason",
            ev(10, et=None),
            hit(10, et="unspecified"),
        ),
        Spec(
            "implicit-unicode-type",
            "a non-ASCII event_type flows into the reason text unchanged",
            ev(12, et="登录失败"),
            hit(12, et="登录失败"),
        ),
        Spec(
            "implicit-payload-count",
            "the failure count may sit in payload for the implicit rule too",
            {"source": "edr", "event_type": "smb", "src_ip": IP, "payload": {"fail_count": 10}},
            hit(10, et="smb"),
        ),
    ]


def _missing_count() -> list[Spec]:
    def hit(et: str, **kw: Any) -> Expect:
        return _x("low", 40, MISSING, et=et, **kw)

    return [
        Spec(
            "missing-bruteforce",
            "a 'bruteforce' event without a count scores 40",
            {"event_type": "bruteforce"},
            hit("bruteforce"),
        ),
        Spec(
            "missing-brute_force",
            "'brute_force' spelling is a brute-force type too",
            {"event_type": "brute_force", "src_ip": IP},
            hit("brute_force"),
        ),
        Spec(
            "missing-embedded",
            "a type containing 'bruteforce' counts",
            {"event_type": "ssh_bruteforce_detected"},
            hit("ssh_bruteforce_detected"),
        ),
        Spec(
            "missing-uppercase",
            "brute-force type matching happens after lower-casing",
            {"event_type": "BruteForce"},
            hit("bruteforce"),
        ),
        Spec(
            "missing-zero",
            "a count of 0 on a brute-force event is treated as missing",
            {"event_type": "bruteforce", "src_ip": IP, "failed_auths": 0},
            hit("bruteforce"),
        ),
        Spec(
            "missing-zero-string",
            "'0' is a count of zero",
            {"event_type": "bruteforce", "attempts": "0"},
            hit("bruteforce"),
        ),
        Spec(
            "missing-zeros-string",
            "'000' is a count of zero",
            {"event_type": "bruteforce", "attempts": "000"},
            hit("bruteforce"),
        ),
        Spec(
            "missing-null-count",
            "JSON null means not given: the count is missing",
            {"event_type": "bruteforce", "failed_auths": None},
            hit("bruteforce"),
        ),
        Spec(
            "missing-low-count",
            "a brute-force event with 3 failures has a count, below every threshold",
            {"event_type": "bruteforce", "src_ip": IP, "failed_auths": 3},
            _x("none", 0, ALLOW, et="bruteforce"),
        ),
        Spec(
            "missing-count-no-ip",
            "7 failures without an IP: a count is present, brute_force needs the IP",
            {"event_type": "bruteforce", "failed_auths": 7},
            _x("none", 0, ALLOW, et="bruteforce"),
        ),
        Spec(
            "missing-vs-full",
            "with 5 failures and an IP it is brute_force (90), not both",
            {"event_type": "bruteforce", "src_ip": IP, "failed_auths": 5},
            _x("high", 90, BF, actions=_block(), et="bruteforce", n=5),
        ),
        Spec(
            "missing-hyphen-not-type",
            "'brute-force' is auth-like but not a brute-force type: no count, no rule",
            {"event_type": "brute-force"},
            _x("none", 0, ALLOW, et="brute-force"),
        ),
        Spec(
            "missing-space-not-type",
            "'brute force' (a space) is not a brute-force type",
            {"event_type": "brute force"},
            _x("none", 0, ALLOW, et="brute force"),
        ),
    ]


def _llm() -> list[Spec]:
    def hit(**kw: Any) -> Expect:
        return _x("medium", 60, LLM, et=LLM, **kw)

    return [
        Spec(
            "llm-plain",
            "suspicious_llm_usage scores 60 with adversarial score 0.7",
            {"source": "proxy", "event_type": LLM},
            hit(),
        ),
        Spec(
            "llm-uppercase",
            "matched after lower-casing",
            {"event_type": "SUSPICIOUS_LLM_USAGE"},
            hit(),
        ),
        Spec(
            "llm-payload-type",
            "event_type may sit in payload",
            {"payload": {"event_type": LLM}},
            hit(),
        ),
        Spec(
            "llm-ecs-action",
            "ECS event.action names the type when event_type is absent",
            {"event": {"action": LLM}},
            hit(),
        ),
        Spec(
            "llm-ecs-category",
            "the first ECS category names the type as a last resort",
            {"event": {"category": LLM}},
            hit(),
        ),
        Spec(
            "llm-partial",
            "the rule is an exact match: a prefix does not fire",
            {"event_type": "suspicious_llm"},
            _x("none", 0, ALLOW, et="suspicious_llm"),
        ),
        Spec(
            "llm-suffixed",
            "the rule is an exact match: a suffix does not fire",
            {"event_type": "suspicious_llm_usage_v2"},
            _x("none", 0, ALLOW, et="suspicious_llm_usage_v2"),
        ),
        Spec(
            "llm-with-9-failures",
            "9 failures on a non-auth event add nothing to the 60",
            {"event_type": LLM, "src_ip": IP, "failures": 9},
            hit(),
        ),
        Spec(
            "llm-plus-brute-force",
            "auth-like by ECS category + 5 failures + LLM: 90 + 60 = 150, clamped to 100",
            {
                "event_type": LLM,
                "src_ip": IP,
                "failed_auths": 5,
                "event": {"category": "authentication"},
            },
            _x("critical", 100, BF, LLM, actions=_block(), et=LLM, n=5),
        ),
        Spec(
            "llm-plus-implicit",
            "10 failures + LLM: implicit 90 + 60, clamped to 100",
            {"event_type": LLM, "src_ip": IP, "failures": 10},
            _x("critical", 100, IMPLICIT, LLM, actions=_block(), et=LLM, n=10),
        ),
        Spec(
            "llm-guardian-secret",
            "guardian/SECRET with no disruptive mitigation: ROE applies, nothing to approve",
            {"event_type": LLM, "persona": "guardian", "classification": "SECRET"},
            hit(roe=True, persona="guardian", cls="SECRET"),
        ),
    ]


def _default_allow() -> list[Spec]:
    return [
        Spec(
            "allow-empty",
            "an empty event is valid: unspecified type and sensor, no rule",
            {},
            _x("none", 0, ALLOW),
        ),
        Spec(
            "allow-heartbeat",
            "an ordinary event fires only the fallback",
            {"source": "agent-7", "event_type": "heartbeat"},
            _x("none", 0, ALLOW, et="heartbeat"),
        ),
        Spec(
            "allow-ip-only",
            "an address alone decides nothing",
            {"src_ip": IP},
            _x("none", 0, ALLOW),
        ),
        Spec(
            "allow-payload-null",
            "payload null means no payload",
            {"event_type": "x", "payload": None},
            _x("none", 0, ALLOW, et="x"),
        ),
        Spec(
            "allow-payload-empty",
            "an empty payload is fine",
            {"event_type": "x", "payload": {}},
            _x("none", 0, ALLOW, et="x"),
        ),
        Spec(
            "allow-long-type",
            "a 256-character event_type is the longest accepted",
            {"event_type": "a" * 256},
            _x("none", 0, ALLOW, et="a" * 256),
        ),
        Spec(
            "allow-emoji",
            "emoji in free-text fields pass through",
            {"source": "sensor-🛰", "event_type": "ping-🔥", "user": "ünïcødé"},
            _x("none", 0, ALLOW, et="ping-🔥"),
        ),
        Spec(
            "allow-control-chars",
            "tabs and newlines inside text pass through as data (only the ends are stripped)",
            {"source": "\tfw\n01 ", "event_type": "x\nINFO forged line"},
            _x("none", 0, ALLOW, et="x\ninfo forged line", sensor="fw\n01"),
        ),
        Spec(
            "text-nul-type",
            "NUL in event_type is refused (PostgreSQL text cannot hold it)",
            {"event_type": "auth\x00"},
            Reject("EVENT_INVALID", "event_type contains a NUL"),
        ),
        Spec(
            "text-nul-sensor",
            "NUL in the sensor name is refused",
            {"source": "fw\x0001"},
            Reject("EVENT_INVALID", "source contains a NUL"),
        ),
    ]


# --------------------------------------------------------------------------- aliases


def _ip_aliases() -> list[Spec]:
    out: list[Spec] = []
    for key in ("src_ip", "source_ip", "ip", "client_ip", "remote_ip"):
        out.append(
            Spec(
                f"ip-alias-{key}",
                f"source IP read from top-level {key!r}",
                {"event_type": "auth", key: IP, "failed_auths": 5},
                _x("high", 90, BF, actions=_block(), et="auth", n=5),
            )
        )
        out.append(
            Spec(
                f"ip-alias-payload-{key}",
                f"source IP read from payload {key!r}",
                {"event_type": "auth", "failed_auths": 5, "payload": {key: IP}},
                _x("high", 90, BF, actions=_block(), et="auth", n=5),
            )
        )
    hit = _x("high", 90, BF, actions=_block(), et="auth", n=5)

    def noting(note: str) -> Expect:
        return _x("high", 90, BF, actions=_block(), et="auth", n=5, notes=(note,))

    out += [
        Spec(
            "ip-ecs-source",
            "ECS source.ip at the top level",
            {"event_type": "auth", "failed_auths": 5, "source": {"ip": IP}},
            hit,
        ),
        Spec(
            "ip-ecs-source-payload",
            "ECS source.ip inside payload",
            {"event_type": "auth", "failed_auths": 5, "payload": {"source": {"ip": IP}}},
            hit,
        ),
        Spec(
            "ip-ecs-with-sensor-name",
            "top-level source is the sensor name; payload's ECS source object gives the IP",
            {
                "source": "zeek",
                "event_type": "auth",
                "failed_auths": 5,
                "payload": {"source": {"ip": IP}},
            },
            _x("high", 90, BF, actions=_block(), et="auth", n=5, sensor="zeek"),
        ),
        Spec(
            "ip-conflict-aliases",
            "src_ip and client_ip disagree: src_ip (alias order), the other named",
            {"event_type": "auth", "failed_auths": 5, "client_ip": IP2, "src_ip": IP},
            noting(f"source address: client_ip gives {IP2}, src_ip ({IP}) used"),
        ),
        Spec(
            "ip-conflict-top-and-payload",
            "a top-level alias beats a payload alias, which is named",
            {"event_type": "auth", "failed_auths": 5, "remote_ip": IP, "payload": {"src_ip": IP2}},
            noting(f"source address: payload.src_ip gives {IP2}, remote_ip ({IP}) used"),
        ),
        Spec(
            "ip-conflict-alias-and-ecs",
            "a plain alias beats ECS source.ip, which is named",
            {"event_type": "auth", "failed_auths": 5, "source": {"ip": IP2}, "payload": {"ip": IP}},
            noting(f"source address: source.ip gives {IP2}, payload.ip ({IP}) used"),
        ),
        Spec(
            "ip-agreeing-spellings",
            "an alias and ECS source.ip (dotted) giving the same address are one address",
            {"event_type": "auth", "failed_auths": 5, "source.ip": IP, "payload": {"ip": IP}},
            hit,
        ),
        Spec(
            "ip-null-falls-through",
            "src_ip null is not given: the next alias is used",
            {"event_type": "auth", "failed_auths": 5, "src_ip": None, "ip": IP},
            hit,
        ),
        Spec(
            "ip-whitespace",
            "surrounding whitespace is stripped",
            {"event_type": "auth", "failed_auths": 5, "ip": f"  {IP}\t"},
            hit,
        ),
        Spec(
            "ip-v4-mapped",
            "IPv4-mapped IPv6 is unmapped to the IPv4 address enforcement points see",
            {"event_type": "auth", "failed_auths": 5, "src_ip": f"::ffff:{IP}"},
            _x("high", 90, BF, actions=_block(IP), et="auth", n=5),
        ),
        Spec(
            "ip-v6-zone",
            "an IPv6 scope id is dropped: it names the sensor's interface, not the address",
            {"event_type": "auth", "failed_auths": 5, "src_ip": "fe80::1%eth0"},
            _x("high", 90, BF, actions=_block("fe80::1"), et="auth", n=5),
        ),
        Spec(
            "ip-v6-long-zone",
            "a long scope id is dropped too, so the stored address always fits its column",
            {"event_type": "auth", "failed_auths": 5, "src_ip": "fe80::1%" + "z" * 80},
            _x("high", 90, BF, actions=_block("fe80::1"), et="auth", n=5),
        ),
        Spec(
            "ip-invalid",
            "a value that is not an IP is refused, naming the alias",
            {"event_type": "auth", "client_ip": "999.1.1.1"},
            Reject("EVENT_INVALID", "client_ip"),
        ),
        Spec(
            "ip-blank",
            "a blank IP is invalid, not absent",
            {"src_ip": "  "},
            Reject("EVENT_INVALID", "src_ip"),
        ),
        Spec(
            "ip-number",
            "an IP must be a string",
            {"ip": 3405803783},
            Reject("EVENT_INVALID", "ip must be a string"),
        ),
        Spec(
            "ip-leading-zero",
            "leading zeros (octal ambiguity) are refused",
            {"remote_ip": "010.0.0.1"},
            Reject("EVENT_INVALID", "remote_ip"),
        ),
        Spec(
            "ip-ecs-invalid",
            "a bad ECS source.ip is refused too",
            {"source": {"ip": "not-an-ip"}},
            Reject("EVENT_INVALID", "source.ip"),
        ),
        Spec(
            "ip-ecs-wrong-type",
            "ECS source.ip must be a string",
            {"payload": {"source": {"ip": ["1.2.3.4"]}}},
            Reject("EVENT_INVALID", "source.ip"),
        ),
        Spec(
            "ip-too-long",
            "an overlong IP text is refused before parsing",
            {"src_ip": "1" * 101},
            Reject("EVENT_INVALID", "src_ip"),
        ),
    ]
    return out


#: The failure-count aliases as issue 2 lists them, in its order. Written out, not imported
#: from the normalizer: if the engine dropped or reordered one, the corpus must notice.
_COUNT_KEYS: Final = (
    "failed_auths",
    "failed_attempts",
    "attempts",
    "fail_count",
    "failures",
    "num_failures",
    "failed_logins",
)


#: Strings that look numeric to someone but are not a plain decimal count: each must be
#: refused with the alias named, never read as 0 or as something else.
NOT_DECIMAL: Final = (
    ("count-word", "'seven' is refused, never silently dropped to 0", "failed_auths", "seven"),
    ("count-plus-sign", "'+7' is not a plain decimal count", "failed_auths", "+7"),
    ("count-minus-string", "'-7' is not a count", "failed_auths", "-7"),
    ("count-underscore", "'1_000' (Python digit grouping) is refused", "failed_auths", "1_000"),
    ("count-decimal-string", "'7.0' as a string is not a count", "failed_auths", "7.0"),
    (
        "count-arabic-indic",
        "Arabic-Indic digits are refused (ASCII digits only)",
        "num_failures",
        "\u0667",
    ),
    ("count-superscript", "a superscript digit is refused", "num_failures", "\u00b2"),
    ("count-blank", "a blank count is invalid, not absent", "failures", ""),
)


def _count_aliases() -> list[Spec]:
    out: list[Spec] = []
    for i, key in enumerate(_COUNT_KEYS):
        n = 5 + i
        hit = _x("high", 90, BF, actions=_block(), et="login", n=n)
        out.append(
            Spec(
                f"count-alias-{key}",
                f"failure count from top-level {key!r}",
                {"event_type": "login", "src_ip": IP, key: n},
                hit,
            )
        )
        out.append(
            Spec(
                f"count-alias-string-{key}",
                f"numeric string in {key!r} is a count",
                {"event_type": "login", "src_ip": IP, key: str(n)},
                hit,
            )
        )
        out.append(
            Spec(
                f"count-alias-payload-{key}",
                f"failure count from payload {key!r}",
                {"event_type": "login", "src_ip": IP, "payload": {key: n}},
                hit,
            )
        )

    def hit(n: int, *notes: str) -> Expect:
        return _x("high", 90, BF, actions=_block(), et="auth", n=n, notes=notes)

    def ev(**counts: Any) -> dict[str, Any]:
        return {"event_type": "auth", "src_ip": IP, **counts}

    def bad(blames: str) -> Reject:
        return Reject("EVENT_INVALID", blames)

    out += [
        Spec(
            "count-conflict-aliases",
            "failed_auths 3 beside attempts 9: the highest, the other named",
            ev(attempts=9, failed_auths=3),
            hit(9, "failure count: failed_auths gives 3, attempts (9) used"),
        ),
        Spec(
            "count-conflict-top-and-payload",
            "a top-level 4 beside a payload 50: 50, the 4 named (it used to decide none)",
            ev(failed_logins=4, payload={"failed_auths": 50}),
            hit(50, "failure count: failed_logins gives 4, payload.failed_auths (50) used"),
        ),
        Spec(
            "count-null-falls-through",
            "failed_auths null is not given: attempts is used",
            ev(failed_auths=None, attempts=6),
            hit(6),
        ),
        Spec(
            "count-string-padded",
            "whitespace around a numeric string is stripped",
            ev(failures=" 12 "),
            hit(12),
        ),
        Spec("count-string-leading-zeros", "'0005' is 5", ev(failures="0005"), hit(5)),
        Spec(
            "count-string-many-zeros",
            "leading zeros do not count toward the length limit",
            ev(failures="0" * 30 + "7"),
            hit(7),
        ),
        Spec(
            "count-string-max",
            "'1000000000' is the largest count",
            ev(failures="1000000000"),
            hit(10**9),
        ),
        Spec("count-float-integral", "an integral float is a count", ev(attempts=7.0), hit(7)),
        Spec(
            "count-float-exponent",
            "1e9 as a float is the largest count",
            ev(attempts=1e9),
            hit(10**9),
        ),
        Spec(
            "count-over-max",
            "10**9 + 1 is out of range, refused",
            ev(failures=10**9 + 1),
            bad("failures is out of range"),
        ),
        Spec(
            "count-string-over-max",
            "'1000000001' is out of range",
            ev(failures="1000000001"),
            bad("failures is out of range"),
        ),
        Spec(
            "count-string-huge",
            "a 40-digit string is refused without parsing it",
            ev(failures="9" * 40),
            bad("failures is out of range"),
        ),
        Spec(
            "count-float-huge",
            "1e10 is out of range",
            ev(attempts=1e10),
            bad("attempts is out of range"),
        ),
        *(
            Spec(case_id, why, ev(**{key: value}), bad(f"{key} is not a decimal count"))
            for case_id, why, key, value in NOT_DECIMAL
        ),
        Spec(
            "count-negative",
            "a negative count is refused",
            ev(failures=-1),
            bad("failures is out of range"),
        ),
        Spec(
            "count-fraction",
            "7.5 failures is refused",
            ev(failures=7.5),
            bad("failures must be a whole number"),
        ),
        Spec(
            "count-bool",
            "true is not a count",
            ev(fail_count=True),
            bad("fail_count must be a number, not a boolean"),
        ),
        Spec(
            "count-list",
            "a list is not a count",
            ev(fail_count=[7]),
            bad("fail_count must be a number"),
        ),
        Spec(
            "count-object",
            "an object is not a count",
            ev(fail_count={"n": 7}),
            bad("fail_count must be a number"),
        ),
        Spec(
            "count-bad-in-payload",
            "payload counts are validated too",
            ev(payload={"failed_attempts": "many"}),
            bad("failed_attempts is not a decimal"),
        ),
    ]
    return out


def _event_type_sources() -> list[Spec]:
    def ok(et: str, why: str, event: dict[str, Any], case_id: str) -> Spec:
        return Spec(case_id, why, event, _x("none", 0, ALLOW, et=et))

    return [
        ok("dns_query", "event_type at the top level", {"event_type": "dns_query"}, "type-top"),
        ok(
            "dns_query",
            "event_type inside payload",
            {"payload": {"event_type": "dns_query"}},
            "type-payload",
        ),
        ok(
            "top",
            "top-level event_type beats payload's",
            {"event_type": "top", "payload": {"event_type": "inner"}},
            "type-top-over-payload",
        ),
        ok(
            "process_start",
            "ECS event.action (top-level event object)",
            {"event": {"action": "process_start"}},
            "type-ecs-action",
        ),
        ok(
            "process_start",
            "ECS event.action inside payload",
            {"payload": {"event": {"action": "process_start"}}},
            "type-ecs-action-payload",
        ),
        ok(
            "explicit",
            "event_type beats ECS event.action",
            {"event_type": "explicit", "event": {"action": "process_start"}},
            "type-explicit-over-action",
        ),
        ok(
            "act",
            "ECS action beats ECS category",
            {"event": {"action": "act", "category": ["network"]}},
            "type-action-over-category",
        ),
        ok(
            "network",
            "the first ECS category when nothing else names the type",
            {"event": {"category": ["Network", "malware"]}},
            "type-ecs-category-first",
        ),
        ok(
            "file",
            "event.category as a plain string",
            {"event": {"category": "file"}},
            "type-ecs-category-string",
        ),
        ok(
            "from_action",
            "a blank event_type is absent: the ECS action is used",
            {"event_type": "   ", "event": {"action": "from_action"}},
            "type-blank-falls-to-ecs",
        ),
        ok(
            "network",
            "a blank event.action is absent: the category is used",
            {"event": {"action": "", "category": ["network"]}},
            "type-blank-action",
        ),
        ok(
            "unspecified",
            "an empty category list leaves the type unspecified",
            {"event": {"category": []}},
            "type-empty-categories",
        ),
        ok(
            "unspecified",
            "a string 'event' is not an ECS object and is ignored",
            {"event": "login"},
            "type-event-string-ignored",
        ),
        ok(
            "x",
            "event.outcome success is understood (no default rule reads it)",
            {"event_type": "x", "event": {"outcome": "success"}},
            "type-outcome-success",
        ),
        ok(
            "x",
            "event.outcome is case-insensitive",
            {"event_type": "x", "event": {"outcome": "FAILURE"}},
            "type-outcome-upper",
        ),
        Spec(
            "type-outcome-bogus",
            "event.outcome outside success/failure/unknown is refused",
            {"event": {"outcome": "maybe"}},
            Reject("EVENT_INVALID", "event.outcome"),
        ),
        Spec(
            "type-number",
            "event_type must be text",
            {"event_type": 4624},
            Reject("EVENT_INVALID", "event_type must be a string"),
        ),
        Spec(
            "type-too-long",
            "257 characters is over the text limit",
            {"event_type": "a" * 257},
            Reject("EVENT_INVALID", "event_type exceeds"),
        ),
        Spec(
            "type-category-blank",
            "a blank category is refused",
            {"event": {"category": ["network", " "]}},
            Reject("EVENT_INVALID", "event.category"),
        ),
        Spec(
            "type-category-number",
            "a numeric category is refused",
            {"event": {"category": 5}},
            Reject("EVENT_INVALID", "event.category"),
        ),
        Spec(
            "type-category-too-many",
            "more than 32 categories is refused",
            {"event": {"category": ["c"] * 33}},
            Reject("EVENT_INVALID", "event.category"),
        ),
        Spec(
            "type-action-number",
            "a recognized ECS object's fields must have the right type",
            {"event": {"action": 7}},
            Reject("EVENT_INVALID", "event.action"),
        ),
    ]


def _sensor_names() -> list[Spec]:
    def ok(case_id: str, why: str, event: dict[str, Any], sensor: str) -> Spec:
        return Spec(
            case_id,
            why,
            {"event_type": "ping", **event},
            _x("none", 0, ALLOW, et="ping", sensor=sensor),
        )

    return [
        ok("sensor-string", "top-level source is the sensor name", {"source": "fw-01"}, "fw-01"),
        ok("sensor-padded", "the sensor name is stripped", {"source": "  fw-01 "}, "fw-01"),
        ok("sensor-blank", "a blank source is absent", {"source": " "}, "unspecified"),
        ok(
            "sensor-observer",
            "ECS observer.name names the sensor when source is ECS",
            {"source": {"ip": IP}, "observer": {"name": "obs-1"}},
            "obs-1",
        ),
        ok("sensor-agent", "ECS agent.name", {"agent": {"name": "filebeat-3"}}, "filebeat-3"),
        ok("sensor-host", "ECS host.name", {"payload": {"host": {"name": "web01"}}}, "web01"),
        ok(
            "sensor-observer-first",
            "observer beats agent beats host",
            {"host": {"name": "h"}, "agent": {"name": "a"}, "observer": {"name": "o"}},
            "o",
        ),
        ok(
            "sensor-host-string-ignored",
            "a string host in payload is not ECS",
            {"payload": {"host": "web01"}},
            "unspecified",
        ),
        ok("sensor-unicode", "a non-ASCII sensor name", {"source": "传感器-北京"}, "传感器-北京"),
        ok(
            "sensor-256",
            "256 characters is the longest sensor name",
            {"source": "s" * 256},
            "s" * 256,
        ),
        Spec(
            "sensor-257",
            "257 characters is refused",
            {"source": "s" * 257},
            Reject("EVENT_INVALID", "source exceeds"),
        ),
        Spec(
            "sensor-number",
            "source must be a string or an ECS object",
            {"source": 12},
            Reject("EVENT_INVALID", "source must be a string or an ECS source object"),
        ),
    ]


# --------------------------------------------------------------------------- clock


def _iso(delta_us: int) -> str:
    """NOW minus ``delta_us`` microseconds as ISO 8601 (positive: in the past)."""
    return (NOW_DT - timedelta(microseconds=delta_us)).isoformat().replace("+00:00", "Z")


def _clock() -> list[Spec]:
    def ts(case_id: str, why: str, value: Any, drift: int, key: str = "timestamp") -> Spec:
        event: dict[str, Any] = {"event_type": "ping"}
        if key == "payload":
            event["payload"] = {"timestamp": value}
        else:
            event[key] = value
        stale = abs(drift) > 300_000
        return Spec(case_id, why, event, _x("none", 0, ALLOW, et="ping", drift=drift, stale=stale))

    def bad(case_id: str, why: str, value: Any) -> Spec:
        return Spec(case_id, why, {"timestamp": value}, Reject("TIMESTAMP_INVALID", "timestamp"))

    return [
        Spec(
            "clock-none",
            "no timestamp: drift null, never 0",
            {"event_type": "ping"},
            _x("none", 0, ALLOW, et="ping"),
        ),
        ts("clock-zero", "an event stamped exactly now has drift 0", NOW, 0),
        ts(
            "clock-skew-edge-past",
            "exactly 300 s old is within the skew window",
            _iso(300_000_000),
            300_000,
        ),
        ts("clock-skew-over-past", "300.001 s old is stale", _iso(300_001_000), 300_001),
        ts(
            "clock-skew-edge-future",
            "exactly 300 s ahead is within the window",
            _iso(-300_000_000),
            -300_000,
        ),
        ts(
            "clock-skew-over-future",
            "300.001 s ahead is stale, with a negative drift",
            _iso(-300_001_000),
            -300_001,
        ),
        ts("clock-epoch-seconds", "epoch seconds", NOW_S - 60, 60_000),
        ts("clock-epoch-float", "fractional epoch seconds", NOW_S - 0.5, 500),
        ts("clock-epoch-ms", "numbers above 10**11 are epoch milliseconds", NOW_S * 1000 - 1, 1),
        ts("clock-epoch-ms-future", "epoch milliseconds in the future", NOW_S * 1000 + 1000, -1000),
        ts("clock-at-timestamp", "ECS @timestamp", _iso(30_000_000), 30_000, key="@timestamp"),
        ts("clock-payload", "payload timestamp", _iso(45_000_000), 45_000, key="payload"),
        Spec(
            "clock-top-over-at",
            "top-level timestamp beats @timestamp",
            {"timestamp": _iso(1_000_000), "@timestamp": _iso(900_000_000)},
            _x("none", 0, ALLOW, drift=1_000),
        ),
        ts("clock-naive", "a naive ISO time is UTC", "2025-06-01T11:59:00", 60_000),
        ts("clock-offset", "an offset is honoured", "2025-06-01T13:59:00+02:00", 60_000),
        ts("clock-half-even-0", "0.5 ms rounds half to even: 0", _iso(500), 0),
        ts("clock-half-even-2", "1.5 ms rounds half to even: 2", _iso(1_500), 2),
        ts("clock-half-even-2b", "2.5 ms rounds half to even: 2", _iso(2_500), 2),
        ts("clock-half-even-neg", "-1.5 ms rounds half to even: -2", _iso(-1_500), -2),
        ts(
            "clock-epoch-zero",
            "the epoch itself: a huge, true drift (never zeroed)",
            0,
            NOW_S * 1000,
        ),
        ts(
            "clock-far-future",
            "year 9999: a huge negative drift",
            "9999-12-31T23:59:59Z",
            -int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - NOW_DT).total_seconds()) * 1000,
        ),
        Spec(
            "clock-stale-brute-force",
            "a stale clock is reported, the decision still stands",
            _auth(timestamp=_iso(3_600_000_000)),
            _x("high", 90, BF, actions=_block(), et="auth", n=5, drift=3_600_000, stale=True),
        ),
        bad("clock-words", "'yesterday' is not a timestamp", "yesterday"),
        bad("clock-bool", "a boolean is not a timestamp", True),
        bad("clock-blank", "a blank timestamp is invalid, not absent", ""),
        bad("clock-month-13", "month 13 is refused", "2025-13-01T00:00:00Z"),
        bad("clock-overflow", "an epoch beyond the representable range is refused", 1e20),
        bad(
            "clock-year-11000", "epoch milliseconds past year 9999 are refused", 300_000_000_000_000
        ),
        bad("clock-list", "a list is not a timestamp", [2025, 6, 1]),
    ]


# --------------------------------------------------------------------------- doctrine


def _doctrine_default() -> list[Spec]:
    def bf(**extra: Any) -> dict[str, Any]:
        return _auth(**extra)

    def hit(**kw: Any) -> Expect:
        return _x("high", 90, BF, actions=_block(), et="auth", n=5, **kw)

    g = {"persona": "guardian", "cls": "SECRET"}
    return [
        Spec(
            "doc-plain-disruptive",
            "no persona or classification: plain doctrine, impact 0.35/0.2",
            bf(),
            hit(),
        ),
        Spec(
            "doc-plain-benign",
            "no persona, nothing disruptive: zero impact",
            {"event_type": "ping"},
            _x("none", 0, ALLOW, et="ping"),
        ),
        Spec(
            "doc-guardian-secret-block",
            "guardian at SECRET keeps its one block and requires approval (ROE, AO)",
            bf(persona="guardian", classification="SECRET"),
            hit(gating="require_approval", roe=True, **g),
        ),
        Spec(
            "doc-guardian-normalized",
            "persona is lower-cased, classification upper-cased",
            bf(persona=" GUARDIAN ", classification="secret"),
            hit(gating="require_approval", roe=True, **g),
        ),
        Spec(
            "doc-guardian-in-payload",
            "persona and classification may sit in payload",
            bf(payload={"persona": "guardian", "classification": "SECRET"}),
            hit(gating="require_approval", roe=True, **g),
        ),
        Spec(
            "doc-guardian-implicit",
            "guardian gating applies to the implicit rule's block too",
            {
                "event_type": "x",
                "src_ip": IP,
                "failures": 10,
                "persona": "guardian",
                "classification": "SECRET",
            },
            _x(
                "high",
                90,
                IMPLICIT,
                actions=_block(),
                et="x",
                n=10,
                gating="require_approval",
                roe=True,
                **g,
            ),
        ),
        Spec(
            "doc-guardian-secret-benign",
            "guardian at SECRET with nothing to do: ROE, allow",
            {"event_type": "ping", "persona": "guardian", "classification": "SECRET"},
            _x("none", 0, ALLOW, et="ping", roe=True, **g),
        ),
        Spec(
            "doc-guardian-secret-missing-count",
            "guardian at SECRET, a rule without mitigation: nothing disruptive to approve",
            {"event_type": "bruteforce", "persona": "guardian", "classification": "SECRET"},
            _x("low", 40, MISSING, et="bruteforce", roe=True, **g),
        ),
        Spec(
            "doc-guardian-top-secret",
            "guardian doctrine is bound to SECRET only",
            bf(persona="guardian", classification="TOP SECRET"),
            hit(persona="guardian", cls="TOP SECRET"),
        ),
        Spec(
            "doc-guardian-confidential",
            "guardian at CONFIDENTIAL: doctrine does not apply",
            bf(persona="guardian", classification="confidential"),
            hit(persona="guardian", cls="CONFIDENTIAL"),
        ),
        Spec(
            "doc-guardian-unclassified",
            "guardian without classification: doctrine n/a",
            bf(persona="guardian"),
            hit(persona="guardian"),
        ),
        Spec(
            "doc-sentinel-block",
            "sentinel caps at 3 disruptive: one block is kept, no gate",
            bf(persona="sentinel"),
            hit(persona="sentinel"),
        ),
        Spec(
            "doc-sentinel-secret",
            "sentinel ignores classification",
            bf(persona="Sentinel", classification="SECRET"),
            hit(persona="sentinel", cls="SECRET"),
        ),
        Spec(
            "doc-unknown-persona",
            "an unknown persona is recorded but changes nothing",
            bf(persona="auditor", classification="SECRET"),
            hit(persona="auditor", cls="SECRET"),
        ),
        Spec(
            "doc-classification-only",
            "a classification without persona is recorded",
            bf(classification="secret"),
            hit(cls="SECRET"),
        ),
        Spec(
            "doc-persona-blank",
            "a blank persona is absent: plain doctrine",
            bf(persona="  "),
            hit(),
        ),
        Spec(
            "doc-persona-number",
            "persona must be text",
            bf(persona=1),
            Reject("EVENT_INVALID", "persona must be a string"),
        ),
        Spec(
            "doc-classification-list",
            "classification must be text",
            bf(classification=["SECRET"]),
            Reject("EVENT_INVALID", "classification"),
        ),
    ]


def _doctrine_fixture() -> list[Spec]:
    def ev(flags: tuple[str, ...] = (), user: str | None = "alice", **extra: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"source": "edr", "event_type": "incident", "src_ip": IP}
        if user is not None:
            event["user"] = user
        ecs: dict[str, Any] = {}
        if "outcome" in flags:
            ecs["outcome"] = "failure"
        if "malware" in flags:
            ecs["category"] = ["process", "malware"]
        if ecs:
            event["event"] = ecs
        payload = {f: True for f in flags if f in ("block_src", "block_user", "terminate")}
        if payload:
            event["payload"] = payload
        event.update(extra)
        return event

    four = ("outcome", "block_src", "block_user", "malware", "terminate")
    all_rules = (
        "alert_failure_outcome",
        "block_src",
        "block_src_again",
        "block_user",
        "quarantine_malware",
        "terminate_src",
    )
    all_actions = (
        "alert:None",
        f"block_ip:{IP}",
        "block:alice",
        "quarantine:alice",
        f"terminate:{IP}",
    )
    all_reasons = (
        "failed outcome for alice",
        f"block {IP}",
        "block user alice",
        "malware on alice",
        f"end {IP}",
    )
    full = (0.35, 0.2)

    def spec(case_id: str, why: str, event: dict[str, Any], expect: Expect) -> Spec:
        return Spec(case_id, why, event, expect, policy="doctrine")

    def x(
        score: int,
        rules: tuple[str, ...],
        actions: tuple[str, ...],
        reasons: tuple[str, ...],
        **kw: Any,
    ) -> Expect:
        return Expect(
            level_of(score),
            score,
            rules,
            actions,
            et="incident",
            sensor="edr",
            reasons=reasons,
            **kw,
        )

    return [
        spec(
            "fx-doc-nothing",
            "fixture: no flag, only the fallback",
            ev(),
            x(0, (ALLOW,), (), (), impact=(0.0, 0.0)),
        ),
        spec(
            "fx-doc-dedup",
            "two rules asking to block the same IP yield one block",
            ev(("block_src",)),
            x(
                15,
                ("block_src", "block_src_again"),
                (f"block_ip:{IP}",),
                (f"block {IP}",),
                impact=full,
            ),
        ),
        spec(
            "fx-doc-all-plain",
            "no persona: all five mitigations, in rule order",
            ev(four),
            x(60, all_rules, all_actions, all_reasons, impact=full),
        ),
        spec(
            "fx-doc-guardian-cap",
            "guardian/SECRET keeps the first disruptive action and every non-disruptive one; "
            "limited impact is reduced by 0.10/0.05 and approval is required",
            ev(four, persona="guardian", classification="SECRET"),
            x(
                60,
                all_rules,
                all_actions[:2],
                all_reasons[:2],
                gating="require_approval",
                roe=True,
                limited=True,
                persona="guardian",
                cls="SECRET",
                impact=(0.25, 0.15),
            ),
        ),
        spec(
            "fx-doc-guardian-one",
            "guardian/SECRET with one disruptive action: not limited",
            ev(("block_user",), persona="guardian", classification="SECRET"),
            x(
                10,
                ("block_user",),
                ("block:alice",),
                ("block user alice",),
                gating="require_approval",
                roe=True,
                persona="guardian",
                cls="SECRET",
                impact=full,
            ),
        ),
        spec(
            "fx-doc-guardian-alert-only",
            "guardian/SECRET with only an alert: allow",
            ev(("outcome",), persona="guardian", classification="SECRET"),
            x(
                5,
                ("alert_failure_outcome",),
                ("alert:None",),
                ("failed outcome for alice",),
                roe=True,
                persona="guardian",
                cls="SECRET",
                impact=(0.0, 0.0),
            ),
        ),
        spec(
            "fx-doc-guardian-unclassified",
            "guardian without SECRET: nothing is capped",
            ev(four, persona="guardian"),
            x(60, all_rules, all_actions, all_reasons, persona="guardian", impact=full),
        ),
        spec(
            "fx-doc-sentinel-cap",
            "sentinel keeps three disruptive actions, drops the fourth; "
            "no reduction is configured so impact stays 0.35/0.2",
            ev(four, persona="sentinel"),
            x(
                60,
                all_rules,
                all_actions[:4],
                all_reasons[:4],
                limited=True,
                persona="sentinel",
                impact=full,
            ),
        ),
        spec(
            "fx-doc-sentinel-three",
            "sentinel with exactly three disruptive: not limited",
            ev(("block_src", "block_user", "malware"), persona="sentinel"),
            x(
                45,
                ("block_src", "block_src_again", "block_user", "quarantine_malware"),
                all_actions[1:4],
                all_reasons[1:4],
                persona="sentinel",
                impact=full,
            ),
        ),
        spec(
            "fx-doc-observer-zero-cap",
            "cap 0 removes every disruptive action; the 0.5 reduction clamps impact at 0; "
            "with nothing disruptive left there is nothing to approve",
            ev(four, persona="observer", classification="UNCLASSIFIED"),
            x(
                60,
                all_rules,
                all_actions[:1],
                all_reasons[:1],
                roe=True,
                limited=True,
                persona="observer",
                cls="UNCLASSIFIED",
                impact=(0.0, 0.0),
            ),
        ),
        spec(
            "fx-doc-observer-benign",
            "observer with nothing proposed: not limited",
            ev(persona="observer"),
            x(0, (ALLOW,), (), (), roe=True, persona="observer", impact=(0.0, 0.0)),
        ),
        spec(
            "fx-doc-approver",
            "approval without a cap: every action kept, approval required",
            ev(("block_src", "terminate"), persona="approver", classification="CONFIDENTIAL"),
            x(
                25,
                ("block_src", "block_src_again", "terminate_src"),
                (f"block_ip:{IP}", f"terminate:{IP}"),
                (f"block {IP}", f"end {IP}"),
                gating="require_approval",
                persona="approver",
                cls="CONFIDENTIAL",
                impact=full,
            ),
        ),
        spec(
            "fx-doc-approver-unlisted",
            "approver outside its classifications: allow",
            ev(("block_src",), persona="approver", classification="RESTRICTED"),
            x(
                15,
                ("block_src", "block_src_again"),
                (f"block_ip:{IP}",),
                (f"block {IP}",),
                persona="approver",
                cls="RESTRICTED",
                impact=full,
            ),
        ),
        spec(
            "fx-doc-approver-alert",
            "approver with only an alert: nothing to approve",
            ev(("outcome",), persona="approver", classification="SECRET"),
            x(
                5,
                ("alert_failure_outcome",),
                ("alert:None",),
                ("failed outcome for alice",),
                persona="approver",
                cls="SECRET",
                impact=(0.0, 0.0),
            ),
        ),
    ]


def _user_and_outcome_fixture() -> list[Spec]:
    def spec(case_id: str, why: str, event: dict[str, Any], expect: Expect | Reject) -> Spec:
        return Spec(case_id, why, event, expect, policy="doctrine")

    def blocked(user: str) -> Expect:
        return Expect(
            level_of(10),
            10,
            ("block_user",),
            (f"block:{user}",),
            et="x",
            reasons=(f"block user {user}",),
            impact=(0.35, 0.2),
        )

    def alerted(user: str) -> Expect:
        return Expect(
            level_of(5),
            5,
            ("alert_failure_outcome",),
            ("alert:None",),
            et="x",
            reasons=(f"failed outcome for {user}",),
            impact=(0.0, 0.0),
        )

    flag = {"block_user": True}
    return [
        spec(
            "fx-user-user",
            "user name from 'user'",
            {"event_type": "x", "user": "bob", "payload": flag},
            blocked("bob"),
        ),
        spec(
            "fx-user-username",
            "user name from 'username'",
            {"event_type": "x", "username": "bob", "payload": flag},
            blocked("bob"),
        ),
        spec(
            "fx-user-user_name",
            "user name from 'user_name'",
            {"event_type": "x", "user_name": "bob", "payload": flag},
            blocked("bob"),
        ),
        spec(
            "fx-user-payload",
            "user name from payload",
            {"event_type": "x", "payload": {"username": "bob", "block_user": True}},
            blocked("bob"),
        ),
        spec(
            "fx-user-ecs",
            "ECS user.name",
            {"event_type": "x", "user": {"name": "bob"}, "payload": flag},
            blocked("bob"),
        ),
        spec(
            "fx-user-ecs-payload",
            "ECS user.name inside payload",
            {"event_type": "x", "payload": {"user": {"name": "bob"}, "block_user": True}},
            blocked("bob"),
        ),
        spec(
            "fx-user-order",
            "'user' beats 'username'",
            {"event_type": "x", "username": "carol", "user": "bob", "payload": flag},
            blocked("bob"),
        ),
        spec(
            "fx-user-plain-over-ecs",
            "any plain alias beats ECS user.name",
            {
                "event_type": "x",
                "user": {"name": "carol"},
                "payload": {"user_name": "bob", "block_user": True},
            },
            blocked("bob"),
        ),
        spec(
            "fx-user-blank-falls-through",
            "a blank user is absent: the next alias is used",
            {"event_type": "x", "user": " ", "username": "bob", "payload": flag},
            blocked("bob"),
        ),
        spec(
            "fx-user-unicode",
            "a non-ASCII user name is a target as is",
            {"event_type": "x", "user": "Zoë-山田", "payload": flag},
            blocked("Zoë-山田"),
        ),
        spec(
            "fx-user-missing",
            "no user: the user-targeted rule cannot fire",
            {"event_type": "x", "payload": flag},
            Expect("none", 0, (ALLOW,), et="x", reasons=(), impact=(0.0, 0.0)),
        ),
        spec(
            "fx-user-number",
            "a user name must be text",
            {"event_type": "x", "username": 1001},
            Reject("EVENT_INVALID", "username"),
        ),
        spec(
            "fx-user-ecs-number",
            "ECS user.name must be text",
            {"event_type": "x", "user": {"name": 1001}},
            Reject("EVENT_INVALID", "user.name"),
        ),
        spec(
            "fx-outcome-failure",
            "ECS event.outcome failure fires the outcome rule",
            {"event_type": "x", "user": "bob", "event": {"outcome": "failure"}},
            alerted("bob"),
        ),
        spec(
            "fx-outcome-upper",
            "outcome is lower-cased first",
            {"event_type": "x", "user": "bob", "event": {"outcome": " Failure "}},
            alerted("bob"),
        ),
        spec(
            "fx-outcome-payload",
            "ECS event object inside payload",
            {"event_type": "x", "user": "bob", "payload": {"event": {"outcome": "failure"}}},
            alerted("bob"),
        ),
        spec(
            "fx-outcome-no-user",
            "a reason field that is absent renders as '-'",
            {"event_type": "x", "event": {"outcome": "failure"}},
            alerted("-"),
        ),
        spec(
            "fx-outcome-success",
            "success does not fire it",
            {"event_type": "x", "event": {"outcome": "success"}},
            Expect("none", 0, (ALLOW,), et="x", reasons=(), impact=(0.0, 0.0)),
        ),
        spec(
            "fx-outcome-unknown",
            "unknown does not fire it",
            {"event_type": "x", "event": {"outcome": "unknown"}},
            Expect("none", 0, (ALLOW,), et="x", reasons=(), impact=(0.0, 0.0)),
        ),
        spec(
            "fx-category-contains",
            "a category anywhere in the list matches 'contains'",
            {"event_type": "x", "user": "bob", "event": {"category": ["network", "MALWARE"]}},
            Expect(
                level_of(20),
                20,
                ("quarantine_malware",),
                ("quarantine:bob",),
                et="x",
                reasons=("malware on bob",),
                impact=(0.35, 0.2),
            ),
        ),
    ]


# --------------------------------------------------------------------------- thresholds


def _thresholds_fixture() -> list[Spec]:
    bits = (64, 32, 16, 8, 4, 2, 1)

    def spec(score: int, why: str, minus: bool = False) -> Spec:
        total = score + (50 if minus else 0)
        on = [b for b in bits if total & b]
        payload: dict[str, Any] = {f"p{b}": True for b in on}
        rules = [f"p{b}" for b in sorted(on)]
        if minus:
            payload["minus50"] = True
            rules.append("minus50")
        clamped = min(max(score, 0), 100)
        case_id = f"fx-score-{total}-minus50" if minus else f"fx-score-{score}"
        return Spec(
            case_id,
            why,
            {"event_type": "probe", "payload": payload},
            Expect(
                level_of(clamped),
                clamped,
                tuple(rules) or (ALLOW,),
                et="probe",
                reasons=(),
                impact=(0.0, 0.0),
            ),
            policy="thresholds",
        )

    return [
        spec(0, "nothing fired: score 0 is none"),
        spec(1, "1 is none"),
        spec(19, "19 is the highest none"),
        spec(20, "20 is exactly low"),
        spec(21, "21 is low"),
        spec(49, "49 is the highest low"),
        spec(50, "50 is exactly medium"),
        spec(51, "51 is medium"),
        spec(79, "79 is the highest medium"),
        spec(80, "80 is exactly high"),
        spec(81, "81 is high"),
        spec(94, "94 is the highest high"),
        spec(95, "95 is exactly critical"),
        spec(96, "96 is critical"),
        spec(99, "99 is critical"),
        spec(100, "100 is the maximum score"),
        spec(101, "101 is clamped to 100"),
        spec(127, "127 is clamped to 100"),
        spec(-50, "a negative sum is clamped to 0", minus=True),
        spec(-1, "-1 (49 - 50) is clamped to 0", minus=True),
        spec(0, "50 - 50 is exactly 0", minus=True),
        spec(20, "70 - 50 is exactly low", minus=True),
        spec(77, "127 - 50 is 77: medium", minus=True),
    ]


# --------------------------------------------------------------------------- envelope


def _envelope() -> list[Spec]:
    return [
        Spec(
            "env-event-list",
            "an event must be an object",
            [1, 2],
            Reject("EVENT_INVALID", "event must be an object"),
        ),
        Spec(
            "env-event-string",
            "an event must be an object",
            "auth",
            Reject("EVENT_INVALID", "event must be an object"),
        ),
        Spec(
            "env-payload-list",
            "payload must be an object",
            {"payload": []},
            Reject("EVENT_INVALID", "payload must be an object"),
        ),
        Spec(
            "env-event-id-space",
            "an event_id with a space is refused",
            {"event_id": "bad id"},
            Reject("EVENT_ID_INVALID", "event_id"),
        ),
        Spec(
            "env-event-id-number",
            "event_id must be a string",
            {"event_id": 4624},
            Reject("EVENT_ID_INVALID", "event_id must be a string"),
        ),
        Spec(
            "env-event-id-long",
            "129 characters is too long",
            {"event_id": "e" * 129},
            Reject("EVENT_ID_INVALID", "event_id"),
        ),
        Spec(
            "env-event-id-in-payload",
            "a payload's own EventID/event_id is not the envelope's",
            {"event_type": "x", "payload": {"event_id": "not an id!", "EventID": 4625}},
            _x("none", 0, ALLOW, et="x"),
        ),
        Spec(
            "env-tenant-number",
            "tenant_id must be a short string",
            {"tenant_id": 7},
            Reject("EVENT_INVALID", "tenant_id"),
        ),
    ]


def specs() -> list[Spec]:
    return [
        *_brute_force(),
        *_implicit(),
        *_missing_count(),
        *_llm(),
        *_default_allow(),
        *_ip_aliases(),
        *_count_aliases(),
        *_event_type_sources(),
        *_sensor_names(),
        *_clock(),
        *_doctrine_default(),
        *_doctrine_fixture(),
        *_user_and_outcome_fixture(),
        *_thresholds_fixture(),
        *_envelope(),
        *_stateful(),
    ]


def _stateful() -> list[Spec]:
    """The windowed rules, with their window state given explicitly (as evaluate takes it)."""
    failed = {"source": "sshd", "event_type": "ssh_login_failed", "src_ip": IP}
    sprayed = {**failed, "user": "carol"}
    burst_hit = {BURST: {"count": 10, "armed": True}}
    return [
        Spec(
            "burst-threshold",
            "the 10th failed login in the window (no count from the sensor) blocks the address",
            failed,
            _x("high", 90, BURST, actions=_block(), et="ssh_login_failed"),
            windows=burst_hit,
        ),
        Spec(
            "burst-below-threshold",
            "9 failed logins in the window are not a burst yet",
            failed,
            _x("none", 0, ALLOW, et="ssh_login_failed"),
            windows={BURST: {"count": 9, "armed": False}},
        ),
        Spec(
            "burst-cooling",
            "inside the cooldown the rule still fires but proposes no second block",
            failed,
            _x("high", 90, BURST, et="ssh_login_failed"),
            windows={BURST: {"count": 14, "armed": False}},
        ),
        Spec(
            "burst-no-state",
            "without window state (a replay) the windowed rule does not fire",
            failed,
            _x("none", 0, ALLOW, et="ssh_login_failed"),
        ),
        Spec(
            "burst-success-ignored",
            "an ECS success outcome is not a failed login, whatever the window says",
            {**failed, "event_type": "login", "event": {"outcome": "success"}},
            _x("none", 0, ALLOW, et="login"),
            windows=burst_hit,
        ),
        Spec(
            "burst-after-brute-force",
            "the sensor's own count already fired brute_force: the burst rule stays quiet",
            {**failed, "event_type": "auth.failed", "failed_auths": 7},
            _x("high", 90, BF, actions=_block(), et="auth.failed", n=7),
            windows=burst_hit,
        ),
        Spec(
            "spray-threshold",
            "failed logins for 5 distinct users from one address: password spraying",
            sprayed,
            _x("high", 85, SPRAY, actions=_block(), et="ssh_login_failed"),
            windows={SPRAY: {"count": 5, "armed": True}},
        ),
        Spec(
            "spray-and-burst",
            "both windows crossed: one block (same target), the score clamped to 100",
            sprayed,
            _x(
                "critical",
                100,
                BURST,
                SPRAY,
                actions=_block(),
                et="ssh_login_failed",
                reasons=(f"10 failed logins within 60 s from {IP}",),
            ),
            windows={**burst_hit, SPRAY: {"count": 6, "armed": True}},
        ),
    ]


# --------------------------------------------------------------------------- review checks


class ClaimError(AssertionError):
    """The engine disagrees with what a reviewer claimed for a case."""


def _sensor(spec: Spec, expect: Expect) -> str:
    if expect.sensor is not None:
        return expect.sensor
    source = spec.event.get("source") if isinstance(spec.event, dict) else None
    return source.strip() if isinstance(source, str) and source.strip() else "unspecified"


def _impact(spec: Spec, expect: Expect) -> tuple[float, float]:
    if expect.impact is not None:
        return expect.impact
    # Default policy: both block rules are disruptive; no persona cap can remove one block.
    return (0.35, 0.2) if expect.actions else (0.0, 0.0)


def _reasons(spec: Spec, expect: Expect) -> list[str]:
    if expect.reasons is not None:
        return list(expect.reasons)
    out = []
    for rule in expect.rules:
        target = expect.actions[0].split(":", 1)[1] if expect.actions else "?"
        if rule == BF:
            out.append(f"{expect.n} failed auth attempts from {target}")
        elif rule == IMPLICIT:
            out.append(f"{expect.n} failed auth attempts from {target} (implicit: {expect.et})")
        elif rule == BURST and expect.actions:
            out.append(f"10 failed logins within 60 s from {target}")
        elif rule == SPRAY and expect.actions:
            out.append(f"failed logins for 5 distinct users within 300 s from {target}")
    return out


def _claimed(spec: Spec, expect: Expect, policy: Policy) -> dict[str, Any]:
    """The decision's reviewed projection, built only from the claims and the issue."""
    summary = (
        f"{expect.et} from {_sensor(spec, expect)}: {expect.level} ({expect.score}) — "
        + ", ".join(expect.rules)
        + ("; approval required" if expect.gating == "require_approval" else "")
        + ("; input: " + "; ".join(expect.notes) if expect.notes else "")
    )
    service, user = _impact(spec, expect)
    out: dict[str, Any] = {
        "threat_level": expect.level,
        "score": expect.score,
        "level_from_thresholds": level_of(expect.score),
        "rules_triggered": list(expect.rules),
        "actions": list(expect.actions),
        "reasons": _reasons(spec, expect),
        "summary": summary,
        "gating_decision": expect.gating,
        "roe_applied": expect.roe,
        "ao_required": expect.roe,
        "disruption_limited": expect.limited,
        "persona": expect.persona,
        "classification": expect.cls,
        "service_impact": service,
        "user_impact": user,
        "clock_drift_ms": expect.drift,
        "clock_stale": expect.stale,
        "policy_hash": policy.hash,
        "policy_version": policy.version,
        "explain_mirrors": True,
    }
    if spec.policy == DEFAULT_POLICY:
        out["score_from_points"] = min(100, sum(_POINTS[r] for r in expect.rules))
        out["anomaly_score"] = max(
            (_ANOMALY[r] for r in expect.rules if r in _ANOMALY), default=0.1
        )
        out["ai_adversarial_score"] = 0.7 if LLM in expect.rules else 0.0
        out["confidences"] = [_CONFIDENCE[r] for r in expect.rules if r in _CONFIDENCE][
            : len(expect.actions)
        ]
        out["ttls"] = [3600] * len(expect.actions)
    return out


def _observed(spec: Spec, d: dict[str, Any], claimed: dict[str, Any]) -> dict[str, Any]:
    tie_d = d["tie_d"]
    explain = d["explain"]
    out: dict[str, Any] = {
        "threat_level": d["threat_level"],
        "score": d["score"],
        "level_from_thresholds": d["threat_level"],
        "rules_triggered": d["rules_triggered"],
        "actions": [f"{m['action']}:{m['target']}" for m in d["mitigations"]],
        "reasons": [m["reason"] for m in d["mitigations"] if m["action"] != "alert"]
        if spec.policy == DEFAULT_POLICY
        else [m["reason"] for m in d["mitigations"]],
        "summary": explain["summary"],
        **{
            k: tie_d[k]
            for k in (
                "gating_decision",
                "roe_applied",
                "ao_required",
                "disruption_limited",
                "persona",
                "classification",
                "service_impact",
                "user_impact",
                "policy_version",
            )
        },
        "clock_drift_ms": d["clock_drift_ms"],
        "clock_stale": d["clock_stale"],
        "policy_hash": d["policy_hash"] if d["policy_hash"] == tie_d["policy_hash"] else "split",
        "explain_mirrors": explain["rules_triggered"] == d["rules_triggered"]
        and explain["score"] == d["score"]
        and explain["anomaly_score"] == d["anomaly_score"]
        and explain["tie_d"] == tie_d,
    }
    if "score_from_points" in claimed:
        out["score_from_points"] = d["score"]
        out["anomaly_score"] = d["anomaly_score"]
        out["ai_adversarial_score"] = d["ai_adversarial_score"]
        out["confidences"] = [m["confidence"] for m in d["mitigations"]]
        out["ttls"] = [m["ttl_seconds"] for m in d["mitigations"]]
    return out


def _review(spec: Spec, outcome: dict[str, Any], policy: Policy) -> list[str]:
    """Every way the engine's outcome disagrees with the claims (empty: agreed)."""
    expect = spec.expect
    if isinstance(expect, Reject):
        error = outcome.get("error")
        if error is None:
            return [f"expected {expect.code} ({expect.blames}), got a decision"]
        problems = []
        if error["error_code"] != expect.code:
            problems.append(f"error_code {error['error_code']} != {expect.code}")
        if expect.blames not in error["reason"]:
            problems.append(f"reason {error['reason']!r} does not name {expect.blames!r}")
        return problems
    if "decision" not in outcome:
        return [f"expected a decision, got {outcome['error']}"]
    claimed = _claimed(spec, expect, policy)
    observed = _observed(spec, outcome["decision"], claimed)
    return [
        f"{key}: claimed {claimed[key]!r}, engine {observed[key]!r}"
        for key in claimed
        if claimed[key] != observed[key]
    ]


def build(corpus: Path) -> bytes:
    """The golden file's bytes for :func:`specs`; ClaimError if any claim fails."""
    policies: dict[str, Policy] = {}
    lines: list[bytes] = []
    problems: list[str] = []
    seen: set[str] = set()
    for spec in specs():
        if spec.id in seen:
            problems.append(f"{spec.id}: duplicate id")
        seen.add(spec.id)
        policy = policy_for(spec.policy, corpus, policies)
        case = Case(
            spec.id,
            spec.why,
            spec.policy,
            datetime.fromisoformat(spec.now),
            spec.event,
            {},
            0,
            parse_windows(spec.windows, spec.id),
        )
        encoded = run_case(case, policy)
        outcome = orjson.loads(encoded)
        problems += [f"{spec.id}: {p}" for p in _review(spec, outcome, policy)]
        line: dict[str, Any] = {"id": spec.id, "why": spec.why}
        if spec.policy != DEFAULT_POLICY:
            line["policy"] = spec.policy
        line |= {"now": spec.now, "event": spec.event}
        if spec.windows is not None:
            line["windows"] = spec.windows
        line["expected"] = outcome
        lines.append(orjson.dumps(line))
    if problems:
        raise ClaimError("\n".join(problems))
    return b"\n".join(lines) + b"\n"


def main(argv: list[str]) -> int:
    corpus = default_corpus_path()
    data = build(corpus)
    if argv == ["--write"]:
        corpus.write_bytes(data)
        print(f"wrote {len(data.splitlines())} cases to {corpus}")
        return 0
    if argv == ["--check"]:
        same = corpus.exists() and corpus.read_bytes() == data
        print("golden corpus is current" if same else "golden corpus differs: review, --write")
        return 0 if same else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
