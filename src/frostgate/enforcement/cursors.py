"""Where each bouncer key is in its tenant's change sequence ("since my last pull").

Kept in memory and written to ``enforcement_cursors`` every few seconds (like key
usage), so a restart or another process continues from the stored position. A stale
position only ever repeats changes (bouncers apply them idempotently); it never skips
one, because a position is only advanced after a pull has been answered.
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
import sqlalchemy as sa

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store import Database
from frostgate.store import mitigations as repo

__all__ = ["CursorBook"]


class CursorBook:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: dict[str, int] = {}
        self._dirty: dict[str, dict[str, int]] = {}

    async def get(self, tenant_id: str, key_id: str) -> int | None:
        if key_id in self._known:
            return self._known[key_id]
        stored = await anyio.to_thread.run_sync(self._load, tenant_id, key_id)
        if stored is not None:
            self._known.setdefault(key_id, stored)
        return stored

    def advance(self, tenant_id: str, key_id: str, seq: int) -> None:
        self._known[key_id] = seq
        self._dirty.setdefault(tenant_id, {})[key_id] = seq

    def flush(self) -> None:
        """Persist moved cursors (maintenance thread)."""
        dirty, self._dirty = self._dirty, {}
        now = datetime.now(UTC)
        for tenant_id, cursors in dirty.items():
            with self._db.write.begin() as conn:
                repo.save_cursors(conn, tenant_id, cursors, now)

    def _load(self, tenant_id: str, key_id: str) -> int | None:
        try:
            with self._db.read.connect() as conn:
                return repo.get_cursor(conn, tenant_id, key_id)
        except sa.exc.SQLAlchemyError as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "cursor lookup") from exc
