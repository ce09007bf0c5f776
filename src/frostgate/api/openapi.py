"""The served OpenAPI document, completed from the route table and the error registry.

FastAPI documents what it can see: each handler's parameters, its success status and a
422 in FastAPI's own ``HTTPValidationError`` shape. Most of what FrostGate answers comes
from places it cannot see: the auth gate (401, 403, 404, 413, 414, 429, 431, 503, 504)
and the one error builder, whose body is ``{"error_code", "detail", "request_id"}`` for
every non-2xx (audit F3, F14), never FastAPI's. Fuzzing the served document
(``tests/api/test_api_fuzz.py``) found every operation answering statuses it did not
declare, and 422 bodies that contradicted their declared schema: a client generated from
the document would have mis-read every error.

So the document is completed here, from the two sources of truth that produce the
answers, and cannot drift from them:

* :data:`frostgate.security.ROUTES` says which operations need a key (they declare the
  bearer scheme, their scopes, and 401 with ``WWW-Authenticate``) and which are public;
* :class:`frostgate.errors.ErrorCode` says which codes each status carries: every
  declared error response has the error-body schema with ``error_code`` limited to the
  codes of that status.

An operation behind a key (or a signature) may answer any registered error but 500: the
gate's limits, authentication and scopes come before any handler, and the handlers share
the body and storage errors. A public operation answers only the gate's limits and the
server-side refusals. 500 is never declared: it must not happen.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from frostgate.errors import ErrorCode
from frostgate.security import RouteTable

__all__ = ["body_fields", "bodyless", "complete_openapi", "query_names"]

_SCHEME = "apiKey"
_ERROR_SCHEMA = "ErrorBody"
#: What the gate can answer before a public route's handler runs, and the server-side
#: refusals (fail closed) any handler may give.
_PUBLIC_ERRORS = frozenset(
    {
        ErrorCode.NOT_FOUND,
        ErrorCode.BODY_TOO_LARGE,
        ErrorCode.URI_TOO_LONG,
        ErrorCode.HEADERS_TOO_LARGE,
        ErrorCode.STORAGE_UNAVAILABLE,
        ErrorCode.NOT_READY,
        ErrorCode.OVERLOADED,
        ErrorCode.CONCURRENCY_LIMITED,
        ErrorCode.QUERY_UNKNOWN,
        ErrorCode.QUERY_REPEATED,
        ErrorCode.KEY_IN_QUERY,
        ErrorCode.REQUEST_TIMEOUT,
    }
)
_GUARDED_ERRORS = frozenset(ErrorCode) - {ErrorCode.INTERNAL}


def _error_body_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error_code", "detail", "request_id"],
        "properties": {
            "error_code": {"type": "string", "enum": sorted(c.name for c in ErrorCode)},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "reason": {"type": "string"},
        },
        "additionalProperties": False,
    }


def _error_response(status: int, codes: list[ErrorCode]) -> dict[str, Any]:
    names = sorted(c.name for c in codes)
    schema = {
        "allOf": [
            {"$ref": f"#/components/schemas/{_ERROR_SCHEMA}"},
            {"properties": {"error_code": {"enum": names}}},
        ]
    }
    response: dict[str, Any] = {
        "description": "; ".join(
            f"{c.name}: {c.detail}" for c in sorted(codes, key=lambda c: c.name)
        ),
        "content": {"application/json": {"schema": schema}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {
                "description": "Present when an API key was missing or refused.",
                "schema": {"type": "string"},
            }
        }
    return response


def complete_openapi(document: dict[str, Any], routes: RouteTable) -> dict[str, Any]:
    """Add the security scheme and the error responses to ``document`` (in place).

    Raises ``RuntimeError`` when an operation has no route declaration: the app refuses
    to start in that case anyway, and a document that guessed would be wrong.
    """
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas[_ERROR_SCHEMA] = _error_body_schema()
    components["securitySchemes"] = {
        _SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "fgk_<key_id>_<secret>; X-API-Key carries the same key.",
        }
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            spec = routes.match(method.upper(), path)
            if spec is None:
                raise RuntimeError(f"no route declaration for {method.upper()} {path}")
            guarded = not spec.public or spec.signed
            allowed = _GUARDED_ERRORS if guarded else _PUBLIC_ERRORS
            by_status: defaultdict[int, list[ErrorCode]] = defaultdict(list)
            for code in allowed:
                by_status[code.status].append(code)
            responses = operation.setdefault("responses", {})
            for status in sorted(by_status):
                responses[str(status)] = _error_response(status, by_status[status])
            if not spec.public:
                operation["security"] = [{_SCHEME: []}]
                operation["x-frostgate-scopes"] = sorted(spec.scopes)
                operation["x-frostgate-key-kinds"] = sorted(spec.kinds)
            else:
                operation["security"] = []
    return document


def query_names(document: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """The query parameters each operation of ``document`` declares, by (method, path):
    what the gate lets through (the served document is the one list of them)."""
    return {
        (method.upper(), path): frozenset(
            p["name"] for p in operation.get("parameters", ()) if p.get("in") == "query"
        )
        for path, operations in document.get("paths", {}).items()
        for method, operation in operations.items()
    }


def body_fields(document: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """The fields each operation of ``document`` with a closed JSON object body
    (``additionalProperties: false``) takes, by (method, path): what
    :func:`frostgate.api._common.read_object` lets through."""
    fields: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if schema.get("additionalProperties") is False:
                fields[(method.upper(), path)] = frozenset(schema.get("properties", {}))
    return fields


def bodyless(document: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """The operations of ``document`` that declare no request body, by (method, path):
    a body sent to one would be ignored, so the gate refuses it."""
    return frozenset(
        (method.upper(), path)
        for path, operations in document.get("paths", {}).items()
        for method, operation in operations.items()
        if "requestBody" not in operation
    )
