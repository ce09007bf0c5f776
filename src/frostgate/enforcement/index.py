"""The in-process view of active mitigations that enforcement points read.

Bouncers poll: a startup pull (every active mitigation), then delta pulls ("what is new
or gone since my last pull") every few seconds, and single-address lookups. Answering
those from the database would scale with the size of the block list; this index
answers them from memory and follows the database by reading only the rows whose change
number is above the highest it has applied (``store.mitigations.changed_since``). It
refreshes at most every ``max_age`` seconds, and at once after a change made by this
process, so a change made elsewhere is visible within ``max_age``.

Per tenant it keeps: the active rows by id, by exact value and as numeric ranges; a
change log of (seq, id) for delta pulls; the recently ended rows (for "deleted"); and
each active row's JSON encoded once. Expiry is also checked at read time, so a
mitigation stops being served the instant it expires even before the expiry job marks it.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio.to_thread
import orjson
import sqlalchemy as sa

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store import Database
from frostgate.store import mitigations as repo
from frostgate.store.entries import format_timestamp

__all__ = ["Delta", "MitigationIndex", "TenantView", "native_json"]

MAX_LOG = 200_000


def native_json(row: repo.MitigationRow) -> bytes:
    """The FrostGate wire form of one mitigation (absolute times: encodable once)."""
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


def _numeric_range(value: str) -> tuple[int, int, int]:
    network = ipaddress.ip_network(value)
    return (
        network.version,
        int(network.network_address),
        int(network.broadcast_address),
    )


@dataclass(slots=True)
class Delta:
    new: list[repo.MitigationRow]
    deleted: list[repo.MitigationRow]
    seq: int


@dataclass(slots=True)
class TenantView:
    tenant_id: str
    seq: int = 0
    active: dict[str, repo.MitigationRow] = field(default_factory=dict)
    encoded: dict[str, bytes] = field(default_factory=dict)
    by_value: dict[str, set[str]] = field(default_factory=dict)
    ranges: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    ended: dict[str, repo.MitigationRow] = field(default_factory=dict)
    log_seqs: list[int] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)
    log_floor: int = 0
    refreshed: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def apply(self, row: repo.MitigationRow) -> None:
        self._forget(row.mitigation_id)
        if row.status == "active":
            self.active[row.mitigation_id] = row
            self.encoded[row.mitigation_id] = native_json(row)
            if row.scope == "range":
                self.ranges[row.mitigation_id] = _numeric_range(row.value)
            else:
                self.by_value.setdefault(row.value, set()).add(row.mitigation_id)
        elif row.activated_at is not None and row.status in ("lifted", "expired"):
            self.ended[row.mitigation_id] = row
        self.log_seqs.append(row.seq)
        self.log_ids.append(row.mitigation_id)
        self.seq = max(self.seq, row.seq)

    def _forget(self, mitigation_id: str) -> None:
        old = self.active.pop(mitigation_id, None)
        self.encoded.pop(mitigation_id, None)
        self.ended.pop(mitigation_id, None)
        if old is None:
            return
        if old.scope == "range":
            self.ranges.pop(mitigation_id, None)
        else:
            ids = self.by_value.get(old.value)
            if ids is not None:
                ids.discard(mitigation_id)
                if not ids:
                    del self.by_value[old.value]

    def compact(self) -> None:
        """Bound the change log: forget the older half (pulls from before it restart)."""
        if len(self.log_seqs) <= MAX_LOG:
            return
        cut = len(self.log_seqs) // 2
        self.log_floor = self.log_seqs[cut - 1]
        del self.log_seqs[:cut]
        del self.log_ids[:cut]
        for mitigation_id, row in list(self.ended.items()):
            if row.seq <= self.log_floor:
                del self.ended[mitigation_id]

    def live(self, now: datetime) -> list[repo.MitigationRow]:
        return [r for r in self.active.values() if r.expires_at is None or r.expires_at > now]

    def since(self, cursor: int, now: datetime) -> Delta | None:
        """Changes after ``cursor``; None when the log no longer reaches back that far."""
        if cursor < self.log_floor:
            return None
        start = bisect.bisect_right(self.log_seqs, cursor)
        new: list[repo.MitigationRow] = []
        deleted: list[repo.MitigationRow] = []
        seen: set[str] = set()
        for mitigation_id in self.log_ids[start:]:
            if mitigation_id in seen:
                continue
            seen.add(mitigation_id)
            row = self.active.get(mitigation_id)
            if row is not None and (row.expires_at is None or row.expires_at > now):
                new.append(row)
                continue
            ended = self.ended.get(mitigation_id) or row
            if ended is not None and ended.activated_at is not None:
                deleted.append(ended)
        return Delta(new=new, deleted=deleted, seq=self.seq)

    def lookup(self, value: str, now: datetime) -> list[repo.MitigationRow]:
        """Active mitigations covering an address (exact or by range), or a user/host."""
        found = [self.active[i] for i in self.by_value.get(value, ())]
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            address = None
        if address is not None and self.ranges:
            number = int(address)
            for mitigation_id, (version, low, high) in self.ranges.items():
                if version == address.version and low <= number <= high:
                    found.append(self.active[mitigation_id])
        return [r for r in found if r.expires_at is None or r.expires_at > now]


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

    def now(self) -> datetime:
        return self._clock()

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
                    rows = await anyio.to_thread.run_sync(self._changes, tenant_id, view.seq)
                    for row in rows:
                        view.apply(row)
                    view.compact()
                    view.refreshed = time.monotonic()
        return view

    def _changes(self, tenant_id: str, seq: int) -> list[repo.MitigationRow]:
        try:
            with self._db.read.connect() as conn:
                return repo.changed_since(conn, tenant_id, seq)
        except sa.exc.SQLAlchemyError as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "mitigation refresh") from exc
