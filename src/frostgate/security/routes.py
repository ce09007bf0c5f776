"""The declarative route table: every reachable route, its scopes and its tenancy (F5, F13).

A request is served only if its exact method and path match an entry here. The app
refuses to start when a mounted route is missing from this table (or an entry has no
route), so a new endpoint cannot ship without a reviewed declaration. Public routes are
exact paths; there is no prefix matching. The one templated public route,
``POST /v1/hooks/{source_id}``, is authenticated by its Standard Webhooks signature.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ANY_KEY",
    "PLATFORM_KEYS",
    "ROUTES",
    "TENANT_KEYS",
    "RouteSpec",
    "RouteTable",
    "route_inventory_json",
]


TENANT_KEYS = frozenset({"tenant"})
PLATFORM_KEYS = frozenset({"platform"})
ANY_KEY = frozenset({"tenant", "platform"})


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One declared route.

    ``kinds`` are the key kinds that may call it: tenant-data routes take tenant keys
    only (a platform key never reads tenant data), tenant administration takes platform
    keys only. ``writes`` marks routes that change state (rate limited).
    """

    method: str
    path: str
    scopes: frozenset[str]
    tenant_data: bool
    kinds: frozenset[str]
    public: bool = False
    signed: bool = False

    @property
    def writes(self) -> bool:
        return self.method in {"POST", "PUT", "PATCH", "DELETE"}

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "path": self.path,
            "scopes": sorted(self.scopes),
            "tenant_data": self.tenant_data,
            "key_kinds": sorted(self.kinds),
            "public": self.public,
            "signature_auth": self.signed,
        }


def _public(method: str, path: str) -> RouteSpec:
    return RouteSpec(method, path, frozenset(), tenant_data=False, kinds=frozenset(), public=True)


def _signed(method: str, path: str) -> RouteSpec:
    """No API key: the handler admits only a valid Standard Webhooks signature (F1)."""
    return RouteSpec(
        method, path, frozenset(), tenant_data=False, kinds=frozenset(), public=True, signed=True
    )


def _tenant(method: str, path: str, scope: str) -> RouteSpec:
    return RouteSpec(method, path, frozenset({scope}), tenant_data=True, kinds=TENANT_KEYS)


def _admin(method: str, path: str, scope: str, kinds: frozenset[str]) -> RouteSpec:
    return RouteSpec(method, path, frozenset({scope}), tenant_data=False, kinds=kinds)


ROUTES: tuple[RouteSpec, ...] = (
    _public("GET", "/health/live"),
    _public("GET", "/health/ready"),
    _public("GET", "/openapi.json"),
    _tenant("POST", "/v1/defend", "defend:write"),
    _tenant("POST", "/v1/ingest", "ingest:write"),
    _tenant("GET", "/v1/decisions", "decisions:read"),
    _tenant("GET", "/v1/decisions/{event_id}", "decisions:read"),
    _tenant("GET", "/v1/feed/live", "feed:read"),
    _tenant("GET", "/v1/feed/stream", "feed:read"),
    _tenant("GET", "/v1/stats", "stats:read"),
    _tenant("GET", "/v1/stats/summary", "stats:read"),
    _tenant("GET", "/v1/forensics/snapshot/{event_id}", "forensics:read"),
    _tenant("GET", "/v1/forensics/chain/verify", "forensics:verify"),
    _tenant("POST", "/v1/forensics/packets", "forensics:read"),
    _tenant("GET", "/v1/forensics/packets/{packet_id}", "forensics:read"),
    _public("GET", "/v1/ledger/public-key"),
    _tenant("GET", "/v1/ledger/{stream}/checkpoint", "ledger:read"),
    _tenant("GET", "/v1/ledger/{stream}/checkpoints", "ledger:read"),
    _tenant("GET", "/v1/ledger/{stream}/proof/inclusion", "ledger:read"),
    _tenant("GET", "/v1/ledger/{stream}/proof/consistency", "ledger:read"),
    _tenant("GET", "/v1/ledger/{stream}/entries", "ledger:read"),
    _admin("POST", "/v1/keys", "keys:admin", ANY_KEY),
    _admin("GET", "/v1/keys", "keys:admin", ANY_KEY),
    _admin("POST", "/v1/keys/{key_id}/rotate", "keys:admin", ANY_KEY),
    _admin("DELETE", "/v1/keys/{key_id}", "keys:admin", ANY_KEY),
    _admin("GET", "/v1/audit", "audit:read", ANY_KEY),
    _admin("POST", "/v1/tenants", "tenants:admin", PLATFORM_KEYS),
    _admin("GET", "/v1/tenants", "tenants:admin", PLATFORM_KEYS),
    _admin("POST", "/v1/tenants/{tenant_id}/suspend", "tenants:admin", PLATFORM_KEYS),
    _admin("POST", "/v1/tenants/{tenant_id}/resume", "tenants:admin", PLATFORM_KEYS),
    _admin("PUT", "/v1/tenants/{tenant_id}/quota", "tenants:admin", PLATFORM_KEYS),
    _admin("POST", "/v1/webhooks", "webhooks:admin", ANY_KEY),
    _admin("GET", "/v1/webhooks", "webhooks:admin", ANY_KEY),
    _admin("DELETE", "/v1/webhooks/{endpoint_id}", "webhooks:admin", ANY_KEY),
    _admin("PATCH", "/v1/webhooks/{endpoint_id}", "webhooks:admin", ANY_KEY),
    _admin("POST", "/v1/webhooks/{endpoint_id}/test", "webhooks:admin", ANY_KEY),
    _admin("GET", "/v1/webhooks/{endpoint_id}/deliveries", "webhooks:admin", ANY_KEY),
    _tenant("POST", "/v1/hook-sources", "webhooks:admin"),
    _tenant("GET", "/v1/hook-sources", "webhooks:admin"),
    _tenant("POST", "/v1/hook-sources/{source_id}/secrets", "webhooks:admin"),
    _tenant("DELETE", "/v1/hook-sources/{source_id}/secrets/{secret_id}", "webhooks:admin"),
    _signed("POST", "/v1/hooks/{source_id}"),
    _tenant("POST", "/v1/tripwires/canary-keys", "tripwires:admin"),
    _tenant("POST", "/v1/mitigations", "mitigations:write"),
    _tenant("GET", "/v1/mitigations", "enforcement:read"),
    _tenant("GET", "/v1/mitigations/stream", "enforcement:read"),
    _tenant("GET", "/v1/mitigations/{mitigation_id}", "enforcement:read"),
    _tenant("DELETE", "/v1/mitigations/{mitigation_id}", "mitigations:write"),
    _tenant("POST", "/v1/mitigations/{mitigation_id}/approve", "mitigations:approve"),
    _tenant("GET", "/v1/enforcement/envelope", "enforcement:read"),
    _tenant("PUT", "/v1/enforcement/envelope", "enforcement:admin"),
    _tenant("GET", "/crowdsec/v1/decisions/stream", "enforcement:read"),
    _tenant("GET", "/crowdsec/v1/decisions", "enforcement:read"),
)


def route_inventory_json() -> str:
    """The inventory as stable, reviewable JSON (the committed snapshot's format)."""
    return json.dumps([spec.as_dict() for spec in ROUTES], indent=2, sort_keys=True)


_PARAM = re.compile(r"\{([a-z_]+)\}")


def _compile(path: str) -> re.Pattern[str]:
    pattern = ""
    position = 0
    for match in _PARAM.finditer(path):
        pattern += re.escape(path[position : match.start()]) + r"[^/]+"
        position = match.end()
    pattern += re.escape(path[position:])
    return re.compile(pattern)


class RouteTable:
    """Exact matching of (method, path) against the declared routes."""

    def __init__(self, routes: Iterable[RouteSpec]) -> None:
        self.routes = tuple(routes)
        self._static: dict[tuple[str, str], RouteSpec] = {}
        self._templated: list[tuple[str, re.Pattern[str], RouteSpec]] = []
        for spec in self.routes:
            if "{" in spec.path:
                self._templated.append((spec.method, _compile(spec.path), spec))
            else:
                self._static[(spec.method, spec.path)] = spec

    def match(self, method: str, path: str) -> RouteSpec | None:
        spec = self._static.get((method, path))
        if spec is not None:
            return spec
        for declared_method, pattern, templated in self._templated:
            if declared_method == method and pattern.fullmatch(path):
                return templated
        return None

    def check_mounted(self, mounted: Iterable[tuple[str, str]]) -> list[str]:
        """Problems between the mounted routes and this table (empty when they agree)."""
        declared = {(s.method, s.path) for s in self.routes}
        mounted_set = set(mounted)
        problems = [f"mounted but not declared: {m} {p}" for m, p in sorted(mounted_set - declared)]
        problems += [
            f"declared but not mounted: {m} {p}" for m, p in sorted(declared - mounted_set)
        ]
        return problems
