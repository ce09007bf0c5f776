"""Forensic audit packets over a time range of a tenant's ledger stream.

The packet (``frostgate.ledger.packet``) is deterministic, so only what it covers is
stored; a download rebuilds it and must hash to what was recorded at creation, or the
stored history changed underneath it. That answer is ``PACKET_HISTORY_CHANGED`` (409):
not a 5xx, because the server is working as designed and a retry gives the same answer
(clients retry 5xx), and it is about this resource's state against the ledger's, which
is what 409 says. The router also records it as a critical audit event.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import uuid_utils

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.jobs.anchor import Anchorer, stream_origin
from frostgate.ledger import ProofError, consistency_proof, inclusion_proof
from frostgate.ledger.note import Signer
from frostgate.ledger.packet import PacketEntry, PacketError, build_packet
from frostgate.store import Database, schema
from frostgate.store.catalog import stream_source
from frostgate.store.checkpoints import checkpoints_since, latest_checkpoint
from frostgate.store.streams import StoredTree
from frostgate.store.tenancy import bind_tenant

__all__ = ["MAX_PACKET_ENTRIES", "Packet", "create_packet", "load_packet"]

MAX_PACKET_ENTRIES = 50_000


@dataclass(frozen=True, slots=True)
class Packet:
    packet_id: str
    stream: str
    start: int
    end: int
    tree_size: int
    sha256: str
    data: bytes


def _build(
    conn: sa.Connection,
    tenant_id: str,
    stream: str,
    start: int,
    end: int,
    tree_size: int,
    since: str | None,
    until: str | None,
    signer: Signer,
    origin: str,
) -> bytes:
    table, to_entry = stream_source(stream)
    rows = conn.execute(
        sa.select(table)
        .where(table.c.tenant_id == tenant_id, table.c.seq >= start, table.c.seq < end)
        .order_by(table.c.seq)
    )
    entries = [
        PacketEntry(
            int(r.seq),
            to_entry(dict(r._mapping)),
            bytes.fromhex(r.prev_chain_hash),
            bytes.fromhex(r.chain_hash),
        )
        for r in rows
    ]
    stored = [
        cp for cp in checkpoints_since(conn, tenant_id, stream, 0, 10**9) if cp.size <= tree_size
    ]
    first = max((i for i, cp in enumerate(stored) if cp.size <= start), default=0)
    chosen = stored[first:]
    tree = StoredTree(conn, stream)
    consistency = [
        (a.size, b.size, consistency_proof(a.size, b.size, tree))
        for a, b in itertools.pairwise(chosen)
    ]
    inclusion = [(e.index, tree_size, inclusion_proof(e.index, tree_size, tree)) for e in entries]
    return build_packet(
        stream=stream,
        origin=origin,
        entries=entries,
        checkpoints=[(cp.size, cp.note) for cp in chosen],
        consistency=consistency,
        inclusion=inclusion,
        range_meta={"start": start, "end": end, "since": since, "until": until},
        signer=signer,
    )


def create_packet(
    db: Database,
    anchorer: Anchorer,
    signer: Signer,
    origin_prefix: str,
    tenant_id: str,
    stream: str,
    since: datetime,
    until: datetime,
) -> Packet:
    """A packet of every entry created in ``[since, until)``, tied to a checkpoint that
    covers them (signing a new checkpoint first when the newest does not)."""
    table, _ = stream_source(stream)
    with db.read.connect() as conn:
        bind_tenant(conn, tenant_id)
        bounds: Any = conn.execute(
            sa.select(sa.func.min(table.c.seq), sa.func.max(table.c.seq)).where(
                table.c.tenant_id == tenant_id,
                table.c.created_at >= since,
                table.c.created_at < until,
            )
        ).one()
        low, high = bounds
        if low is None:
            raise FrostGateError(ErrorCode.RANGE_INVALID, "no entries in the range")
        start, end = int(low), int(high) + 1
        if end - start > MAX_PACKET_ENTRIES:
            raise FrostGateError(ErrorCode.RANGE_INVALID, "range too large for one packet")
        newest = latest_checkpoint(conn, tenant_id, stream)
    if newest is None or newest.size < end:
        anchorer.run_once()
        if anchorer.problems.get(stream):
            raise FrostGateError(ErrorCode.NOT_READY, "ledger check failed")
    origin = stream_origin(origin_prefix, stream)
    texts = (since.isoformat(), until.isoformat())
    with db.read.connect() as conn:
        bind_tenant(conn, tenant_id)
        newest = latest_checkpoint(conn, tenant_id, stream)
        if newest is None or newest.size < end:
            raise FrostGateError(ErrorCode.NOT_READY, "no checkpoint covers the range yet")
        data = _build(conn, tenant_id, stream, start, end, newest.size, *texts, signer, origin)
    packet = Packet(
        str(uuid_utils.uuid7()),
        stream,
        start,
        end,
        newest.size,
        hashlib.sha256(data).hexdigest(),
        data,
    )
    with db.write.begin() as conn:
        bind_tenant(conn, tenant_id)
        conn.execute(
            schema.forensic_packets.insert().values(
                packet_id=packet.packet_id,
                tenant_id=tenant_id,
                stream=stream,
                start_index=start,
                end_index=end,
                tree_size=newest.size,
                since=texts[0],
                until=texts[1],
                sha256=packet.sha256,
                created_at=datetime.now(UTC),
            )
        )
    return packet


def load_packet(
    db: Database, signer: Signer, origin_prefix: str, tenant_id: str, packet_id: str
) -> Packet:
    """Rebuild a recorded packet; it must hash to what was recorded at creation."""
    p = schema.forensic_packets
    with db.read.connect() as conn:
        bind_tenant(conn, tenant_id)
        row: Any = conn.execute(
            sa.select(p).where(p.c.packet_id == packet_id, p.c.tenant_id == tenant_id)
        ).first()
        if row is None:
            raise FrostGateError(ErrorCode.NOT_FOUND)
        try:
            data = _build(
                conn,
                tenant_id,
                row.stream,
                int(row.start_index),
                int(row.end_index),
                int(row.tree_size),
                row.since,
                row.until,
                signer,
                stream_origin(origin_prefix, row.stream),
            )
        except (PacketError, ProofError, LookupError) as exc:
            # The rows, chain or tree no longer form a valid packet: rewritten history.
            raise FrostGateError(
                ErrorCode.PACKET_HISTORY_CHANGED, f"packet {packet_id} no longer builds: {exc}"
            ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != row.sha256:
        raise FrostGateError(
            ErrorCode.PACKET_HISTORY_CHANGED, f"packet {packet_id} no longer rebuilds identically"
        )
    return Packet(
        row.packet_id,
        row.stream,
        int(row.start_index),
        int(row.end_index),
        int(row.tree_size),
        digest,
        data,
    )
