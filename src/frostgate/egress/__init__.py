"""The only way FrostGate makes an outbound HTTP request (DESIGN.md principle 4).

``EgressClient`` applies ``EgressPolicy`` (URL form, scheme, ports, allowlists) and the
address rules of :mod:`frostgate.egress.addresses` to every request, connects to the
vetted address only, never follows redirects and bounds time and size. A test fails if
any other module imports an HTTP client.
"""

from frostgate.egress.addresses import forbidden_reason
from frostgate.egress.client import (
    EgressClient,
    EgressFailed,
    EgressResponse,
    EgressTimeouts,
    Resolver,
    system_resolver,
)
from frostgate.egress.policy import (
    Destination,
    EgressPolicy,
    EgressRefused,
    parse_allow_hosts,
    parse_destination,
)
from frostgate.egress.settings import client_from_settings

__all__ = [
    "Destination",
    "EgressClient",
    "EgressFailed",
    "EgressPolicy",
    "EgressRefused",
    "EgressResponse",
    "EgressTimeouts",
    "Resolver",
    "client_from_settings",
    "forbidden_reason",
    "parse_allow_hosts",
    "parse_destination",
    "system_resolver",
]
