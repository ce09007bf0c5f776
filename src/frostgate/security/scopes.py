"""The scopes FrostGate knows. A key holds a subset; each route requires some (F13)."""

from __future__ import annotations

__all__ = ["PLATFORM_SCOPES", "TENANT_SCOPES", "parse_scopes"]

TENANT_SCOPES: frozenset[str] = frozenset(
    {
        "defend:write",
        "ingest:write",
        "decisions:read",
        "feed:read",
        "stats:read",
        "forensics:read",
        "forensics:verify",
        "keys:admin",
        "audit:read",
        "ledger:read",
        "webhooks:admin",
        "tripwires:admin",
        "mitigations:write",
        "mitigations:approve",
        "enforcement:read",
        "enforcement:admin",
    }
)

PLATFORM_SCOPES: frozenset[str] = frozenset(
    {"tenants:admin", "keys:admin", "audit:read", "webhooks:admin"}
)


def parse_scopes(text: str, allowed: frozenset[str]) -> frozenset[str]:
    """Parse a comma- or space-separated scope list; unknown scopes are an error."""
    scopes = frozenset(s for s in text.replace(",", " ").split() if s)
    if not scopes:
        raise ValueError("at least one scope is required")
    unknown = scopes - allowed
    if unknown:
        # A real scope of the other key kind is a different mistake from a typo: say so.
        other = unknown & ((TENANT_SCOPES | PLATFORM_SCOPES) - allowed)
        if other:
            kind = "platform" if allowed == TENANT_SCOPES else "tenant"
            raise ValueError(f"{kind} scopes only: {', '.join(sorted(other))}")
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    return scopes
