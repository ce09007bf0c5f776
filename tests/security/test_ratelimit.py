"""Rate limiter tests against a real Redis (``FG_TEST_REDIS_URL``, default 127.0.0.1:6379)
and the in-memory backend. Redis tests use real time with short refill intervals; the
memory backend gets an injected clock."""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from frostgate.security.ratelimit import (
    BucketPolicy,
    MemoryRateLimiter,
    RateDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
)

REDIS_URL = os.environ.get("FG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def patient(prefix: str) -> RedisRateLimiter:
    """Behaviour tests get generous timeouts so a loaded CI machine cannot turn them into
    RateLimiterUnavailable; the fail-fast tests use the production defaults."""
    return RedisRateLimiter(REDIS_URL, key_prefix=prefix, connect_timeout=2.0, op_timeout=2.0)


SLOW = 0.001  # tokens per second: no visible refill during a test


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    limiter: RateLimiter
    advance: Callable[[float], Awaitable[None]]
    tol: float  # seconds of timing slack in retry/reset assertions


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    value = f"fgtest:rl:{uuid.uuid4().hex}:"
    yield value
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=value + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance_clock(seconds: float) -> None:
            clock.now += seconds

        limiter: RateLimiter = MemoryRateLimiter(clock)
        yield Backend("memory", limiter, advance_clock, 1e-9)
    else:

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(seconds)

        limiter = patient(prefix)
        yield Backend("redis", limiter, sleep, 0.08)
    await limiter.close()


# --- both backends -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_burst_up_to_capacity_then_denied(backend: Backend) -> None:
    policy = BucketPolicy(5, 1.0, "key")
    seen = [await backend.limiter.acquire([("key:a", policy)]) for _ in range(5)]
    assert [d.allowed for d in seen] == [True] * 5
    assert [d.remaining for d in seen] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 and d.retry_after == 0 for d in seen)
    denied = await backend.limiter.acquire([("key:a", policy)])
    assert not denied.allowed
    assert denied.remaining == 0
    assert denied.limit == 5
    assert denied.retry_after <= 1.0
    assert denied.retry_after >= 1.0 - backend.tol
    assert 5.0 - backend.tol <= denied.reset_after <= 5.0


@pytest.mark.anyio
async def test_refill_over_time(backend: Backend) -> None:
    policy = BucketPolicy(2, 4.0)  # one token per 250 ms
    assert (await backend.limiter.acquire([("k", policy)], cost=2)).allowed
    assert not (await backend.limiter.acquire([("k", policy)])).allowed
    await backend.advance(0.3)  # 1.2 tokens
    again = await backend.limiter.acquire([("k", policy)])
    assert again.allowed
    assert again.remaining == 0
    denied = await backend.limiter.acquire([("k", policy)])  # 0.2 tokens left
    assert not denied.allowed
    assert 0.2 - backend.tol <= denied.retry_after <= 0.2 + 1e-9
    await backend.advance(0.5)  # 2.2 tokens, but refill is capped at capacity
    full = await backend.limiter.acquire([("k", policy)])
    assert full.allowed
    assert full.remaining == 1


@pytest.mark.anyio
async def test_retry_after_is_accurate(backend: Backend) -> None:
    policy = BucketPolicy(3, 5.0)
    assert (await backend.limiter.acquire([("k", policy)], cost=3)).allowed
    one = await backend.limiter.acquire([("k", policy)])
    assert not one.allowed
    assert 0.2 - backend.tol <= one.retry_after <= 0.2
    three = await backend.limiter.acquire([("k", policy)], cost=3)
    assert not three.allowed
    assert 0.6 - backend.tol <= three.retry_after <= 0.6
    assert 0.6 - backend.tol <= three.reset_after <= 0.6
    await backend.advance(one.retry_after + 0.01)
    after = await backend.limiter.acquire([("k", policy)])
    assert (after.allowed, after.remaining) == (True, 0)


@pytest.mark.anyio
async def test_fractional_refill_rate(backend: Backend) -> None:
    slow = BucketPolicy(1, 0.5)  # one token every 2 s
    assert (await backend.limiter.acquire([("half", slow)])).allowed
    denied = await backend.limiter.acquire([("half", slow)])
    assert not denied.allowed
    assert 2.0 - backend.tol <= denied.retry_after <= 2.0
    assert 2.0 - backend.tol <= denied.reset_after <= 2.0
    assert denied.headers()[-1] == (b"retry-after", b"2")
    # 2.5 tokens/s: 0.4 s makes exactly one token out of fractions.
    fast = BucketPolicy(1, 2.5)
    assert (await backend.limiter.acquire([("frac", fast)])).allowed
    assert not (await backend.limiter.acquire([("frac", fast)])).allowed
    await backend.advance(0.2)
    assert not (await backend.limiter.acquire([("frac", fast)])).allowed
    await backend.advance(0.2)  # the fractions add up to one token (within float noise)
    assert (await backend.limiter.acquire([("frac", fast)])).allowed


@pytest.mark.anyio
async def test_multi_bucket_is_all_or_nothing(backend: Backend) -> None:
    per_key = BucketPolicy(5, SLOW, "key")
    per_tenant = BucketPolicy(2, SLOW, "tenant")
    checks = [("key:k1", per_key), ("tenant:t1", per_tenant)]
    first = await backend.limiter.acquire(checks)
    assert first.allowed
    assert (first.limit, first.remaining, first.policy_name) == (2, 1, "tenant")
    assert (await backend.limiter.acquire(checks)).allowed
    for _ in range(3):
        denied = await backend.limiter.acquire(checks)
        assert not denied.allowed
        assert (denied.limit, denied.remaining, denied.policy_name) == (2, 0, "tenant")
    # The denied requests did not touch the key bucket: 5 - 2 taken, 1 now.
    alone = await backend.limiter.acquire([("key:k1", per_key)])
    assert (alone.allowed, alone.remaining) == (True, 2)
    # And the other way round: an exhausted key bucket does not drain a fresh tenant.
    assert (await backend.limiter.acquire([("key:k1", per_key)], cost=2)).allowed
    blocked = await backend.limiter.acquire([("key:k1", per_key), ("tenant:t2", per_tenant)])
    assert not blocked.allowed
    assert blocked.policy_name == "key"
    fresh = await backend.limiter.acquire([("tenant:t2", per_tenant)], cost=2)
    assert (fresh.allowed, fresh.remaining) == (True, 0)


@pytest.mark.anyio
async def test_cost_greater_than_one(backend: Backend) -> None:
    policy = BucketPolicy(10, 2.0)
    a = await backend.limiter.acquire([("batch", policy)], cost=4)
    b = await backend.limiter.acquire([("batch", policy)], cost=4)
    assert (a.allowed, a.remaining, b.allowed, b.remaining) == (True, 6, True, 2)
    denied = await backend.limiter.acquire([("batch", policy)], cost=4)
    assert not denied.allowed
    assert denied.retry_after <= 1.0  # 2 missing tokens at 2/s
    assert denied.retry_after >= 1.0 - backend.tol
    rest = await backend.limiter.acquire([("batch", policy)], cost=2)
    assert (rest.allowed, rest.remaining) == (True, 0)


@pytest.mark.anyio
async def test_cost_above_capacity_never_passes_and_takes_nothing(backend: Backend) -> None:
    policy = BucketPolicy(3, 1.0)
    huge = await backend.limiter.acquire([("big", policy)], cost=4)
    assert not huge.allowed
    assert math.isinf(huge.retry_after)
    names = [name for name, _ in huge.headers()]
    assert b"retry-after" not in names
    assert (await backend.limiter.acquire([("big", policy)], cost=3)).allowed


@pytest.mark.anyio
async def test_independent_keys(backend: Backend) -> None:
    policy = BucketPolicy(2, SLOW)
    assert (await backend.limiter.acquire([("key:a", policy)], cost=2)).allowed
    assert not (await backend.limiter.acquire([("key:a", policy)])).allowed
    other = await backend.limiter.acquire([("key:b", policy)])
    assert (other.allowed, other.remaining) == (True, 1)
    tenant = await backend.limiter.acquire([("tenant:a", policy)])
    assert (tenant.allowed, tenant.remaining) == (True, 1)


@pytest.mark.anyio
async def test_headers_from_a_backend_decision(backend: Backend) -> None:
    key = BucketPolicy(10, 2.0, "key")
    tenant = BucketPolicy(100, 10.0, "tenant")
    checks = [("key:h", key), ("tenant:h", tenant)]
    ok = await backend.limiter.acquire(checks, cost=3)
    assert ok.headers() == [
        (b"ratelimit-policy", b'"key";q=10;w=5, "tenant";q=100;w=10'),
        (b"ratelimit", b'"key";r=7;t=2'),
        (b"ratelimit-limit", b"10"),
        (b"ratelimit-remaining", b"7"),
        (b"ratelimit-reset", b"2"),
    ]
    assert (await backend.limiter.acquire(checks, cost=7)).allowed
    denied = await backend.limiter.acquire(checks, cost=2)
    headers = dict(denied.headers())
    assert headers[b"ratelimit"] == b'"key";r=0;t=1'
    assert headers[b"retry-after"] == b"1"
    assert headers[b"ratelimit-remaining"] == b"0"
    assert headers[b"ratelimit-reset"] == b"5"


@pytest.mark.anyio
async def test_bad_arguments_are_rejected(backend: Backend) -> None:
    policy = BucketPolicy(1, 1.0)
    with pytest.raises(ValueError, match="at least one"):
        await backend.limiter.acquire([])
    with pytest.raises(ValueError, match="twice"):
        await backend.limiter.acquire([("x", policy), ("x", policy)])
    with pytest.raises(ValueError, match="cost"):
        await backend.limiter.acquire([("x", policy)], cost=0)


@pytest.mark.anyio
async def test_concurrent_acquires_are_exact(backend: Backend) -> None:
    policy = BucketPolicy(20, SLOW)
    results = await asyncio.gather(*(backend.limiter.acquire([("hot", policy)]) for _ in range(50)))
    assert sum(d.allowed for d in results) == 20


# --- headers and policies without a backend ---------------------------------------------------


def test_headers_round_up_and_retry_after_at_least_one() -> None:
    policy = BucketPolicy(100, 10.0, "key")
    denied = RateDecision(False, 100, 0, 0.2, 4.01, "key", (policy,))
    assert denied.headers() == [
        (b"ratelimit-policy", b'"key";q=100;w=10'),
        (b"ratelimit", b'"key";r=0;t=1'),
        (b"ratelimit-limit", b"100"),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"5"),
        (b"retry-after", b"1"),
    ]
    exact = RateDecision(False, 100, 0, 3.0, 3.0, "key", (policy,))
    assert dict(exact.headers())[b"retry-after"] == b"3"
    noisy = RateDecision(False, 100, 0, 3.0000000000004, 3.0, "key", (policy,))
    assert dict(noisy.headers())[b"retry-after"] == b"3"
    allowed = RateDecision(True, 100, 99, 0.0, 0.1, "key", (policy,))
    assert dict(allowed.headers()) == {
        b"ratelimit-policy": b'"key";q=100;w=10',
        b"ratelimit": b'"key";r=99;t=1',
        b"ratelimit-limit": b"100",
        b"ratelimit-remaining": b"99",
        b"ratelimit-reset": b"1",
    }
    assert [name for name, _ in allowed.headers(legacy=False)] == [
        b"ratelimit-policy",
        b"ratelimit",
    ]
    for name, _ in denied.headers():
        assert name == name.lower()


def test_policy_window_rounds_up() -> None:
    assert BucketPolicy(1, 0.5).window_seconds == 2
    assert BucketPolicy(10, 3.0).window_seconds == 4
    assert BucketPolicy(1, 1000.0).window_seconds == 1


@pytest.mark.parametrize(
    ("capacity", "rate", "name", "error"),
    [
        (0, 1.0, "default", ValueError),
        (1, 0.0, "default", ValueError),
        (1, -1.0, "default", ValueError),
        (1, math.inf, "default", ValueError),
        (1, math.nan, "default", ValueError),
        (1.5, 1.0, "default", TypeError),
        (True, 1.0, "default", TypeError),
        (1, 1.0, 'bad"name', ValueError),
        (1, 1.0, "Key", ValueError),
        (1, 1.0, "", ValueError),
    ],
)
def test_policy_validation(capacity: object, rate: object, name: str, error: type) -> None:
    with pytest.raises(error):
        BucketPolicy(capacity, rate, name)  # type: ignore[arg-type]


# --- Redis only ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_redis_two_clients_share_one_bucket_exactly(prefix: str) -> None:
    first = patient(prefix)
    second = patient(prefix)
    policy = BucketPolicy(20, SLOW)
    checks = [("key:shared", policy), ("tenant:shared", BucketPolicy(1000, SLOW))]
    try:
        results = await asyncio.gather(
            *((first if i % 2 else second).acquire(checks) for i in range(50))
        )
    finally:
        await first.close()
        await second.close()
    assert sum(d.allowed for d in results) == 20
    assert sorted(d.remaining for d in results if d.allowed) == list(range(20))
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        tenant_tokens = float(await client.hget(prefix + "tenant:shared", "tk") or "nan")
    finally:
        await client.aclose()
    assert 980 <= tenant_tokens < 980.01  # only the 20 allowed requests took tenant tokens


@pytest.mark.anyio
async def test_redis_with_default_timeouts_serves(prefix: str) -> None:
    limiter = RedisRateLimiter(REDIS_URL, key_prefix=prefix)
    try:
        policy = BucketPolicy(3, SLOW)
        results = [await limiter.acquire([("key:d", policy)]) for _ in range(4)]
    finally:
        await limiter.close()
    assert [d.allowed for d in results] == [True, True, True, False]


@pytest.mark.anyio
async def test_redis_unreachable_fails_closed_fast() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", key_prefix="fgtest:unreachable:")
    policy = BucketPolicy(100, 100.0)
    try:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(RateLimiterUnavailable):
                await limiter.acquire([("key:a", policy)])
            assert time.monotonic() - started < 1.0
    finally:
        await limiter.close()


@pytest.mark.anyio
async def test_redis_that_never_answers_times_out_fast() -> None:
    """A server that accepts the connection and then stalls (a hung Redis)."""
    stalled: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)
        await reader.read(-1)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", key_prefix="fgtest:stall:")
    try:
        started = time.monotonic()
        with pytest.raises(RateLimiterUnavailable):
            await limiter.acquire([("key:a", BucketPolicy(100, 100.0))])
        assert time.monotonic() - started < 1.0
    finally:
        await limiter.close()
        for writer in stalled:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.anyio
async def test_redis_error_reply_fails_closed(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    limiter = RedisRateLimiter(client, key_prefix=prefix)
    try:
        await client.set(prefix + "key:wrongtype", "not a hash")
        with pytest.raises(RateLimiterUnavailable):
            await limiter.acquire([("key:wrongtype", BucketPolicy(5, 1.0))])
        await limiter.close()  # a client passed in stays open
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_redis_keys_expire_when_full(prefix: str) -> None:
    limiter = patient(prefix)
    client = Redis.from_url(REDIS_URL)
    try:
        assert (await limiter.acquire([("key:ttl", BucketPolicy(1, 5.0))])).allowed
        assert (await limiter.acquire([("key:long", BucketPolicy(100, 1.0))], cost=30)).allowed
        assert 0 < await client.pttl(prefix + "key:ttl") <= 200
        assert 28_000 < await client.pttl(prefix + "key:long") <= 30_000
        await asyncio.sleep(0.3)
        assert not await client.exists(prefix + "key:ttl")  # full again, so gone
        # A missing bucket is a full one.
        fresh = await limiter.acquire([("key:ttl", BucketPolicy(1, 5.0))])
        assert (fresh.allowed, fresh.remaining) == (True, 0)
    finally:
        await limiter.close()
        await client.aclose()


@pytest.mark.anyio
async def test_redis_script_reloads_after_script_flush(prefix: str) -> None:
    limiter = patient(prefix)
    client = Redis.from_url(REDIS_URL)
    try:
        policy = BucketPolicy(3, SLOW)
        assert (await limiter.acquire([("key:f", policy)])).allowed
        await client.script_flush()
        after = await limiter.acquire([("key:f", policy)])
        assert (after.allowed, after.remaining) == (True, 1)
    finally:
        await limiter.close()
        await client.aclose()


# --- memory only -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_memory_is_bounded_under_100k_keys() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock, max_buckets=1000)
    policy = BucketPolicy(10, SLOW)
    for i in range(100_000):
        assert (await limiter.acquire([(f"key:{i}", policy)])).allowed
        assert len(limiter) <= 1000
    assert len(limiter) == 1000
    assert limiter.forced_evictions == 99_000


@pytest.mark.anyio
async def test_memory_keeps_recently_used_buckets() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock, max_buckets=100)
    policy = BucketPolicy(2, SLOW)
    assert (await limiter.acquire([("hot", policy)], cost=2)).allowed
    for i in range(150):
        await limiter.acquire([(f"cold:{i}", policy)])
        if i % 50 == 0:  # denied requests count as use
            assert not (await limiter.acquire([("hot", policy)])).allowed
    assert not (await limiter.acquire([("hot", policy)])).allowed


@pytest.mark.anyio
async def test_memory_drops_idle_full_buckets() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    policy = BucketPolicy(2, 1.0)
    for i in range(10):
        await limiter.acquire([(f"idle:{i}", policy)])
    assert len(limiter) == 10
    clock.now += 5  # every bucket is full again
    for i in range(10):
        await limiter.acquire([(f"new:{i}", policy)])
    assert len(limiter) == 10  # each call expired two idle buckets, up to all ten
    assert limiter.forced_evictions == 0
    assert all(not key.startswith("idle:") for key in limiter._buckets)


@pytest.mark.anyio
async def test_memory_refill_tolerates_float_noise() -> None:
    clock = FakeClock()
    clock.now = 0.0
    limiter = MemoryRateLimiter(clock)
    policy = BucketPolicy(1, 1.0)
    assert (await limiter.acquire([("n", policy)])).allowed
    for _ in range(9):
        clock.now += 0.1
        assert not (await limiter.acquire([("n", policy)])).allowed
    clock.now += 0.1
    assert clock.now < 1.0  # 0.1 added ten times is 0.9999999999999999
    assert (await limiter.acquire([("n", policy)])).allowed


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 20),
    rate=st.sampled_from([0.1, 0.5, 1.0, 2.5, 7.0]),
    steps=st.lists(st.tuples(st.floats(0, 3), st.integers(1, 5)), max_size=40),
)
def test_memory_never_admits_more_than_capacity_plus_refill(
    capacity: int, rate: float, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    policy = BucketPolicy(capacity, rate)
    taken = 0
    elapsed = 0.0
    level = float(capacity)  # reference model

    async def run() -> None:
        nonlocal taken, elapsed, level
        for wait, cost in steps:
            clock.now += wait
            elapsed += wait
            level = min(capacity, level + wait * rate)
            decision = await limiter.acquire([("p", policy)], cost=cost)
            expected = level + 1e-9 >= cost
            assert decision.allowed == expected
            if decision.allowed:
                level -= cost
                taken += cost
                assert decision.remaining == math.floor(level + 1e-9)
            else:
                assert decision.retry_after > 0
            assert taken <= capacity + elapsed * rate + 1e-6

    asyncio.run(run())
