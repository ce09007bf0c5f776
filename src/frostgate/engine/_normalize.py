"""Turn a sensor's JSON body into an :class:`Event`, or refuse it with a stable error code.

Sensors spell the same thing many ways (``src_ip`` / ``client_ip`` / ECS ``source.ip``,
``failed_auths`` / ``attempts`` ...). Normalization picks one spelling, one type and one
canonical form per field, so rules never deal with aliases. The audited system silently
dropped values it could not parse (a count of ``"seven"`` became 0, an unparseable
timestamp became "no drift"); here a value that is present but wrong is an error, because
a dropped field changes the decision without anyone noticing.

Lookup rules (documented for sensor authors):

* A field may sit at the top level or inside ``payload``. For text fields the top level
  wins: every alias is tried at the top level before any alias is tried in ``payload``.
  ``event_id`` and ``tenant_id`` are envelope fields and are read at the top level only
  (payloads often carry their own numeric event ids, e.g. Windows ``EventID``).
* The two fields a block is made of, the source address and the failure count, are read
  from every spelling at both levels (and, for the address, ECS ``source.ip`` nested or
  dotted), and nothing given is dropped in silence: the address is the first valid
  spelling in alias order, the count the highest valid one (``attempts: 1`` beside
  ``failures: 50`` had decided "allow"), and every other value that differs, or does not
  parse, is named in :attr:`Event.notes`, which the decision's summary repeats. Only
  when no spelling of a field parses is the event refused. Refusing disagreements
  instead let one value copied from a client header (``client_ip``) refuse a whole
  1,000-event batch, the attacker's own failures included.
* JSON ``null`` means "not given". For free-text fields (source, event_type, user,
  persona, classification) a blank string also means "not given"; for parsed fields (IP,
  failure count, timestamp, event_id) a blank string is invalid.
* ECS objects (``source``, ``event``, ``user``, ``observer``, ``agent``, ``host``) are
  recognized only when they are objects, at either level; a string under one of these
  names is not ECS (log shippers put ``host: "web01"`` or ``agent: "Mozilla/5.0"`` in
  payloads) and is ignored, except that top-level ``source`` must be a string (the sensor
  name) or an object (ECS), and ``user`` as a string is the user name. ECS fields may
  also be sent flattened, as dotted member names (``"source.ip"``, ``"event.action"``),
  as some shippers do; at each level the nested object is read before the dotted name.
  Fields read from ECS must have the right type.
* Free text used as an identifier (event_type, persona, classification) is compared in
  Unicode NFKC form with invisible format characters removed, so fullwidth letters
  (U+FF21 ...) or a zero-width space does not make a different event type.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, NoReturn

from frostgate.errors import ErrorCode, FrostGateError

from ._model import Event

__all__ = ["normalize"]

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_IP_KEYS: Final = ("src_ip", "source_ip", "ip", "client_ip", "remote_ip")
_COUNT_KEYS: Final = (
    "failed_auths",
    "failed_attempts",
    "attempts",
    "fail_count",
    "failures",
    "num_failures",
    "failed_logins",
)
_USER_KEYS: Final = ("user", "username", "user_name")
_SENSOR_ECS_OBJECTS: Final = ("observer", "agent", "host")
_ECS_OUTCOMES: Final = frozenset({"success", "failure", "unknown"})

MAX_TEXT: Final = 256
MAX_EVENT_ID: Final = 128
MAX_FAILURES: Final = 10**9
MAX_CATEGORIES: Final = 32
#: Epoch numbers above this are milliseconds (10**11 seconds is the year 5138).
EPOCH_MS_THRESHOLD: Final = 10**11
_MAX_TS_TEXT: Final = 64
_MAX_IP_TEXT: Final = 100

_EVENT_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")

_INVALID: Final = ErrorCode.EVENT_INVALID


def _fail(code: ErrorCode, why: str) -> NoReturn:
    # ``why`` names a field by the alias the code looked up, never by a client's text,
    # so it can go to the client as the refusal's reason.
    raise FrostGateError(code, why, reason=why)


def _text(value: object, what: str) -> str | None:
    """A free-text field: a string, stripped, at most MAX_TEXT chars; blank means absent."""
    if not isinstance(value, str):
        _fail(_INVALID, f"{what} must be a string")
    s = value.strip()
    if not s:
        return None
    if len(s) > MAX_TEXT:
        _fail(_INVALID, f"{what} exceeds {MAX_TEXT} characters")
    if "\x00" in s:  # PostgreSQL text cannot hold NUL: refuse it here, not as a 503 at commit
        _fail(_INVALID, f"{what} contains a NUL character")
    return s


def _first_text(layers: tuple[Mapping[str, Any], ...], keys: tuple[str, ...]) -> str | None:
    for layer in layers:
        for key in keys:
            value = layer.get(key)
            if value is not None:
                s = _text(value, key)
                if s is not None:
                    return s
    return None


def _parsed(
    spellings: list[tuple[str, str, object]], parse: Any, notes: list[str]
) -> list[tuple[str, Any]]:
    """``(label, value)`` of the spellings that parse; the others are noted, or, when
    none parses, the first one's refusal is raised (a field present but wrong is never
    dropped in silence)."""
    good: list[tuple[str, Any]] = []
    bad: list[tuple[str, FrostGateError]] = []
    for label, key, raw in spellings:
        try:
            good.append((label, parse(raw, key)))
        except FrostGateError as exc:
            bad.append((label, exc))
    if bad and not good:
        raise bad[0][1]
    notes.extend(f"{label} does not parse: ignored" for label, _ in bad)
    return good


def _chosen(
    what: str, good: list[tuple[str, Any]], notes: list[str], *, highest: bool = False
) -> Any:
    """The first of the parsed values, or the ``highest`` (None if there is none); each
    other value that differs from it is noted, so the decision says what it did not use."""
    if not good:
        return None
    label, value = max(good, key=lambda g: g[1]) if highest else good[0]
    for other, given in good:
        if given != value:
            notes.append(f"{what}: {other} gives {given}, {label} ({value}) used")
    return value


def _is_object(value: object) -> bool:
    # dict first: JSON bodies are dicts, and the ABC check for Mapping costs ~10x more.
    return isinstance(value, dict) or (value is not None and isinstance(value, Mapping))


def _ecs_in_layer(layer: Mapping[str, Any], name: str, field: str) -> list[object]:
    """``name.field`` in one layer: from the ``name`` object, then the dotted member."""
    found: list[object] = []
    o = layer.get(name)
    if o is not None and _is_object(o):
        value = o.get(field)
        if value is not None:
            found.append(value)
    value = layer.get(f"{name}.{field}")
    if value is not None:
        found.append(value)
    return found


def _ecs_field(layers: tuple[Mapping[str, Any], ...], name: str, field: str) -> object:
    """ECS ``name.field``: the first given, nested before dotted, top level first."""
    dotted = f"{name}.{field}"
    for layer in layers:
        o = layer.get(name)
        if o is not None and _is_object(o):
            value = o.get(field)
            if value is not None:
                return value
        value = layer.get(dotted)
        if value is not None:
            return value
    return None


@lru_cache(maxsize=8192)
def _canonical_ip(text: str) -> str | None:
    """Canonical compressed form of an IP address, None if it is not one.

    Cached because the same attackers and clients recur: parsing costs ~1-2 µs, a hit
    ~0.1 µs. The cache is a pure memo (same input, same output) and keeps the engine
    deterministic. An IPv6 scope id (``%eth0``) is dropped: a zone names an interface of
    the sensor and means nothing to a remote enforcement point (and an unbounded one
    would not fit a stored column). An IPv4-mapped address (``::ffff:a.b.c.d``) is
    written as the IPv4 address it is, so a block matches what enforcement points see.
    """
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@lru_cache(maxsize=8192)
def _source_network(ip: str) -> str:
    """The network that counts as one source: an IPv4 address itself, the /64 of an
    IPv6 address. A /64 is one host's or one site's usual allocation (RFC 6177), and
    every address in it is the attacker's to use: counted per address, a burst spread
    over a /64 would never reach a threshold."""
    if ":" not in ip:
        return ip
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def _parse_ip(value: object, what: str) -> str:
    if not isinstance(value, str):
        _fail(_INVALID, f"{what} must be a string")
    s = value.strip()
    if len(s) > _MAX_IP_TEXT:
        _fail(_INVALID, f"{what} is not an IP address")
    ip = _canonical_ip(s)
    if ip is None:
        _fail(_INVALID, f"{what} is not an IP address")
    return ip


def _parse_count(value: object, what: str) -> int:
    """A failure count: int, integral float or a string of ASCII digits, 0..10**9."""
    if isinstance(value, bool):
        _fail(_INVALID, f"{what} must be a number, not a boolean")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not value.is_integer():  # also rejects NaN and infinities
            _fail(_INVALID, f"{what} must be a whole number")
        if abs(value) > MAX_FAILURES:
            _fail(_INVALID, f"{what} is out of range")
        n = int(value)
    elif isinstance(value, str):
        s = value.strip()
        # isdigit alone accepts non-ASCII digits (Arabic-Indic) and superscripts; int() would
        # accept "+7" and "1_000". Only plain decimal digits are a count.
        if not (s and s.isascii() and s.isdigit()):
            _fail(_INVALID, f"{what} is not a decimal count")
        significant = s.lstrip("0")
        if len(significant) > 10:  # checked before int(): no huge-number parsing
            _fail(_INVALID, f"{what} is out of range")
        n = int(significant or "0")
    else:
        _fail(_INVALID, f"{what} must be a number")
    if n < 0 or n > MAX_FAILURES:
        _fail(_INVALID, f"{what} is out of range")
    return n


def _parse_timestamp(value: object) -> datetime:
    """ISO 8601 text (``Z`` accepted, naive means UTC) or epoch seconds / milliseconds."""
    code = ErrorCode.TIMESTAMP_INVALID
    if isinstance(value, bool):
        _fail(code, "timestamp must not be a boolean")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            _fail(code, "timestamp is not finite")
        try:
            if value > EPOCH_MS_THRESHOLD:
                delta = timedelta(milliseconds=value)
            else:
                delta = timedelta(seconds=value)
            return _EPOCH + delta
        except (OverflowError, ValueError):
            _fail(code, "timestamp is out of range")
    if isinstance(value, str):
        s = value.strip()
        if not s or len(s) > _MAX_TS_TEXT:
            _fail(code, "timestamp is not ISO 8601")
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            _fail(code, "timestamp is not ISO 8601")
        if dt.tzinfo is None:
            return dt.replace(tzinfo=UTC)
        try:
            return dt.astimezone(UTC)
        except (OverflowError, ValueError):
            _fail(code, "timestamp is out of range")
    _fail(code, "timestamp must be a string or a number")


def _parse_event_id(value: object) -> str:
    code = ErrorCode.EVENT_ID_INVALID
    if not isinstance(value, str):
        _fail(code, "event_id must be a string")
    if not 1 <= len(value) <= MAX_EVENT_ID or _EVENT_ID_RE.fullmatch(value) is None:
        _fail(code, "event_id has a bad length or character")
    return value


def _ecs_categories(layers: tuple[Mapping[str, Any], ...]) -> tuple[str, ...]:
    value = _ecs_field(layers, "event", "category")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > MAX_CATEGORIES:
        _fail(_INVALID, "event.category must be a string or a short list of strings")
    out: list[str] = []
    for item in items:
        s = _text(item, "event.category")
        if s is None:
            _fail(_INVALID, "event.category holds a blank value")
        out.append(s.lower())
    return tuple(out)


def _ecs_outcome(layers: tuple[Mapping[str, Any], ...]) -> str | None:
    value = _ecs_field(layers, "event", "outcome")
    if value is None:
        return None
    s = _text(value, "event.outcome")
    if s is None:
        return None
    s = s.lower()
    if s not in _ECS_OUTCOMES:
        _fail(_INVALID, "event.outcome must be success, failure or unknown")
    return s


def _sensor_name(raw: Mapping[str, Any], layers: tuple[Mapping[str, Any], ...]) -> str:
    top = raw.get("source")
    if isinstance(top, str):
        s = _text(top, "source")
        if s is not None:
            return s
    elif top is not None and not _is_object(top):
        _fail(_INVALID, "source must be a string or an ECS source object")
    # No sensor name given (or `source` is ECS): ECS names the shipper instead.
    for obj in _SENSOR_ECS_OBJECTS:
        value = _ecs_field(layers, obj, "name")
        if value is not None:
            s = _text(value, f"{obj}.name")
            if s is not None:
                return s
    return "unspecified"


def _user(layers: tuple[Mapping[str, Any], ...]) -> str | None:
    for layer in layers:
        for key in _USER_KEYS:
            value = layer.get(key)
            if value is None or (key == "user" and _is_object(value)):
                continue  # an ECS `user` object is read below, after every plain alias
            s = _text(value, key)
            if s is not None:
                return s
    value = _ecs_field(layers, "user", "name")
    return None if value is None else _text(value, "user.name")


def _spellings(
    layers: tuple[Mapping[str, Any], ...], keys: tuple[str, ...]
) -> list[tuple[str, str, object]]:
    """Every non-null ``(label, alias, value)`` of ``keys``, top level then payload."""
    found = []
    for depth, layer in enumerate(layers):
        for key in keys:
            value = layer.get(key)
            if value is not None:
                found.append((key if depth == 0 else f"payload.{key}", key, value))
    return found


def _source_ip(layers: tuple[Mapping[str, Any], ...], notes: list[str]) -> str | None:
    """The source address: the first valid spelling of every alias and ECS
    ``source.ip`` (aliases first, top level before payload); the rest noted."""
    spellings = _spellings(layers, _IP_KEYS)
    for depth, layer in enumerate(layers):
        for value in _ecs_in_layer(layer, "source", "ip"):
            label = "source.ip" if depth == 0 else "payload.source.ip"
            spellings.append((label, "source.ip", value))
    ip: str | None = _chosen("source address", _parsed(spellings, _parse_ip, notes), notes)
    return ip


def _failure_count(layers: tuple[Mapping[str, Any], ...], notes: list[str]) -> int | None:
    """The highest valid failure count given (a lower one beside it cannot hide it)."""
    good = _parsed(_spellings(layers, _COUNT_KEYS), _parse_count, notes)
    count: int | None = _chosen("failure count", good, notes, highest=True)
    return count


def _identifier(text: str) -> str:
    """``text`` in NFKC form without format characters (zero-width spaces, bidi marks),
    stripped again: the form an identifier is compared in. ASCII is returned as is."""
    if text.isascii():
        return text
    folded = "".join(
        c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf"
    )
    return folded.strip() or text


def normalize(raw: Mapping[str, Any]) -> Event:
    """Normalize one event body; raise ``FrostGateError`` with a stable code if it is bad.

    Codes: EVENT_INVALID (shape, types, IP, failure count), EVENT_ID_INVALID,
    TIMESTAMP_INVALID. Nothing else escapes: every value is type-checked before use.
    """
    if not _is_object(raw):
        _fail(_INVALID, "event must be an object")
    payload = raw.get("payload")
    if payload is None:
        payload = _EMPTY
    elif not _is_object(payload):
        _fail(_INVALID, "payload must be an object")
    layers: tuple[Mapping[str, Any], ...] = (raw, payload) if payload else (raw,)

    value = raw.get("event_id")
    event_id = None if value is None else _parse_event_id(value)

    value = raw.get("tenant_id")
    if value is not None and not (isinstance(value, str) and len(value) <= MAX_TEXT):
        _fail(_INVALID, "tenant_id must be a short string")
    claimed_tenant: str | None = value

    # event_type: explicit field, else ECS event.action, else the first ECS category.
    categories = _ecs_categories(layers)
    event_type = _first_text(layers, ("event_type",))
    if event_type is None:
        value = _ecs_field(layers, "event", "action")
        if value is not None:
            event_type = _text(value, "event.action")
    if event_type is None:
        event_type = categories[0] if categories else "unspecified"

    notes: list[str] = []
    src_ip = _source_ip(layers, notes)
    failures = _failure_count(layers, notes)

    value = raw.get("timestamp")
    if value is None:
        value = raw.get("@timestamp")
        if value is None:
            value = payload.get("timestamp")
    timestamp = None if value is None else _parse_timestamp(value)

    persona = _first_text(layers, ("persona",))
    classification = _first_text(layers, ("classification",))

    return Event(
        event_id=event_id,
        claimed_tenant=claimed_tenant,
        source=_sensor_name(raw, layers),
        event_type=_identifier(event_type).lower(),
        src_ip=src_ip,
        src_net=None if src_ip is None else _source_network(src_ip),
        user=_user(layers),
        failures=failures,
        timestamp=timestamp,
        persona=None if persona is None else _identifier(persona).lower(),
        classification=None if classification is None else _identifier(classification).upper(),
        ecs_category=categories,
        ecs_outcome=_ecs_outcome(layers),
        payload=payload if payload is _EMPTY else MappingProxyType(payload),
        notes=tuple(notes),
    )
