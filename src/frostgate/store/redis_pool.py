"""Redis clients for the state FrostGate keeps in Redis: rate limits, windows, replay ids.

One construction for all of them, because one detail decides whether they recover from a
Redis restart: redis-py checks a pooled connection for "closed by the server" before
handing it out, but skips that check while maintenance notifications (a Redis Enterprise
and Cloud feature) are on its default "auto". Then every connection pooled before a
restart failed one request after Redis was back, and the call answered 503 with every
dependency up (found by ``frostgate chaos``). They are turned off here.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

__all__ = ["RedisProbe", "redis_client"]


def redis_client(
    url: str, *, connect_timeout: float, op_timeout: float, max_connections: int = 32
) -> Redis:
    """A client with a bounded pool (a burst waits up to ``connect_timeout + op_timeout``
    for a free connection instead of opening hundreds), those socket timeouts, and no
    automatic retries: the caller's scripts are not idempotent (a retry after a lost reply
    would count or take twice) and a failure must reach the caller, who fails closed."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=connect_timeout + op_timeout,
        socket_connect_timeout=connect_timeout,
        socket_timeout=op_timeout,
        retry=Retry(NoBackoff(), 0),
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return Redis.from_pool(pool)


class RedisProbe:
    """Readiness for a process whose rate limits, windows or replay ids live in Redis:
    with Redis down every write answers 503, so the node must not report itself ready
    and keep receiving traffic a load balancer could send elsewhere."""

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        self._client = redis_client(
            url, connect_timeout=timeout, op_timeout=timeout, max_connections=2
        )
        self._timeout = timeout

    async def ping(self) -> bool:
        """True when Redis answered PING within the timeout; a failure is the answer."""
        try:
            async with asyncio.timeout(self._timeout * 2):
                return bool(await self._client.ping())
        except (TimeoutError, OSError, RedisError):
            return False

    async def close(self) -> None:
        await self._client.aclose()
