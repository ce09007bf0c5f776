"""Properties of the request-body parser, ``frostgate.security.parse_json`` (issue 7,
part 4): any bytes give a value or a ``FrostGateError`` with one of the body codes, never
another exception; a document within the limits is read back unchanged; one that breaks
a limit is refused with that limit's code, whatever surrounds it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security import JsonLimits, parse_json
from frostgate.security.limits import Batch

LIMITS = JsonLimits(max_depth=4, max_array_items=5, max_string_bytes=16)
BODY_CODES = {
    ErrorCode.MALFORMED_JSON,
    ErrorCode.JSON_TOO_DEEP,
    ErrorCode.ARRAY_TOO_LONG,
    ErrorCode.STRING_TOO_LONG,
}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=30,
)


def _within(value: Any, depth: int = 1) -> bool:
    if isinstance(value, dict):
        return depth <= LIMITS.max_depth and all(
            len(k.encode()) <= LIMITS.max_string_bytes and _within(v, depth + 1)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return (
            depth <= LIMITS.max_depth
            and len(value) <= LIMITS.max_array_items
            and all(_within(v, depth + 1) for v in value)
        )
    if isinstance(value, str):
        return len(value.encode()) <= LIMITS.max_string_bytes
    return True


@given(body=st.binary(max_size=300) | json_values.map(orjson.dumps))
def test_any_body_is_a_value_or_a_body_error(body: bytes) -> None:
    try:
        parse_json(body, LIMITS)
        code = None
    except FrostGateError as exc:  # the documented refusal; anything else propagates
        code = exc.code
    assert code is None or code in BODY_CODES


@given(value=json_values)
def test_documents_within_the_limits_read_back_and_others_are_refused(value: Any) -> None:
    body = orjson.dumps(value)
    if _within(value):
        assert parse_json(body, LIMITS) == value
    else:
        with pytest.raises(FrostGateError) as info:
            parse_json(body, LIMITS)
        assert info.value.code in BODY_CODES - {ErrorCode.MALFORMED_JSON}


@given(
    items=st.lists(json_values, max_size=12),
    rest=st.dictionaries(st.text(max_size=20).filter(lambda k: k != "events"), json_values),
)
def test_a_batch_is_bounded_by_its_caller_not_the_array_limit_and_its_items_are_checked(
    items: list[Any], rest: dict[str, Any]
) -> None:
    """``/v1/ingest``'s ``events`` may be longer than the array limit (the batch limit
    answers for it, as ``BATCH_TOO_LARGE``, before anything in it is read); everything in
    and around it keeps the other limits."""
    value = {**rest, "events": items}
    body = orjson.dumps(value)
    batch = Batch("events", max_items=10)
    if len(items) > batch.max_items:
        with pytest.raises(FrostGateError) as info:
            parse_json(body, LIMITS, batch=batch)
        assert info.value.code is ErrorCode.BATCH_TOO_LARGE
    elif _within(rest) and all(_within(item, 3) for item in items):
        assert parse_json(body, LIMITS, batch=batch) == value
    else:
        with pytest.raises(FrostGateError) as info:
            parse_json(body, LIMITS, batch=batch)
        assert info.value.code in BODY_CODES - {ErrorCode.MALFORMED_JSON}
