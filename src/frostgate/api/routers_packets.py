"""``/v1/forensics/packets``: create and download signed audit packets (``forensics:read``)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from frostgate.api._common import json_body, json_response, parse_window, read_object, tenant_of
from frostgate.api.context import services
from frostgate.decisions.packets import Packet, create_packet, load_packet
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store.audit import audit_stream
from frostgate.store.entries import decision_stream

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/forensics/packets",
    status_code=201,
    openapi_extra=json_body(
        {
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "stream": {"type": "string", "enum": ["decisions", "audit"]},
        },
        required=("since", "until"),
    ),
)
async def create(request: Request) -> Response:
    tenant_id = tenant_of(request)
    body = await read_object(request)
    since = body.get("since")
    until = body.get("until")
    kind = body.get("stream", "decisions")
    if not isinstance(since, str) or not isinstance(until, str):
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "since and until are required")
    if kind not in ("decisions", "audit"):
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "stream is decisions or audit")
    start, end = parse_window(since, until)
    if start is None or end is None:  # both are strings here; for the type checker
        raise FrostGateError(ErrorCode.RANGE_INVALID)
    stream = decision_stream(tenant_id) if kind == "decisions" else audit_stream(tenant_id)
    svc = services(request)

    def make() -> Packet:
        return create_packet(
            svc.db,
            svc.anchorer,
            svc.ledger_signer,
            svc.settings.ledger_origin,
            tenant_id,
            stream,
            start,
            end,
        )

    with svc.heavy_reads.slot(tenant_id):
        packet = await anyio.to_thread.run_sync(make)
    return json_response(
        {
            "packet_id": packet.packet_id,
            "stream": packet.stream,
            "start": packet.start,
            "end": packet.end,
            "tree_size": packet.tree_size,
            "sha256": packet.sha256,
            "bytes": len(packet.data),
            "download": f"/v1/forensics/packets/{packet.packet_id}",
        },
        status_code=201,
    )


@router.get("/v1/forensics/packets/{packet_id}")
async def download(request: Request, packet_id: str) -> Response:
    tenant_id = tenant_of(request)
    svc = services(request)
    try:
        with svc.heavy_reads.slot(tenant_id):
            packet = await anyio.to_thread.run_sync(
                lambda: load_packet(
                    svc.db, svc.ledger_signer, svc.settings.ledger_origin, tenant_id, packet_id
                )
            )
    except FrostGateError as exc:
        if exc.code is ErrorCode.PACKET_HISTORY_CHANGED:
            # Evidence that stored history was rewritten: as loud as the anchoring job's.
            svc.audit.record(
                "packet_history_changed",
                "critical",
                tenant_id,
                key_id=request.state.principal.key_id,
                address=request.state.client,
                route="GET /v1/forensics/packets/{packet_id}",
                detail={"packet_id": packet_id},
            )
        raise
    return Response(
        content=packet.data,
        media_type="application/zip",
        headers={
            "content-disposition": f'attachment; filename="frostgate-{packet.packet_id}.zip"',
            "digest": f"sha-256={packet.sha256}",
        },
    )
