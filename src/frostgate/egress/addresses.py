"""Which IP addresses an outbound request may reach: only globally routable unicast.

The check runs on every address a name resolves to, and on IP literals. IPv6 forms that
carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``,
IPv4-translated ``::ffff:0:a.b.c.d`` (RFC 2765), NAT64 ``64:ff9b::/96`` (RFC 6052; the
local-use ``64:ff9b:1::/48`` of RFC 8215 is refused outright), 6to4
``2002::/16`` (RFC 3056) and Teredo ``2001::/32`` (RFC 4380)) are judged by the IPv4
address they lead to as well, so ``[::ffff:127.0.0.1]`` is loopback, not "an IPv6 address".
The IANA special-purpose registries (RFC 6890) are what :attr:`ipaddress.IPv4Address.
is_global` encodes; the explicit list below names the ranges the audit cares about so a
refusal says why.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["IPAddress", "embedded_v4", "forbidden_reason"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAMED_V4: Final = (
    (ipaddress.ip_network("0.0.0.0/8"), "this-network (0.0.0.0/8)"),
    (ipaddress.ip_network("127.0.0.0/8"), "loopback"),
    (ipaddress.ip_network("10.0.0.0/8"), "private (RFC 1918)"),
    (ipaddress.ip_network("172.16.0.0/12"), "private (RFC 1918)"),
    (ipaddress.ip_network("192.168.0.0/16"), "private (RFC 1918)"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local (incl. cloud metadata)"),
    (ipaddress.ip_network("100.64.0.0/10"), "shared address space (CGNAT)"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast"),
    (ipaddress.ip_network("240.0.0.0/4"), "reserved"),
    (ipaddress.ip_network("192.0.2.0/24"), "documentation"),
    (ipaddress.ip_network("198.51.100.0/24"), "documentation"),
    (ipaddress.ip_network("203.0.113.0/24"), "documentation"),
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignments"),
    (ipaddress.ip_network("168.63.129.16/32"), "cloud metadata (Azure WireServer)"),
)
_NAMED_V6: Final = (
    (ipaddress.ip_network("::1/128"), "loopback"),
    (ipaddress.ip_network("::/128"), "unspecified"),
    (ipaddress.ip_network("fc00::/7"), "unique local (ULA)"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    (ipaddress.ip_network("fec0::/10"), "site-local (deprecated)"),
    (ipaddress.ip_network("ff00::/8"), "multicast"),
    (ipaddress.ip_network("2001:db8::/32"), "documentation"),
    (ipaddress.ip_network("100::/64"), "discard-only"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215)"),
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"),)
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form leads to, if it is one. (The mitigation
    envelope uses it too: an allowlisted IPv4 address is protected in all its forms.)"""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    value = int(address)
    if value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if any(address in net for net in _NAT64) or address in _TRANSLATED:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if address in _TEREDO and address.teredo is not None:
        return address.teredo[1]
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be contacted, or None when it is globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped IPv6 address"
        embedded = embedded_v4(address)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            if inner is not None:
                return f"IPv6 form of a forbidden IPv4 address: {inner}"
        for network, name in _NAMED_V6:
            if address in network:
                return name
    else:
        for network, name in _NAMED_V4:
            if address in network:
                return name
    if address.is_multicast:
        return "multicast"
    if not address.is_global:
        return "not globally routable"
    return None
