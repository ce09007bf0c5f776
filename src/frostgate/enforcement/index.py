"""The in-process view of active mitigations that enforcement points read.

Bouncers poll: a startup pull (every active mitigation), then delta pulls ("what is new
or gone since my last pull") every few seconds, and single-address lookups. Answering
those from the database would scale with the size of the block list; this index
answers them from memory and follows the database by reading only the rows whose change
number is above the highest it has applied (``store.mitigations.changed_page``). It
refreshes at most every ``max_age`` seconds, and at once after a change made by this
process, so a change made elsewhere is visible within ``max_age``.

Per tenant it keeps compact :class:`Entry` objects (the fields bouncers need, nothing
forensic, what a rule's entries share in one :class:`Kind`, nothing pre-encoded: at
100,000 entries the encoded forms doubled the index's memory): the
active ones by id, by exact value and as numeric ranges; a change log of (seq, id) for
delta pulls; and the recently ended ones (for "deleted"). Expiry is also checked at read
time, so a mitigation stops being served the instant it expires, before the expiry job
marks it.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import msgspec
import sqlalchemy as sa

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store import Database
from frostgate.store import mitigations as repo
from frostgate.store.entries import epoch_micros, format_epoch_second_head, format_timestamp

__all__ = [
    "CHUNK",
    "CrowdSecDecision",
    "CrowdSecForm",
    "Delta",
    "Entry",
    "Kind",
    "MitigationIndex",
    "NativeMitigation",
    "TenantView",
    "crowdsec_parts",
    "native_fields",
    "native_parts",
]

MAX_LOG = 200_000
# Ended mitigations are reported as deleted for this long after their original expiry
# (bouncers whose clocks lag, or that pull rarely, still hear of the end).
TOMBSTONE_GRACE_US = 3_600_000_000
# The expiry of a mitigation that never expires: after every instant a datetime holds.
NEVER = 2**62
_PAGE = 1_000
# Entries encoded per piece of a bulk answer; answers with more are streamed.
CHUNK = 1_000
_CROWDSEC_SCOPES = {"ip": "Ip", "range": "Range", "user": "Username", "host": "Host"}
_CROWDSEC_TYPES = {"rate_limit": "throttle"}


class NativeMitigation(msgspec.Struct, gc=False):
    """The FrostGate enforcement form of a mitigation: what bouncers are served (the
    record adds the forensic fields). A struct, not a dict: a startup pull builds
    100,000 of them (see :class:`CrowdSecDecision`)."""

    mitigation_id: str
    action: str
    scope: str
    value: str
    reason: str
    origin: str
    status: str
    created_at: str
    expires_at: str | None
    seq: int


class CrowdSecDecision(msgspec.Struct, gc=False):
    """CrowdSec LAPI's decision object, as its bouncers read it (``uuid``, ``until`` and
    ``simulated`` are the fields later LAPI versions added; older bouncers ignore them).

    A struct rather than a dict: a startup pull builds 100,000 of them, and building and
    encoding structs took 116 ms where dicts took 213 (``docs/benchmarks.md``)."""

    id: int
    uuid: str
    origin: str
    type: str
    scope: str
    value: str
    scenario: str
    simulated: bool
    until: str | None
    duration: str


_ENCODER = msgspec.json.Encoder()


def native_fields(row: repo.MitigationRow) -> dict[str, Any]:
    """The enforcement form of one stored mitigation, as fields (the record view adds
    the forensic ones to them)."""
    return msgspec.structs.asdict(
        NativeMitigation(
            row.mitigation_id,
            row.action,
            row.scope,
            row.value,
            row.reason,
            row.origin,
            row.status,
            format_timestamp(row.created_at),
            format_timestamp(row.expires_at) if row.expires_at else None,
            row.seq,
        )
    )


class _Instants:
    """RFC 3339 texts of instants, for one chunk of an answer: the text of each second
    is made once (a burst's mitigations are created, and expire, within the same seconds,
    and a pull lists them in change order, so a burst shares a chunk). Per chunk, not
    per pull: mitigations made over days have a second each, and a 100,000-entry pull's
    texts would be 30 MiB held until the last byte is sent."""

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def text(self, micros: int) -> str:
        second, fraction = divmod(micros, 1_000_000)
        head = self._seconds.get(second)
        if head is None:
            head = self._seconds[second] = format_epoch_second_head(second)
        return f"{head}{fraction:06d}Z"


# Every distinct kind seen lately, so that entries raised the same way share one. Read
# and written from the refresh threads: a race costs at most a duplicate kind.
_KINDS: dict[tuple[str, str, str, str, str, bool, bool], Kind] = {}
_MAX_KINDS = 4_096


@dataclass(frozen=True, slots=True)
class Kind:
    """What an entry shares with every entry raised the same way: its action, scope,
    origin, status and reason (up to the value). One object for a rule's thousands of
    mitigations: as seven fields of every entry they cost 56 bytes an entry, 5.3 MiB at
    100,000. It also holds the CrowdSec texts that follow from it, built once instead of
    per entry and pull."""

    action: str
    scope: str
    origin: str
    status: str
    # The reason, or when it ends with the value (as rule reasons do: "... from
    # 203.0.113.9") the text before it.
    reason_head: str
    reason_ends_with_value: bool
    activated: bool
    crowdsec_type: str
    crowdsec_scope: str
    crowdsec_scenario_head: str

    @classmethod
    def of(
        cls, action: str, scope: str, origin: str, status: str, head: str, ends: bool, act: bool
    ) -> Kind:
        """The shared kind for these fields (a new one after the cache is reset)."""
        key = (action, scope, origin, status, head, ends, act)
        kind = _KINDS.get(key)
        if kind is None:
            if len(_KINDS) >= _MAX_KINDS:
                # Sharing saves memory, it is not needed for correctness: entries keep
                # their kinds, and the cache is bounded whatever reasons analysts type.
                _KINDS.clear()
            kind = _KINDS.setdefault(
                key,
                cls(
                    *key,
                    crowdsec_type=_CROWDSEC_TYPES.get(action, "ban"),
                    crowdsec_scope=_CROWDSEC_SCOPES[scope],
                    crowdsec_scenario_head=f"frostgate/{action}: {head}",
                ),
            )
        return kind


@dataclass(frozen=True, slots=True)
class Entry:
    """One mitigation as the index keeps it: what bouncers are served and nothing more.

    Instants are microseconds since the epoch (ints, 32 bytes each), the fields shared
    by a rule's entries are one :class:`Kind`, nothing forensic is kept (the origin
    event id, 80 bytes each, is on the record) and nothing is kept encoded: at 100,000
    entries every field costs megabytes, and the wire forms are built per pull, in
    chunks (see :func:`crowdsec_parts`)."""

    mitigation_id: str
    seq: int
    value: str
    kind: Kind
    created_us: int
    expires_us: int  # NEVER when it does not expire

    @property
    def action(self) -> str:
        return self.kind.action

    @property
    def scope(self) -> str:
        return self.kind.scope

    @property
    def origin(self) -> str:
        return self.kind.origin

    @property
    def status(self) -> str:
        return self.kind.status

    @property
    def activated(self) -> bool:
        return self.kind.activated

    @property
    def reason(self) -> str:
        kind = self.kind
        return kind.reason_head + self.value if kind.reason_ends_with_value else kind.reason_head

    @property
    def native(self) -> bytes:
        """The FrostGate wire form."""
        return _ENCODER.encode(self.native_form(_Instants()))

    def native_form(self, instants: _Instants) -> NativeMitigation:
        kind = self.kind
        return NativeMitigation(
            self.mitigation_id,
            kind.action,
            kind.scope,
            self.value,
            self.reason,
            kind.origin,
            kind.status,
            instants.text(self.created_us),
            None if self.expires_us == NEVER else instants.text(self.expires_us),
            self.seq,
        )

    @classmethod
    def from_page(cls, values: tuple[Any, ...]) -> Entry:
        (mid, seq, action, scope, value, reason, origin, status, created, act, exp) = values
        # A rendered rule reason is unique per target, its head is not: the head goes in
        # the shared kind.
        ends_with_value = len(reason) > len(value) and reason.endswith(value)
        head = reason[: -len(value)] if ends_with_value else reason
        kind = Kind.of(action, scope, origin, status, head, ends_with_value, act is not None)
        return cls(
            mid,
            seq,
            value,
            kind,
            epoch_micros(created),
            NEVER if exp is None else epoch_micros(exp),
        )


class CrowdSecForm:
    """Turns one chunk of a pull's entries into CrowdSec decisions at one instant.

    What its entries share is made once (see :class:`_Instants`, and why per chunk):
    the text of each expiry second and each time left (LAPI's Go duration, whole
    seconds here)."""

    def __init__(self, now_us: int, *, deleted: bool = False) -> None:
        self._now_us = now_us
        self._deleted = deleted
        self._instants = _Instants()
        self._durations: dict[int, str] = {}

    def decision(self, entry: Entry) -> CrowdSecDecision:
        kind = entry.kind
        expires = entry.expires_us
        if expires == NEVER:
            until = None
            left = 0
        else:
            until = self._instants.text(expires)
            left = 0 if self._deleted else max(0, expires - self._now_us) // 1_000_000
        duration = self._durations.get(left)
        if duration is None:
            hours, rest = divmod(left, 3600)
            minutes, seconds = divmod(rest, 60)
            duration = self._durations[left] = f"{hours}h{minutes}m{seconds}s"
        scenario = kind.crowdsec_scenario_head
        return CrowdSecDecision(
            int(entry.mitigation_id[-15:], 16),
            entry.mitigation_id,
            "frostgate",
            kind.crowdsec_type,
            kind.crowdsec_scope,
            entry.value,
            scenario + entry.value if kind.reason_ends_with_value else scenario,
            False,
            until,
            duration,
        )

    def encode(self, chunk: list[Entry]) -> bytes:
        """The chunk's decisions as JSON array members (no brackets)."""
        decision = self.decision
        return _ENCODER.encode([decision(e) for e in chunk])[1:-1]


def crowdsec_parts(entries: list[Entry], now_us: int, *, deleted: bool = False) -> Iterator[bytes]:
    """A JSON array of CrowdSec decisions, piece by piece, or ``null`` for none (LAPI's
    answer for an empty list, which bouncers expect)."""

    def encode(chunk: list[Entry]) -> bytes:
        return CrowdSecForm(now_us, deleted=deleted).encode(chunk)

    return _array_parts(entries, encode, empty=b"null")


def native_parts(entries: list[Entry]) -> Iterator[bytes]:
    """A JSON array of mitigations in the FrostGate wire form, piece by piece."""

    def encode(chunk: list[Entry]) -> bytes:
        instants = _Instants()
        return _ENCODER.encode([e.native_form(instants) for e in chunk])[1:-1]

    return _array_parts(entries, encode, empty=b"[]")


def _array_parts(
    entries: list[Entry], encode: Callable[[list[Entry]], bytes], *, empty: bytes
) -> Iterator[bytes]:
    """Encoded ``CHUNK`` entries at a time: a 100,000-entry startup pull never holds
    100,000 encoded objects, or the whole answer, at once (it is streamed; a 26 MB body
    built in one piece stayed in the allocator's heap after it was sent)."""
    if not entries:
        yield empty
        return
    yield b"["
    for start in range(0, len(entries), CHUNK):
        if start:
            yield b","
        yield encode(entries[start : start + CHUNK])
    yield b"]"


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
        elif entry.activated and entry.status in ("lifted", "expired"):
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
        now_us = epoch_micros(datetime.now(UTC))
        for mitigation_id, entry in list(self.ended.items()):
            if entry.expires_us + TOMBSTONE_GRACE_US <= now_us:
                del self.ended[mitigation_id]
        if len(self.log_seqs) <= MAX_LOG:
            return
        cut = len(self.log_seqs) // 2
        self.log_floor = self.log_seqs[cut - 1]
        del self.log_seqs[:cut]
        del self.log_ids[:cut]

    def live(self, now_us: int) -> list[Entry]:
        return [e for e in self.active.values() if e.expires_us > now_us]

    def since(self, cursor: int, now_us: int) -> Delta:
        """Changes after ``cursor``. When the log no longer reaches back that far: every
        live mitigation as new and every tombstone as deleted (a superset, never a gap)."""
        if cursor < self.log_floor:
            return Delta(new=self.live(now_us), deleted=list(self.ended.values()), seq=self.seq)
        start = bisect.bisect_right(self.log_seqs, cursor)
        new: list[Entry] = []
        deleted: list[Entry] = []
        seen: set[str] = set()
        for mitigation_id in self.log_ids[start:]:
            if mitigation_id in seen:
                continue
            seen.add(mitigation_id)
            entry = self.active.get(mitigation_id)
            if entry is not None and entry.expires_us > now_us:
                new.append(entry)
                continue
            ended = self.ended.get(mitigation_id) or entry
            if ended is not None and ended.activated:
                deleted.append(ended)
        return Delta(new=new, deleted=deleted, seq=self.seq)

    def lookup(self, value: str, now_us: int) -> list[Entry]:
        """Active mitigations covering an address or a range (exact, or by a range that
        contains it), or a user/host.

        An address is read in any spelling (``2001:DB8::1``, ``::ffff:1.2.3.4``) and
        matched in the canonical form stored targets use. A range (``10.1.0.0/16``, as
        CrowdSec bouncers ask with ``?range=``) is covered by a block of that range or of
        one containing it; a single-address range is that address."""
        if "/" in value:
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                return []  # neither an address nor a range: nothing blocks it
            if network.num_addresses > 1:
                return self._covering_range(network, now_us)
            value = str(network.network_address)
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
        return [e for e in found if e.expires_us > now_us]

    def _covering_range(
        self, network: ipaddress.IPv4Network | ipaddress.IPv6Network, now_us: int
    ) -> list[Entry]:
        first, last = int(network.network_address), int(network.broadcast_address)
        found = [
            self.active[mitigation_id]
            for mitigation_id, (version, low, high) in self.ranges.items()
            if version == network.version and low <= first and last <= high
        ]
        return [e for e in found if e.expires_us > now_us]


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

    def now(self) -> int:
        """Now, in the index's unit: microseconds since the epoch."""
        return epoch_micros(self._clock())

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
