"""After Redis restarts, the rate limiter, window store and replay cache serve at once.

Found by ``frostgate chaos``: a connection pooled before a Redis restart was handed out
unchecked (redis-py skips its closed-connection check while maintenance notifications are
left on "auto") and failed its request, so requests answered 503 although Redis was up
again (the limiter: one per pooled connection; the window store and replay cache: more,
their retry backoff outlasting the call's deadline). A private ``redis-server`` is killed
and started here; the shared one is never touched.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from frostgate.decisions.windows import RedisWindowStore
from frostgate.engine import WindowProbe
from frostgate.jobs.chaos.processes import PrivateRedis, free_port
from frostgate.security.ratelimit import BucketPolicy, RedisRateLimiter
from frostgate.security.replay import RedisReplayCache

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


async def _failures_after_restart(
    redis: PrivateRedis, call: Callable[[int], Awaitable[object]]
) -> list[BaseException]:
    await asyncio.gather(*(call(n) for n in range(8)))  # eight pooled connections
    await asyncio.to_thread(redis.kill)
    await asyncio.sleep(0.3)  # the pooled connections see the server go
    await asyncio.to_thread(redis.start)
    outcomes: list[object] = []
    for batch in range(5):
        outcomes += await asyncio.gather(
            *(call(100 + 8 * batch + n) for n in range(8)), return_exceptions=True
        )
    return [o for o in outcomes if isinstance(o, BaseException)]


def test_window_store_serves_at_once_after_a_redis_restart(tmp_path: Path) -> None:
    async def run() -> list[BaseException]:
        redis = PrivateRedis(tmp_path, await free_port())
        await asyncio.to_thread(redis.start)
        store = RedisWindowStore(redis.url)
        probe = WindowProbe("burst", "ip:198.51.100.7", None, 60, 10, 0)
        try:
            return await _failures_after_restart(
                redis,
                lambda n: store.observe("acme", f"e{n}", [probe], datetime.now(UTC)),
            )
        finally:
            await store.close()
            await asyncio.to_thread(redis.kill)

    failed = asyncio.run(run())
    assert failed == [], [type(f).__name__ for f in failed]


def test_replay_cache_serves_at_once_after_a_redis_restart(tmp_path: Path) -> None:
    async def run() -> list[BaseException]:
        redis = PrivateRedis(tmp_path, await free_port())
        await asyncio.to_thread(redis.start)
        cache = RedisReplayCache(redis.url)
        try:
            return await _failures_after_restart(
                redis, lambda n: cache.first_sighting(f"msg_{n}", 60.0)
            )
        finally:
            await cache.close()
            await asyncio.to_thread(redis.kill)

    failed = asyncio.run(run())
    assert failed == [], [type(f).__name__ for f in failed]


def test_rate_limiter_serves_at_once_after_a_redis_restart(tmp_path: Path) -> None:
    async def run() -> list[BaseException]:
        redis = PrivateRedis(tmp_path, await free_port())
        await asyncio.to_thread(redis.start)
        limiter = RedisRateLimiter(redis.url, key_prefix="fgtest:restart:")
        policy = BucketPolicy(capacity=100_000, refill_per_second=1000.0, name="key")
        try:
            return await _failures_after_restart(redis, lambda _n: limiter.acquire([("k", policy)]))
        finally:
            await limiter.close()
            await asyncio.to_thread(redis.kill)

    failed = asyncio.run(run())
    assert failed == [], [type(f).__name__ for f in failed]
