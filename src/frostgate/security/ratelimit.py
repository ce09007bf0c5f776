"""Rate limiting: token buckets per key and per tenant, in memory or in Redis.

A :class:`BucketPolicy` is a token bucket: it holds at most ``capacity`` tokens (the burst)
and gains ``refill_per_second`` tokens per second (fractional rates such as 0.5 work; the
level is a float, only whole tokens are reported). A request costs ``cost`` tokens.

:meth:`RateLimiter.acquire` checks several buckets at once (typically
``("key:<key_id>", per_key)`` and ``("tenant:<tenant_id>", per_tenant)``) and is
all-or-nothing: tokens are taken from every bucket only if every bucket holds ``cost``
tokens, so a request refused by the tenant bucket does not drain the key bucket. The
returned :class:`RateDecision` describes the most constraining bucket.

Two backends implement the same arithmetic:

* :class:`MemoryRateLimiter` for one process: a dict of buckets refilled lazily on use, with
  a bounded LRU (see its docstring for the memory bound).
* :class:`RedisRateLimiter` for several processes: one Lua script reads, refills, checks and
  takes from every bucket atomically, using the Redis server's clock.

The limiter fails closed. Any backend failure (connection refused, timeout, protocol or
script error, unexpected reply) raises :class:`RateLimiterUnavailable`, which the gate
answers with 503 ``RATE_LIMITER_UNAVAILABLE``. No code path allows a request it could not
check, and there is no switch that would make it do so.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store.redis_pool import redis_client

__all__ = [
    "AddressRateLimit",
    "BucketPolicy",
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisRateLimiter",
]

# Tolerance for float rounding in token levels: a level within EPS of a whole number counts
# as that number, so refills that add up to a whole token are not refused over rounding noise
# (0.1 s added ten times is 0.9999999999999999 s).
_EPS = 1e-9
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


class RateLimiterUnavailable(Exception):
    """The backend could not be asked. The gate answers 503 RATE_LIMITER_UNAVAILABLE."""


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    """A token bucket: ``capacity`` tokens of burst, refilled at ``refill_per_second``.

    ``name`` identifies the policy in the ``RateLimit`` / ``RateLimit-Policy`` headers
    (e.g. ``"key"``, ``"tenant"``); lowercase ``[a-z][a-z0-9_.-]*``, at most 32 characters,
    so it is always a valid Structured Field string without escaping.
    """

    capacity: int
    refill_per_second: float
    name: str = "default"

    def __post_init__(self) -> None:
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise TypeError("capacity must be an int")
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        rate = self.refill_per_second
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError("refill_per_second must be a number")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("refill_per_second must be finite and positive")
        if not _NAME.fullmatch(self.name):
            raise ValueError("name must match [a-z][a-z0-9_.-]{0,31}")

    @property
    def window_seconds(self) -> int:
        """Seconds to refill an empty bucket completely, rounded up (the ``w`` parameter)."""
        return max(1, _ceil(self.capacity / self.refill_per_second))


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one :meth:`RateLimiter.acquire`, for its most constraining bucket.

    ``retry_after`` is ``math.inf`` when ``cost`` exceeds a bucket's capacity: waiting never
    helps, so the gate may prefer to answer that as a batch that is too large.
    """

    allowed: bool
    limit: int  # capacity of the most constraining bucket
    remaining: int  # whole tokens left there after this request (0 when denied)
    retry_after: float  # seconds until `cost` tokens are available in every bucket (0 if allowed)
    reset_after: float  # seconds until the most constraining bucket is full again
    policy_name: str = "default"  # name of the most constraining bucket's policy
    policies: tuple[BucketPolicy, ...] = field(default=())  # every policy checked, in order

    def headers(self, *, legacy: bool = True) -> list[tuple[bytes, bytes]]:
        """Response headers (ASGI form: lowercase names, byte values).

        Follows draft-ietf-httpapi-ratelimit-headers-11 (R. Polli, A. Martinez, D. Miller,
        23 May 2026, https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/):

        * ``RateLimit-Policy`` (section 3): a Structured Field List of quota policies,
          ``"key";q=<capacity>;w=<seconds to refill from empty>``, one item per bucket
          checked, so the value stays the same across responses.
        * ``RateLimit`` (section 4): the service limit of the most constraining bucket,
          ``"key";r=<remaining>;t=<seconds>``. ``t`` is the effective window: when denied,
          the seconds until the request could pass (equal to ``Retry-After``, which section 6
          says must not end before the window); when allowed, the seconds until the bucket
          is full again.
        * ``Retry-After`` (RFC 9110 section 10.2.3, delay-seconds) when denied: integer
          seconds rounded up, at least 1; omitted when waiting can never help (cost above
          capacity).
        * With ``legacy`` (default), also ``RateLimit-Limit``, ``RateLimit-Remaining`` and
          ``RateLimit-Reset`` (seconds until full, rounded up) from drafts up to -06, which
          the current draft replaced but many clients still read.

        A token bucket has no fixed window: ``w`` is the time to refill a full burst, so the
        sustained rate is about ``q`` units per ``w`` seconds, after a burst of ``q``.
        """
        if self.allowed or math.isinf(self.retry_after):
            window = _ceil(self.reset_after)
        else:
            window = max(1, _ceil(self.retry_after))
        out: list[tuple[bytes, bytes]] = []
        seen: set[BucketPolicy] = set()
        items: list[str] = []
        for policy in self.policies:
            if policy not in seen:
                seen.add(policy)
                items.append(f'"{policy.name}";q={policy.capacity};w={policy.window_seconds}')
        if items:
            out.append((b"ratelimit-policy", ", ".join(items).encode("ascii")))
        out.append(
            (b"ratelimit", f'"{self.policy_name}";r={self.remaining};t={window}'.encode("ascii"))
        )
        if legacy:
            out.append((b"ratelimit-limit", str(self.limit).encode("ascii")))
            out.append((b"ratelimit-remaining", str(self.remaining).encode("ascii")))
            out.append((b"ratelimit-reset", str(_ceil(self.reset_after)).encode("ascii")))
        if not self.allowed and math.isfinite(self.retry_after):
            out.append((b"retry-after", str(max(1, _ceil(self.retry_after))).encode("ascii")))
        return out


class RateLimiter(Protocol):
    """What the gate calls. Both methods may raise :class:`RateLimiterUnavailable`."""

    async def acquire(
        self, checks: Sequence[tuple[str, BucketPolicy]], cost: int = 1
    ) -> RateDecision: ...

    async def close(self) -> None: ...


def _ceil(seconds: float) -> int:
    """Round seconds up to an int, ignoring float noise just above a whole number."""
    return max(0, math.ceil(seconds - _EPS))


def _validate(checks: Sequence[tuple[str, BucketPolicy]], cost: int) -> None:
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError("cost must be a positive int")
    if not checks:
        raise ValueError("at least one bucket must be checked")
    keys = [key for key, _ in checks]
    if len(set(keys)) != len(keys):
        raise ValueError("a bucket key appears twice")
    for key, policy in checks:
        if not key or not isinstance(key, str):
            raise ValueError("bucket keys must be non-empty strings")
        if not isinstance(policy, BucketPolicy):
            raise TypeError("policies must be BucketPolicy")


def _decide(
    checks: Sequence[tuple[str, BucketPolicy]], cost: int, allowed: bool, levels: Sequence[float]
) -> RateDecision:
    """Build the decision from each bucket's level (after the take when allowed)."""
    policies = tuple(policy for _, policy in checks)
    # (remaining, -retry, -reset): the smallest tuple is the most constraining bucket.
    best: tuple[int, float, float, BucketPolicy] | None = None
    for policy, level in zip(policies, levels, strict=True):
        rate = policy.refill_per_second
        level = min(float(policy.capacity), max(0.0, level))
        reset = (policy.capacity - level) / rate
        if level + _EPS >= cost:
            retry = 0.0
        elif cost > policy.capacity:
            retry = math.inf
        else:
            retry = (cost - level) / rate
        remaining = min(policy.capacity, math.floor(level + _EPS)) if allowed else 0
        candidate = (remaining, -retry, -reset, policy)
        if best is None or candidate[:3] < best[:3]:
            best = candidate
    assert best is not None
    remaining, neg_retry, neg_reset, policy = best
    return RateDecision(
        allowed=allowed,
        limit=policy.capacity,
        remaining=remaining,
        retry_after=0.0 if allowed else -neg_retry,
        reset_after=max(0.0, -neg_reset),
        policy_name=policy.name,
        policies=policies,
    )


class _Bucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float, capacity: int, rate: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.capacity = capacity
        self.rate = rate

    def level(self, now: float, capacity: int, rate: float) -> float:
        return min(float(capacity), self.tokens + max(0.0, now - self.stamp) * rate)

    def full(self, now: float) -> bool:
        return self.level(now, self.capacity, self.rate) + _EPS >= self.capacity


class MemoryRateLimiter:
    """Token buckets in a dict, for a single process.

    Buckets refill lazily when touched; no background task runs. ``acquire`` contains no
    ``await``, so under asyncio the read-check-take sequence cannot interleave.

    Memory is bounded: at most ``max_buckets`` buckets are kept, in least-recently-used
    order (a denied request also counts as a use, so a bucket being hammered stays).
    An absent bucket is a full one, which means:

    * a bucket that has refilled completely is dropped without changing any answer; each
      call drops up to two such buckets from the LRU end, so idle buckets expire on their
      own while traffic flows;
    * when the dict is at ``max_buckets`` and the least-recently-used bucket is not yet full,
      it is dropped anyway, which forgives what that bucket had consumed. This is counted
      in ``forced_evictions``; size ``max_buckets`` well above the number of keys and
      tenants active within one refill window (the default holds 100,000 buckets, about
      30 MB with 40-character keys).

    ``clock`` returns seconds and must be monotonic; tests inject a fake one.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_buckets: int = 100_000
    ) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.forced_evictions = 0

    def __len__(self) -> int:
        return len(self._buckets)

    async def acquire(
        self, checks: Sequence[tuple[str, BucketPolicy]], cost: int = 1
    ) -> RateDecision:
        _validate(checks, cost)
        # Critical section: no await from here to the return.
        now = self._clock()
        buckets = self._buckets
        levels: list[float] = []
        for key, policy in checks:
            bucket = buckets.get(key)
            if bucket is None:
                levels.append(float(policy.capacity))
            else:
                levels.append(bucket.level(now, policy.capacity, policy.refill_per_second))
                buckets.move_to_end(key)
        allowed = all(level + _EPS >= cost for level in levels)
        if allowed:
            for i, (key, policy) in enumerate(checks):
                levels[i] = max(0.0, levels[i] - cost)
                bucket = buckets.get(key)
                if bucket is None:
                    buckets[key] = _Bucket(
                        levels[i], now, policy.capacity, policy.refill_per_second
                    )
                else:
                    bucket.tokens = levels[i]
                    bucket.stamp = now
                    bucket.capacity = policy.capacity
                    bucket.rate = policy.refill_per_second
            self._trim(now)
        return _decide(checks, cost, allowed, levels)

    def _trim(self, now: float) -> None:
        buckets = self._buckets
        for _ in range(2):  # expire idle buckets that are full anyway
            if not buckets:
                break
            oldest = next(iter(buckets.values()))
            if not oldest.full(now):
                break
            buckets.popitem(last=False)
        while len(buckets) > self._max:
            _, evicted = buckets.popitem(last=False)
            if not evicted.full(now):
                self.forced_evictions += 1

    async def close(self) -> None:
        self._buckets.clear()


# One script for every call. KEYS: the buckets. ARGV[1]: cost; then capacity and refill per
# second for each bucket. State per bucket is a hash {tk: tokens, ts: server time in
# microseconds}; an absent key is a full bucket. Returns {1|0, level_1, ..., level_n} where
# the levels are after the take when allowed, as strings so no precision is lost.
_LUA = """
local eps = 1e-9
local cost = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n = #KEYS
local levels = {}
local allowed = true
for i = 1, n do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tk = tonumber(state[1])
  local ts = tonumber(state[2])
  local level = cap
  if tk and ts then
    local elapsed = now - ts
    if elapsed < 0 then elapsed = 0 end
    level = math.min(cap, tk + elapsed * rate / 1000000)
  end
  levels[i] = level
  if level + eps < cost then allowed = false end
end
if allowed then
  local stamp = string.format('%.17g', now)
  for i = 1, n do
    local cap = tonumber(ARGV[2 * i])
    local rate = tonumber(ARGV[2 * i + 1])
    local level = math.max(0, levels[i] - cost)
    levels[i] = level
    redis.call('HSET', KEYS[i], 'tk', string.format('%.17g', level), 'ts', stamp)
    local ttl = math.min(1e15, math.max(1, math.ceil((cap - level) * 1000 / rate)))
    redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl))
  end
end
local out = {allowed and 1 or 0}
for i = 1, n do out[i + 1] = string.format('%.17g', levels[i]) end
return out
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every process that uses the same server and prefix.

    One Lua script (registered once; redis-py sends EVALSHA and loads the script when the
    server answers NOSCRIPT) refills, checks and takes from all buckets of a call atomically,
    timed by ``redis.call('TIME')`` so process clocks do not matter. Each written bucket
    expires when it would be full again, so idle buckets do not accumulate.

    ``url_or_client``: a ``redis://`` URL, for which this limiter builds and owns a client
    with ``connect_timeout`` / ``op_timeout`` socket timeouts, a bounded pool of
    ``max_connections`` (a burst of requests waits for a free connection instead of opening
    hundreds; a pooled connection the server closed is replaced before use, never failed
    on a request) and no automatic retries (the script is not idempotent: a retry after a lost
    reply would take tokens twice); or an existing ``redis.asyncio.Redis``, which ``close``
    leaves open. Either way each call has an overall deadline of
    ``connect_timeout + op_timeout``, waiting for a pooled connection included.

    The buckets of one call must live on one Redis node; Redis Cluster would reject the
    multi-key script unless all keys share a hash tag.
    """

    def __init__(
        self,
        url_or_client: str | Redis,
        key_prefix: str = "fg:rl:",
        *,
        connect_timeout: float = 0.25,
        op_timeout: float = 0.25,
        max_connections: int = 32,
    ) -> None:
        if isinstance(url_or_client, str):
            self._client = redis_client(
                url_or_client,
                connect_timeout=connect_timeout,
                op_timeout=op_timeout,
                max_connections=max_connections,
            )
            self._owned = True
        else:
            self._client = url_or_client
            self._owned = False
        self._prefix = key_prefix
        self._deadline = connect_timeout + op_timeout
        self._script = self._client.register_script(_LUA)

    async def acquire(
        self, checks: Sequence[tuple[str, BucketPolicy]], cost: int = 1
    ) -> RateDecision:
        _validate(checks, cost)
        keys = [self._prefix + key for key, _ in checks]
        args: list[str] = [str(cost)]
        for _, policy in checks:
            args.append(str(policy.capacity))
            args.append(repr(float(policy.refill_per_second)))
        try:
            async with asyncio.timeout(self._deadline):
                reply = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            raise RateLimiterUnavailable(type(exc).__name__) from exc
        try:
            allowed, levels = _parse(reply, len(checks))
        except (TypeError, ValueError) as exc:
            raise RateLimiterUnavailable("unexpected reply from the rate limit script") from exc
        return _decide(checks, cost, allowed, levels)

    async def close(self) -> None:
        if self._owned:
            await self._client.aclose()


def _parse(reply: object, count: int) -> tuple[bool, list[float]]:
    if not isinstance(reply, list) or len(reply) != count + 1:
        raise ValueError("wrong reply shape")
    flag = reply[0]
    if flag not in (0, 1):
        raise ValueError("wrong flag")
    levels: list[float] = []
    for item in reply[1:]:
        if not isinstance(item, (bytes, str)):
            raise TypeError("level is not a string")
        level = float(item)
        if not math.isfinite(level):
            raise ValueError("level is not finite")
        levels.append(level)
    return flag == 1, levels


class WriteRateLimit:
    """The gate's hook for write routes: one token from the key's bucket and one from
    its tenant's, all or nothing. Allowed → the RateLimit headers to add; refused →
    :class:`RateLimitRefused` with them (429); backend down → 503 (fail closed)."""

    def __init__(
        self, limiter: RateLimiter, *, per_key: BucketPolicy, per_tenant: BucketPolicy
    ) -> None:
        self.limiter = limiter
        self.per_key = per_key
        self.per_tenant = per_tenant

    async def __call__(self, key_id: str, tenant_id: str | None) -> list[tuple[bytes, bytes]]:
        checks = [(f"key:{key_id}", self.per_key)]
        if tenant_id is not None:
            checks.append((f"tenant:{tenant_id}", self.per_tenant))
        try:
            decision = await self.limiter.acquire(checks)
        except RateLimiterUnavailable as exc:
            raise FrostGateError(ErrorCode.RATE_LIMITER_UNAVAILABLE, str(exc)) from exc
        if not decision.allowed:
            raise RateLimitRefused(decision.headers())
        return decision.headers()


class AddressRateLimit:
    """The gate's hook for signed, keyless routes (inbound webhooks): one token from the
    client address's bucket. Without a key the address is all there is to limit, and
    every refused delivery still costs a database lookup and signature checks, so a
    flood of unsigned requests from one address is cut off here, before the handler.
    Same answers as :class:`WriteRateLimit` (headers, 429, 503 when the backend is down).
    """

    def __init__(self, limiter: RateLimiter, *, per_address: BucketPolicy) -> None:
        self.limiter = limiter
        self.per_address = per_address

    async def __call__(self, address: str) -> list[tuple[bytes, bytes]]:
        try:
            decision = await self.limiter.acquire([(f"addr:{address}", self.per_address)])
        except RateLimiterUnavailable as exc:
            raise FrostGateError(ErrorCode.RATE_LIMITER_UNAVAILABLE, str(exc)) from exc
        if not decision.allowed:
            raise RateLimitRefused(decision.headers())
        return decision.headers()


class RateLimitRefused(Exception):
    """The request is over its rate; answered 429 with these headers."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__("rate limited")
        self.headers = headers
