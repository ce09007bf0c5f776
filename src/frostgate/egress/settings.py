"""Building the egress client from :class:`frostgate.config.Settings`, in one place.

The service (alerts, witnesses) and the command-line verifier (``frostgate verify
--url``) must apply the same policy: https only in ``prod``, ``FG_EGRESS_ALLOW_HOSTS``
as the only way to reach private or loopback addresses, and the configured time bounds.
Only the response cap differs by use: a webhook answer is small, a ledger page is not.
"""

from __future__ import annotations

from frostgate.config import Profile, Settings
from frostgate.egress.client import EgressClient, EgressTimeouts, RefusalHook
from frostgate.egress.policy import EgressPolicy, parse_allow_hosts

__all__ = ["client_from_settings"]


def client_from_settings(
    settings: Settings,
    *,
    on_refusal: RefusalHook | None = None,
    max_response_bytes: int | None = None,
) -> EgressClient:
    """The egress client for ``settings``; ``max_response_bytes`` overrides the cap."""
    return EgressClient(
        EgressPolicy(
            https_only=settings.profile is Profile.PROD,
            allow_hosts=parse_allow_hosts(settings.egress_allow_hosts),
        ),
        timeouts=EgressTimeouts(
            connect=settings.egress_connect_timeout_seconds,
            read=settings.egress_read_timeout_seconds,
            total=settings.egress_total_timeout_seconds,
        ),
        max_response_bytes=max_response_bytes or settings.egress_max_response_bytes,
        on_refusal=on_refusal,
    )
