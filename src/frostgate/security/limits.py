"""Input limits: body size (streamed), JSON depth, array length, string length.

Checks run before any handler sees the data, and each violation has its own error code.
The JSON walk is iterative so a hostile document cannot exhaust the Python stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from frostgate.errors import ErrorCode, FrostGateError

__all__ = ["Batch", "JsonLimits", "parse_json"]


@dataclass(frozen=True, slots=True)
class JsonLimits:
    max_depth: int = 16
    max_array_items: int = 1000
    max_string_bytes: int = 8 * 1024


def _too_long(text: str, limit: int) -> bool:
    # A str of n code points is at most 4n UTF-8 bytes and at least n.
    return len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)


@dataclass(frozen=True, slots=True)
class Batch:
    """The root object's list of items in a batch request (``/v1/ingest``'s ``events``):
    at most ``max_items`` of them, refused as BATCH_TOO_LARGE before anything in it is
    looked at. The array limit does not apply to that one list; its items keep every
    other limit."""

    field: str
    max_items: int


def parse_json(body: bytes, limits: JsonLimits, *, batch: Batch | None = None) -> Any:
    """Decode ``body`` and enforce ``limits``; raise FrostGateError on any violation."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            # orjson's own nesting cap (1,024) met before ours could count: still depth.
            raise FrostGateError(ErrorCode.JSON_TOO_DEEP, str(exc)) from exc
        raise FrostGateError(ErrorCode.MALFORMED_JSON, str(exc)) from exc
    stack: list[tuple[Any, int]] = [(value, 1)]
    if batch is not None and isinstance(value, dict):
        items = value.get(batch.field)
        if isinstance(items, list):
            if len(items) > batch.max_items:
                raise FrostGateError(ErrorCode.BATCH_TOO_LARGE)
            rest = {k: v for k, v in value.items() if k != batch.field}
            stack = [(rest, 1), *((item, 3) for item in items)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > limits.max_depth:
                raise FrostGateError(ErrorCode.JSON_TOO_DEEP)
            for key, child in node.items():
                if _too_long(key, limits.max_string_bytes):
                    raise FrostGateError(ErrorCode.STRING_TOO_LONG)
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str) and _too_long(child, limits.max_string_bytes):
                    raise FrostGateError(ErrorCode.STRING_TOO_LONG)
        elif isinstance(node, list):
            if depth > limits.max_depth:
                raise FrostGateError(ErrorCode.JSON_TOO_DEEP)
            if len(node) > limits.max_array_items:
                raise FrostGateError(ErrorCode.ARRAY_TOO_LONG)
            for child in node:
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str) and _too_long(child, limits.max_string_bytes):
                    raise FrostGateError(ErrorCode.STRING_TOO_LONG)
        elif isinstance(node, str) and _too_long(node, limits.max_string_bytes):
            raise FrostGateError(ErrorCode.STRING_TOO_LONG)
    return value
