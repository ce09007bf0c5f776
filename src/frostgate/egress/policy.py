"""The URL and destination policy of every outbound request (audit F2, F4, F10).

A URL is accepted only in one unambiguous form: ``http`` or ``https``, no userinfo, no
backslashes, whitespace or control characters, a host that is either a canonical IP
literal or an IDNA (UTS #46) DNS name, at most :data:`MAX_URL_LENGTH` characters. Any
host the C library would read as an IPv4 number in another spelling (``2130706433``,
``0x7f.1``, ``0177.0.0.1``) is refused outright: we never hand a resolver something it
may interpret differently from us. The addresses a name resolves to are judged by
:func:`frostgate.egress.addresses.forbidden_reason`, every one of them.

``https`` is required in ``prod``; elsewhere ``http`` is accepted only for destinations
named in ``FG_EGRESS_ALLOW_HOSTS``, the development/test escape hatch that also admits
their private addresses. A tenant may narrow the hosts its endpoints use further.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from frostgate.egress.addresses import IPAddress, forbidden_reason

__all__ = [
    "MAX_URL_LENGTH",
    "RESOLVED_REFUSAL",
    "Destination",
    "EgressPolicy",
    "EgressRefused",
    "parse_allow_hosts",
    "parse_destination",
    "refused_after_dns",
]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = frozenset({80, 443})
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


#: What a tenant is told when a name is refused after DNS, whatever the answer was: the
#: precise reason ("resolves to ... private", "did not resolve") would map which
#: internal names exist and where they point.
RESOLVED_REFUSAL = "host does not resolve to a permitted address"


class EgressRefused(Exception):
    """The policy refuses a destination. ``reason`` is stable text that may reach the
    tenant; ``detail`` (default: the reason) is the operator's, more precise where the
    reason must not be (a name refused after resolution)."""

    def __init__(self, reason: str, host: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.host = host
        self.detail = detail or reason


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed URL: ``host`` is lowercase ASCII (IDNA), without a trailing dot."""

    scheme: str
    host: str
    port: int
    target: str
    ip_literal: IPAddress | None

    @property
    def url(self) -> str:
        """The URL to request, rebuilt from the parsed parts (never the raw input)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.target}"


def _normalise_host(raw: str) -> tuple[str, IPAddress | None]:
    if raw.startswith("[") or ":" in raw:
        text = raw.strip("[]")
        if "%" in text:
            raise EgressRefused("scoped IPv6 literal", raw)
        try:
            return str(ipaddress.IPv6Address(text)), ipaddress.IPv6Address(text)
        except ValueError as exc:
            raise EgressRefused("malformed IPv6 literal", raw) from exc
    try:
        ascii_host = idna.encode(raw, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        # UTS #46 maps fullwidth digits and dots; IP-looking input may fail the IDNA
        # label rules, so read it as an address before giving up.
        ascii_host = raw.lower()
        if not re.fullmatch(r"[0-9.]+", ascii_host):
            raise EgressRefused("host is not a valid IDNA name", raw) from exc
    ascii_host = ascii_host.lower().removesuffix(".")
    if not ascii_host or len(ascii_host) > 253:
        raise EgressRefused("empty or overlong host", raw)
    try:
        literal = ipaddress.IPv4Address(ascii_host)
    except ValueError:
        literal = None
    if literal is not None:
        return str(literal), literal
    try:
        socket.inet_aton(ascii_host)
    except OSError:
        pass
    else:
        raise EgressRefused("ambiguous numeric host", raw)
    labels = ascii_host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise EgressRefused("host is not a DNS name", raw)
    if labels[-1].isdigit():
        raise EgressRefused("numeric top-level label", raw)
    return ascii_host, None


def parse_destination(url: str) -> Destination:
    """Parse ``url`` strictly; :class:`EgressRefused` says what is wrong with it."""
    if not isinstance(url, str) or not url:
        raise EgressRefused("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise EgressRefused("URL too long")
    if _FORBIDDEN_CHARS.search(url):
        raise EgressRefused("URL holds whitespace, control characters or backslashes")
    scheme_end = url.find("://")
    rest = url[scheme_end + 3 :] if scheme_end >= 0 else url
    authority_end = min(
        (i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest)
    )
    if not rest[authority_end:].isascii():
        raise EgressRefused("path and query must be ASCII (percent-encode them)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressRefused("malformed URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise EgressRefused("scheme must be https (or http for allowlisted hosts)")
    if "@" in parts.netloc:
        raise EgressRefused("userinfo in URL")
    raw_host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if not raw_host or raw_host == "[]":
        raise EgressRefused("URL has no host")
    host, literal = _normalise_host(raw_host)
    if port is None:
        port = 443 if scheme == "https" else 80
    if port == 0:
        raise EgressRefused("port 0")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Destination(scheme=scheme, host=host, port=port, target=target, ip_literal=literal)


def parse_allow_hosts(spec: str) -> frozenset[tuple[str, int]]:
    """``host:port[,host:port...]`` (``[v6]:port`` for IPv6) into normalised pairs."""
    pairs: set[tuple[str, int]] = set()
    for item in spec.replace(" ", ",").split(","):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"FG_EGRESS_ALLOW_HOSTS entry {item!r} is not host:port")
        normal, _ = _normalise_host(host)
        pairs.add((normal, int(port)))
    return frozenset(pairs)


def _host_matches(host: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """``https_only`` in prod; ``allow_hosts`` from ``FG_EGRESS_ALLOW_HOSTS``."""

    https_only: bool = True
    allowed_ports: frozenset[int] = DEFAULT_PORTS
    allow_hosts: frozenset[tuple[str, int]] = frozenset()

    def destination(self, url: str, tenant_hosts: frozenset[str] | None = None) -> Destination:
        """Parse ``url`` and apply every rule that does not need DNS."""
        dest = parse_destination(url)
        allowlisted = (dest.host, dest.port) in self.allow_hosts
        if dest.scheme == "http" and (self.https_only or not allowlisted):
            raise EgressRefused(
                "http is allowed only for allowlisted hosts outside prod", dest.host
            )
        if dest.port not in self.allowed_ports and not allowlisted:
            raise EgressRefused(f"port {dest.port} is not allowed", dest.host)
        if tenant_hosts is not None and not _host_matches(dest.host, tenant_hosts):
            raise EgressRefused("host is not in the tenant's egress allowlist", dest.host)
        if dest.ip_literal is not None and not allowlisted:
            reason = forbidden_reason(dest.ip_literal)
            if reason is not None:
                raise EgressRefused(f"forbidden address: {reason}", dest.host)
        return dest

    def vet(self, dest: Destination, addresses: Iterable[IPAddress]) -> IPAddress:
        """The address to connect to, if *every* resolved address is allowed."""
        resolved = list(addresses)
        if not resolved:
            raise refused_after_dns(dest.host, "host did not resolve")
        if (dest.host, dest.port) not in self.allow_hosts:
            for address in resolved:
                reason = forbidden_reason(address)
                if reason is not None:
                    precise = f"resolves to a forbidden address: {reason}"
                    if dest.ip_literal is not None:  # the client wrote it: nothing to hide
                        raise EgressRefused(f"forbidden address: {reason}", dest.host)
                    raise refused_after_dns(dest.host, precise)
        return resolved[0]


def refused_after_dns(host: str, detail: str) -> EgressRefused:
    """A name refused for what DNS answered: the tenant's reason is one sentence."""
    return EgressRefused(RESOLVED_REFUSAL, host, detail=detail)
