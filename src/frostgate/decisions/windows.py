"""Window state for stateful rules: counts per key over a sliding window, with cooldowns.

The engine says what to observe (:meth:`frostgate.engine.Policy.window_probes`); a store
here records the observation and answers what the engine needs as explicit input
(:class:`frostgate.engine.WindowState`). Two implementations behind one interface:

* :class:`MemoryWindowStore` for one process: a deque of (time, member) per key, so
  observing is O(1) amortized; at most ``max_keys`` keys (LRU; default 100,000) and at
  most ``max_members`` entries per key, so memory is bounded whatever the traffic;
  expired entries are dropped whenever a key is touched, and a key whose window is empty
  and whose cooldown is over is forgotten (it says nothing a fresh window would not).
  Without that, traffic from ever-new addresses (a scan, a botnet) kept every dead
  window until the LRU cap: about 1.3 KiB per key, 135 MB at the default cap, growing
  for as long as it took to get there (the soak, issue 7, found it).
* :class:`RedisWindowStore` for several processes: one sorted set per key and one
  cooldown key, updated by a single Lua script (atomic per probe).

For plain counts the member is the event id, so a replayed event is not counted twice;
for distinct counts it is the distinct value (the user). Time is the decision time.
Redis being unreachable fails the decision closed (503), never silently skips detection.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from frostgate.engine import WindowProbe, WindowState
from frostgate.errors import ErrorCode, FrostGateError

__all__ = ["MemoryWindowStore", "RedisWindowStore", "WindowStore"]

DEFAULT_MAX_KEYS = 100_000
DEFAULT_MAX_MEMBERS = 10_000


class WindowStore(Protocol):
    async def observe(
        self, tenant_id: str, event_id: str, probes: Sequence[WindowProbe], now: datetime
    ) -> dict[str, WindowState]: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Window:
    entries: deque[tuple[float, str]] = field(default_factory=deque)
    members: Counter[str] = field(default_factory=Counter)
    cooling_until: float = 0.0
    # From this time on the window holds no live entry and is not cooling down.
    idle_from: float = 0.0


class MemoryWindowStore:
    def __init__(
        self, *, max_keys: int = DEFAULT_MAX_KEYS, max_members: int = DEFAULT_MAX_MEMBERS
    ) -> None:
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._max_keys = max_keys
        self._max_members = max_members

    def __len__(self) -> int:
        return len(self._windows)

    async def observe(
        self, tenant_id: str, event_id: str, probes: Sequence[WindowProbe], now: datetime
    ) -> dict[str, WindowState]:
        t = now.timestamp()
        self._forget_idle(t, budget=len(probes) + 2)
        states: dict[str, WindowState] = {}
        for probe in probes:
            key = f"{tenant_id}|{probe.key}"
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window()
                while len(self._windows) > self._max_keys:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(key)
            self._drop(window, t - probe.seconds)
            member = probe.member if probe.member is not None else event_id
            if probe.member is not None or member not in window.members:
                window.entries.append((t, member))
                window.members[member] += 1
            while len(window.entries) > self._max_members:
                self._pop(window)
            count = len(window.members)
            armed = count >= probe.threshold and t >= window.cooling_until
            if armed:
                window.cooling_until = t + probe.cooldown_seconds
            # An entry at t is dropped by an observation at t + seconds (``_drop``).
            window.idle_from = max(t + probe.seconds, window.cooling_until)
            states[probe.rule_id] = WindowState(count=count, armed=armed)
        return states

    def _forget_idle(self, t: float, *, budget: int) -> None:
        """Drop idle windows from the least recently used end, up to ``budget`` of them
        (more than one call adds, so the sweep keeps up without a pause). It stops at the
        first window still live: a key cooling down, or one with a longer window, holds
        back those touched after it until it goes idle; ``max_keys`` bounds that case."""
        for _ in range(budget):
            oldest = next(iter(self._windows.values()), None)
            if oldest is None or oldest.idle_from > t:
                return
            self._windows.popitem(last=False)

    def _drop(self, window: _Window, cutoff: float) -> None:
        while window.entries and window.entries[0][0] <= cutoff:
            self._pop(window)

    @staticmethod
    def _pop(window: _Window) -> None:
        _, member = window.entries.popleft()
        window.members[member] -= 1
        if window.members[member] <= 0:
            del window.members[member]

    async def close(self) -> None:
        self._windows.clear()


_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local threshold = tonumber(ARGV[4])
local cooldown = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
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
return {count, armed}
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
        self._client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._prefix = key_prefix
        self._timeout = timeout
        self._cap = max_members
        self._script = self._client.register_script(_LUA)

    async def observe(
        self, tenant_id: str, event_id: str, probes: Sequence[WindowProbe], now: datetime
    ) -> dict[str, WindowState]:
        now_ms = int(now.timestamp() * 1000)
        states: dict[str, WindowState] = {}
        try:
            async with asyncio.timeout(self._timeout * 4):
                for probe in probes:
                    base = f"{self._prefix}{tenant_id}|{probe.key}"
                    count, armed = await self._script(
                        keys=[base, base + "|cool"],
                        args=[
                            now_ms,
                            probe.seconds * 1000,
                            probe.member if probe.member is not None else f"e:{event_id}",
                            probe.threshold,
                            probe.cooldown_seconds * 1000,
                            self._cap,
                        ],
                    )
                    states[probe.rule_id] = WindowState(count=int(count), armed=bool(armed))
        except (RedisError, OSError) as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "window store down") from exc
        return states

    async def close(self) -> None:
        await self._client.aclose()
