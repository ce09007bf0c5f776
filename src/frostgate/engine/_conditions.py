"""The rule condition language and its compiler.

A condition is data::

    {all: [cond, ...]}   every sub-condition holds ({all: []} always holds)
    {any: [cond, ...]}   at least one holds (must not be empty)
    {not: cond}          the sub-condition does not hold
    {field: F, op: O, value: V}

with ops ``eq``, ``in``, ``contains``, ``gt``, ``gte``, ``lt``, ``lte``, ``exists``,
``regex`` (RE2, unanchored search; see ``_regex`` for why RE2) and ``cidr`` (the address
is inside one of the given networks). Fields are the normalized event fields, the derived
booleans ``auth_like``, ``auth_failure`` and ``bruteforce_type``, and
``payload.<key>[.<key>...]`` paths into the raw payload.

Conditions are compiled once, when the policy loads, into plain closures over
``Event``, so evaluation does no parsing, no dict lookups by field name and no
isinstance dispatch on the known fields. Everything that could make a condition
silently never match (wrong value type, wrong letter case for a field that
normalization lower- or upper-cases, a non-canonical IP) is refused at load with a
message naming the rule and the path inside its condition.

Comparisons are type-strict: a boolean never equals 1, ``gte`` on a payload value that is
not a number is simply false, ``regex`` and ``cidr`` on a payload value that is not text
are false (and an unparsable address is not in any network), so a hostile payload can
neither raise nor match by accident. Regexes and networks are compiled at load.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Mapping
from functools import lru_cache
from operator import attrgetter
from typing import Any, Final

from ._model import Event
from ._regex import Regex, compile_linear

__all__ = [
    "DERIVED_FIELDS",
    "EVENT_FIELDS",
    "OPS",
    "Getter",
    "PolicyError",
    "Pred",
    "compile_condition",
    "guarantees_absent",
    "guarantees_present",
]

Pred = Callable[[Event], bool]
Getter = Callable[[Event], object]


class PolicyError(ValueError):
    """A policy document is malformed; the message names the rule and field at fault."""


# Field kinds: what normalization guarantees about each event field.
_STR: Final = "str"
_INT: Final = "int"
_BOOL: Final = "bool"
_LIST: Final = "list"
_ANY: Final = "any"

#: Normalized event fields usable in conditions, with their kind.
EVENT_FIELDS: Final[Mapping[str, str]] = {
    "source": _STR,
    "event_type": _STR,
    "src_ip": _STR,
    "src_net": _STR,
    "user": _STR,
    "failures": _INT,
    "persona": _STR,
    "classification": _STR,
    "ecs_category": _LIST,
    "ecs_outcome": _STR,
}
#: Derived booleans computed from the event (and the policy's auth_event_types).
DERIVED_FIELDS: Final = ("auth_like", "auth_failure", "bruteforce_type")
OPS: Final = ("eq", "in", "contains", "gt", "gte", "lt", "lte", "exists", "regex", "cidr")
#: Most networks one cidr condition may list (each event is tested against every one).
MAX_CIDR_NETWORKS: Final = 256
_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Normalization lower-cases (or upper-cases) these; a value in another case never matches.
_LOWER_FIELDS: Final = frozenset({"event_type", "persona", "ecs_category", "ecs_outcome"})
_UPPER_FIELDS: Final = frozenset({"classification"})
_PAYLOAD_PREFIX: Final = "payload."


def _true(_event: Event) -> bool:
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float)  # bool is an int


def _strict_eq(a: object, b: object) -> bool:
    """Equality that never confuses booleans with 0/1 (``True == 1`` in Python)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _payload_getter(path: tuple[str, ...]) -> Getter:
    def get(event: Event) -> object:
        current: object = event.payload
        for key in path:
            if not isinstance(current, Mapping):
                return None
            current = current.get(key)
        return current

    return get


def field_getter(name: object, derived: Mapping[str, Getter], where: str) -> tuple[Getter, str]:
    """The getter and kind of a field name, or PolicyError if there is no such field."""
    if not isinstance(name, str):
        raise PolicyError(f"{where}: field must be a string")
    kind = EVENT_FIELDS.get(name)
    if kind is not None:
        return attrgetter(name), kind
    if name in derived:
        return derived[name], _BOOL
    if name.startswith(_PAYLOAD_PREFIX):
        path = tuple(name[len(_PAYLOAD_PREFIX) :].split("."))
        if all(path):
            return _payload_getter(path), _ANY
    known = ", ".join([*EVENT_FIELDS, *derived, "payload.<key>"])
    raise PolicyError(f"{where}: unknown field {name!r} (known: {known})")


def _check_value(name: str, kind: str, value: object, where: str) -> None:
    """Refuse a comparison value that could never match the field."""
    if kind == _ANY:
        if not _is_scalar(value):
            raise PolicyError(f"{where}: value must be a string, number or boolean")
        return
    if kind == _BOOL:
        ok = isinstance(value, bool)
        expected_name = "a boolean"
    elif kind == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected_name = "an integer"
    else:  # str and list-of-str fields compare with strings
        ok = isinstance(value, str)
        expected_name = "a string"
    if not ok:
        raise PolicyError(f"{where}: field {name!r} compares with {expected_name}, got {value!r}")
    if isinstance(value, str):
        if name in _LOWER_FIELDS and value != value.lower():
            raise PolicyError(
                f"{where}: {name!r} is lower-cased by normalization; use {value.lower()!r}"
            )
        if name in _UPPER_FIELDS and value != value.upper():
            raise PolicyError(
                f"{where}: {name!r} is upper-cased by normalization; use {value.upper()!r}"
            )
        if name == "src_ip":
            try:
                canonical = str(ipaddress.ip_address(value))
            except ValueError:
                raise PolicyError(f"{where}: {value!r} is not an IP address") from None
            if canonical != value:
                raise PolicyError(f"{where}: write the IP in canonical form {canonical!r}")


def _compile_leaf(node: Mapping[str, Any], where: str, derived: Mapping[str, Getter]) -> Pred:
    extra = set(node) - {"field", "op", "value"}
    if extra:
        raise PolicyError(f"{where}: unknown key(s) {sorted(extra)} in a field condition")
    name = node.get("field")
    get, kind = field_getter(name, derived, f"{where}.field")
    assert isinstance(name, str)  # field_getter refused anything else
    op = node.get("op")
    if op not in OPS:
        raise PolicyError(f"{where}.op: unknown op {op!r} (known: {', '.join(OPS)})")
    if "value" not in node and op != "exists":
        raise PolicyError(f"{where}: op {op!r} needs a value")
    value = node.get("value")
    vwhere = f"{where}.value"

    if op == "exists":
        if value is None:
            value = True
        if not isinstance(value, bool):
            raise PolicyError(f"{vwhere}: exists takes true or false")
        if kind == _BOOL:
            raise PolicyError(f"{where}: {name!r} is always present; use eq")
        if kind == _LIST:  # an empty list is "not present"
            return (lambda e: bool(get(e))) if value else (lambda e: not get(e))
        return (lambda e: get(e) is not None) if value else (lambda e: get(e) is None)

    if op == "eq":
        if kind == _LIST:
            raise PolicyError(f"{where}: {name!r} is a list; use contains")
        _check_value(name, kind, value, vwhere)
        if kind == _BOOL:
            return (lambda e: get(e) is True) if value else (lambda e: get(e) is False)
        if kind == _ANY:
            return lambda e: _strict_eq(get(e), value)
        return lambda e: get(e) == value

    if op == "in":
        if kind == _LIST:
            raise PolicyError(f"{where}: {name!r} is a list; use contains")
        if not isinstance(value, list) or not value:
            raise PolicyError(f"{vwhere}: in takes a non-empty list")
        for i, item in enumerate(value):
            _check_value(name, kind, item, f"{vwhere}[{i}]")
        if kind == _ANY:
            items = tuple(value)
            return lambda e: (v := get(e)) is not None and any(_strict_eq(v, x) for x in items)
        if kind == _BOOL:
            allowed = tuple(value)
            return lambda e: any(get(e) is x for x in allowed)
        members = frozenset(value)
        return lambda e: get(e) in members

    if op == "contains":
        if kind in (_INT, _BOOL):
            raise PolicyError(f"{where}: contains needs a text or list field, not {name!r}")
        if kind == _ANY:
            if not _is_scalar(value):
                raise PolicyError(f"{vwhere}: value must be a string, number or boolean")

            def contains_any(e: Event) -> bool:
                v = get(e)
                if isinstance(v, str):
                    return isinstance(value, str) and value in v
                if isinstance(v, list | tuple):
                    return any(_strict_eq(x, value) for x in v)
                return False

            return contains_any
        _check_value(name, kind, value, vwhere)
        # str field: substring; list field: membership. Both are `in` on the value.
        return lambda e: (v := get(e)) is not None and value in v  # type: ignore[operator]

    if op == "regex":
        return _compile_regex(name, kind, get, value, where)
    if op == "cidr":
        return _compile_cidr(name, kind, get, value, where)

    # gt / gte / lt / lte
    if kind not in (_INT, _ANY):
        raise PolicyError(f"{where}: {op} needs a numeric field, not {name!r}")
    if not _is_number(value):
        raise PolicyError(f"{vwhere}: {op} takes a number, got {value!r}")
    bound: float = value  # type: ignore[assignment]
    cmp = _COMPARE[op]
    if kind == _INT:  # normalization guarantees int or None: no type test per event
        return lambda e: (v := get(e)) is not None and cmp(v, bound)
    return lambda e: _is_number(v := get(e)) and cmp(v, bound)


def _texts(value: object) -> tuple[str, ...]:
    """The strings a payload value offers to regex and cidr: itself, or a list's strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _compile_regex(name: str, kind: str, get: Getter, value: object, where: str) -> Pred:
    if kind in (_INT, _BOOL):
        raise PolicyError(f"{where}: regex needs a text or list field, not {name!r}")
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{where}.value: regex takes a non-empty pattern string")
    try:
        pattern: Regex = compile_linear(value)
    except ValueError as exc:
        raise PolicyError(f"{where}.value: {exc}") from None
    search = pattern.search
    if kind == _STR:
        return lambda e: isinstance(v := get(e), str) and search(v) is not None
    # list fields (a tuple of strings) and payload values: any string in them
    return lambda e: any(search(x) is not None for x in _texts(get(e)))


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address parsed once per distinct text; None if it is not one (never raises)."""
    if len(text) > 64:  # longer than any address with a scope id we accept
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # the same host, as normalization treats src_ip
    return address


def _networks(value: object, where: str) -> tuple[Network, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > MAX_CIDR_NETWORKS:
        raise PolicyError(f"{where}: cidr takes a network or a list of 1..{MAX_CIDR_NETWORKS}")
    networks: list[Network] = []
    for i, item in enumerate(items):
        iwhere = f"{where}[{i}]" if isinstance(value, list) else where
        if not isinstance(item, str):
            raise PolicyError(f"{iwhere}: cidr takes networks such as '10.0.0.0/8', got {item!r}")
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            hint = _host_bits_hint(item)
            raise PolicyError(f"{iwhere}: {item!r} is not a network ({exc}){hint}") from None
    return tuple(networks)


def _host_bits_hint(text: str) -> str:
    """For '10.0.0.1/8' (host bits set: usually a typo), the network that was likely meant."""
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return ""
    return f"; did you mean {str(loose)!r}?"


def _compile_cidr(name: str, kind: str, get: Getter, value: object, where: str) -> Pred:
    if name != "src_ip" and kind != _ANY:
        raise PolicyError(
            f"{where}: cidr needs an address field (src_ip or payload.<key>), not {name!r}"
        )
    networks = _networks(value, f"{where}.value")

    def inside(text: str) -> bool:
        address = _address(text)
        return address is not None and any(address in n for n in networks)

    if kind == _STR:
        return lambda e: isinstance(v := get(e), str) and inside(v)
    return lambda e: any(inside(x) for x in _texts(get(e)))


def _all(preds: list[Pred]) -> Pred:
    # Unrolled for the common small cases: a generator per event costs more than the test.
    if not preds:
        return _true
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda e: a(e) and b(e)
    if len(preds) == 3:
        a, b, c = preds
        return lambda e: a(e) and b(e) and c(e)
    frozen = tuple(preds)

    def every(e: Event) -> bool:
        for p in frozen:  # noqa: SIM110 - a plain loop beats all(<generator>) per event
            if not p(e):
                return False
        return True

    return every


def _any(preds: list[Pred]) -> Pred:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda e: a(e) or b(e)
    frozen = tuple(preds)

    def some(e: Event) -> bool:
        for p in frozen:  # noqa: SIM110 - a plain loop beats any(<generator>) per event
            if p(e):
                return True
        return False

    return some


def compile_condition(node: object, where: str, derived: Mapping[str, Getter]) -> Pred:
    """Compile one condition node (see module docstring) into a predicate over Event."""
    if not isinstance(node, Mapping):
        raise PolicyError(f"{where}: a condition must be a mapping")
    forms = [k for k in ("all", "any", "not", "field") if k in node]
    if len(forms) != 1:
        raise PolicyError(f"{where}: a condition needs exactly one of all, any, not, field")
    form = forms[0]
    if form == "field":
        return _compile_leaf(node, where, derived)
    if len(node) != 1:
        raise PolicyError(f"{where}: {form!r} must be the only key, found {sorted(node)}")
    body = node[form]
    if form == "not":
        inner = compile_condition(body, f"{where}.not", derived)
        return lambda e: not inner(e)
    if not isinstance(body, list):
        raise PolicyError(f"{where}.{form}: must be a list of conditions")
    if form == "any" and not body:
        raise PolicyError(f"{where}.any: an empty any never holds")
    preds = [compile_condition(c, f"{where}.{form}[{i}]", derived) for i, c in enumerate(body)]
    return _all(preds) if form == "all" else _any(preds)


def guarantees_present(node: object, name: str) -> bool:
    """Whether a (validated) condition can only hold when field ``name`` is non-null.

    Used to refuse a rule whose mitigation targets a field that might be missing: a
    ``block_ip`` without an address would reach enforcement points as a null target.
    """
    if not isinstance(node, Mapping):
        return False
    if "field" in node:
        if node.get("field") != name:
            return False
        return node.get("op") != "exists" or node.get("value", True) is True
    if "all" in node:
        return any(guarantees_present(c, name) for c in node["all"])
    if "any" in node:
        return bool(node["any"]) and all(guarantees_present(c, name) for c in node["any"])
    return False


def guarantees_absent(node: object, name: str) -> bool:
    """Whether a (validated) condition can only hold when field ``name`` is null/absent
    (it requires ``{field: name, op: exists, value: false}``)."""
    if not isinstance(node, Mapping):
        return False
    if "field" in node:
        return bool(
            node.get("field") == name
            and node.get("op") == "exists"
            and node.get("value", True) is False
        )
    if "all" in node:
        return any(guarantees_absent(c, name) for c in node["all"])
    if "any" in node:
        return bool(node["any"]) and all(guarantees_absent(c, name) for c in node["any"])
    return False
