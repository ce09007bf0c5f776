"""The chaos receiver's faults are real network faults, seen through the egress client."""

from __future__ import annotations

import asyncio
import time

import pytest

from frostgate.egress import EgressClient, EgressFailed, EgressPolicy, EgressTimeouts
from frostgate.jobs.chaos.receiver import ReceiverMode, WebhookReceiver
from frostgate.security.webhook_signature import decode_secret, new_secret, signed_headers

BODY = b'{"type":"decision.alert"}'


def _client(port: int) -> EgressClient:
    return EgressClient(
        EgressPolicy(https_only=False, allow_hosts=frozenset({("127.0.0.1", port)})),
        timeouts=EgressTimeouts(connect=1.0, read=1.0, total=2.0),
    )


async def _exercise() -> dict[str, object]:
    receiver = WebhookReceiver()
    await receiver.start()
    receiver.secret = new_secret()
    client = _client(receiver.port)
    signed = signed_headers(decode_secret(receiver.secret), "msg_chaos1", int(time.time()), BODY)
    seen: dict[str, object] = {}
    try:
        seen["ok"] = (await client.post(receiver.url, BODY, signed, tenant_id=None)).status
        forged = {**signed, "webhook-signature": "v1,AAAA"}
        seen["forged"] = (await client.post(receiver.url, BODY, forged, tenant_id=None)).status
        receiver.set_mode(ReceiverMode.ERROR)
        seen["error"] = (await client.post(receiver.url, BODY, signed, tenant_id=None)).status
        for mode in (ReceiverMode.RESET, ReceiverMode.HANG):
            receiver.set_mode(mode)
            with pytest.raises(EgressFailed) as failed:
                await client.post(receiver.url, BODY, signed, tenant_id=None)
            seen[str(mode)] = failed.value.reason
    finally:
        await receiver.close()
    seen["acknowledged"] = dict(receiver.acknowledged)
    seen["failures"] = receiver.failures
    seen["bad_signatures"] = receiver.bad_signatures
    return seen


def test_receiver_modes_answer_refuse_reset_and_hang() -> None:
    seen = asyncio.run(_exercise())
    assert seen["ok"] == 200
    assert seen["forged"] == 401
    assert seen["error"] == 500
    assert str(seen["reset"]).startswith("connection failed")
    assert str(seen["hang"]).startswith(("timeout", "total timeout"))
    assert seen["acknowledged"] == {"msg_chaos1": 1}
    assert seen["failures"] == 3
    assert seen["bad_signatures"] == 1
