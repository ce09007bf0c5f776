"""The egress client against real loopback receivers (allowlisted for the test)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from frostgate.egress import (
    EgressClient,
    EgressFailed,
    EgressPolicy,
    EgressRefused,
    EgressTimeouts,
    parse_allow_hosts,
)
from frostgate.egress.addresses import IPAddress
from tests.egress.receivers import Behaviour, Receiver


async def to_loopback(host: str, port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.1")]


def client_for(port: int, **kwargs: object) -> EgressClient:
    policy = EgressPolicy(https_only=False, allow_hosts=frozenset({("receiver.test", port)}))
    return EgressClient(policy, resolver=to_loopback, **kwargs)  # type: ignore[arg-type]


def test_delivers_to_the_vetted_address_with_the_name_as_host(receiver: Receiver) -> None:
    client = client_for(receiver.port)
    response = asyncio.run(
        client.post(
            f"http://receiver.test:{receiver.port}/in?x=1",
            b'{"a":1}',
            {"content-type": "application/json"},
            tenant_id="acme",
        )
    )
    assert response.ok
    assert response.body == b"ok"
    [seen] = receiver.seen
    assert seen.path == "/in?x=1"
    # path parameters reach the receiver as written (no re-parsing drops ``;params``)
    asyncio.run(
        client.post(f"http://receiver.test:{receiver.port}/a;b?c", b"", {}, tenant_id="acme")
    )
    assert receiver.seen[1].path == "/a;b?c"
    assert seen.headers["host"] == f"receiver.test:{receiver.port}"
    assert seen.body == b'{"a":1}'


def test_a_response_body_is_capped(receiver: Receiver) -> None:
    receiver.behaviour = lambda _s: Behaviour(stream_bytes=10 * 1024 * 1024)
    client = client_for(receiver.port, max_response_bytes=4096)
    started = time.monotonic()
    response = asyncio.run(
        client.post(f"http://receiver.test:{receiver.port}/", b"{}", {}, tenant_id="t")
    )
    assert response.truncated
    assert len(response.body) == 4096
    assert time.monotonic() - started < 5


def test_a_hanging_receiver_costs_at_most_the_total_timeout(receiver: Receiver) -> None:
    receiver.behaviour = lambda _s: Behaviour(hang_seconds=3)
    client = client_for(receiver.port, timeouts=EgressTimeouts(connect=1, read=5, total=0.5))
    started = time.monotonic()
    with pytest.raises(EgressFailed, match="timeout"):
        asyncio.run(client.post(f"http://receiver.test:{receiver.port}/", b"{}", {}, tenant_id="t"))
    assert time.monotonic() - started < 2.5


def test_a_reset_connection_is_a_failure_not_a_crash(receiver: Receiver) -> None:
    receiver.behaviour = lambda _s: Behaviour(reset=True)
    client = client_for(receiver.port)
    with pytest.raises(EgressFailed, match="connection failed"):
        asyncio.run(client.post(f"http://receiver.test:{receiver.port}/", b"{}", {}, tenant_id="t"))


def test_errors_are_answers_not_exceptions(receiver: Receiver) -> None:
    receiver.behaviour = lambda _s: Behaviour(status=429, headers={"retry-after": "7"})
    response = asyncio.run(
        client_for(receiver.port).post(
            f"http://receiver.test:{receiver.port}/", b"{}", {}, tenant_id="t"
        )
    )
    assert response.status == 429
    assert response.headers["retry-after"] == "7"


def test_prod_refuses_http_even_for_allowlisted_hosts(receiver: Receiver) -> None:
    policy = EgressPolicy(
        https_only=True, allow_hosts=frozenset({("receiver.test", receiver.port)})
    )
    client = EgressClient(policy, resolver=to_loopback)
    with pytest.raises(EgressRefused, match="http"):
        asyncio.run(client.post(f"http://receiver.test:{receiver.port}/", b"{}", {}, tenant_id="t"))
    assert receiver.seen == []


def test_allowlisting_is_per_host_and_port(receiver: Receiver) -> None:
    policy = EgressPolicy(
        https_only=False, allow_hosts=frozenset({("receiver.test", receiver.port + 1)})
    )
    client = EgressClient(policy, resolver=to_loopback)
    with pytest.raises(EgressRefused):
        asyncio.run(client.post(f"http://receiver.test:{receiver.port}/", b"{}", {}, tenant_id="t"))
    assert receiver.seen == []


def test_tenant_host_allowlist_narrows_destinations() -> None:
    policy = EgressPolicy()
    client = EgressClient(policy)
    hosts = frozenset({"hooks.example.com", "*.alerts.example.org"})
    assert client.check_url("https://hooks.example.com/x", tenant_id="t", tenant_hosts=hosts)
    assert client.check_url("https://a.alerts.example.org/", tenant_id="t", tenant_hosts=hosts)
    for url in ("https://example.com/", "https://alerts.example.org/", "https://evil.com/"):
        with pytest.raises(EgressRefused, match="tenant"):
            client.check_url(url, tenant_id="t", tenant_hosts=hosts)


def test_allow_hosts_setting_parses_and_rejects_garbage() -> None:
    assert parse_allow_hosts("Receiver.Test:8080, [::1]:9000") == frozenset(
        {("receiver.test", 8080), ("::1", 9000)}
    )
    for bad in ("receiver.test", "receiver.test:http", "x:0", "x:70000"):
        with pytest.raises(ValueError, match="host:port"):
            parse_allow_hosts(bad)


def _self_signed(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def test_tls_keeps_sni_and_certificate_checks_on_the_name(tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path, "receiver.test")
    receiver = Receiver(tls=server_ctx)
    try:
        policy = EgressPolicy(allow_hosts=frozenset({("receiver.test", receiver.port)}))
        client = EgressClient(policy, resolver=to_loopback, ssl_context=client_ctx)
        response = asyncio.run(
            client.post(f"https://receiver.test:{receiver.port}/", b"{}", {}, tenant_id="t")
        )
        assert response.ok
        assert receiver.sni == ["receiver.test"]
        assert receiver.seen[0].headers["host"] == f"receiver.test:{receiver.port}"

        # The same address under a name the certificate does not cover fails TLS.
        other = EgressClient(
            EgressPolicy(allow_hosts=frozenset({("other.test", receiver.port)})),
            resolver=to_loopback,
            ssl_context=client_ctx,
        )
        with pytest.raises(EgressFailed):
            asyncio.run(
                other.post(f"https://other.test:{receiver.port}/", b"{}", {}, tenant_id="t")
            )
        assert len(receiver.seen) == 1
    finally:
        receiver.close()


def test_get_is_held_to_the_same_policy(receiver: Receiver, listener: object) -> None:
    from tests.egress.receivers import Listener

    assert isinstance(listener, Listener)
    client = client_for(receiver.port)
    with pytest.raises(EgressRefused):
        asyncio.run(client.get(f"https://127.0.0.1:{listener.port}/", {}, tenant_id=None))
    assert listener.accepted == 0
