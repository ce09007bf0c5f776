"""A tenant's mission envelope: which mitigations may take effect, for how long, how many.

Pure data and one function, :func:`admit`, that decides the initial state of a proposed
mitigation: ``rejected`` (outside the envelope, the target is allowlisted, or it is an
address no enforcement point may act on, such as loopback — it is kept for the record
but never enforced), ``pending`` (needs an approval: the doctrine asked
for one, the range is broad, or the blast-radius cap for the window is used up), or
``active``. The envelope is stored per tenant as JSON; a tenant without one gets
:data:`DEFAULT_ENVELOPE`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from frostgate.egress.addresses import embedded_v4
from frostgate.enforcement.targets import ACTIONS, Target

__all__ = [
    "DEFAULT_ENVELOPE",
    "Admission",
    "Envelope",
    "EnvelopeInvalid",
    "admit",
    "never_enforced",
]

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
            networks = tuple(
                _unmapped(ipaddress.ip_network(c, strict=False)) for c in allow.get("cidrs", [])
            )
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
        """Whether ``target`` is protected. Generous on purpose (a miss blocks what must
        never be blocked): user names match whatever their case, and an address matches
        in every IPv6 form that leads to an allowlisted IPv4 address."""
        if target.scope == "user":
            wanted = target.value.casefold()
            return any(user.casefold() == wanted for user in self.allowlist_users)
        address = _as_address(target)
        if address is not None:
            forms = _address_forms(address)
            return any(form in n for form in forms for n in self.allowlist_networks)
        if target.scope == "range":
            return any(
                form.version == n.version and form.overlaps(n)
                for form in _range_forms(ipaddress.ip_network(target.value))
                for n in self.allowlist_networks
            )
        return False


DEFAULT_ENVELOPE = Envelope()

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
# Addresses no enforcement point may act on, whatever the envelope: an event's source
# address is the sender's word, and a block of loopback, "this network", link-local (the
# cloud metadata address), multicast or the reserved/broadcast block would turn the
# tenant's bouncers on their own hosts. Private and unique-local ranges are not here:
# an attacker inside the network is a real target.
_NEVER_ENFORCED = (
    (ipaddress.ip_network("0.0.0.0/8"), "this-network"),
    (ipaddress.ip_network("127.0.0.0/8"), "loopback"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast"),
    (ipaddress.ip_network("240.0.0.0/4"), "broadcast or reserved"),
    (ipaddress.ip_network("::/128"), "unspecified"),
    (ipaddress.ip_network("::1/128"), "loopback"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    (ipaddress.ip_network("ff00::/8"), "multicast"),
)


def _as_address(target: Target) -> str | None:
    """The address a target names: an ``ip`` target, or a host target written as an
    IP literal (a quarantine of ``127.0.0.1`` is one of loopback)."""
    if target.scope == "ip":
        return target.value
    if target.scope == "host":
        try:
            return str(ipaddress.ip_address(target.value))
        except ValueError:
            return None
    return None


@lru_cache(maxsize=4096)
def _address_forms(value: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """An address and, for an IPv6 transition form (NAT64, 6to4, IPv4-compatible, ...),
    the IPv4 address it leads to: a rule about the one holds for the other. Cached:
    admitting one mitigation asks it twice (never-enforced, then the allowlist)."""
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_v4(address)
        if embedded is not None:
            return (address, embedded)
    return (address,)


def _unmapped(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IPv4-mapped range in IPv4 form, as targets are (``::ffff:192.0.2.0/120`` is
    ``192.0.2.0/24``): kept mapped, it never matched anything."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        return ipaddress.IPv4Network(
            (int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96)
        )
    return network


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052;
# IPv4-compatible; IPv4-translated, RFC 2765), and 6to4 (RFC 3056: bits 16-47).
_LAST_32_BITS = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
# Prefixes whose IPv4 address is not a plain bit range (Teredo's is obfuscated; the
# local-use NAT64 prefix has no fixed layout): a range there may lead anywhere.
_OPAQUE = (ipaddress.IPv6Network("2001::/32"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_EVERY_V4 = ipaddress.IPv4Network("0.0.0.0/0")


def _range_forms(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A range and the IPv4 ranges its IPv6 transition forms lead to (all of IPv4 for a
    range wider than such a prefix, or inside an opaque one)."""
    forms: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [network]
    if not isinstance(network, ipaddress.IPv6Network):
        return forms
    value, length = int(network.network_address), network.prefixlen
    for prefix in _LAST_32_BITS:
        if network.subnet_of(prefix):
            forms.append(ipaddress.IPv4Network((value & 0xFFFFFFFF, length - 96)))
        elif prefix.subnet_of(network):
            forms.append(_EVERY_V4)
    if network.subnet_of(_SIX_TO_FOUR):
        forms.append(ipaddress.IPv4Network(((value >> 80) & 0xFFFFFFFF, min(length, 48) - 16)))
    elif _SIX_TO_FOUR.subnet_of(network):
        forms.append(_EVERY_V4)
    if any(network.overlaps(opaque) for opaque in _OPAQUE):
        forms.append(_EVERY_V4)
    return forms


def never_enforced(target: Target) -> str | None:
    """What kind of address ``target`` is, when no mitigation may act on it: an address
    in (or, through an IPv6 transition form, leading into) one of those blocks, a range
    overlapping one (in any of its forms), or a host named ``localhost``."""
    if target.scope == "host" and (
        target.value == "localhost" or target.value.endswith(".localhost")
    ):
        return "loopback"  # RFC 6761: always the local host
    address = _as_address(target)
    if address is not None:
        for form in _address_forms(address):
            for network, kind in _NEVER_ENFORCED:
                if form.version == network.version and form in network:
                    return kind
        return None
    if target.scope == "range":
        for span in _range_forms(ipaddress.ip_network(target.value)):
            for network, kind in _NEVER_ENFORCED:
                if span.version == network.version and span.overlaps(network):
                    return kind
    return None


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
    never = never_enforced(target)
    if never is not None:
        article = "an" if never[0] in "aeiou" else "a"
        return Admission("rejected", f"target is {article} {never} address: never enforced", ttl)
    if envelope.allowlisted(target):
        return Admission("rejected", "target is allowlisted", ttl)
    if needs_approval:
        return Admission("pending", "doctrine requires approval", ttl)
    if target.broad:
        return Admission("pending", "broad range requires approval", ttl)
    if action in BLOCKING_ACTIONS and recent_blocks >= envelope.blast_radius_max:
        return Admission("pending", "blast-radius cap reached", ttl, over_blast_radius=True)
    return Admission("active", None, ttl)
