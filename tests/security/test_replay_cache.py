"""The Redis replay cache when a reply is lost: the ``SET`` that remembered a webhook id
was applied, but its answer never came back, so the delivery was refused (503) and the
sender retries. The retry must get through (the message was never processed), and a
sighting another request made must never be taken back.

The reply is lost for real: a TCP relay in front of the local Redis forwards the
command and closes the client's connection instead of passing the answer on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from frostgate.errors import FrostGateError
from frostgate.security.replay import RedisReplayCache

REDIS_URL = os.environ.get("FG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TTL = 60.0


@asynccontextmanager
async def reply_dropping_relay(drop_first: bytes) -> AsyncIterator[str]:
    """A Redis URL through a relay that, on the first connection whose command contains
    ``drop_first``, forwards the command, waits for Redis to answer, and closes the
    client's side without passing the answer on. Every other exchange passes."""
    target = urlsplit(REDIS_URL)
    dropped = False

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        nonlocal dropped
        server_r, server_w = await asyncio.open_connection(target.hostname, target.port)
        while command := await client_r.read(65536):
            server_w.write(command)
            await server_w.drain()
            answer = await server_r.read(65536)
            if not dropped and drop_first in command:
                dropped = True
                break  # applied by Redis, answer swallowed
            client_w.write(answer)
            await client_w.drain()
        client_w.close()
        server_w.close()

    relay = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = relay.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}{target.path or '/0'}"
    finally:
        relay.close()


async def _stored(name: str) -> bytes | str | None:
    direct = Redis.from_url(REDIS_URL)
    try:
        value: bytes | str | None = await direct.get(name)
        return value
    finally:
        await direct.aclose()


def test_a_sighting_whose_reply_was_lost_is_taken_back_so_the_retry_gets_through() -> None:
    prefix = f"fgtest:replay:{secrets.token_hex(4)}:"

    async def run() -> tuple[bytes | str | None, bool]:
        async with reply_dropping_relay(b"\r\n$3\r\nSET\r\n") as url:
            cache = RedisReplayCache(url, key_prefix=prefix, timeout=2.0)
            try:
                with pytest.raises(FrostGateError) as refused:
                    await cache.first_sighting("src:msg_1", TTL)
                assert refused.value.code.name == "STORAGE_UNAVAILABLE"
                left_behind = await _stored(prefix + "src:msg_1")
                retried = await cache.first_sighting("src:msg_1", TTL)
                replayed = await cache.first_sighting("src:msg_1", TTL)
                assert replayed is False  # once through, it is remembered again
                return left_behind, retried
            finally:
                await cache.close()

    left_behind, retried = asyncio.run(run())
    assert left_behind is None
    assert retried is True


def test_a_lost_reply_never_takes_back_a_sighting_another_request_made() -> None:
    """The id was first seen (and processed) by another request; a replay of it whose
    own ``SET NX`` reply is lost must leave that sighting in place."""
    prefix = f"fgtest:replay:{secrets.token_hex(4)}:"

    async def run() -> bool:
        first = RedisReplayCache(REDIS_URL, key_prefix=prefix, timeout=2.0)
        try:
            assert await first.first_sighting("src:msg_2", TTL) is True
            async with reply_dropping_relay(b"\r\n$3\r\nSET\r\n") as url:
                replay = RedisReplayCache(url, key_prefix=prefix, timeout=2.0)
                try:
                    with pytest.raises(FrostGateError):
                        await replay.first_sighting("src:msg_2", TTL)
                finally:
                    await replay.close()
            return await first.first_sighting("src:msg_2", TTL)
        finally:
            await first.close()

    assert asyncio.run(run()) is False
