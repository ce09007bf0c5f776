"""Sigma rules as FrostGate rules, through pySigma, for the field-matching subset.

Sigma is the SOC community's detection format; supporting it lets a FrostGate operator
reuse rules instead of rewriting them. We convert, we do not emulate: pySigma parses the
rule (modifiers, ``1 of``/``all of`` selectors, condition precedence) and the resulting
condition tree becomes a FrostGate condition, which the normal compiler then checks and
precompiles like any other rule. Whatever is outside the subset below is refused with the
file, the line and the construct, because a rule that silently matches more or less than
its author wrote is worse than no rule.

Supported:

* detections as a mapping (items AND-ed) or a list of mappings (OR-ed), value lists
  (OR-ed; AND-ed with ``|all``), ``null`` (field absent);
* modifiers ``contains``, ``startswith``, ``endswith``, ``re`` (with ``i``/``m``/``s``),
  ``cidr``, ``all``, ``cased``, ``exists``, ``gt``/``gte``/``lt``/``lte``;
* conditions with ``and``, ``or``, ``not``, parentheses, ``1 of``/``any of``/``all of``
  a pattern or ``them``; a list of conditions (OR-ed).

Refused: aggregations (``| count() ...`` and the other ``|`` pipes), ``near``,
``timeframe``, correlation rules, multi-document rule collections (``action: global``),
keyword detections (values without a field), every other modifier (``base64``,
``base64offset``, ``utf16*``, ``wide``, ``windash``, ``fieldref``, ``expand``, ``neq``,
time parts, ...) and placeholders.

Matching follows Sigma: strings compare case-insensitively unless ``|cased``; ``*`` and
``?`` are wildcards; ``re`` is an unanchored search, case-sensitive unless ``|i``; every
regex runs on RE2 (linear time). An unquoted number matches that number or its decimal
text. ``logsource`` is not matched (FrostGate has one event stream): scope a rule with
``frostgate.when``.

Field mapping: FrostGate's own field names map to themselves; the Sigma/ECS/Windows names
in :data:`FIELD_MAP` map to normalized event fields; every other field is read from the
raw payload as ``payload.<field>`` (dots descend into nested objects).

Scoring comes from an optional ``frostgate:`` section (validated by the JSON Schema):
``id`` (default ``sigma:<sigma id>``), ``points`` (default from ``level``: the policy's
threshold for that level, so the decision's threat level is at least the rule's level;
``informational`` is 0), ``anomaly_score``, ``ai_adversarial_score``, ``when`` (a
FrostGate condition AND-ed with the detection) and ``mitigation`` (action, target_field,
confidence, reason, ttl_seconds). A mitigation with a ``target_field`` adds
``{field: <target>, op: exists}`` to the rule, since a block needs a target.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from ._conditions import DERIVED_FIELDS, EVENT_FIELDS, Getter, PolicyError, compile_condition
from ._regex import compile_linear, escape
from ._schema import schema_problems
from ._source import Path_, Problem, RuleFileError, YamlDoc

__all__ = ["FIELD_MAP", "SUPPORTED_MODIFIERS", "sigma_rule"]

#: Sigma field names (Sigma taxonomy, ECS, Windows event data) → FrostGate event fields.
FIELD_MAP: Final[Mapping[str, str]] = {
    **{name: name for name in (*EVENT_FIELDS, *DERIVED_FIELDS)},
    "SourceIp": "src_ip",
    "SourceIP": "src_ip",
    "source.ip": "src_ip",
    "client.ip": "src_ip",
    "ClientIP": "src_ip",
    "ClientIp": "src_ip",
    "IpAddress": "src_ip",
    "c-ip": "src_ip",
    "User": "user",
    "UserName": "user",
    "Username": "user",
    "TargetUserName": "user",
    "user.name": "user",
    "cs-username": "user",
    "event.action": "event_type",
    "event.category": "ecs_category",
    "event.outcome": "ecs_outcome",
}

SUPPORTED_MODIFIERS: Final = frozenset(
    {
        "contains",
        "startswith",
        "endswith",
        "re",
        "i",
        "ignorecase",
        "m",
        "multiline",
        "s",
        "dotall",
        "cidr",
        "all",
        "cased",
        "exists",
        "gt",
        "gte",
        "lt",
        "lte",
    }
)
_REGEX_FLAGS: Final = {
    "i": "i",
    "ignorecase": "i",
    "m": "m",
    "multiline": "m",
    "s": "s",
    "dotall": "s",
}
_FLAG_LETTERS: Final = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_COMPARE_OPS: Final = {
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
}
_AGGREGATION: Final = re.compile(r"\|\s*(count|min|max|avg|sum)\s*\(")
_NEAR: Final = re.compile(r"\|\s*near\b")
_LEVELS: Final = ("low", "medium", "high", "critical")
_RULE_ID_CHARS: Final = re.compile(r"[^a-z0-9_.:\-]+")
_NO_DERIVED: Final[Mapping[str, Getter]] = {name: (lambda _e: False) for name in DERIVED_FIELDS}


class _Refusal(Exception):
    """A construct outside the subset, found while converting (located by field)."""


def _conditions_of(detection: Mapping[str, Any]) -> list[tuple[Path_, object]]:
    raw = detection.get("condition")
    if isinstance(raw, list):
        return [(("detection", "condition", i), c) for i, c in enumerate(raw)]
    return [(("detection", "condition"), raw)]


def _check_condition(doc: YamlDoc, path: Path_, condition: object) -> list[Problem]:
    if not isinstance(condition, str):
        return [doc.problem(path, "Sigma condition must be a string")]
    aggregation = _AGGREGATION.search(condition)
    if aggregation is not None:
        return [
            doc.problem(
                path,
                f"Sigma aggregation '{aggregation.group(1)}()' is not supported "
                "(use a FrostGate rule pack with a window clause for counting)",
            )
        ]
    if _NEAR.search(condition):
        return [doc.problem(path, "Sigma 'near' (temporal proximity) is not supported")]
    if "|" in condition:
        return [doc.problem(path, "Sigma pipe ('|') expressions in conditions are not supported")]
    return []


def _check_value(
    doc: YamlDoc, path: Path_, field: str, modifiers: list[str], value: object
) -> list[Problem]:
    """Regexes and networks are checked here so the problem names their own line."""
    problems: list[Problem] = []
    values = value if isinstance(value, list) else [value]
    for j, item in enumerate(values):
        item_path = (*path, j) if isinstance(value, list) else path
        if "re" in modifiers:
            flags = "".join(sorted({_REGEX_FLAGS[m] for m in modifiers if m in _REGEX_FLAGS}))
            try:
                compile_linear((f"(?{flags})" if flags else "") + str(item))
            except ValueError as exc:
                problems.append(doc.problem(item_path, f"{field}|re: {exc}"))
        if "cidr" in modifiers:
            try:
                ipaddress.ip_network(str(item))
            except ValueError as exc:
                problems.append(doc.problem(item_path, f"{field}|cidr: {item!r}: {exc}"))
    return problems


def _check_item(
    doc: YamlDoc, path: Path_, key: object, value: object, fields: dict[str, Path_]
) -> list[Problem]:
    if not isinstance(key, str):
        return [doc.problem(path, f"detection key {key!r} is not a field name")]
    field, *modifiers = key.split("|")
    if not field:
        return [doc.problem(path, "keyword detections (values without a field) are not supported")]
    fields.setdefault(field, path)
    unsupported = [m for m in modifiers if m not in SUPPORTED_MODIFIERS]
    if unsupported:
        supported = ", ".join(sorted(SUPPORTED_MODIFIERS))
        return [
            doc.problem(
                path,
                f"Sigma modifier '{unsupported[0]}' (in {key!r}) is not supported "
                f"(supported: {supported})",
            )
        ]
    return _check_value(doc, path, field, modifiers, value)


def _check_definition(
    doc: YamlDoc, path: Path_, definition: object, fields: dict[str, Path_]
) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(definition, Mapping):
        for key, value in definition.items():
            problems += _check_item(doc, (*path, key), key, value, fields)
    elif isinstance(definition, list):
        for i, item in enumerate(definition):
            if isinstance(item, Mapping):
                for key, value in item.items():
                    problems += _check_item(doc, (*path, i, key), key, value, fields)
            else:
                problems.append(
                    doc.problem(
                        (*path, i), "keyword detections (values without a field) are not supported"
                    )
                )
    else:
        problems.append(
            doc.problem(path, "keyword detections (values without a field) are not supported")
        )
    return problems


def _outside_subset(
    doc: YamlDoc, data: Mapping[str, Any], fields: dict[str, Path_]
) -> list[Problem]:
    """Every construct of the file that the subset does not cover, at its line."""
    problems: list[Problem] = []
    if "correlation" in data:
        kind = data["correlation"].get("type") if isinstance(data["correlation"], Mapping) else None
        problems.append(
            doc.problem(
                ("correlation",),
                f"Sigma correlation rules (type {kind!r}) are not supported",
            )
        )
    if "action" in data:
        problems.append(
            doc.problem(
                ("action",), "Sigma collection actions (global/reset/repeat) are not supported"
            )
        )
    detection = data.get("detection")
    if not isinstance(detection, Mapping):
        if "correlation" not in data:
            problems.append(doc.problem(("detection",), "a Sigma rule needs a detection mapping"))
        return problems
    if "timeframe" in detection:
        problems.append(
            doc.problem(
                ("detection", "timeframe"),
                "Sigma 'timeframe' (an aggregation window) is not supported",
            )
        )
    for path, condition in _conditions_of(detection):
        problems += _check_condition(doc, path, condition)
    for name, definition in detection.items():
        if name in ("condition", "timeframe"):
            continue
        problems += _check_definition(doc, ("detection", name), definition, fields)
    if "frostgate" in data:
        problems += schema_problems(
            doc, "sigma_frostgate", data=data["frostgate"], prefix=("frostgate",)
        )
    return problems


# --------------------------------------------------------------------------- values


def _string_regex(value: SigmaString, cased: bool) -> str:
    parts: list[str] = []
    for part in value.s:
        if isinstance(part, str):
            parts.append(escape(part))
        elif part is SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        elif isinstance(part, Placeholder):
            raise _Refusal(f"placeholder %{part.name}% is not supported")
        else:
            raise _Refusal(f"string part {part!r} is not supported")
    # A wildcard at either end is an unanchored search there (contains/startswith/endswith).
    head = parts[1:] if parts[:1] == [".*"] else [r"\A", *parts]
    body = head[:-1] if head[-1:] == [".*"] else [*head, r"\z"]
    return ("(?s)" if cased else "(?is)") + "".join(body)


def _kind(target: str) -> str:
    if target in EVENT_FIELDS:
        return EVENT_FIELDS[target]
    if target in DERIVED_FIELDS:
        return "bool"
    return "any"


def _number_leaf(target: str, kind: str, number: int | float) -> dict[str, Any]:
    if kind == "int":
        if not isinstance(number, int):
            raise _Refusal(f"{target!r} holds whole numbers, not {number!r}")
        return {"field": target, "op": "eq", "value": number}
    if kind == "any":
        return {
            "any": [
                {"field": target, "op": "eq", "value": number},
                {"field": target, "op": "eq", "value": str(number)},
            ]
        }
    if kind == "list":
        return {"field": target, "op": "contains", "value": str(number)}
    if kind == "str":
        return {"field": target, "op": "eq", "value": str(number)}
    raise _Refusal(f"{target!r} is a boolean, not a number")


def _leaf(field: str, value: SigmaType) -> dict[str, Any]:
    target = FIELD_MAP.get(field) or f"payload.{field}"
    kind = _kind(target)
    if isinstance(value, SigmaString):  # SigmaCasedString too
        cased = isinstance(value, SigmaCasedString)
        plain = value.s[0] if len(value.s) == 1 and isinstance(value.s[0], str) else None
        if kind == "int":
            if plain is not None and plain.isascii() and plain.isdigit():
                return {"field": target, "op": "eq", "value": int(plain)}
            raise _Refusal(f"{target!r} holds whole numbers, not {value.original!r}")
        if kind == "bool":
            raise _Refusal(f"{target!r} is a boolean; write true or false unquoted")
        if cased and plain is not None and kind != "list":
            return {"field": target, "op": "eq", "value": plain}
        return {"field": target, "op": "regex", "value": _string_regex(value, cased)}
    if isinstance(value, SigmaRegularExpression):
        letters = "".join(sorted(_FLAG_LETTERS[f] for f in value.flags))
        pattern = (f"(?{letters})" if letters else "") + value.regexp.original
        return {"field": target, "op": "regex", "value": pattern}
    if isinstance(value, SigmaCIDRExpression):
        return {"field": target, "op": "cidr", "value": str(value.network)}
    if isinstance(value, SigmaCompareExpression):
        op = _COMPARE_OPS.get(value.op)
        if op is None:
            raise _Refusal(f"comparison {value.op.name} is not supported")
        return {"field": target, "op": op, "value": value.number.number}
    if isinstance(value, SigmaBool):
        return {"field": target, "op": "eq", "value": value.boolean}
    if isinstance(value, SigmaNumber):
        return _number_leaf(target, kind, value.number)
    if isinstance(value, SigmaNull):
        return {"field": target, "op": "exists", "value": False}
    if isinstance(value, SigmaExists):
        return {"field": target, "op": "exists", "value": value.exists}
    raise _Refusal(f"Sigma value type {type(value).__name__} is not supported")


def _flatten(form: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for item in items:
        if set(item) == {form}:
            out += item[form]
        else:
            out.append(item)
    return out[0] if len(out) == 1 else {form: out}


def _convert(
    node: object, doc: YamlDoc, fields: Mapping[str, Path_], problems: list[Problem]
) -> dict[str, Any]:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        path = fields.get(node.field, ("detection",))
        where = f"Sigma field {node.field!r}"
        try:
            leaf = _leaf(node.field, node.value)
            compile_condition(leaf, where, _NO_DERIVED)
        except _Refusal as exc:
            problems.append(doc.problem(path, f"{where}: {exc}"))
            return {"all": []}
        except PolicyError as exc:
            problems.append(doc.problem(path, str(exc)))
            return {"all": []}
        return leaf
    if isinstance(node, ConditionValueExpression):
        problems.append(
            doc.problem(
                ("detection",), "keyword detections (values without a field) are not supported"
            )
        )
        return {"all": []}
    if isinstance(node, ConditionNOT):
        return {"not": _convert(node.args[0], doc, fields, problems)}
    if isinstance(node, ConditionAND | ConditionOR):
        form = "all" if isinstance(node, ConditionAND) else "any"
        return _flatten(form, [_convert(a, doc, fields, problems) for a in node.args])
    problems.append(doc.problem(("detection", "condition"), f"unsupported condition {node!r}"))
    return {"all": []}


# --------------------------------------------------------------------------- the rule


def _reason(exc: SigmaError) -> str:
    """pySigma's message without the absolute path it appends (``... in /abs/file``)."""
    return "Sigma: " + (str(exc.args[0]) if exc.args else type(exc).__name__)


def _error_path(exc: SigmaError, data: Mapping[str, Any]) -> Path_:
    text = str(exc.args[0]) if exc.args else ""
    for key in ("condition", "detection", "logsource", "title", "level", "id", "status"):
        if key in text.lower():
            return ("detection", "condition") if key == "condition" else (key,)
    return ("detection",) if "detection" in data else ()


def _points(
    doc: YamlDoc, data: Mapping[str, Any], section: Mapping[str, Any], base: Mapping[str, Any]
) -> int:
    if "points" in section:
        points: int = section["points"]
        return points
    level = data.get("level")
    if level == "informational":
        return 0
    if level in _LEVELS:
        threshold: int = base["thresholds"][level]
        return threshold
    where = ("level",) if "level" in data else ()
    raise RuleFileError(
        [
            doc.problem(
                where,
                f"Sigma level {level!r} gives no points: use informational/low/medium/high/"
                "critical or set frostgate.points",
            )
        ]
    )


def _rule_id(data: Mapping[str, Any], section: Mapping[str, Any], rule: SigmaRule) -> str:
    if "id" in section:
        chosen: str = section["id"]
        return chosen
    if rule.id is not None:
        return f"sigma:{str(rule.id).lower()}"
    slug = _RULE_ID_CHARS.sub("_", str(data.get("title", "rule")).lower()).strip("_")
    return f"sigma:{slug or 'rule'}"[:64]


def sigma_rule(
    doc: YamlDoc, base: Mapping[str, Any]
) -> tuple[dict[str, Any], Callable[[Path_], Path_]]:
    """Convert the Sigma rule in ``doc`` into one FrostGate rule for policy ``base``.

    Returns the rule and a function mapping a path inside it back to a path in the file.
    Raises RuleFileError listing every construct outside the subset.
    """
    data = doc.data
    if not isinstance(data, Mapping):
        raise RuleFileError([doc.problem((), "a Sigma rule must be a mapping")])
    fields: dict[str, Path_] = {}
    problems = _outside_subset(doc, data, fields)
    if problems:
        raise RuleFileError(sorted(problems))
    try:
        rule = SigmaRule.from_dict(
            dict(data), collect_errors=True, source=SigmaRuleLocation(Path(doc.origin))
        )
    except SigmaError as exc:
        raise RuleFileError([doc.problem(_error_path(exc, data), _reason(exc))]) from None
    if rule.errors:
        raise RuleFileError(
            sorted(doc.problem(_error_path(e, data), _reason(e)) for e in rule.errors)
        )
    trees = []
    for path, sigma_condition in zip(
        (p for p, _ in _conditions_of(data["detection"])),
        rule.detection.parsed_condition,
        strict=True,
    ):
        try:
            trees.append(sigma_condition.parsed)
        except SigmaError as exc:
            problems.append(doc.problem(path, _reason(exc)))
    if problems:
        raise RuleFileError(problems)
    whens = [_convert(tree, doc, fields, problems) for tree in trees]
    section: Mapping[str, Any] = data.get("frostgate") or {}
    parts: list[dict[str, Any]] = [_flatten("any", whens)] if whens else []
    if "when" in section:
        try:
            compile_condition(section["when"], "frostgate.when", _NO_DERIVED)
        except PolicyError as exc:
            problems.append(doc.problem(("frostgate", "when"), str(exc)))
        parts.append(section["when"])
    converted: dict[str, Any] = {
        "id": _rule_id(data, section, rule),
        "description": str(data.get("title", "")),
        "points": _points(doc, data, section, base),
    }
    for key in ("anomaly_score", "ai_adversarial_score"):
        if key in section:
            converted[key] = section[key]
    if "mitigation" in section:
        mitigation = dict(section["mitigation"])
        converted["mitigation"] = mitigation
        target = mitigation.get("target_field")
        if isinstance(target, str):
            parts.append({"field": target, "op": "exists"})
    if problems:
        raise RuleFileError(sorted(problems))
    converted["when"] = _flatten("all", parts)

    def rule_path(inner: Path_) -> Path_:
        head = inner[0] if inner else None
        if head in ("mitigation", "points", "id", "anomaly_score", "ai_adversarial_score"):
            if head in section:
                return ("frostgate", *inner)
            return ("level",) if head == "points" else ("title",)
        return ("detection",)

    return converted, rule_path
