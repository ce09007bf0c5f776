"""Ledger reads (scope ``ledger:read``, always the caller's own tenant): signed
checkpoints, RFC 9162 inclusion and consistency proofs, entries; and the public key."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from frostgate.api._common import json_response, parse_index, tenant_of
from frostgate.api.context import services
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.jobs.anchor import stream_origin
from frostgate.ledger import consistency_proof, entry_leaf_hash, inclusion_proof
from frostgate.store import schema
from frostgate.store.audit import audit_stream
from frostgate.store.catalog import stream_source
from frostgate.store.checkpoints import checkpoints_since, latest_checkpoint
from frostgate.store.entries import decision_stream
from frostgate.store.streams import StoredTree
from frostgate.store.tenancy import bind_tenant

__all__ = ["router"]

router = APIRouter()

_MAX_ENTRIES = 1000


def _stream(request: Request, stream: str) -> tuple[str, str]:
    tenant_id = tenant_of(request)
    if stream == "decisions":
        return tenant_id, decision_stream(tenant_id)
    if stream == "audit":
        return tenant_id, audit_stream(tenant_id)
    raise FrostGateError(ErrorCode.NOT_FOUND)


async def _in_tenant(request: Request, tenant_id: str, fn: Any) -> Any:
    svc = services(request)

    def run() -> Any:
        with svc.db.read.connect() as conn:
            bind_tenant(conn, tenant_id)
            return fn(conn)

    return await anyio.to_thread.run_sync(run)


def _head_size(conn: sa.Connection, stream: str) -> int:
    heads = schema.ledger_heads
    size = conn.execute(sa.select(heads.c.size).where(heads.c.stream == stream)).scalar()
    return 0 if size is None else int(size)


@router.get("/v1/ledger/public-key")
async def public_key(request: Request) -> Response:
    svc = services(request)
    return json_response(
        {
            "origin": svc.settings.ledger_origin,
            "vkey": svc.ledger_signer.vkey,
            "stream_origin_format": stream_origin(svc.settings.ledger_origin, "<stream>"),
        }
    )


@router.get("/v1/ledger/{stream}/checkpoint")
async def checkpoint(request: Request, stream: str) -> Response:
    tenant_id, name = _stream(request, stream)
    latest = await _in_tenant(request, tenant_id, lambda c: latest_checkpoint(c, tenant_id, name))
    if latest is None:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return Response(content=latest.note, media_type="text/plain; charset=utf-8")


@router.get("/v1/ledger/{stream}/checkpoints")
async def checkpoints(request: Request, stream: str, since: str | None = None) -> Response:
    tenant_id, name = _stream(request, stream)
    since_size = parse_index(since, "since") or 0
    found = await _in_tenant(
        request, tenant_id, lambda c: checkpoints_since(c, tenant_id, name, since_size)
    )
    return json_response(
        {
            "origin": stream_origin(services(request).settings.ledger_origin, name),
            "checkpoints": [
                {
                    "size": cp.size,
                    "root_hash": cp.root_hash,
                    "note": cp.note,
                    "created_at": cp.created_at.isoformat(),
                }
                for cp in found
            ],
        }
    )


@router.get("/v1/ledger/{stream}/proof/inclusion")
async def proof_inclusion(
    request: Request,
    stream: str,
    index: str | None = None,
    size: str | None = None,
    event_id: str | None = None,
) -> Response:
    tenant_id, name = _stream(request, stream)
    wanted_index = parse_index(index, "index")
    tree_size = parse_index(size, "size")
    if (wanted_index is None) == (event_id is None):
        raise FrostGateError(ErrorCode.RANGE_INVALID, "give index or event_id")

    def prove(conn: sa.Connection) -> dict[str, Any]:
        position = wanted_index
        if position is None:
            table, _ = stream_source(name)
            position = conn.execute(
                sa.select(table.c.seq).where(
                    table.c.tenant_id == tenant_id, table.c.event_id == event_id
                )
            ).scalar()
            if position is None:
                raise FrostGateError(ErrorCode.NOT_FOUND)
        head = _head_size(conn, name)
        n = head if tree_size is None else tree_size
        if n > head or position >= n:
            raise FrostGateError(ErrorCode.RANGE_INVALID, "index must be < size <= tree size")
        tree = StoredTree(conn, name)
        return {
            "index": int(position),
            "tree_size": n,
            "leaf_hash": tree.node(0, int(position)).hex(),
            "hashes": [h.hex() for h in inclusion_proof(int(position), n, tree)],
        }

    return json_response(await _in_tenant(request, tenant_id, prove))


@router.get("/v1/ledger/{stream}/proof/consistency")
async def proof_consistency(
    request: Request, stream: str, first: str | None = None, second: str | None = None
) -> Response:
    tenant_id, name = _stream(request, stream)
    size1 = parse_index(first, "first")
    size2 = parse_index(second, "second")
    if size1 is None or size2 is None:
        raise FrostGateError(ErrorCode.RANGE_INVALID, "first and second are required")

    def prove(conn: sa.Connection) -> dict[str, Any]:
        if not 0 < size1 <= size2 <= _head_size(conn, name):
            raise FrostGateError(ErrorCode.RANGE_INVALID, "need 0 < first <= second <= size")
        tree = StoredTree(conn, name)
        hashes = consistency_proof(size1, size2, tree)
        return {"first": size1, "second": size2, "hashes": [h.hex() for h in hashes]}

    return json_response(await _in_tenant(request, tenant_id, prove))


@router.get("/v1/ledger/{stream}/entries")
async def entries(
    request: Request, stream: str, start: str | None = None, end: str | None = None
) -> Response:
    tenant_id, name = _stream(request, stream)
    first = parse_index(start, "start") or 0
    last = parse_index(end, "end")
    if last is None:
        last = first + _MAX_ENTRIES
    if last <= first or last - first > _MAX_ENTRIES:
        raise FrostGateError(ErrorCode.RANGE_INVALID, "0 < end - start <= 1000")
    table, to_entry = stream_source(name)

    def read(conn: sa.Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            sa.select(table)
            .where(table.c.tenant_id == tenant_id, table.c.seq >= first, table.c.seq < last)
            .order_by(table.c.seq)
        )
        out = []
        for row in rows:
            entry = to_entry(dict(row._mapping))
            out.append(
                {
                    "index": entry["index"],
                    "entry": entry,
                    "leaf_hash": entry_leaf_hash(entry).hex(),
                    "chain_hash": row._mapping["chain_hash"],
                }
            )
        return out

    return json_response({"entries": await _in_tenant(request, tenant_id, read)})
