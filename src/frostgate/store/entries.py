"""The ledger entry that covers one stored decision row.

The entry is what gets leaf-hashed (RFC 6962 leaf over its RFC 8785 encoding). It is
rebuilt from the row's own columns, so verification recomputes it from what is stored:
change any column, the request or the response bytes, and the leaf hash no longer
matches. Request and response are covered by the SHA-256 of their exact stored bytes,
which keeps the entry small and its values within the fast canonical-encoding domain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

__all__ = [
    "ENTRY_VERSION",
    "decision_entry",
    "decision_flags",
    "decision_stream",
    "epoch_micros",
    "format_epoch_micros",
    "format_epoch_second_head",
    "format_timestamp",
]

ENTRY_VERSION = 1


def decision_stream(tenant_id: str) -> str:
    return f"decisions/{tenant_id}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@lru_cache(maxsize=256)
def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: one textual form for every stored instant
    (``%Y-%m-%dT%H:%M:%S.%fZ``; naive datetimes are read as UTC).

    Cached: a batch shares one decision time.
    """
    return format_epoch_micros(epoch_micros(moment))


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (naive datetimes are read as UTC), exactly."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def format_epoch_micros(micros: int) -> str:
    """:func:`format_timestamp` of an instant kept as microseconds since the epoch.

    The mitigation index keeps its 100,000s of instants as ints (32 bytes, where a
    datetime and its text cost 124) and formats them per pull; with the text up to the
    minute cached this is about three times as fast as ``strftime``.
    """
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{format_epoch_second_head(seconds)}{fraction:06d}Z"


def format_epoch_second_head(seconds: int) -> str:
    """:func:`format_epoch_micros` up to its fraction (``...T12:34:56.``), for callers
    that format many instants within the same seconds and keep each second's text."""
    minutes, second = divmod(seconds, 60)
    return f"{_minute_text(minutes)}{second:02d}."


@lru_cache(maxsize=4096)
def _minute_text(minutes: int) -> str:
    return (_EPOCH + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:")


def decision_flags(actions: list[Any], diff: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """``(actionable, changed)``: the row's filter columns, which are kept beside the
    entry and follow from it, so verifiers re-derive them with this same function.

    Actionable: the decision carries a mitigation. Changed: the first decision of its
    tenant+source+event_type, or one whose diff holds more than the previous event id.
    """
    return bool(actions), diff is None or len(diff) > 1


def decision_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """The entry for a decision row (a mapping with the ``decisions`` columns)."""
    diff = row["diff"]
    return {
        "v": ENTRY_VERSION,
        "stream": decision_stream(row["tenant_id"]),
        "index": row["seq"],
        "tenant_id": row["tenant_id"],
        "event_id": row["event_id"],
        "source": row["source"],
        "event_type": row["event_type"],
        "src_ip": row["src_ip"],
        "threat_level": row["threat_level"],
        "score": row["score"],
        "rules": orjson.loads(row["rules"]),
        "actions": orjson.loads(row["actions"]),
        "diff": None if diff is None else orjson.loads(diff),
        "policy_hash": row["policy_hash"],
        "created_at": format_timestamp(row["created_at"]),
        "request_sha256": hashlib.sha256(row["request_json"].encode()).hexdigest(),
        "response_sha256": hashlib.sha256(row["response_json"].encode()).hexdigest(),
    }
