"""A tenant's mission envelope: which mitigations may take effect, for how long, how many.

Pure data and one function, :func:`admit`, that decides the initial state of a proposed
mitigation: ``rejected`` (outside the envelope, or the target is allowlisted — it is kept
for the record but never enforced), ``pending`` (needs an approval: the doctrine asked
for one, the range is broad, or the blast-radius cap for the window is used up), or
``active``. The envelope is stored per tenant as JSON; a tenant without one gets
:data:`DEFAULT_ENVELOPE`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from frostgate.enforcement.targets import ACTIONS, Target

__all__ = ["DEFAULT_ENVELOPE", "Admission", "Envelope", "EnvelopeInvalid", "admit"]

MAX_TTL_CEILING = 90 * 86_400
# Every enforceable action counts against the blast-radius cap, not only blocks: a
# burst of quarantines or rate limits disrupts as much.
BLOCKING_ACTIONS = frozenset(ACTIONS)


class EnvelopeInvalid(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Envelope:
    allowed_actions: frozenset[str] = frozenset(ACTIONS)
    max_ttl_seconds: int = 7 * 86_400
    blast_radius_max: int = 100
    blast_radius_window_seconds: int = 3_600
    allowlist_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allowlist_users: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Envelope:
        known = {
            "allowed_actions",
            "max_ttl_seconds",
            "blast_radius",
            "allowlist",
        }
        unknown = set(data) - known
        if unknown:
            raise EnvelopeInvalid(f"unknown envelope fields: {sorted(unknown)}")
        actions = data.get("allowed_actions", sorted(ACTIONS))
        if not isinstance(actions, list) or not set(actions) <= set(ACTIONS):
            raise EnvelopeInvalid(f"allowed_actions must be a subset of {sorted(ACTIONS)}")
        ttl = data.get("max_ttl_seconds", 7 * 86_400)
        if type(ttl) is not int or not 60 <= ttl <= MAX_TTL_CEILING:
            raise EnvelopeInvalid("max_ttl_seconds must be an integer in [60, 7776000]")
        blast = data.get("blast_radius", {})
        if not isinstance(blast, dict) or set(blast) - {"max_blocks", "window_seconds"}:
            raise EnvelopeInvalid("blast_radius is {max_blocks, window_seconds}")
        max_blocks = blast.get("max_blocks", 100)
        window = blast.get("window_seconds", 3_600)
        if (
            type(max_blocks) is not int
            or type(window) is not int
            or not 0 <= max_blocks <= 1_000_000
            or not 1 <= window <= MAX_TTL_CEILING
        ):
            raise EnvelopeInvalid(
                "blast_radius: max_blocks in [0, 1000000], window_seconds in [1, 7776000]"
            )
        allow = data.get("allowlist", {})
        if not isinstance(allow, dict) or set(allow) - {"cidrs", "users"}:
            raise EnvelopeInvalid("allowlist is {cidrs, users}")
        try:
            networks = tuple(ipaddress.ip_network(c, strict=False) for c in allow.get("cidrs", []))
        except (TypeError, ValueError) as exc:
            raise EnvelopeInvalid("allowlist.cidrs must be CIDR strings") from exc
        users = allow.get("users", [])
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise EnvelopeInvalid("allowlist.users must be strings")
        return cls(
            allowed_actions=frozenset(actions),
            max_ttl_seconds=ttl,
            blast_radius_max=max_blocks,
            blast_radius_window_seconds=window,
            allowlist_networks=networks,
            allowlist_users=frozenset(users),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed_actions": sorted(self.allowed_actions),
            "max_ttl_seconds": self.max_ttl_seconds,
            "blast_radius": {
                "max_blocks": self.blast_radius_max,
                "window_seconds": self.blast_radius_window_seconds,
            },
            "allowlist": {
                "cidrs": [str(n) for n in self.allowlist_networks],
                "users": sorted(self.allowlist_users),
            },
        }

    def allowlisted(self, target: Target) -> bool:
        if target.scope == "user":
            return target.value in self.allowlist_users
        if target.scope == "ip":
            address = ipaddress.ip_address(target.value)
            return any(address in n for n in self.allowlist_networks)
        if target.scope == "range":
            network = ipaddress.ip_network(target.value)
            return any(
                network.version == n.version and network.overlaps(n)
                for n in self.allowlist_networks
            )
        return False


DEFAULT_ENVELOPE = Envelope()


@dataclass(frozen=True, slots=True)
class Admission:
    status: Literal["active", "pending", "rejected"]
    reason: str | None
    ttl_seconds: int
    over_blast_radius: bool = False


def admit(
    envelope: Envelope,
    action: str,
    target: Target,
    ttl_seconds: int,
    *,
    needs_approval: bool,
    recent_blocks: int,
) -> Admission:
    """The initial state of one proposed mitigation under ``envelope``.

    ``recent_blocks``: blocking mitigations already created in the blast-radius window.
    A TTL above the envelope's maximum is shortened to it, not refused.
    """
    ttl = min(ttl_seconds, envelope.max_ttl_seconds)
    if action not in envelope.allowed_actions:
        return Admission("rejected", f"action {action} is outside the envelope", ttl)
    if envelope.allowlisted(target):
        return Admission("rejected", "target is allowlisted", ttl)
    if needs_approval:
        return Admission("pending", "doctrine requires approval", ttl)
    if target.broad:
        return Admission("pending", "broad range requires approval", ttl)
    if action in BLOCKING_ACTIONS and recent_blocks >= envelope.blast_radius_max:
        return Admission("pending", "blast-radius cap reached", ttl, over_blast_radius=True)
    return Admission("active", None, ttl)
