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
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

__all__ = ["ENTRY_VERSION", "decision_entry", "decision_stream", "format_timestamp"]

ENTRY_VERSION = 1


def decision_stream(tenant_id: str) -> str:
    return f"decisions/{tenant_id}"


@lru_cache(maxsize=256)
def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: one textual form for every stored instant.

    Cached: a batch shares one decision time, and ``strftime`` costs more than a lookup.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
