"""Policy documents: load (YAML, safe_load only), validate, fingerprint, compile.

A policy is data with a fingerprint: ``hash`` is the lowercase hex SHA-256 of the RFC 8785
(JCS) encoding of the document as parsed from YAML, so comments and formatting do not
change it but any semantic change does, and every decision can name exactly which
document produced it. Validation is strict (unknown keys, wrong types, impossible
comparisons are refused with a message naming the rule and field) because a typo in a
policy otherwise becomes a rule that silently never fires.

Everything evaluation needs is precomputed here: compiled condition closures, a
score-to-level lookup table, reason templates split into parts, the set of disruptive
actions, per-persona doctrine.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

import rfc8785

from ._conditions import (
    EVENT_FIELDS,
    Getter,
    PolicyError,
    Pred,
    compile_condition,
    field_getter,
    guarantees_absent,
    guarantees_present,
)
from ._model import THREAT_LEVELS, Event, ThreatLevel, TieD, WindowProbe
from ._schema import schema_errors

__all__ = ["Policy", "PolicyError", "check_json", "policy_from_document"]

_RULE_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.:\-]{0,63}")
_ACTION_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_TOP_KEYS: Final = frozenset(
    {
        "version",
        "description",
        "max_score",
        "thresholds",
        "clock_skew_seconds",
        "default_anomaly_score",
        "auth_event_types",
        "mitigations",
        "rules",
        "doctrine",
        "packs",
    }
)
_RULE_KEYS: Final = frozenset(
    {
        "id",
        "description",
        "points",
        "when",
        "unless_fired",
        "fallback",
        "mitigation",
        "anomaly_score",
        "ai_adversarial_score",
        "window",
    }
)
_WINDOW_KEYS: Final = frozenset(
    {"key", "count", "seconds", "distinct", "cooldown_seconds", "weight"}
)
_WINDOW_FIELDS: Final = ("src_ip", "src_net", "user", "source")
_MITIGATION_KEYS: Final = frozenset(
    {"action", "target_field", "confidence", "reason", "ttl_seconds"}
)
_MAX_TTL: Final = 86_400 * 366
_PACK_KEYS: Final = frozenset({"name", "version"})
_PERSONA_KEYS: Final = frozenset(
    {
        "classifications",
        "rules_of_engagement",
        "max_disruptive",
        "require_approval",
        "limited_impact_reduction",
    }
)
_DOCTRINE_KEYS: Final = frozenset({"disruptive_actions", "impact", "personas"})
#: Fields a reason template may name: normalized, length-bounded event fields only, so a
#: reason can never carry an unbounded payload string into the ledger.
_TEMPLATE_FIELDS: Final = frozenset(EVENT_FIELDS)
_MISSING_TEXT: Final = "-"


# --------------------------------------------------------------------------- compiled


@dataclass(frozen=True, slots=True)
class CompiledMitigation:
    action: str
    target: Getter | None
    confidence: float
    ttl_seconds: int
    # Alternating literal text and field getters, rendered by joining.
    reason_parts: tuple[str | Getter, ...]
    disruptive: bool


@dataclass(frozen=True, slots=True)
class CompiledWindow:
    """Count matching events per ``key`` over ``seconds`` (distinct ``distinct`` values
    when set); fire at ``threshold``; one mitigation per key per ``cooldown_seconds``."""

    key_field: str
    key: Getter
    distinct_field: str | None
    distinct: Getter | None
    threshold: int
    seconds: int
    cooldown_seconds: int
    # ``weight: failures``: a plain count adds the event's failure count, not 1.
    by_failures: bool = False


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    points: int
    when: Pred
    unless_fired: frozenset[str]
    fallback: bool
    anomaly_score: float | None
    ai_adversarial_score: float | None
    mitigation: CompiledMitigation | None
    window: CompiledWindow | None = None


@dataclass(frozen=True, slots=True)
class PersonaDoctrine:
    classifications: frozenset[str] | None  # None: any classification
    rules_of_engagement: bool
    max_disruptive: int | None  # None: no cap
    require_approval: bool
    service_reduction: float
    user_reduction: float


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    rules: tuple[CompiledRule, ...]
    levels: tuple[ThreatLevel, ...]  # levels[score] for 0 <= score <= max_score
    max_score: int
    clock_skew_ms: int
    default_anomaly_score: float
    base_service_impact: float
    base_user_impact: float
    personas: Mapping[str, PersonaDoctrine]
    # The doctrine outcome for events without persona and classification (most events),
    # built once: index 0 without, index 1 with a disruptive mitigation.
    plain_tie_d: tuple[TieD, TieD]


class Policy:
    """A validated, fingerprinted and compiled policy document.

    ``version`` and ``hash`` identify it in every decision; ``document`` returns a deep
    copy of the parsed data (a copy, so nobody can change the rules behind a fingerprint).
    """

    __slots__ = ("_canonical", "_compiled", "_document", "_windowed", "hash", "version")

    version: str
    hash: str

    def __init__(self, document: Mapping[str, Any]) -> None:
        check_json(document, "policy")
        try:
            canonical = rfc8785.dumps(document)
        except rfc8785.CanonicalizationError as exc:  # e.g. an integer beyond 2**53
            raise PolicyError(f"policy: cannot be canonicalized as JSON: {exc}") from exc
        self._document = copy.deepcopy(dict(document))
        self._canonical = canonical
        self.hash = hashlib.sha256(canonical).hexdigest()
        self.version, self._compiled = _compile(self._document, self.hash)
        self._windowed = tuple(r for r in self._compiled.rules if r.window is not None)

    def window_probes(self, event: Event) -> tuple[WindowProbe, ...]:
        """What the windowed rules observe in ``event``: one probe per rule whose
        conditions match and whose key (and distinct field) the event carries."""
        probes: list[WindowProbe] = []
        for rule in self._windowed:
            window = rule.window
            assert window is not None
            key = window.key(event)
            if key is None or not rule.when(event):
                continue
            member: str | None = None
            if window.distinct is not None:
                value = window.distinct(event)
                if value is None:
                    continue
                member = str(value)
            weight = 1
            if window.by_failures and event.failures is not None:
                # Capped at the threshold: counting past it changes nothing, and a count
                # of 10**9 must not become 10**9 window entries.
                weight = min(max(event.failures, 1), window.threshold)
            probes.append(
                WindowProbe(
                    rule_id=rule.id,
                    key=f"{rule.id}|{key}",
                    member=member,
                    seconds=window.seconds,
                    threshold=window.threshold,
                    cooldown_seconds=window.cooldown_seconds,
                    weight=weight,
                )
            )
        return tuple(probes)

    @property
    def document(self) -> dict[str, Any]:
        return copy.deepcopy(self._document)

    @property
    def canonical_bytes(self) -> bytes:
        """The RFC 8785 encoding that ``hash`` is computed over (for ledgers and audits)."""
        return self._canonical

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and other.hash == self.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return f"Policy(version={self.version!r}, hash={self.hash[:12]}...)"


# --------------------------------------------------------------------------- loading


def policy_from_document(document: object, origin: str = "policy") -> Policy:
    """Build a Policy from already-parsed data (e.g. a document stored per tenant).

    The compiler's checks run first (their messages name the rule and field), then the
    JSON Schema, so a document that reaches evaluation has passed both, whatever its path
    in. Files are loaded by :func:`frostgate.engine.load_policy`, which reports lines.
    """
    if not isinstance(document, Mapping):
        raise PolicyError(f"{origin}: the document must be a mapping at the top level")
    try:
        policy = Policy(document)
    except PolicyError as exc:
        raise PolicyError(f"{origin}: {exc}") from None
    errors = schema_errors(document, "policy")
    if errors:
        raise PolicyError(f"{origin}: " + "; ".join(message for _, message in errors))
    return policy


# --------------------------------------------------------------------------- validation


def check_json(value: object, where: str) -> None:
    """Refuse what YAML can express but JSON (and so the fingerprint) cannot."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PolicyError(f"{where}: key {key!r} is not a string")
            check_json(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError(f"{where}: {value!r} is not a finite number")
    elif value is not None and not isinstance(value, str | int):
        raise PolicyError(
            f"{where}: {type(value).__name__} values are not allowed (quote it as a string)"
        )


def _mapping(value: object, where: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: must be a mapping")
    unknown = set(value) - allowed
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}")
    return value


def _required(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise PolicyError(f"{where}: missing required key {key!r}")
    return doc[key]


def _int(value: object, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PolicyError(f"{where}: must be an integer in {low}..{high}, got {value!r}")
    return value


def _unit(value: object, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise PolicyError(f"{where}: must be a number in 0..1, got {value!r}")
    return float(value)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: must be true or false, got {value!r}")
    return value


def _str_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: must be a list of non-empty strings")
    return value


def _levels(doc: Mapping[str, Any], max_score: int) -> tuple[ThreatLevel, ...]:
    where = "thresholds"
    raw = _mapping(_required(doc, "thresholds", "policy"), where, frozenset(THREAT_LEVELS[1:]))
    bounds = [
        _int(_required(raw, lvl, where), f"{where}.{lvl}", 1, max_score)
        for lvl in THREAT_LEVELS[1:]
    ]
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise PolicyError(f"{where}: must increase strictly (low < medium < high < critical)")
    table: list[ThreatLevel] = []
    for score in range(max_score + 1):
        level_index = sum(1 for b in bounds if score >= b)
        table.append(THREAT_LEVELS[level_index])
    return tuple(table)


def _reason_parts(template: object, where: str) -> tuple[str | Getter, ...]:
    if not isinstance(template, str) or not template:
        raise PolicyError(f"{where}: must be a non-empty string")
    parts: list[str | Getter] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise PolicyError(f"{where}: bad template: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        if name not in _TEMPLATE_FIELDS or spec or conversion:
            allowed = ", ".join(sorted(_TEMPLATE_FIELDS))
            raise PolicyError(f"{where}: placeholder {{{name}}} is not one of: {allowed}")
        parts.append(field_getter(name, {}, where)[0])
    return tuple(parts)


def _compile_mitigation(
    raw: object,
    where: str,
    when: object,
    defaults: Mapping[str, int],
    disruptive: frozenset[str],
) -> CompiledMitigation:
    m = _mapping(raw, where, _MITIGATION_KEYS)
    action = _required(m, "action", where)
    if not isinstance(action, str) or action not in defaults:
        known = ", ".join(sorted(defaults))
        raise PolicyError(f"{where}.action: {action!r} has no entry in mitigations ({known})")
    target: Getter | None = None
    if "target_field" in m:
        name = m["target_field"]
        if not isinstance(name, str) or EVENT_FIELDS.get(name) != "str":
            raise PolicyError(f"{where}.target_field: {name!r} is not a text event field")
        if not guarantees_present(when, name):
            raise PolicyError(
                f"{where}.target_field: the rule can fire without {name!r}; "
                f"add {{field: {name}, op: exists}} to its when.all"
            )
        target = field_getter(name, {}, where)[0]
    return CompiledMitigation(
        action=action,
        target=target,
        confidence=_unit(_required(m, "confidence", where), f"{where}.confidence"),
        ttl_seconds=(
            _int(m["ttl_seconds"], f"{where}.ttl_seconds", 1, _MAX_TTL)
            if "ttl_seconds" in m
            else defaults[action]
        ),
        reason_parts=_reason_parts(_required(m, "reason", where), f"{where}.reason"),
        disruptive=action in disruptive,
    )


def _derived(auth_event_types: frozenset[str]) -> dict[str, Getter]:
    """The derived boolean fields, bound to this policy's auth event types."""

    def auth_like(e: Event) -> bool:
        et = e.event_type
        return et in auth_event_types or "brute" in et or "authentication" in e.ecs_category

    def bruteforce_type(e: Event) -> bool:
        et = e.event_type
        return "bruteforce" in et or "brute_force" in et

    def auth_failure(e: Event) -> bool:
        """An authentication attempt that failed: ECS outcome when given, else the name.

        Broader than ``auth_like`` on purpose: sensors name failed logins in many ways
        (``ssh_login_failed``, ``signin.denied``), and a stateful rule only counts them.
        """
        et = e.event_type
        if not (auth_like(e) or any(marker in et for marker in _AUTH_MARKERS)):
            return False
        if e.ecs_outcome is not None:
            return e.ecs_outcome == "failure"
        return any(marker in et for marker in _FAILURE_MARKERS)

    return {
        "auth_like": auth_like,
        "auth_failure": auth_failure,
        "bruteforce_type": bruteforce_type,
    }


_FAILURE_MARKERS: Final = ("fail", "denied", "invalid", "brute", "reject")
_AUTH_MARKERS: Final = ("login", "logon", "auth", "ssh", "signin", "sign_in", "password")


def _compile_rules(
    raw_rules: object,
    derived: Mapping[str, Getter],
    defaults: Mapping[str, int],
    disruptive: frozenset[str],
    max_score: int,
) -> tuple[CompiledRule, ...]:
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PolicyError("rules: must be a non-empty list")
    seen: set[str] = set()
    fallback_seen: str | None = None
    rules: list[CompiledRule] = []
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, Mapping):
            raise PolicyError(f"rules[{i}]: must be a mapping with id, points and when")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _RULE_ID_RE.fullmatch(rule_id):
            raise PolicyError(f"rules[{i}].id: must match {_RULE_ID_RE.pattern}, got {rule_id!r}")
        where = f"rule {rule_id!r}"
        r = _mapping(raw, where, _RULE_KEYS)
        if rule_id in seen:
            raise PolicyError(f"{where}: duplicate rule id")
        points = _int(_required(r, "points", where), f"{where}.points", -max_score, max_score)
        fallback = _bool(r.get("fallback", False), f"{where}.fallback")
        if fallback_seen is not None and not fallback:
            raise PolicyError(
                f"{where}: comes after fallback rule {fallback_seen!r}; fallbacks must be last"
            )
        if fallback:
            fallback_seen = rule_id
        when_raw = r.get("when", {"all": []})
        when = compile_condition(when_raw, f"{where}.when", derived)
        unless = _str_list(r.get("unless_fired", []), f"{where}.unless_fired")
        for other in unless:
            if other not in seen:
                raise PolicyError(
                    f"{where}.unless_fired: {other!r} is not an earlier rule (rules run in order)"
                )
        mitigation = None
        if "mitigation" in r:
            mitigation = _compile_mitigation(
                r["mitigation"], f"{where}.mitigation", when_raw, defaults, disruptive
            )
        anomaly = r.get("anomaly_score")
        ai = r.get("ai_adversarial_score")
        window = None
        if "window" in r:
            if fallback:
                raise PolicyError(f"{where}.window: a fallback rule cannot have a window")
            window = _compile_window(r["window"], f"{where}.window", when_raw)
        rules.append(
            CompiledRule(
                id=rule_id,
                points=points,
                when=when,
                unless_fired=frozenset(unless),
                fallback=fallback,
                anomaly_score=None if anomaly is None else _unit(anomaly, f"{where}.anomaly_score"),
                ai_adversarial_score=(
                    None if ai is None else _unit(ai, f"{where}.ai_adversarial_score")
                ),
                mitigation=mitigation,
                window=window,
            )
        )
        seen.add(rule_id)
    return tuple(rules)


def _compile_window(raw: object, where: str, when: object) -> CompiledWindow:
    """A window clause, refused when it could never fire: a distinct count over the key
    itself never exceeds 1, and a rule that requires its key (or distinct) field to be
    absent never has anything to count."""
    w = _mapping(raw, where, _WINDOW_KEYS)
    key_field = _required(w, "key", where)
    if key_field not in _WINDOW_FIELDS:
        raise PolicyError(f"{where}.key: must be one of {', '.join(_WINDOW_FIELDS)}")
    distinct_field = w.get("distinct")
    if distinct_field is not None and (
        distinct_field not in _WINDOW_FIELDS or distinct_field == key_field
    ):
        raise PolicyError(
            f"{where}.distinct: must be one of {', '.join(_WINDOW_FIELDS)}, other than the key"
        )
    if (key_field, distinct_field) == ("src_ip", "src_net"):
        raise PolicyError(f"{where}.distinct: src_net is fixed by src_ip: it never counts past 1")
    for role, name in (("key", key_field), ("distinct", distinct_field)):
        if name is not None and guarantees_absent(when, name):
            raise PolicyError(
                f"{where}.{role}: the rule only matches events without {name!r}, "
                "so the window can never count anything"
            )
    threshold = _int(_required(w, "count", where), f"{where}.count", 2, 100_000)
    seconds = _int(_required(w, "seconds", where), f"{where}.seconds", 1, 86_400)
    cooldown = _int(w.get("cooldown_seconds", seconds), f"{where}.cooldown_seconds", 0, 604_800)
    weight = w.get("weight")
    if weight is not None and weight != "failures":
        raise PolicyError(f"{where}.weight: the only weight is 'failures'")
    if weight is not None and distinct_field is not None:
        raise PolicyError(f"{where}.weight: a distinct count counts values, it has no weight")
    return CompiledWindow(
        key_field=key_field,
        key=attrgetter(key_field),
        distinct_field=distinct_field,
        distinct=None if distinct_field is None else attrgetter(distinct_field),
        threshold=threshold,
        seconds=seconds,
        cooldown_seconds=cooldown,
        by_failures=weight == "failures",
    )


def _packs(raw: object) -> None:
    """``packs`` records which rule packs were merged in (set by the loader, hashed)."""
    if not isinstance(raw, list):
        raise PolicyError("packs: must be a list of {name, version}")
    for i, entry in enumerate(raw):
        where = f"packs[{i}]"
        p = _mapping(entry, where, _PACK_KEYS)
        for key in ("name", "version"):
            value = _required(p, key, where)
            if not isinstance(value, str) or not value:
                raise PolicyError(f"{where}.{key}: must be a non-empty string")


def _impact_pair(raw: object, where: str) -> tuple[float, float]:
    m = _mapping(raw, where, frozenset({"service", "user"}))
    return (
        _unit(_required(m, "service", where), f"{where}.service"),
        _unit(_required(m, "user", where), f"{where}.user"),
    )


def _personas(raw: object) -> dict[str, PersonaDoctrine]:
    if not isinstance(raw, Mapping):
        raise PolicyError("doctrine.personas: must be a mapping of persona name to doctrine")
    out: dict[str, PersonaDoctrine] = {}
    for name, spec in raw.items():
        where = f"doctrine.personas.{name}"
        if name != name.lower() or not name:
            raise PolicyError(f"{where}: persona names are lower-case (normalization lowers them)")
        p = _mapping(spec, where, _PERSONA_KEYS)
        classes = None
        if "classifications" in p:
            listed = _str_list(p["classifications"], f"{where}.classifications")
            if any(c != c.upper() for c in listed):
                raise PolicyError(f"{where}.classifications: use upper case (normalization uppers)")
            classes = frozenset(listed)
        cap = p.get("max_disruptive")
        service_cut, user_cut = _impact_pair(
            p.get("limited_impact_reduction", {"service": 0, "user": 0}),
            f"{where}.limited_impact_reduction",
        )
        out[name] = PersonaDoctrine(
            classifications=classes,
            rules_of_engagement=_bool(
                p.get("rules_of_engagement", False), f"{where}.rules_of_engagement"
            ),
            max_disruptive=None if cap is None else _int(cap, f"{where}.max_disruptive", 0, 1000),
            require_approval=_bool(p.get("require_approval", False), f"{where}.require_approval"),
            service_reduction=service_cut,
            user_reduction=user_cut,
        )
    return out


def _compile(doc: Mapping[str, Any], policy_hash: str) -> tuple[str, CompiledPolicy]:
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise PolicyError(f"unknown top-level key(s) {sorted(unknown)}")
    version = _required(doc, "version", "policy")
    if not isinstance(version, str) or not version or len(version) > 64:
        raise PolicyError(f"version: must be a non-empty string (quote numbers), got {version!r}")
    if "description" in doc and not isinstance(doc["description"], str):
        raise PolicyError("description: must be a string")
    max_score = _int(_required(doc, "max_score", "policy"), "max_score", 1, 10_000)
    levels = _levels(doc, max_score)
    skew = _int(
        _required(doc, "clock_skew_seconds", "policy"), "clock_skew_seconds", 0, 86_400 * 365
    )
    default_anomaly = _unit(
        _required(doc, "default_anomaly_score", "policy"), "default_anomaly_score"
    )
    _packs(doc.get("packs", []))
    auth_types = _str_list(_required(doc, "auth_event_types", "policy"), "auth_event_types")
    bad = [t for t in auth_types if t != t.strip().lower()]
    if bad:
        raise PolicyError(f"auth_event_types: {bad!r} must be lower-case without spaces around")

    raw_mits = _required(doc, "mitigations", "policy")
    if not isinstance(raw_mits, Mapping):
        raise PolicyError("mitigations: must be a mapping of action to defaults")
    defaults: dict[str, int] = {}
    for action, spec in raw_mits.items():
        where = f"mitigations.{action}"
        if not _ACTION_RE.fullmatch(action):
            raise PolicyError(f"{where}: action names match {_ACTION_RE.pattern}")
        m = _mapping(spec, where, frozenset({"ttl_seconds"}))
        defaults[action] = _int(
            _required(m, "ttl_seconds", where), f"{where}.ttl_seconds", 1, _MAX_TTL
        )

    doctrine = _mapping(_required(doc, "doctrine", "policy"), "doctrine", _DOCTRINE_KEYS)
    disruptive = frozenset(
        _str_list(
            _required(doctrine, "disruptive_actions", "doctrine"), "doctrine.disruptive_actions"
        )
    )
    base_service, base_user = _impact_pair(
        _required(doctrine, "impact", "doctrine"), "doctrine.impact"
    )
    personas = _personas(doctrine.get("personas", {}))

    rules = _compile_rules(
        _required(doc, "rules", "policy"),
        _derived(frozenset(auth_types)),
        defaults,
        disruptive,
        max_score,
    )
    return version, CompiledPolicy(
        rules=rules,
        levels=levels,
        max_score=max_score,
        clock_skew_ms=skew * 1000,
        default_anomaly_score=default_anomaly,
        base_service_impact=base_service,
        base_user_impact=base_user,
        personas=personas,
        plain_tie_d=(
            _plain_tie_d(0.0, 0.0, version, policy_hash),
            _plain_tie_d(base_service, base_user, version, policy_hash),
        ),
    )


def _plain_tie_d(service: float, user: float, version: str, policy_hash: str) -> TieD:
    return TieD(
        roe_applied=False,
        disruption_limited=False,
        ao_required=False,
        persona=None,
        classification=None,
        service_impact=service,
        user_impact=user,
        gating_decision="allow",
        policy_version=version,
        policy_hash=policy_hash,
    )
