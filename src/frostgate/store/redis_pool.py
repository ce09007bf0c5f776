"""Redis clients for the state FrostGate keeps in Redis: rate limits, windows, replay ids.

One construction for all of them, because one detail decides whether they recover from a
Redis restart: redis-py checks a pooled connection for "closed by the server" before
handing it out, but skips that check while maintenance notifications (a Redis Enterprise
and Cloud feature) are on its default "auto". Then every connection pooled before a
restart failed one request after Redis was back, and the call answered 503 with every
dependency up (found by ``frostgate chaos``). They are turned off here.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

__all__ = ["redis_client"]


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
