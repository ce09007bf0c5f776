"""The SSRF bypass corpus: every vector is refused before a connection is made (F2, F4).

A real listener waits on 127.0.0.1 (and ::1) at the port each vector names; after the
whole corpus it must have accepted zero connections, every attempt must be refused by
policy (``EgressRefused``, not a network failure) and every refusal must reach the
audit hook with its reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator

import pytest

from frostgate.egress import EgressClient, EgressPolicy, EgressRefused, EgressTimeouts
from frostgate.egress.addresses import IPAddress
from tests.egress.receivers import Behaviour, Listener, Receiver

ip = ipaddress.ip_address

# name -> answers of the test resolver (the system resolver is never consulted here)
DNS: dict[str, list[IPAddress]] = {
    "localhost": [ip("127.0.0.1"), ip("::1")],
    "evil.test": [ip("127.0.0.1")],
    "mixed.test": [ip("93.184.216.34"), ip("127.0.0.1")],
    "mixed6.test": [ip("2606:4700::1111"), ip("::1")],
    "v6only.test": [ip("::1")],
    "mapped.test": [ip("::ffff:127.0.0.1")],
    "metadata.test": [ip("169.254.169.254")],
    "nat64.test": [ip("64:ff9b::a9fe:a9fe")],
    "private.test": [ip("10.1.2.3")],
    "cgnat.test": [ip("100.100.100.100")],
    "ula.test": [ip("fd12:3456::1")],
    "zero.test": [ip("0.0.0.0")],
    "127.0.0.1.nip.test": [ip("127.0.0.1")],
    "empty.test": [],
}


async def fake_resolver(host: str, port: int) -> list[IPAddress]:
    if host not in DNS:
        raise OSError(f"NXDOMAIN {host}")
    return DNS[host]


def vectors(p: int) -> list[str]:
    return [
        f"https://127.0.0.1:{p}/",
        f"https://127.1:{p}/",
        f"https://2130706433:{p}/",
        f"https://0x7f000001:{p}/",
        f"https://0x7f.1:{p}/",
        f"https://0177.0.0.1:{p}/",
        f"https://0177.0.0.01:{p}/",
        f"https://017700000001:{p}/",
        f"https://0x7f.0x0.0x0.0x1:{p}/",
        f"https://127.000.000.001:{p}/",
        f"https://[::1]:{p}/",
        f"https://[::ffff:127.0.0.1]:{p}/",
        f"https://[::ffff:7f00:1]:{p}/",
        f"https://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
        f"https://[::127.0.0.1]:{p}/",
        f"https://[64:ff9b::127.0.0.1]:{p}/",
        f"https://[2002:7f00:1::]:{p}/",
        f"https://[::ffff:0:7f00:1]:{p}/",
        f"https://[64:ff9b:1:a9fe:a9:fe00:808:808]:{p}/",
        "https://168.63.129.16/machine?comp=goalstate",
        f"https://[fe80::1%25lo]:{p}/",
        f"https://[fe80::1]:{p}/",
        f"https://good@127.0.0.1:{p}/",
        f"https://good.example:{p}@127.0.0.1:{p}/",
        f"https://good.example\\@127.0.0.1:{p}/",
        f"https://localhost:{p}/",
        f"https://localhost.:{p}/",
        f"https://LOCALHOST:{p}/",
        f"https://127.0.0.1.:{p}/",
        f"https://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11:{p}/",
        f"https://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:{p}/",
        f"https://evil.test:{p}/",
        f"https://EVIL.test.:{p}/",
        f"https://mixed.test:{p}/",
        f"https://mixed6.test:{p}/",
        f"https://v6only.test:{p}/",
        f"https://mapped.test:{p}/",
        f"https://127.0.0.1.nip.test:{p}/",
        f"https://0.0.0.0:{p}/",
        f"https://0:{p}/",
        f"https://[::]:{p}/",
        f"https://zero.test:{p}/",
        "https://169.254.169.254/latest/meta-data/",
        f"https://metadata.test:{p}/",
        "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
        f"https://nat64.test:{p}/",
        f"https://10.0.0.1:{p}/",
        f"https://192.168.1.1:{p}/",
        f"https://172.16.0.1:{p}/",
        f"https://100.64.0.1:{p}/",
        f"https://cgnat.test:{p}/",
        f"https://private.test:{p}/",
        f"https://[fd00::1]:{p}/",
        f"https://ula.test:{p}/",
        f"https://224.0.0.1:{p}/",
        f"https://255.255.255.255:{p}/",
        f"https://192.0.2.1:{p}/",
        f"http://127.0.0.1:{p}/",
        f"http://evil.test:{p}/",
        f"gopher://127.0.0.1:{p}/",
        "file:///etc/passwd",
        f"https://127.0.0.1:{p}#@good.example/",
        f"https://%31%32%37.0.0.1:{p}/",
        f"https://evil.test:{p} /",
        f"https://evil.test\t:{p}/",
        f"https://empty.test:{p}/",
        f"https://unknown.test:{p}/",
        f"https://{'a' * 64}.test:{p}/",
        "https://127.0.0.1:0/",
        f"https://[::1%2500]:{p}/",
        "",
    ]


@pytest.fixture
def listeners() -> Iterator[tuple[Listener, Listener | None]]:
    v4 = Listener("127.0.0.1")
    try:
        v6: Listener | None = Listener("::1", v4.port)
    except OSError:
        v6 = None
    yield v4, v6
    v4.close()
    if v6 is not None:
        v6.close()


def test_corpus_has_at_least_40_vectors() -> None:
    assert len(vectors(1)) >= 40


def test_every_vector_is_refused_and_no_connection_reaches_the_listener(
    listeners: tuple[Listener, Listener | None],
) -> None:
    v4, v6 = listeners
    refusals: list[tuple[str | None, EgressRefused]] = []
    policy = EgressPolicy(https_only=False, allowed_ports=frozenset({80, 443, v4.port}))
    client = EgressClient(
        policy,
        resolver=fake_resolver,
        timeouts=EgressTimeouts(connect=0.5, read=0.5, total=1.0),
        on_refusal=lambda tenant, refused: refusals.append((tenant, refused)),
    )
    outcomes: dict[str, str] = {}

    async def attempt_all() -> None:
        for url in vectors(v4.port):
            try:
                await client.post(url, b"{}", {}, tenant_id="acme")
            except EgressRefused as refused:
                outcomes[url] = refused.reason
            else:
                outcomes[url] = "DELIVERED"

    asyncio.run(attempt_all())
    not_refused = {u: o for u, o in outcomes.items() if o == "DELIVERED"}
    assert not_refused == {}
    assert len(outcomes) == len(vectors(v4.port))
    assert v4.accepted == 0
    if v6 is not None:
        assert v6.accepted == 0
    # every refusal is reported with a reason (the API turns these into audit events)
    assert len(refusals) == len(vectors(v4.port))
    assert all(refused.reason and refused.detail for _tenant, refused in refusals)


def test_rebinding_cannot_win_the_name_is_resolved_once(listener: Listener) -> None:
    """First answer public, every later answer loopback: the later ones are never asked."""
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ip("192.88.99.1")] if len(calls) == 1 else [ip("127.0.0.1")]

    policy = EgressPolicy(https_only=False, allowed_ports=frozenset({listener.port}))
    client = EgressClient(
        policy, resolver=rebinding, timeouts=EgressTimeouts(connect=0.3, read=0.3, total=0.6)
    )

    async def go() -> None:
        with pytest.raises(Exception):  # noqa: B017, PT011 - unreachable public address
            await client.post(f"https://rebind.test:{listener.port}/", b"{}", {}, tenant_id="t")

    asyncio.run(go())
    assert calls == ["rebind.test"]
    assert listener.accepted == 0


def test_a_redirect_to_an_internal_address_is_not_followed(
    receiver: Receiver, listener: Listener
) -> None:
    receiver.behaviour = lambda _seen: Behaviour(
        status=302, headers={"location": f"http://127.0.0.1:{listener.port}/"}
    )
    policy = EgressPolicy(
        https_only=False, allow_hosts=frozenset({("receiver.test", receiver.port)})
    )

    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ip("127.0.0.1")]

    client = EgressClient(policy, resolver=resolve)
    response = asyncio.run(
        client.post(f"http://receiver.test:{receiver.port}/hook", b"{}", {}, tenant_id="t")
    )
    assert response.status == 302
    assert not response.ok
    assert len(receiver.seen) == 1
    assert listener.accepted == 0


def test_a_name_refused_after_resolution_tells_the_tenant_nothing_about_what_it_resolved_to(
    listener: Listener,
) -> None:
    """The reason reached the tenant (the webhook test route, its deliveries log and its
    audit stream): "resolves to a forbidden address: private (RFC 1918)", "…: loopback"
    or "host did not resolve" mapped which internal names exist and where they point. A
    name's refusal after DNS is one sentence; the specific one is the operator's."""
    refusals: list[EgressRefused] = []
    policy = EgressPolicy(https_only=False, allowed_ports=frozenset({443}))
    client = EgressClient(
        policy,
        resolver=fake_resolver,
        timeouts=EgressTimeouts(connect=0.5, read=0.5, total=1.0),
        on_refusal=lambda _tenant, refused: refusals.append(refused),
    )
    reasons: dict[str, str] = {}

    async def attempt(host: str) -> None:
        with pytest.raises(EgressRefused) as refused:
            await client.post(f"https://{host}/", b"{}", {}, tenant_id="acme")
        reasons[host] = refused.value.reason

    for host in ("private.test", "evil.test", "metadata.test", "nxdomain.test", "empty.test"):
        asyncio.run(attempt(host))
    assert set(reasons.values()) == {"host does not resolve to a permitted address"}
    details = {r.host: r.detail for r in refusals}
    assert details["private.test"] == "resolves to a forbidden address: private (RFC 1918)"
    assert details["nxdomain.test"] == "host did not resolve"
    # A literal address says nothing the client did not write: its reason stays precise.
    with pytest.raises(EgressRefused) as literal:
        asyncio.run(client.post("https://10.1.2.3/", b"{}", {}, tenant_id="acme"))
    assert literal.value.reason == "forbidden address: private (RFC 1918)"
    assert listener.accepted == 0
