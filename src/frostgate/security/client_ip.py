"""The one client-address function (audit finding F12).

The client is the TCP peer, unless the peer is a trusted proxy (``FG_TRUSTED_PROXY_CIDRS``,
default none): then ``X-Forwarded-For`` is walked from the right, skipping trusted hops,
and the first untrusted hop is the client. Anything to its left was written by the
client itself and is not believed. The peer and the raw claimed chain are kept so audit
events record what was claimed as well as what was believed. Nothing else in FrostGate
reads forwarding headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["ClientAddress", "TrustedProxies", "address_group", "client_address"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_HOPS = 32


@dataclass(frozen=True, slots=True)
class ClientAddress:
    ip: str | None
    peer: str | None
    forwarded_for: str | None
    via_trusted_proxy: bool


class TrustedProxies:
    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(networks)

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """Comma-separated CIDRs; an invalid entry is an error, never ignored."""
        return cls(ipaddress.ip_network(p.strip()) for p in text.split(",") if p.strip())

    def __contains__(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_for(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    values = [v.decode("latin-1") for k, v in headers if k.lower() == b"x-forwarded-for"]
    return ", ".join(values) if values else None


def client_address(scope: MutableMapping[str, Any], trusted: TrustedProxies) -> ClientAddress:
    client = scope.get("client")
    peer = str(client[0]) if client else None
    claimed = _forwarded_for(scope.get("headers", ()))
    if claimed is None or not trusted.networks:
        # nobody to believe a forwarded address from: the peer, unparsed (the common
        # case, taken per request without parsing an address)
        return ClientAddress(peer, peer, claimed, via_trusted_proxy=False)
    peer_ip = _parse(peer) if peer else None
    if peer_ip is None or peer_ip not in trusted:
        return ClientAddress(peer, peer, claimed, via_trusted_proxy=False)
    hops = [h for h in claimed.split(",")][-_MAX_HOPS:]
    believed = str(peer_ip)
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            # A trusted proxy passed on something that is not an address: stop at the
            # last hop we can vouch for rather than believe it.
            break
        believed = str(address)
        if address not in trusted:
            break
    return ClientAddress(believed, peer, claimed, via_trusted_proxy=True)


@lru_cache(maxsize=4096)
def address_group(address: str) -> str:
    """The client a believed address stands for, wherever FrostGate counts by address
    (in-flight shares, the hook rate limit, audit summaries): an IPv4 address itself,
    an IPv6 address by its /64, one site's usual allocation (counted address by
    address, one client could be 2**64 clients). IPv4-mapped addresses are IPv4; text
    that is not an IPv6 address (a Unix socket peer) stands for itself."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
