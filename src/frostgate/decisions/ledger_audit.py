"""Verifying every ledger stream in the configured database (``frostgate verify``).

For each stream (``decisions/<t>``, ``audit/<t>``, ``audit/_platform``): every row's
entry is rebuilt from its columns and re-hashed, the chain is re-linked from genesis and
compared with the head, every stored Merkle node is compared with a tree rebuilt from
the re-derived leaves (and none may be missing), and every stored checkpoint's
signature, origin and root are checked, with consistency between consecutive
checkpoints. Streams are those of every tenant record and of every tenant id found in
the ledger tables: a tenant whose record is gone fails. Given checkpoints kept outside
the database (``frostgate verify --checkpoints``), each stream must hold the newest of
them: the database alone cannot show that it lost a tail together with the
checkpoints that covered it. The first failure of a stream
is reported with its index; the other streams are still checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from frostgate.config import Settings
from frostgate.decisions.verify import verify_chain
from frostgate.jobs.anchor import ExportedCheckpointError, newest_exported, stream_origin
from frostgate.ledger import ProofError, consistency_proof, verify_consistency
from frostgate.ledger.note import Checkpoint, NoteError, open_checkpoint
from frostgate.ledger.rehash import LevelTree
from frostgate.security.ledger_key import load_ledger_signer
from frostgate.store import Database, open_database, schema
from frostgate.store.audit import PLATFORM, audit_stream
from frostgate.store.catalog import all_streams, ledger_tenants, stream_source
from frostgate.store.checkpoints import checkpoints_since
from frostgate.store.decisions import chain_rows, ledger_head
from frostgate.store.entries import decision_stream
from frostgate.store.tenancy import bind_tenant

__all__ = ["DatabaseReport", "StreamReport", "verify_database"]


@dataclass(frozen=True, slots=True)
class StreamReport:
    stream: str
    ok: bool
    checked: int
    first_bad_index: int | None
    reason: str | None
    checkpoints: int = 0


@dataclass(slots=True)
class DatabaseReport:
    streams: list[StreamReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.streams)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "streams": [
                {
                    "stream": s.stream,
                    "ok": s.ok,
                    "checked": s.checked,
                    "checkpoints": s.checkpoints,
                    "first_bad_index": s.first_bad_index,
                    "reason": s.reason,
                }
                for s in self.streams
            ],
        }


def _node(m: Any) -> tuple[int, int, bytes]:
    return int(m["level"]), int(m["idx"]), bytes(m["hash"])


def _complete_subtrees(size: int) -> int:
    """How many complete aligned subtrees a ``size``-leaf tree has: the log stores every
    one of them (ledger/merkle.py), and proofs and packets read them."""
    return sum(size >> level for level in range(size.bit_length()))


def _first_missing_node(size: int, seen: set[tuple[int, int]]) -> tuple[int, int] | None:
    """The first complete aligned subtree of a ``size``-leaf tree (by leaf, then level)
    that is not in ``seen``: one gone is damage even if nothing else changed."""
    for leaf in range(size):
        level = 0
        while level < size.bit_length() and (leaf >> level) << level == leaf:
            index = leaf >> level
            if (index + 1) << level > size:
                break
            if (level, index) not in seen:
                return level, index
            level += 1
    return None


def _verify_stream(
    conn: sa.Connection,
    settings: Settings,
    tenant_id: str,
    stream: str,
    outside: Checkpoint | ExportedCheckpointError | None,
) -> StreamReport:
    bind_tenant(conn, tenant_id)
    table, entry_of = stream_source(stream)
    leaves: list[bytes] = []

    def collect(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            leaves.append(bytes.fromhex(row["leaf_hash"]))
            yield row

    rows = chain_rows(conn, tenant_id, 0, None, table=table)
    head = ledger_head(conn, stream, tenant_id)
    chain = verify_chain(
        collect(rows), start=0, start_prev_chain=None, head=head or (0, ""), entry_of=entry_of
    )
    if not chain.ok:
        return StreamReport(stream, False, chain.checked, chain.first_bad_index, chain.reason)
    tree = LevelTree(leaves)
    nodes = schema.ledger_nodes
    stored_nodes = 0
    for node in conn.execute(
        sa.select(nodes.c.level, nodes.c.idx, nodes.c.hash).where(nodes.c.stream == stream)
    ):
        level, index, digest = _node(node._mapping)
        start = index << level
        if start + (1 << level) > tree.size or tree.node(level, index) != digest:
            return StreamReport(
                stream, False, chain.checked, start, f"stored tree node ({level}, {index}) is wrong"
            )
        stored_nodes += 1
    # Each stored node is a distinct (level, index) inside the tree (the primary key,
    # and the check above), so the count tells whether any is missing; which one is
    # looked up only then.
    missing = None
    if stored_nodes != _complete_subtrees(tree.size):
        query = sa.select(nodes.c.level, nodes.c.idx).where(nodes.c.stream == stream)
        seen = {(int(row.level), int(row.idx)) for row in conn.execute(query)}
        missing = _first_missing_node(tree.size, seen)
    if missing is not None:
        level, index = missing
        return StreamReport(
            stream,
            False,
            chain.checked,
            index << level,
            f"stored tree node ({level}, {index}) is missing",
        )
    verifier = load_ledger_signer(settings).verifier()
    origin = stream_origin(settings.ledger_origin, stream)
    previous: tuple[int, bytes] | None = None
    stored = checkpoints_since(conn, tenant_id, stream, 0, limit=10**9)
    for cp in stored:
        try:
            opened = open_checkpoint(cp.note, verifier, origin=origin)
        except NoteError as exc:
            return StreamReport(
                stream, False, chain.checked, cp.size, f"checkpoint {cp.size}: {exc}"
            )
        if (
            opened.size != cp.size
            or opened.size > tree.size
            or tree.root(opened.size) != opened.root
        ):
            return StreamReport(
                stream,
                False,
                chain.checked,
                min(cp.size, tree.size),
                f"checkpoint {cp.size} root differs",
            )
        if previous is not None:
            try:
                proof = consistency_proof(previous[0], opened.size, tree)
                verify_consistency(previous[0], opened.size, proof, previous[1], opened.root)
            except ProofError as exc:
                return StreamReport(stream, False, chain.checked, previous[0], str(exc))
        previous = (opened.size, opened.root)
    if isinstance(outside, ExportedCheckpointError):
        return StreamReport(stream, False, chain.checked, None, str(outside))
    if outside is not None:
        if outside.size > tree.size:
            reason = f"exported checkpoint {outside.size} covers entries the database does not hold"
            return StreamReport(stream, False, chain.checked, tree.size, reason)
        if tree.root(outside.size) != outside.root:
            reason = f"exported checkpoint {outside.size} root differs"
            return StreamReport(stream, False, chain.checked, None, reason)
    return StreamReport(stream, True, chain.checked, None, None, checkpoints=len(stored))


HeldOutside = dict[str, Checkpoint | ExportedCheckpointError]


def _held_outside(settings: Settings, checkpoint_dir: Path) -> HeldOutside:
    """The newest checkpoint kept under ``checkpoint_dir`` for each stream folder there
    (``<kind>/<tenant>/``), or why it cannot be read. Read before the database: one the
    anchoring job exports while verification runs is newer than what the database
    showed, and must not pass for a lost tail."""
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint directory {checkpoint_dir} does not exist")
    verifier = load_ledger_signer(settings).verifier()
    held: HeldOutside = {}
    for kind in ("decisions", "audit"):
        if not (checkpoint_dir / kind).is_dir():
            continue
        for folder in sorted((checkpoint_dir / kind).iterdir()):
            if not folder.is_dir():
                continue
            stream = f"{kind}/{folder.name}"
            origin = stream_origin(settings.ledger_origin, stream)
            try:
                newest = newest_exported(checkpoint_dir, stream, verifier, origin)
            except ExportedCheckpointError as exc:
                held[stream] = exc
                continue
            if newest is not None:
                held[stream] = newest
    return held


def verify_database(settings: Settings, *, checkpoint_dir: Path | None = None) -> DatabaseReport:
    """Verify every stream; with ``checkpoint_dir`` (exported or witnessed checkpoints in
    the ``FG_ANCHOR_EXPORT_DIR`` layout) each stream must also hold the newest one kept
    there, and a stream kept there must exist."""
    held = {} if checkpoint_dir is None else _held_outside(settings, checkpoint_dir)
    exported_tenants = {stream.split("/", 1)[1] for stream in held} - {PLATFORM}
    db: Database = open_database(settings.database_url)
    report = DatabaseReport()
    try:
        with db.read.connect() as conn:
            streams = all_streams(conn)
            listed = {tenant for tenant, _ in streams}
            unlisted = sorted((ledger_tenants(conn) | exported_tenants) - listed)
            for tenant in unlisted:
                streams += [(tenant, decision_stream(tenant)), (tenant, audit_stream(tenant))]
            for tenant, stream in streams:
                checked = _verify_stream(conn, settings, tenant, stream, held.get(stream))
                if tenant in unlisted and checked.ok:
                    reason = f"tenant {tenant!r} has ledger data but no tenant record"
                    checked = StreamReport(stream, False, checked.checked, None, reason)
                report.streams.append(checked)
    finally:
        db.dispose()
    return report
