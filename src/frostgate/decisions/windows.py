"""Window state for stateful rules: counts per key over a sliding window, with cooldowns.

The engine says what to observe (:meth:`frostgate.engine.Policy.window_probes`); a store
here records the observation and answers what the engine needs as explicit input
(:class:`frostgate.engine.WindowState`). Two implementations behind one interface:

* :class:`MemoryWindowStore` for one process: a deque of (time, member) per key, so
  observing is O(1) amortized; at most ``max_keys`` keys (default 100,000; at the cap a
  key of the tenant holding most goes, the least held of its least recently used) and
  at most ``max_members`` entries per key, so memory is bounded whatever the traffic,
  a tenant within its fair share keeps its keys, and scan noise goes before a count
  about to fire; expired entries are dropped whenever a key is touched,
  and a key whose window is empty and whose cooldown is over is forgotten (it says
  nothing a fresh window would not). Without that, traffic from ever-new addresses (a
  scan, a botnet) kept every dead window until the cap: about 1.3 KiB per key, 135 MB at
  the default cap, growing for as long as it took to get there (the soak, issue 7,
  found it).
* :class:`RedisWindowStore` for several processes: one sorted set per key and one
  cooldown key, updated by a single Lua script (atomic per probe).

For plain counts the member is the event id, so a replayed event is not counted twice;
for distinct counts it is the distinct value (the user). Time is the decision time.
An event is observed before it is written (its decision depends on the count), so an
event the writer does not store (a replay, an idempotency conflict, a refused quota) is
taken back with :meth:`WindowStore.retract`: a red-team round had a refused event start
the burst's cooldown, so the burst was never blocked, and a sensor re-sending a batch
after the window had moved on count the same failures twice.
Redis being unreachable fails the decision closed (503), never silently skips detection.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from redis.exceptions import RedisError

from frostgate.engine import WindowProbe, WindowState
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store.redis_pool import redis_client

__all__ = [
    "NOTHING_OBSERVED",
    "MemoryWindowStore",
    "Observation",
    "RedisWindowStore",
    "WindowStore",
]

DEFAULT_MAX_KEYS = 100_000
DEFAULT_MAX_MEMBERS = 10_000
#: How many least recently used keys eviction looks at for the least held one.
EVICTION_SAMPLE = 32


@dataclass(frozen=True, slots=True)
class Mark:
    """What one observation changed in one window, so that it can be taken back."""

    key: str  # the probe's key
    members: tuple[str, ...]  # the members recorded (event id, then #2... by weight)
    at: float  # the time recorded (seconds; Redis: milliseconds)
    added: bool  # new members (False: existing ones, re-timed or left as they were)
    before: float | None  # the first member's time before, when it existed (Redis)
    armed: bool  # this observation started the cooldown


@dataclass(frozen=True, slots=True)
class Observation:
    """The window states an event was decided with, and the marks that undo them."""

    states: dict[str, WindowState]
    marks: tuple[Mark, ...] = ()


NOTHING_OBSERVED = Observation({})


def _members(probe: WindowProbe, event_member: str) -> tuple[str, ...]:
    """What one Redis observation records: the distinct value, or for a plain count the
    event once per unit of its weight (``e``, ``e#2`` ... ``e#weight``: a sorted set has
    no weights to sum), so that a replay of the event adds nothing and a retraction
    takes back exactly what it added. The memory store keeps the weight in the entry."""
    if probe.member is not None:
        return (probe.member,)
    return (event_member, *(f"{event_member}#{k}" for k in range(2, probe.weight + 1)))


class WindowStore(Protocol):
    async def observe(
        self, tenant_id: str, event_id: str, probes: Sequence[WindowProbe], now: datetime
    ) -> Observation: ...

    async def retract(self, tenant_id: str, observation: Observation) -> None:
        """Take back an observation whose event was not stored (a replay, an
        idempotency conflict, a refused quota): it must count for nothing."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Window:
    # (time, member, weight): a plain count's member is an event id with its weight;
    # a distinct count's is the value counted, weight 1.
    entries: deque[tuple[float, str, int]] = field(default_factory=deque)
    members: Counter[str] = field(default_factory=Counter)
    weight: int = 0  # the entries' weights summed: a plain count
    cooling_until: float = 0.0
    # From this time on the window holds no live entry and is not cooling down.
    idle_from: float = 0.0


def _least_held(windows: OrderedDict[str, _Window]) -> str:
    """The key to drop from ``windows``: of the :data:`EVICTION_SAMPLE` least recently
    used, the one counting fewest entries (the oldest of those). Plain LRU dropped a
    burst in progress (nine failures, one short of the threshold) because a scan had
    touched a thousand one-entry keys since; a scan's keys now go first."""
    best_key, best_count = "", -1
    for key, window in itertools.islice(windows.items(), EVICTION_SAMPLE):
        count = len(window.entries)
        if best_count < 0 or count < best_count:
            best_key, best_count = key, count
            if count <= 1:
                break
    return best_key


class MemoryWindowStore:
    """Windows per tenant, each tenant's keys in LRU order, ``max_keys`` in all.

    At the cap the key dropped is the inserting tenant's when that tenant holds at least
    its fair share (all keys / tenants), and otherwise the tenant's holding most: a
    tenant spraying keys (many source addresses) evicts its own state first. Within the
    tenant, the least held of its least recently used keys goes (:func:`_least_held`),
    so a tenant over its share loses scan noise before a count about to fire.
    """

    def __init__(
        self, *, max_keys: int = DEFAULT_MAX_KEYS, max_members: int = DEFAULT_MAX_MEMBERS
    ) -> None:
        self._tenants: dict[str, OrderedDict[str, _Window]] = {}
        self._total = 0
        self._max_keys = max_keys
        self._max_members = max_members

    def __len__(self) -> int:
        return self._total

    async def observe(
        self, tenant_id: str, event_id: str, probes: Sequence[WindowProbe], now: datetime
    ) -> Observation:
        t = now.timestamp()
        self._forget_idle(tenant_id, t, budget=len(probes) + 2)
        states: dict[str, WindowState] = {}
        marks: list[Mark] = []
        for probe in probes:
            window = self._window(tenant_id, probe.key)
            self._drop(window, t - probe.seconds)
            plain = probe.member is None
            member = event_id if probe.member is None else probe.member
            added = not plain or member not in window.members
            if added:
                weight = probe.weight if plain else 1
                window.entries.append((t, member, weight))
                window.members[member] += 1
                window.weight += weight
            while len(window.entries) > self._max_members:
                self._pop(window)
            count = window.weight if plain else len(window.members)
            armed = count >= probe.threshold and t >= window.cooling_until
            if armed:
                window.cooling_until = t + probe.cooldown_seconds
            # An entry at t is dropped by an observation at t + seconds (``_drop``).
            window.idle_from = max(t + probe.seconds, window.cooling_until)
            states[probe.rule_id] = WindowState(count=count, armed=armed)
            marks.append(Mark(probe.key, (member,), t, added, None, armed))
        return Observation(states, tuple(marks))

    async def retract(self, tenant_id: str, observation: Observation) -> None:
        windows = self._tenants.get(tenant_id)
        for mark in observation.marks:
            window = None if windows is None else windows.get(mark.key)
            if window is None:
                continue  # forgotten or evicted since: nothing of it is left to take back
            for member in mark.members if mark.added else ():
                for i in range(len(window.entries) - 1, -1, -1):
                    at, recorded, weight = window.entries[i]
                    if at == mark.at and recorded == member:
                        del window.entries[i]
                        window.weight -= weight
                        window.members[member] -= 1
                        if window.members[member] <= 0:
                            del window.members[member]
                        break
            if mark.armed:
                # The cooldown it started, so the next event of the burst arms the rule.
                window.cooling_until = 0.0

    def _window(self, tenant_id: str, key: str) -> _Window:
        windows = self._tenants.setdefault(tenant_id, OrderedDict())
        window = windows.get(key)
        if window is not None:
            windows.move_to_end(key)
            return window
        window = windows[key] = _Window()
        self._total += 1
        while self._total > self._max_keys:
            self._evict_one(tenant_id)
        return window

    def _evict_one(self, inserting: str) -> None:
        own = self._tenants[inserting]
        victim = inserting
        if len(own) <= 1 or len(own) * len(self._tenants) < self._total:
            victim = max(
                (t for t in self._tenants if t != inserting), key=lambda t: len(self._tenants[t])
            )
        windows = self._tenants[victim]
        del windows[_least_held(windows)]
        self._total -= 1
        if not windows:
            del self._tenants[victim]

    def _forget_idle(self, tenant_id: str, t: float, *, budget: int) -> None:
        """Drop the tenant's idle windows from its least recently used end, up to
        ``budget`` of them (more than one call adds, so the sweep keeps up without a
        pause). It stops at the first window still live: a key cooling down, or one with
        a longer window, holds back those touched after it until it goes idle;
        ``max_keys`` bounds that case."""
        windows = self._tenants.get(tenant_id)
        for _ in range(budget):
            if not windows:
                return
            oldest = next(iter(windows.values()))
            if oldest.idle_from > t:
                return
            windows.popitem(last=False)
            self._total -= 1
            if not windows:
                del self._tenants[tenant_id]

    def _drop(self, window: _Window, cutoff: float) -> None:
        while window.entries and window.entries[0][0] <= cutoff:
            self._pop(window)

    @staticmethod
    def _pop(window: _Window) -> None:
        _, member, weight = window.entries.popleft()
        window.weight -= weight
        window.members[member] -= 1
        if window.members[member] <= 0:
            del window.members[member]

    async def close(self) -> None:
        self._tenants.clear()
        self._total = 0


_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local threshold = tonumber(ARGV[4])
local cooldown = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local before = redis.call('ZSCORE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[3])
for k = 2, tonumber(ARGV[7]) do
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. '#' .. k)
end
local count = redis.call('ZCARD', KEYS[1])
if count > cap then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, count - cap - 1)
  count = cap
end
redis.call('PEXPIRE', KEYS[1], window)
local armed = 0
if count >= threshold then
  if cooldown <= 0 then
    armed = 1
  elseif redis.call('SET', KEYS[2], '1', 'NX', 'PX', cooldown) then
    armed = 1
  end
end
return {count, armed, before}
"""

# Undo one observation. KEYS: the set and its cooldown key. ARGV: the time the
# observation gave its members, their time before ('' when they were new), 1 if it
# started the cooldown, then the members. A member is put back only if nothing has
# re-timed it since.
_RETRACT = """
for i = 4, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[1]) then
    if ARGV[2] == '' then
      redis.call('ZREM', KEYS[1], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    end
  end
end
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
end
return 1
"""


class RedisWindowStore:
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "fg:win:",
        timeout: float = 0.25,
        max_members: int = DEFAULT_MAX_MEMBERS,
    ) -> None:
        self._client = redis_client(url, connect_timeout=timeout, op_timeout=timeout)
        self._prefix = key_prefix
        self._timeout = timeout
        self._cap = max_members
        self._script = self._client.register_script(_LUA)
        self._retract = self._client.register_script(_RETRACT)

    async def observe(
        self, tenant_id: str, event_id: str, probes: Sequence[WindowProbe], now: datetime
    ) -> Observation:
        now_ms = int(now.timestamp() * 1000)
        states: dict[str, WindowState] = {}
        marks: list[Mark] = []
        try:
            async with asyncio.timeout(self._timeout * 4):
                for probe in probes:
                    members = _members(probe, f"e:{event_id}")
                    count, armed, before = await self._script(
                        keys=self._keys(tenant_id, probe.key),
                        args=[
                            now_ms,
                            probe.seconds * 1000,
                            members[0],
                            probe.threshold,
                            probe.cooldown_seconds * 1000,
                            self._cap,
                            len(members),
                        ],
                    )
                    states[probe.rule_id] = WindowState(count=int(count), armed=bool(armed))
                    old = None if before is None else float(before)
                    marks.append(Mark(probe.key, members, now_ms, old is None, old, bool(armed)))
        except (RedisError, OSError) as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "window store down") from exc
        return Observation(states, tuple(marks))

    async def retract(self, tenant_id: str, observation: Observation) -> None:
        try:
            async with asyncio.timeout(self._timeout * 4):
                for mark in observation.marks:
                    before = "" if mark.before is None else repr(mark.before)
                    await self._retract(
                        keys=self._keys(tenant_id, mark.key),
                        args=[mark.at, before, "1" if mark.armed else "0", *mark.members],
                    )
        except (RedisError, OSError) as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "window store down") from exc

    def _keys(self, tenant_id: str, key: str) -> list[str]:
        base = f"{self._prefix}{tenant_id}|{key}"
        return [base, base + "|cool"]

    async def close(self) -> None:
        await self._client.aclose()
