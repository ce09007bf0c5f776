"""F12: one client-address function; forwarded headers believed only from trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest

from frostgate.security.client_ip import TrustedProxies, client_address
from tests.conftest import Env

PROXIES = TrustedProxies.parse("10.0.0.0/8, 2001:db8::/32")


def _scope(peer: str, *xff: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", v.encode()) for v in xff]
    return {"client": (peer, 51000), "headers": headers}


def test_untrusted_peer_forwarded_header_is_recorded_not_believed() -> None:
    address = client_address(_scope("198.51.100.7", "127.0.0.1"), PROXIES)
    assert address.ip == "198.51.100.7"
    assert address.peer == "198.51.100.7"
    assert address.forwarded_for == "127.0.0.1"
    assert address.via_trusted_proxy is False


def test_no_trusted_proxies_by_default() -> None:
    address = client_address(_scope("10.1.1.1", "203.0.113.9"), TrustedProxies())
    assert address.ip == "10.1.1.1"


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        (["203.0.113.9"], "203.0.113.9"),
        (["6.6.6.6, 203.0.113.9"], "203.0.113.9"),  # left part written by the client
        (["6.6.6.6, 203.0.113.9, 10.2.2.2"], "203.0.113.9"),  # skip trusted hops
        (["6.6.6.6", "203.0.113.9, 10.2.2.2"], "203.0.113.9"),  # several header lines
        (["10.3.3.3, 10.2.2.2"], "10.3.3.3"),  # every hop trusted: the left-most
        (["garbage, 10.2.2.2"], "10.2.2.2"),  # stop at what cannot be vouched for
        (["[2001:db8::5]:443, 203.0.113.9:8080"], "203.0.113.9"),
        (["203.0.113.9, 2001:db8::7"], "203.0.113.9"),
    ],
)
def test_right_most_untrusted_hop_behind_a_trusted_proxy(xff: list[str], expected: str) -> None:
    address = client_address(_scope("10.0.0.1", *xff), PROXIES)
    assert address.ip == expected
    assert address.peer == "10.0.0.1"
    assert address.via_trusted_proxy is True


def test_ipv4_mapped_peer_matches_an_ipv4_proxy_range() -> None:
    assert client_address(_scope("::ffff:10.0.0.1", "203.0.113.9"), PROXIES).ip == "203.0.113.9"


def test_invalid_proxy_setting_fails_loudly() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        TrustedProxies.parse("10.0.0.0/8, not-a-network")


def test_spoofed_forwarded_for_is_kept_as_a_claim_in_the_audit_log(env: Env) -> None:
    r = env.client.get(
        "/v1/stats",
        headers={
            "Authorization": "Bearer fgk_" + "0" * 16 + "_" + "A" * 43,
            "X-Forwarded-For": "1.2.3.4",
        },
    )
    assert r.status_code == 401
    env.client.portal.call(env.client.app.audit.drain)  # type: ignore[union-attr,attr-defined]
    events = env.client.get("/v1/audit?kind=auth_failure", headers=env.headers("platform")).json()[
        "items"
    ]
    assert len(events) == 1
    assert events[0]["client_ip"] == "testclient"
    assert events[0]["peer_ip"] == "testclient"
    assert events[0]["forwarded_for"] == "1.2.3.4"


def test_a_claimed_forwarded_for_is_kept_bounded_and_without_key_material(env: Env) -> None:
    """The claim was stored verbatim: 16 KiB of anything, a full API key included, in an
    append-only ledger that can never be cleaned."""
    leaked = env.keys["acme"]
    claim = f"1.2.3.4, {leaked}, " + "x" * 8000
    r = env.client.get(
        "/v1/stats",
        headers={
            "Authorization": "Bearer fgk_" + "0" * 16 + "_" + "A" * 43,
            "X-Forwarded-For": claim,
        },
    )
    assert r.status_code == 401
    env.client.portal.call(env.client.app.audit.drain)  # type: ignore[union-attr,attr-defined]
    events = env.client.get("/v1/audit?kind=auth_failure", headers=env.headers("platform")).json()[
        "items"
    ]
    kept = events[0]["forwarded_for"]
    assert kept.startswith("1.2.3.4, fgk_[redacted], xxx")
    assert leaked not in kept
    assert leaked.split("_")[2] not in kept
    assert len(kept) < 1100
    assert kept.endswith(f"...[{len(claim)} characters]")
