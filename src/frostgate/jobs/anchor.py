"""``merkle_anchor``: sign a checkpoint for every ledger stream that grew.

For each stream the job reads the head size, computes the RFC 9162 root from the stored
subtree hashes, and before signing checks the new tree against the previous signed
checkpoint, as its signed note says (never the row's unsigned columns): the consistency
proof must verify (a rewritten history fails here), the stored root of an unchanged
tree must still match, a head smaller than the last checkpoint is a truncation, and
every leaf added since the last checkpoint is re-derived from its row and compared with
the stored leaf hash. The previous checkpoint is the database's newest, unless the job
knows a newer one it signed (in this process, or in ``FG_ANCHOR_EXPORT_DIR`` after a
restart): then checkpoints were deleted with the history they covered, a truncation.
A failed check is a critical audit event, is kept in :attr:`Anchorer.problems` (which
``/health/ready`` reports), and no checkpoint is signed for that stream. Checkpoints
are C2SP signed notes with origin ``<FG_LEDGER_ORIGIN>/<stream>``; they are only ever
inserted.

Only one process anchors at a time: a PostgreSQL advisory lock, or a file lock next to
the SQLite database. An anchored outcome carries its signed note, which the service
then exports to witnesses (:mod:`frostgate.jobs.witness`) without holding up this job.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from frostgate.ledger import (
    ProofError,
    consistency_proof,
    entry_leaf_hash,
    root,
    verify_consistency,
)
from frostgate.ledger.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    format_checkpoint,
    open_checkpoint,
    sign_note,
)
from frostgate.security.audit import new_audit
from frostgate.store import Database, schema
from frostgate.store.audit import append_audit
from frostgate.store.catalog import all_streams, stream_source
from frostgate.store.checkpoints import insert_checkpoint, latest_checkpoint
from frostgate.store.files import read_regular_file
from frostgate.store.streams import StoredTree
from frostgate.store.tenancy import bind_tenant

__all__ = [
    "AnchorOutcome",
    "Anchorer",
    "ExportedCheckpointError",
    "newest_exported",
    "stream_origin",
]

log = logging.getLogger("frostgate.anchor")

_ADVISORY_KEY = 0x46474E43  # "FGNC"
_CHUNK = 2000
# Re-deriving leaves is Python that holds the GIL (about 30 us an entry). Inside the
# server, 10,000 of them in one stretch took a third of a second from the event loop
# and the writer and /v1/defend's p99 from 20 to 55 ms (docs/benchmarks.md); there the
# anchorer pauses after every this many entries, so it takes at most about a third of
# the GIL while it runs. Anchoring is not urgent; answering is.
_PACE_EVERY = 64


def stream_origin(prefix: str, stream: str) -> str:
    return f"{prefix}/{stream}"


@dataclass(frozen=True, slots=True)
class AnchorOutcome:
    stream: str
    size: int
    status: str  # anchored | unchanged | empty | inconsistent | truncated | tampered
    detail: str = ""
    note: str = ""  # the signed checkpoint, when status is "anchored" (for witnesses)


class _Refused(Exception):
    """The stream cannot be anchored: ``status`` is the outcome, the message why."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


# An exported checkpoint's file name: its size, zero-padded (``Anchorer._export``).
_EXPORTED = re.compile(r"[0-9]{20}\.checkpoint")
# A signed note is a few hundred bytes; anything much larger is not one.
_MAX_EXPORTED_BYTES = 64 * 1024


class ExportedCheckpointError(Exception):
    """The newest exported checkpoint of a stream cannot be read or does not verify."""


def newest_exported(
    export_dir: Path, stream: str, verifier: Verifier, origin: str
) -> Checkpoint | None:
    """The newest checkpoint exported for ``stream`` under ``export_dir`` (the layout
    ``FG_ANCHOR_EXPORT_DIR`` gets), verified; None when there is none. Checkpoints kept
    outside the database are what a database that lost its tail together with the
    checkpoints covering it is held to."""
    folder = export_dir / stream
    names = sorted(p.name for p in folder.glob("*.checkpoint") if _EXPORTED.fullmatch(p.name))
    if not names:
        return None
    newest = folder / names[-1]
    try:
        checkpoint = open_checkpoint(
            read_regular_file(newest, _MAX_EXPORTED_BYTES), verifier, origin=origin
        )
    except (OSError, NoteError) as exc:
        raise ExportedCheckpointError(f"exported checkpoint {newest}: {exc}") from None
    if f"{checkpoint.size:020d}.checkpoint" != newest.name:
        raise ExportedCheckpointError(f"exported checkpoint {newest} holds size {checkpoint.size}")
    return checkpoint


def _rows(
    conn: sa.Connection, stream: str, tenant_id: str, start: int, end: int, pause: float
) -> Iterator[tuple[int, bytes, bytes]]:
    """(index, re-derived leaf hash, stored leaf node) for entries start..end-1, sleeping
    ``pause`` seconds (GIL released) after every ``_PACE_EVERY`` entries when positive."""
    table, to_entry = stream_source(stream)
    nodes = schema.ledger_nodes
    position = start
    while position < end:
        upper = min(end, position + _CHUNK)
        rows = conn.execute(
            sa.select(table)
            .where(table.c.tenant_id == tenant_id, table.c.seq >= position, table.c.seq < upper)
            .order_by(table.c.seq)
        ).all()
        stored: dict[int, bytes] = dict(
            conn.execute(
                sa.select(nodes.c.idx, nodes.c.hash).where(
                    nodes.c.stream == stream,
                    nodes.c.level == 0,
                    nodes.c.idx >= position,
                    nodes.c.idx < upper,
                )
            ).all()
        )
        expected = position
        for row in rows:
            mapping = dict(row._mapping)
            if mapping["seq"] != expected:
                yield expected, b"", b"missing row"
                return
            yield expected, entry_leaf_hash(to_entry(mapping)), bytes(stored.get(expected, b""))
            if pause > 0 and expected % _PACE_EVERY == 0:
                time.sleep(pause)
            expected += 1
        if expected != upper:
            yield expected, b"", b"missing row"
            return
        position = upper


class Anchorer:
    def __init__(
        self,
        db: Database,
        signer: Signer,
        *,
        origin_prefix: str,
        lock_path: Path | None,
        export_dir: Path | None = None,
        pause_seconds: float = 0.0,
    ) -> None:
        """``pause_seconds``: see ``_PACE_EVERY`` (the server passes a few ms; the
        one-shot ``frostgate anchor`` runs flat out)."""
        self._db = db
        self._pause = pause_seconds
        self._signer = signer
        self._prefix = origin_prefix
        self._lock_path = lock_path
        self._export_dir = export_dir
        self._verifier = signer.verifier()
        # stream -> (size, root) of the newest checkpoint this job signed or exported.
        self._signed: dict[str, tuple[int, bytes]] = {}
        self.problems: dict[str, str] = {}
        self.last_run: datetime | None = None

    def run_once(self) -> list[AnchorOutcome]:
        """Anchor every stream, if this process holds the anchoring lock."""
        with self._leader() as leader:
            if not leader:
                return []
            outcomes = [self._anchor(tenant, stream) for tenant, stream in self._streams()]
            self.last_run = datetime.now(UTC)
            return outcomes

    @contextlib.contextmanager
    def _leader(self) -> Iterator[bool]:
        if self._db.dialect == "postgresql":
            with self._db.write.connect() as conn:
                got = bool(
                    conn.execute(
                        sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_KEY}
                    ).scalar()
                )
                conn.commit()
                try:
                    yield got
                finally:
                    if got:
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                        conn.commit()
            return
        if self._lock_path is None:
            yield True
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _streams(self) -> list[tuple[str, str]]:
        with self._db.read.connect() as conn:
            return all_streams(conn)

    def _anchor(self, tenant_id: str, stream: str) -> AnchorOutcome:
        with self._db.read.connect() as conn:
            bind_tenant(conn, tenant_id)
            heads = schema.ledger_heads
            size = conn.execute(sa.select(heads.c.size).where(heads.c.stream == stream)).scalar()
            try:
                last = self._last_signed(conn, tenant_id, stream)
            except _Refused as refused:
                return self._problem(
                    tenant_id, stream, int(size or 0), refused.status, str(refused)
                )
            if size is None:
                if last is not None:
                    return self._problem(
                        tenant_id, stream, 0, "truncated", "the stream's head is gone"
                    )
                return AnchorOutcome(stream, 0, "empty")
            size = int(size)
            tree = StoredTree(conn, stream)
            try:
                new_root = root(size, tree)
                remembered = self._signed.get(stream)
                # The database's newest may be as large or larger and still not descend
                # from what this job signed (a job without memory signed over a rewrite).
                # (_last_signed refused a remembered one larger than the database's.)
                if remembered is not None and root(remembered[0], tree) != remembered[1]:
                    return self._problem(
                        tenant_id,
                        stream,
                        size,
                        "inconsistent",
                        f"the tree no longer holds checkpoint {remembered[0]} signed by this log",
                    )
                if last is not None:
                    last_size, old_root = last
                    if size < last_size:
                        return self._problem(
                            tenant_id,
                            stream,
                            size,
                            "truncated",
                            f"head {size} < checkpoint {last_size}",
                        )
                    if size == last_size:
                        if new_root != old_root:
                            return self._problem(
                                tenant_id,
                                stream,
                                size,
                                "inconsistent",
                                "stored tree no longer matches its checkpoint",
                            )
                        self.problems.pop(stream, None)
                        return AnchorOutcome(stream, size, "unchanged")
                    proof = consistency_proof(last_size, size, tree)
                    verify_consistency(last_size, size, proof, old_root, new_root)
                start = 0 if last is None else last[0]
                rows = _rows(conn, stream, tenant_id, start, size, self._pause)
                for index, derived, stored in rows:
                    if derived != stored:
                        return self._problem(
                            tenant_id,
                            stream,
                            size,
                            "tampered",
                            f"entry {index} does not match its stored leaf",
                        )
            except (ProofError, LookupError) as exc:
                return self._problem(tenant_id, stream, size, "inconsistent", str(exc))
        note = sign_note(
            format_checkpoint(stream_origin(self._prefix, stream), size, new_root), self._signer
        )
        with self._db.write.begin() as conn:
            insert_checkpoint(conn, tenant_id, stream, size, new_root, note, datetime.now(UTC))
        self._signed[stream] = (size, new_root)
        self.problems.pop(stream, None)
        try:
            self._export(stream, size, note)
        except OSError as exc:
            # Signed and stored all the same; the other streams still anchor this round.
            log.error("ledger %s: checkpoint %d not exported: %s", stream, size, exc)
            return AnchorOutcome(stream, size, "anchored", f"export failed: {exc}", note=note)
        return AnchorOutcome(stream, size, "anchored", note=note)

    def _last_signed(
        self, conn: sa.Connection, tenant_id: str, stream: str
    ) -> tuple[int, bytes] | None:
        """``(size, root)`` of the newest checkpoint this log signed for ``stream``, as
        its signed note says (the row's own columns are not signed: trusting them let a
        rewritten history pass as consistent). A checkpoint this job remembers signing,
        in this process or in the export directory, that is newer than the database's
        newest means the history was cut and the evidence deleted with it."""
        origin = stream_origin(self._prefix, stream)
        stored = latest_checkpoint(conn, tenant_id, stream)
        in_database: tuple[int, bytes] | None = None
        if stored is not None:
            try:
                opened = open_checkpoint(stored.note, self._verifier, origin=origin)
            except NoteError as exc:
                raise _Refused("tampered", f"checkpoint {stored.size}: {exc}") from None
            if opened.size != stored.size or opened.root.hex() != stored.root_hash:
                raise _Refused(
                    "tampered", f"checkpoint {stored.size}: the row differs from its signed note"
                )
            in_database = (opened.size, opened.root)
        remembered = self._remembered(stream, origin)
        if remembered is not None and (in_database is None or in_database[0] < remembered[0]):
            raise _Refused(
                "truncated",
                f"checkpoint {remembered[0]}, signed by this log, is gone from the database",
            )
        return in_database

    def _remembered(self, stream: str, origin: str) -> tuple[int, bytes] | None:
        """The newest checkpoint signed for ``stream`` that this job knows of outside the
        database: signed by this process, or (first asked) the newest exported file."""
        if stream in self._signed or self._export_dir is None:
            return self._signed.get(stream)
        try:
            opened = newest_exported(self._export_dir, stream, self._verifier, origin)
        except ExportedCheckpointError as exc:
            raise _Refused("inconsistent", str(exc)) from None
        if opened is None:
            return None
        self._signed[stream] = (opened.size, opened.root)
        return self._signed[stream]

    def _problem(
        self, tenant_id: str, stream: str, size: int, status: str, detail: str
    ) -> AnchorOutcome:
        self.problems[stream] = f"{status}: {detail}"
        log.critical("ledger %s %s: %s", stream, status, detail)
        with self._db.write.begin() as conn:
            append_audit(
                conn,
                [
                    new_audit(
                        "ledger_" + status,
                        "critical",
                        tenant_id,
                        now=datetime.now(UTC),
                        detail={"stream": stream, "size": size, "reason": detail},
                    )
                ],
            )
        return AnchorOutcome(stream, size, status, detail)

    def _export(self, stream: str, size: int, note: str) -> None:
        """Write the checkpoint to ``<export dir>/<stream>/<size>.checkpoint``, whole or
        not at all (a temporary file, fsynced, then renamed): the newest export is what a
        restarted job holds the database to, and a torn one would stop the stream."""
        if self._export_dir is None:
            return
        target = self._export_dir / stream
        target.mkdir(parents=True, exist_ok=True)
        final = target / f"{size:020d}.checkpoint"
        partial = target / f".{final.name}.partial"
        with partial.open("wb") as handle:
            handle.write(note.encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
