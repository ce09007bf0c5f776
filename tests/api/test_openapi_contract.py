"""The served OpenAPI document describes what the app really answers (found by fuzzing).

Before ``frostgate.api.openapi`` completed it, schemathesis found: every error the gate
answers (401, 403, 404, 413, ...) undeclared; 422 declared with FastAPI's
``HTTPValidationError`` body while the app sends the error-code body; the SSE feed
declared as JSON; and operations that read a JSON body declaring none. Each test sends a
real request and validates the real answer against the served document.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis

from frostgate.errors import ErrorCode
from tests.conftest import Env


def _operation(env: Env, method: str, path: str) -> Any:
    document = env.client.get("/openapi.json").json()
    return schemathesis.openapi.from_dict(document)[path][method]


@pytest.mark.parametrize(
    ("method", "path", "url", "who", "status"),
    [
        ("GET", "/v1/decisions", "/v1/decisions", None, 401),
        ("GET", "/v1/decisions", "/v1/decisions", "platform", 403),
        ("GET", "/v1/decisions", "/v1/decisions?threat_level=nope", "acme", 422),
        ("GET", "/v1/decisions", "/v1/decisions?limit=x", "acme", 422),
        ("GET", "/v1/decisions/{event_id}", "/v1/decisions/missing", "acme", 404),
        ("POST", "/v1/keys", "/v1/keys", "acme", 415),
        ("GET", "/v1/tenants", "/v1/tenants", "acme", 403),
    ],
)
def test_error_answers_are_declared_with_the_error_body(
    env: Env, method: str, path: str, url: str, who: str | None, status: int
) -> None:
    headers = env.headers(who) if who else {}
    response = env.client.request(method, url, headers=headers)
    assert response.status_code == status
    operation = _operation(env, method, path)
    assert str(status) in operation.definition.raw["responses"], "status not declared"
    operation.validate_response(response)  # the body against the declared schema


def test_no_operation_declares_fastapis_validation_body(env: Env) -> None:
    document = env.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(document)
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "500" not in operation["responses"]
            assert {"401", "413", "503"} <= set(operation["responses"]) or not operation["security"]


def test_each_error_status_declares_exactly_its_codes(env: Env) -> None:
    """Each status lists exactly its codes: a 404 that said RATE_LIMITED would not pass."""
    response = env.client.get("/v1/decisions/missing", headers=env.headers())
    declared = _operation(env, "GET", "/v1/decisions/{event_id}")
    schema = declared.definition.raw["responses"]["404"]["content"]["application/json"]
    names = schema["schema"]["allOf"][1]["properties"]["error_code"]["enum"]
    assert names == sorted(c.name for c in ErrorCode if c.status == 404)
    assert response.json()["error_code"] in names


def test_the_feed_stream_is_declared_as_server_sent_events(env: Env) -> None:
    env.client.post("/v1/defend", json={"event_type": "auth"}, headers=env.headers())
    with env.client.stream("GET", "/v1/feed/stream", headers=env.headers()) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
    document = env.client.get("/openapi.json").json()
    content = document["paths"]["/v1/feed/stream"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/keys"),
        ("POST", "/v1/tenants"),
        ("PUT", "/v1/tenants/{tenant_id}/quota"),
        ("POST", "/v1/mitigations"),
        ("PUT", "/v1/enforcement/envelope"),
        ("POST", "/v1/forensics/packets"),
        ("POST", "/v1/webhooks"),
        ("PATCH", "/v1/webhooks/{endpoint_id}"),
        ("POST", "/v1/hook-sources"),
        ("POST", "/v1/hooks/{source_id}"),
    ],
)
def test_operations_that_read_a_json_body_declare_it(env: Env, method: str, path: str) -> None:
    document = env.client.get("/openapi.json").json()
    body = document["paths"][path][method.lower()]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"]["type"] == "object"


def test_keyed_operations_declare_the_bearer_scheme_and_public_ones_none(env: Env) -> None:
    document = env.client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    paths = document["paths"]
    assert paths["/v1/decisions"]["get"]["security"] == [{"apiKey": []}]
    assert paths["/v1/decisions"]["get"]["x-frostgate-scopes"] == ["decisions:read"]
    assert paths["/health/live"]["get"]["security"] == []
    assert paths["/v1/hooks/{source_id}"]["post"]["security"] == []
    assert "401" in paths["/v1/hooks/{source_id}"]["post"]["responses"]
    assert "401" not in paths["/health/live"]["get"]["responses"]
