"""Key authentication with a bounded-staleness cache.

The cache holds key *records* (the stored keyed hash and state), never a "this token is
valid" verdict: every request still recomputes one HMAC (about a microsecond). Records
are re-read from the database after ``cache_seconds`` (≤ 1 s), which bounds how long a
revocation takes to reach every process, without a database read per request. Database
reads run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security.keys import Peppers, hash_secret, parse_key
from frostgate.store import Database
from frostgate.store.keys import KeyRecord, get_key, is_active, touch_keys, upgrade_hash

__all__ = ["CanaryKeyUsed", "KeyAuthenticator", "Principal"]

_CACHE_CAP = 100_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one key, bound to exactly one tenant unless it is a platform key."""

    key_id: str
    tenant_id: str | None
    kind: str
    scopes: frozenset[str]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CanaryKeyUsed(FrostGateError):
    """A canary key was presented: answered like any invalid key, recorded as critical."""

    def __init__(self, key_id: str, tenant_id: str | None) -> None:
        super().__init__(ErrorCode.AUTH_REQUIRED, "canary key used")
        self.key_id = key_id
        self.tenant_id = tenant_id


class KeyAuthenticator:
    def __init__(
        self,
        db: Database,
        peppers: Peppers,
        *,
        cache_seconds: float,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self._peppers = peppers
        self._ttl = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._used: dict[str, datetime] = {}
        self._upgrades: dict[str, tuple[str, str, str]] = {}

    @property
    def peppers(self) -> Peppers:
        return self._peppers

    async def authenticate(self, token: str) -> Principal:
        """The principal for ``token``, or ``FrostGateError(AUTH_REQUIRED)``.

        Malformed, unknown, wrong-secret, revoked, expired and canary keys are all
        answered the same way, so a caller cannot tell which of these it holds.
        """
        parsed = parse_key(token)
        if parsed is None:
            raise FrostGateError(ErrorCode.AUTH_REQUIRED, "malformed key")
        record = await self._record(parsed.key_id)
        if record is None:
            raise FrostGateError(ErrorCode.AUTH_REQUIRED, "unknown key id")
        pepper = self._peppers.get(record.pepper_id)
        if pepper is None or not hmac.compare_digest(
            hash_secret(pepper, parsed.secret), record.secret_hash
        ):
            raise FrostGateError(ErrorCode.AUTH_REQUIRED, "secret mismatch")
        now = self._clock()
        if not is_active(record, now):
            raise FrostGateError(ErrorCode.AUTH_REQUIRED, "revoked or expired key")
        if record.kind == "canary":
            raise CanaryKeyUsed(record.key_id, record.tenant_id)
        if record.kind == "tenant" and record.tenant_status != "active":
            raise FrostGateError(ErrorCode.TENANT_SUSPENDED, "tenant suspended")
        self._used[record.key_id] = now
        if record.pepper_id != self._peppers.current_id:
            self._upgrades[record.key_id] = (
                record.pepper_id,
                self._peppers.current_id,
                hash_secret(self._peppers.current, parsed.secret),
            )
        return Principal(
            key_id=record.key_id,
            tenant_id=record.tenant_id,
            kind=record.kind,
            scopes=record.scopes,
        )

    async def still_active(self, key_id: str) -> bool:
        """Whether a key that opened a long-lived response (a stream) may still receive
        it: not revoked or expired, its tenant not suspended. Read through the same cache
        as authentication, so a revocation ends open streams within the same second it
        takes to refuse new requests."""
        record = await self._record(key_id)
        return (
            record is not None
            and is_active(record, self._clock())
            and (record.kind != "tenant" or record.tenant_status == "active")
        )

    def flush_usage(self) -> None:
        """Persist ``last_used_at`` and pending pepper upgrades (run in a worker thread,
        every few seconds): one write per key per interval, never one per request."""
        used, self._used = self._used, {}
        upgrades, self._upgrades = self._upgrades, {}
        if not used and not upgrades:
            return
        with self._db.write.begin() as conn:
            touch_keys(conn, used)
            for key_id, (old_pepper, new_pepper, new_hash) in upgrades.items():
                upgrade_hash(conn, key_id, old_pepper, new_pepper, new_hash)
        for key_id in upgrades:
            self.invalidate(key_id)

    def invalidate(self, key_id: str) -> None:
        """Forget a cached record at once (this process); others follow within the TTL."""
        self._cache.pop(key_id, None)

    async def _record(self, key_id: str) -> KeyRecord | None:
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        pending = self._inflight.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[key_id] = future
        try:
            record = await anyio.to_thread.run_sync(self._load, key_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the raise below reports it
            raise
        finally:
            self._inflight.pop(key_id, None)
        future.set_result(record)
        self._cache[key_id] = (time.monotonic(), record)
        self._cache.move_to_end(key_id)
        while len(self._cache) > _CACHE_CAP:
            self._cache.popitem(last=False)
        return record

    def _load(self, key_id: str) -> KeyRecord | None:
        try:
            with self._db.read.connect() as conn:
                return get_key(conn, key_id)
        except Exception as exc:
            # The key store is unreachable: fail closed with a stable code.
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "key lookup failed") from exc
