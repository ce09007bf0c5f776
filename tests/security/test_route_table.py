"""The declarative route table (F5, F13): inventory snapshot, deny-by-default matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frostgate.api import build_app
from frostgate.config import Settings
from frostgate.security import ROUTES, RouteSpec, RouteTable
from frostgate.security.routes import TENANT_KEYS, route_inventory_json

SNAPSHOT = Path(__file__).with_name("route_inventory.json")


def test_route_inventory_matches_the_reviewed_snapshot() -> None:
    """Any change to routes, scopes or tenancy must update the committed snapshot."""
    assert json.loads(route_inventory_json()) == json.loads(SNAPSHOT.read_text())


def test_every_private_route_requires_a_scope_and_a_key_kind() -> None:
    for spec in ROUTES:
        if not spec.public:
            assert spec.scopes, spec
            assert spec.kinds, spec
        if spec.tenant_data:
            assert spec.kinds == TENANT_KEYS, spec


def test_app_refuses_to_start_when_a_declared_route_is_not_mounted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = RouteSpec("GET", "/v1/phantom", frozenset({"stats:read"}), True, TENANT_KEYS)
    monkeypatch.setattr("frostgate.api.app.ROUTES", (*ROUTES, extra))
    with pytest.raises(RuntimeError, match="declared but not mounted: GET /v1/phantom"):
        build_app(settings)


def test_app_refuses_to_start_when_a_mounted_route_is_not_declared(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    undeclared = tuple(r for r in ROUTES if r.path != "/v1/stats")
    monkeypatch.setattr("frostgate.api.app.ROUTES", undeclared)
    with pytest.raises(RuntimeError, match="mounted but not declared: GET /v1/stats"):
        build_app(settings)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/decisions/abc", "/v1/decisions/{event_id}"),
        ("GET", "/v1/decisions/a/b", None),
        ("GET", "/v1/decisions/", None),
        ("GET", "/v1/decisions", "/v1/decisions"),
        ("GET", "/v1/decisionsx", None),
        ("GET", "/v1/decision", None),
        ("GET", "/health/live/", None),
        ("GET", "/health/livex", None),
        ("POST", "/v1/keys/k1/rotate", "/v1/keys/{key_id}/rotate"),
        ("POST", "/v1/keys/k1/rotate/x", None),
        ("get", "/v1/decisions", None),
    ],
)
def test_matching_is_exact(method: str, path: str, expected: str | None) -> None:
    spec = RouteTable(ROUTES).match(method, path)
    assert (spec.path if spec else None) == expected
