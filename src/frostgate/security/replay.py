"""The inbound webhook replay cache: a ``webhook-id`` is accepted once per window.

The signature check bounds a message's timestamp to ±tolerance, so remembering every
accepted id for twice the tolerance (plus a margin) refuses every replay of a signed
message that could still pass the timestamp check. ``MemoryReplayCache`` serves one
process; ``RedisReplayCache`` (``SET key token NX PX ttl``: atomic first-writer-wins) serves
several. Both fail closed: a full memory cache or an unreachable Redis refuses the
delivery (the sender retries) rather than risk accepting a replay.

A ``SET`` whose reply is lost may still have been applied: the id would then be
remembered for a message that was refused (503), and the sender's retry refused as a
replay of it, so a legitimate delivery was lost for good. Each sighting therefore
stores a random token, and after a failed ``SET`` the cache deletes the key if, and
only if, it holds that token (one Lua script, atomic): a sighting another request made
is never taken back by it. The take-back gets one operation's timeout, so with Redis
gone silent a delivery is refused after 1.5 times the usual budget rather than twice.
(``forget`` undoes a sighting on behalf of the request that made it, which has already
processed nothing.) A ``SET`` interrupted by cancellation, at shutdown, is not taken
back: its id stays until the TTL, closed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from typing import Protocol

from redis.exceptions import RedisError

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store.redis_pool import redis_client

__all__ = ["MemoryReplayCache", "RedisReplayCache", "ReplayCache"]

log = logging.getLogger(__name__)

# Delete KEYS[1] only while it holds ARGV[1]: the token of this request's own SET.
_TAKE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class ReplayCache(Protocol):
    async def first_sighting(self, key: str, ttl_seconds: float) -> bool:
        """True the first time ``key`` is offered within ``ttl_seconds``; False after."""

    async def forget(self, key: str) -> None:
        """Undo a sighting whose message was then not processed (the sender retries)."""

    async def close(self) -> None: ...


class MemoryReplayCache:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries

    async def first_sighting(self, key: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        while self._seen:
            oldest_key, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[oldest_key]
        if key in self._seen:
            return False
        if len(self._seen) >= self._max:
            raise FrostGateError(ErrorCode.OVERLOADED, "replay cache full")
        # Every entry has the same ttl, so insertion order is expiry order.
        self._seen[key] = now + ttl_seconds
        return True

    async def forget(self, key: str) -> None:
        self._seen.pop(key, None)

    async def close(self) -> None:
        self._seen.clear()


class RedisReplayCache:
    def __init__(self, url: str, key_prefix: str = "fg:hook:", timeout: float = 0.5) -> None:
        self._client = redis_client(url, connect_timeout=timeout, op_timeout=timeout)
        self._prefix = key_prefix
        self._timeout = timeout

    async def first_sighting(self, key: str, ttl_seconds: float) -> bool:
        name = self._prefix + key
        token = secrets.token_hex(16)
        try:
            async with asyncio.timeout(self._timeout * 2):
                stored = await self._client.set(name, token, nx=True, px=int(ttl_seconds * 1000))
        except (RedisError, OSError) as exc:
            await self._take_back(name, token)
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "replay cache down") from exc
        return bool(stored)

    async def _take_back(self, name: str, token: str) -> None:
        """Undo this request's ``SET`` if it was applied although its reply was lost."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.eval(_TAKE_BACK, 1, name, token)
        except (RedisError, OSError) as exc:
            # Still down: if the SET was applied, the id stays until its TTL and the
            # sender's retries are refused meanwhile (closed, not open).
            log.warning("could not take back a replay-cache sighting of %s: %r", name, exc)

    async def forget(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except (RedisError, OSError) as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "replay cache down") from exc

    async def close(self) -> None:
        await self._client.aclose()
