"""What a mitigation may target, in one normal form (pure, no I/O).

An action maps to a scope: addresses for blocks and rate limits (one IP, or a CIDR
range), a user name for ``block_user``, a host name for quarantines. Values are parsed
and written back canonically (``10.0.0.0/8``, ``2001:db8::/32``, lower-case hosts), so
the same target is always the same string. A range wider than /16 (IPv4) or /48 (IPv6)
is "broad": it never becomes active without an explicit approval.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["ACTIONS", "Target", "TargetInvalid", "parse_target"]

# action -> the scope family its target belongs to
ACTIONS: dict[str, str] = {
    "block_ip": "address",
    "block": "address",
    "rate_limit": "address",
    "block_user": "user",
    "quarantine_host": "host",
    "quarantine": "host",
    "terminate": "host",
}
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\\-]{0,127}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_BROAD_V4 = 16
_BROAD_V6 = 48


class TargetInvalid(ValueError):
    """The action is unknown or the value is not a valid target for it."""


@dataclass(frozen=True, slots=True)
class Target:
    scope: str  # ip, range, user, host
    value: str
    broad: bool = False


def _without_zone(text: str) -> str:
    """``text`` without an IPv6 zone (``fe80::1%eth0``, ``fe80::%eth0/64``), as the
    normalizer drops it from events: a zone names an interface of the sender's host,
    means nothing to an enforcement point, and a stored ``fe80::1%eth0`` would never
    match a lookup of ``fe80::1``."""
    address, percent, rest = text.partition("%")
    zone, slash, prefix = rest.partition("/")
    if not percent or not zone:
        return text  # no zone; or an empty one, which the parser refuses
    return f"{address}/{prefix}" if slash else address


def parse_target(action: str, value: object) -> Target:
    family = ACTIONS.get(action)
    if family is None:
        raise TargetInvalid(f"unknown mitigation action {action!r}")
    if not isinstance(value, str) or not value or len(value) > 256:
        raise TargetInvalid("the target must be a non-empty string")
    if family == "address":
        value = _without_zone(value)
        if "/" in value:
            try:
                network = ipaddress.ip_network(value, strict=True)
            except ValueError as exc:
                raise TargetInvalid(f"not a CIDR range: {value!r}") from exc
            if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
                raise TargetInvalid("write IPv4 ranges in IPv4 form, not ::ffff:0:0/96")
            limit = _BROAD_V4 if network.version == 4 else _BROAD_V6
            if network.num_addresses == 1:
                return Target("ip", str(network.network_address))
            return Target("range", str(network), broad=network.prefixlen < limit)
        try:
            address = ipaddress.ip_address(value)
        except ValueError as exc:
            raise TargetInvalid(f"not an IP address: {value!r}") from exc
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return Target("ip", str(address))
    if family == "user":
        if not _USER.fullmatch(value):
            raise TargetInvalid(f"not a user name: {value!r}")
        return Target("user", value)
    host = value.lower().removesuffix(".")
    if not _HOST.fullmatch(host):
        raise TargetInvalid(f"not a host name: {value!r}")
    return Target("host", host)
