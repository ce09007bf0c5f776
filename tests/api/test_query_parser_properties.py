"""Properties of the query parsers every read route shares (``frostgate.api._common``):
whatever a client puts in ``since``/``until``, ``cursor`` or the decision filters, the
answer is a value or the documented error code, never an unexpected exception (a 500).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from frostgate.api._common import decision_filter, parse_cursor, parse_time
from frostgate.errors import ErrorCode, FrostGateError
from tests.conftest import Env

text = st.text(max_size=40) | st.from_regex(r"[0-9]{0,20}", fullmatch=True)


def _code(call: object, *args: object, **kwargs: object) -> ErrorCode | None:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except FrostGateError as exc:
        return exc.code
    return None


@given(value=text | st.datetimes().map(lambda d: d.isoformat()))
def test_query_timestamps_are_aware_datetimes_or_timestamp_invalid(value: str) -> None:
    if _code(parse_time, value) is None:
        moment = parse_time(value)
        assert moment is not None
        assert moment.utcoffset() is not None
        assert abs(moment.utcoffset() or timedelta()) < timedelta(days=1)
    else:
        assert _code(parse_time, value) is ErrorCode.TIMESTAMP_INVALID


@given(value=text)
@example(value="\u00b2")  # superscript two: str.isdigit() says yes, int() says no
@example(value="\u0661\u0662")  # Arabic-Indic digits
def test_cursors_are_small_non_negative_integers_or_cursor_invalid(value: str) -> None:
    code = _code(parse_cursor, value)
    if code is None:
        cursor = parse_cursor(value)
        assert cursor is not None
        assert 0 <= cursor < 10**18
        assert str(cursor) == value.lstrip("0") or cursor == 0
    else:
        assert code is ErrorCode.CURSOR_INVALID


@given(threat_level=st.none() | text, event_type=st.none() | text, since=st.none() | text)
def test_decision_filters_parse_or_are_refused_with_their_code(
    threat_level: str | None, event_type: str | None, since: str | None
) -> None:
    code = _code(
        decision_filter,
        threat_level=threat_level,
        event_type=event_type,
        source=None,
        since=since,
        until=None,
    )
    assert code in (None, ErrorCode.FILTER_INVALID, ErrorCode.TIMESTAMP_INVALID)


def test_a_cursor_of_other_digits_is_refused_not_a_server_error(env: Env) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` raises: this was a 500 (found by the
    cursor property above)."""
    for url in (
        "/v1/decisions?cursor=%C2%B2",
        "/v1/audit?cursor=%D9%A1",
        "/v1/feed/live?since=%C2%B2",
    ):
        r = env.client.get(url, headers=env.headers())
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error_code"] == "CURSOR_INVALID"


def test_ledger_indexes_of_other_digits_are_refused_not_a_server_error(env: Env) -> None:
    """The same ``isdigit`` trap in the ledger routes' integer parameters."""
    for query in ("index=%C2%B2&size=1", "first=%C2%B2&second=1", "start=0&end=%C2%B2"):
        for route in ("proof/inclusion", "proof/consistency", "entries"):
            r = env.client.get(f"/v1/ledger/decisions/{route}?{query}", headers=env.headers())
            assert r.status_code < 500, (route, query, r.text)


def test_a_content_length_of_other_digits_is_refused_by_the_gate(env: Env) -> None:
    """Header bytes are latin-1: ``Content-Length: \\xb2`` reads as "²", which passed
    ``str.isdigit()``; ``int()`` then raised inside the gate and no answer was sent. Sent
    as raw ASGI (HTTP clients rewrite Content-Length), through the running app."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/decisions",
        "raw_path": b"/v1/decisions",
        "query_string": b"",
        "headers": [(b"content-length", b"\xb2")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    gate = env.client.app
    env.client.portal.call(gate, scope, receive, send)  # type: ignore[union-attr]
    assert sent[0]["status"] == 413
    assert b"BODY_TOO_LARGE" in sent[1]["body"]
