"""The error-code registry and the one response builder (audit findings F3, F14).

Every non-2xx body FrostGate produces is ``{"error_code", "detail", "request_id"}``.
``detail`` is a fixed, safe sentence per code: exception text never reaches a client,
so an upstream message cannot leak internal state and clients can rely on the code.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import orjson

__all__ = ["ErrorCode", "FrostGateError", "error_body", "unknown_name_reason"]


@dataclass(frozen=True, slots=True)
class _Spec:
    status: int
    detail: str


class ErrorCode(enum.Enum):
    """Every error FrostGate can answer with: HTTP status and its fixed detail sentence."""

    # Request shape and limits
    NOT_FOUND = _Spec(404, "No such resource.")
    MALFORMED_REQUEST = _Spec(400, "The HTTP request is malformed.")
    HEAD_TIMEOUT = _Spec(408, "The request line and headers did not arrive in time.")
    BODY_TOO_LARGE = _Spec(413, "Request body exceeds the size limit.")
    URI_TOO_LONG = _Spec(414, "Request path or query exceeds the length limit.")
    HEADERS_TOO_LARGE = _Spec(431, "Request headers exceed the count or size limit.")
    UNSUPPORTED_MEDIA_TYPE = _Spec(415, "Request body must be application/json.")
    MALFORMED_JSON = _Spec(400, "Request body is not valid JSON.")
    JSON_TOO_DEEP = _Spec(422, "JSON nesting exceeds the depth limit.")
    ARRAY_TOO_LONG = _Spec(422, "A JSON array exceeds the item limit.")
    STRING_TOO_LONG = _Spec(422, "A JSON string exceeds the length limit.")
    BATCH_TOO_LARGE = _Spec(422, "The batch holds more events than allowed.")
    BATCH_EMPTY = _Spec(422, "The batch holds no events.")
    VALIDATION_FAILED = _Spec(422, "The request does not match the expected schema.")
    EVENT_INVALID = _Spec(422, "The event is missing a required field or has a wrong type.")
    EVENT_ID_REQUIRED = _Spec(422, "Every ingested event needs an event_id.")
    EVENT_ID_INVALID = _Spec(422, "The event_id is not a valid identifier.")
    TIMESTAMP_INVALID = _Spec(422, "A timestamp could not be parsed.")
    FILTER_INVALID = _Spec(422, "A query filter has an unknown or invalid value.")
    CURSOR_INVALID = _Spec(422, "The pagination cursor is invalid.")
    RANGE_INVALID = _Spec(422, "The requested range is invalid.")
    DUPLICATE_EVENT_IN_BATCH = _Spec(422, "The batch names the same event_id twice.")
    # Authentication and authorisation
    AUTH_REQUIRED = _Spec(401, "A valid API key is required.")
    KEY_IN_QUERY = _Spec(400, "API keys are accepted in headers only.")
    SCOPE_DENIED = _Spec(403, "The API key lacks the scope this route requires.")
    SCOPE_ESCALATION = _Spec(403, "A key cannot grant scopes it does not hold.")
    TENANT_MISMATCH = _Spec(403, "The request names a tenant other than the key's.")
    TENANT_SUSPENDED = _Spec(403, "The tenant is suspended.")
    # Webhooks
    WEBHOOK_URL_REFUSED = _Spec(422, "The URL is refused by the egress policy.")
    WEBHOOK_SECRET_INVALID = _Spec(
        422, "A webhook secret must be whsec_ followed by base64 of at least 32 bytes."
    )
    WEBHOOK_SECRET_IN_USE = _Spec(409, "This secret is already active on the source.")
    SIGNATURE_INVALID = _Spec(
        401, "The webhook signature is missing, wrong or outside the time window."
    )
    WEBHOOK_REPLAYED = _Spec(409, "This webhook-id was already received.")
    QUERY_UNKNOWN = _Spec(422, "The query names a parameter this route does not take.")
    QUERY_REPEATED = _Spec(422, "The query gives a parameter more than once.")
    # Enforcement
    MITIGATION_INVALID = _Spec(422, "The mitigation action, target or duration is invalid.")
    MITIGATION_STATE = _Spec(409, "The mitigation is not in a state that allows this change.")
    APPROVAL_BY_PROPOSER = _Spec(
        403, "A mitigation must be approved by a key other than its proposer."
    )
    # Conflicts and quotas
    IDEMPOTENCY_CONFLICT = _Spec(409, "This event_id was already used with a different body.")
    LIMIT_REACHED = _Spec(409, "A limit on the number of these records is reached.")
    TENANT_EXISTS = _Spec(409, "A tenant with this id already exists.")
    KEY_NOT_ACTIVE = _Spec(409, "The key is already revoked or expired.")
    PACKET_HISTORY_CHANGED = _Spec(
        409, "The ledger history this packet covers has changed since it was created."
    )
    RATE_LIMITED = _Spec(429, "Too many requests; retry later.")
    QUOTA_EXCEEDED = _Spec(429, "The tenant's daily event quota is used up.")
    CONCURRENCY_LIMITED = _Spec(
        429, "Too many requests from this client or tenant are in progress; retry later."
    )
    # Server side (fail closed)
    STORAGE_UNAVAILABLE = _Spec(503, "Storage is unavailable; nothing was recorded.")
    NOT_READY = _Spec(503, "The service is not ready.")
    RATE_LIMITER_UNAVAILABLE = _Spec(503, "The rate limiter is unavailable; retry later.")
    OVERLOADED = _Spec(503, "The service is at its concurrency limit; retry later.")
    REQUEST_TIMEOUT = _Spec(504, "The request did not complete in time.")
    INTERNAL = _Spec(500, "Internal error.")

    @property
    def status(self) -> int:
        return self.value.status

    @property
    def detail(self) -> str:
        return self.value.detail


class FrostGateError(Exception):
    """An error with a registered code. Its message is for logs only, never for clients.

    ``reason`` is the exception to that rule for refusals whose wording FrostGate itself
    owns: why a webhook URL is refused, which field of an event is wrong and, in a batch,
    which event. It is added to the body as ``reason``. Nothing from an exception, a
    library or the database may be passed as a reason.
    """

    def __init__(self, code: ErrorCode, log_message: str = "", *, reason: str | None = None):
        super().__init__(log_message or code.name)
        self.code = code
        self.reason = reason


_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def unknown_name_reason(what: str, name: str) -> str:
    """The ``reason`` refusing an unknown query parameter or body field: it repeats the
    name only when it is a plain identifier, never arbitrary client text."""
    return f"unknown {what} {name!r}" if _PLAIN_NAME.fullmatch(name) else f"unknown {what}"


def error_body(code: ErrorCode, request_id: str, reason: str | None = None) -> bytes:
    """The one error body builder: stable code, fixed detail, the request id."""
    body = {"error_code": code.name, "detail": code.detail, "request_id": request_id}
    if reason is not None:
        body["reason"] = reason
    return orjson.dumps(body)
