"""The in-process view of active mitigations that enforcement points read.

Bouncers poll: a startup pull (every active mitigation), then delta pulls ("what is new
or gone since my last pull") every few seconds, and single-address lookups. Answering
those from the database would scale with the size of the block list; this index
answers them from memory and follows the database by reading only the rows whose change
number is above the highest it has applied (``store.mitigations.changed_page``). It
refreshes at most every ``max_age`` seconds, and at once after a change made by this
process, so a change made elsewhere is visible within ``max_age``.

Per tenant it keeps compact :class:`Entry` objects (the fields bouncers need and both
wire forms pre-encoded, the CrowdSec one split around its relative ``duration``): the
active ones by id, by exact value and as numeric ranges; a change log of (seq, id) for
delta pulls; and the recently ended ones (for "deleted"). Expiry is also checked at read
time, so a mitigation stops being served the instant it expires, before the expiry job
marks it.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import ipaddress
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import orjson
import sqlalchemy as sa

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store import Database
from frostgate.store import mitigations as repo
from frostgate.store.entries import format_timestamp
from frostgate.store.keys import aware

__all__ = ["Delta", "Entry", "MitigationIndex", "TenantView", "native_json"]

MAX_LOG = 200_000
# Ended mitigations are reported as deleted for this long after their original expiry
# (bouncers whose clocks lag, or that pull rarely, still hear of the end).
TOMBSTONE_GRACE_SECONDS = 3600.0
_PAGE = 20_000
_CROWDSEC_SCOPES = {"ip": "Ip", "range": "Range", "user": "Username", "host": "Host"}
_CROWDSEC_TYPES = {"rate_limit": "throttle"}


def native_json(row: repo.MitigationRow | Entry) -> bytes:
    """The FrostGate wire form of one mitigation (absolute times: encodable once).

    Copied to an exact-size object: orjson's output keeps a 4 KiB allocation whatever
    its length, which for 100,000 cached entries was 390 MiB instead of 27 MiB.
    """
    return _exact(_native(row))


def _exact(data: bytes) -> bytes:
    return bytes(memoryview(data))


def _native(row: repo.MitigationRow | Entry) -> bytes:
    return orjson.dumps(
        {
            "mitigation_id": row.mitigation_id,
            "action": row.action,
            "scope": row.scope,
            "value": row.value,
            "reason": row.reason,
            "origin": row.origin,
            "origin_event_id": row.origin_event_id,
            "status": row.status,
            "created_at": format_timestamp(row.created_at),
            "expires_at": format_timestamp(row.expires_at) if row.expires_at else None,
            "seq": row.seq,
        }
    )


@dataclass(frozen=True, slots=True)
class Entry:
    mitigation_id: str
    seq: int
    action: str
    scope: str
    value: str
    reason: str
    origin: str
    origin_event_id: str | None
    status: str
    created_at: datetime
    activated_at: datetime | None
    expires_at: datetime | None
    expires_ts: float  # +inf when it never expires
    crowdsec_head: bytes  # the CrowdSec object up to the duration's value

    @property
    def native(self) -> bytes:
        """The FrostGate wire form, encoded on demand (only the CrowdSec form, the one
        served in bulk, is kept encoded: memory per entry matters at 100,000)."""
        return _native(self)

    @classmethod
    def from_page(cls, values: tuple[Any, ...]) -> Entry:
        (mid, seq, action, scope, value, reason, origin, event_id, status, created, act, exp) = (
            values
        )
        # Repeated texts (actions, scopes, statuses, rule reasons) are shared, not copied.
        action, scope, status, origin = (sys.intern(t) for t in (action, scope, status, origin))
        reason = sys.intern(reason)
        created_at = aware(created)
        activated_at = None if act is None else aware(act)
        expires_at = None if exp is None else aware(exp)
        partial = cls(
            mid,
            seq,
            action,
            scope,
            value,
            reason,
            origin,
            event_id,
            status,
            created_at,
            activated_at,
            expires_at,
            float("inf") if expires_at is None else expires_at.timestamp(),
            b"",
        )
        head = (
            orjson.dumps(
                {
                    "id": int(mid[-15:], 16),
                    "uuid": mid,
                    "origin": "frostgate",
                    "type": _CROWDSEC_TYPES.get(action, "ban"),
                    "scope": _CROWDSEC_SCOPES[scope],
                    "value": value,
                    "scenario": f"frostgate/{action}: {reason}",
                    "simulated": False,
                    "until": None if expires_at is None else format_timestamp(expires_at),
                }
            )[:-1]
            + b',"duration":"'
        )
        return dataclasses.replace(partial, crowdsec_head=head)

    def crowdsec(self, now: float, *, deleted: bool = False) -> bytes:
        """The CrowdSec decision object, with the time left as a Go duration."""
        remaining = 0 if deleted or self.expires_ts == float("inf") else self.expires_ts - now
        total = max(0, int(remaining))
        hours, rest = divmod(total, 3600)
        minutes, secs = divmod(rest, 60)
        return self.crowdsec_head + f'{hours}h{minutes}m{secs}s"}}'.encode()


def _numeric_range(value: str) -> tuple[int, int, int]:
    network = ipaddress.ip_network(value)
    return (network.version, int(network.network_address), int(network.broadcast_address))


@dataclass(slots=True)
class Delta:
    new: list[Entry]
    deleted: list[Entry]
    seq: int


@dataclass(slots=True)
class TenantView:
    tenant_id: str
    seq: int = 0
    active: dict[str, Entry] = field(default_factory=dict)
    # value -> the id of the one active mitigation on it, or a set when several (rare:
    # a set per value would cost 216 bytes each at 100,000 entries)
    by_value: dict[str, str | set[str]] = field(default_factory=dict)
    ranges: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    ended: dict[str, Entry] = field(default_factory=dict)
    log_seqs: list[int] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)
    log_floor: int = 0
    refreshed: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def apply(self, entry: Entry) -> None:
        self._forget(entry.mitigation_id)
        if entry.status == "active":
            self.active[entry.mitigation_id] = entry
            if entry.scope == "range":
                self.ranges[entry.mitigation_id] = _numeric_range(entry.value)
            else:
                held = self.by_value.get(entry.value)
                if held is None:
                    self.by_value[entry.value] = entry.mitigation_id
                elif isinstance(held, set):
                    held.add(entry.mitigation_id)
                else:
                    self.by_value[entry.value] = {held, entry.mitigation_id}
        elif entry.activated_at is not None and entry.status in ("lifted", "expired"):
            self.ended[entry.mitigation_id] = entry
        self.log_seqs.append(entry.seq)
        self.log_ids.append(entry.mitigation_id)
        self.seq = max(self.seq, entry.seq)

    def _forget(self, mitigation_id: str) -> None:
        old = self.active.pop(mitigation_id, None)
        self.ended.pop(mitigation_id, None)
        if old is None:
            return
        if old.scope == "range":
            self.ranges.pop(mitigation_id, None)
        else:
            held = self.by_value.get(old.value)
            if held == mitigation_id:
                del self.by_value[old.value]
            elif isinstance(held, set):
                held.discard(mitigation_id)
                if len(held) == 1:
                    self.by_value[old.value] = next(iter(held))

    def compact(self) -> None:
        """Bound the change log: forget its older half. Ended mitigations are kept as
        tombstones until an hour past their original expiry (a bouncer may hold them
        until then), so a
        pull from before the cut still learns every deletion (see :meth:`since`)."""
        now = time.time()
        for mitigation_id, entry in list(self.ended.items()):
            if entry.expires_ts + TOMBSTONE_GRACE_SECONDS <= now:
                del self.ended[mitigation_id]
        if len(self.log_seqs) <= MAX_LOG:
            return
        cut = len(self.log_seqs) // 2
        self.log_floor = self.log_seqs[cut - 1]
        del self.log_seqs[:cut]
        del self.log_ids[:cut]

    def live(self, now: float) -> list[Entry]:
        return [e for e in self.active.values() if e.expires_ts > now]

    def since(self, cursor: int, now: float) -> Delta:
        """Changes after ``cursor``. When the log no longer reaches back that far: every
        live mitigation as new and every tombstone as deleted (a superset, never a gap)."""
        if cursor < self.log_floor:
            return Delta(new=self.live(now), deleted=list(self.ended.values()), seq=self.seq)
        start = bisect.bisect_right(self.log_seqs, cursor)
        new: list[Entry] = []
        deleted: list[Entry] = []
        seen: set[str] = set()
        for mitigation_id in self.log_ids[start:]:
            if mitigation_id in seen:
                continue
            seen.add(mitigation_id)
            entry = self.active.get(mitigation_id)
            if entry is not None and entry.expires_ts > now:
                new.append(entry)
                continue
            ended = self.ended.get(mitigation_id) or entry
            if ended is not None and ended.activated_at is not None:
                deleted.append(ended)
        return Delta(new=new, deleted=deleted, seq=self.seq)

    def lookup(self, value: str, now: float) -> list[Entry]:
        """Active mitigations covering an address (exact or by range), or a user/host.

        An address is read in any spelling (``2001:DB8::1``, ``::ffff:1.2.3.4``) and
        matched in the canonical form stored targets use."""
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
                value.split("%", 1)[0]
            )
        except ValueError:
            address = None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address is not None:
            value = str(address)
        held = self.by_value.get(value)
        ids = () if held is None else (held,) if isinstance(held, str) else tuple(held)
        found = [self.active[i] for i in ids]
        if self.ranges and address is not None:
            number = int(address)
            for mitigation_id, (version, low, high) in self.ranges.items():
                if version == address.version and low <= number <= high:
                    found.append(self.active[mitigation_id])
        return [e for e in found if e.expires_ts > now]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MitigationIndex:
    def __init__(
        self, db: Database, *, max_age: float = 0.25, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._db = db
        self._max_age = max_age
        self._clock = clock
        self._views: dict[str, TenantView] = {}
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()

    def mark_changed(self, tenant_id: str) -> None:
        """A change was committed by this process (any thread): refresh on next read."""
        with self._dirty_lock:
            self._dirty.add(tenant_id)

    def now(self) -> float:
        return self._clock().timestamp()

    async def view(self, tenant_id: str) -> TenantView:
        view = self._views.get(tenant_id)
        if view is None:
            view = self._views.setdefault(tenant_id, TenantView(tenant_id))
        with self._dirty_lock:
            dirty = tenant_id in self._dirty
            self._dirty.discard(tenant_id)
        if dirty or time.monotonic() - view.refreshed >= self._max_age:
            async with view.lock:
                if dirty or time.monotonic() - view.refreshed >= self._max_age:
                    entries = await anyio.to_thread.run_sync(self._changes, tenant_id, view.seq)
                    for entry in entries:
                        view.apply(entry)
                    view.compact()
                    view.refreshed = time.monotonic()
        return view

    def _changes(self, tenant_id: str, seq: int) -> list[Entry]:
        entries: list[Entry] = []
        try:
            with self._db.read.connect() as conn:
                while True:
                    page = repo.changed_page(conn, tenant_id, seq, _PAGE)
                    entries.extend(Entry.from_page(values) for values in page)
                    if len(page) < _PAGE:
                        return entries
                    seq = entries[-1].seq
        except sa.exc.SQLAlchemyError as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "mitigation refresh") from exc
