"""Recording security events to the audit ledger without letting a flood fill the disk.

Events about a request (auth failures, scope denials, tenant mismatches) are handed to
the group-commit writer in the background: the denial is answered at once, and the event
is durable within the next commit. Noisy kinds are summarised per (stream, kind, client
address) and window: the first occurrence is written at once, repeats are counted and
written as one event with ``count`` when the window closes. The number of open
summaries is capped; beyond it, repeats fold into one overflow summary per stream and
kind, so memory stays bounded under a spray of addresses.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uuid_utils

from frostgate.security.client_ip import ClientAddress, address_group
from frostgate.store import GroupCommitWriter
from frostgate.store.audit import PLATFORM, PendingAudit

__all__ = ["SUMMARISED_KINDS", "AuditRecorder", "new_audit"]

log = logging.getLogger("frostgate.audit")

SUMMARISED_KINDS = frozenset(
    {
        "auth_failure",
        "scope_denied",
        "tenant_mismatch",
        "key_in_query",
        "honeypot_hit",
        "hook_rejected",
        "egress_refused",
        "canary_key_used",
    }
)
# Summarised per key rather than per client address.
_SUMMARISED_BY_KEY = frozenset({"canary_key_used"})
_MAX_OPEN_SUMMARIES = 10_000
#: The claimed X-Forwarded-For kept as evidence: enough for the 32 hops the gate reads.
MAX_FORWARDED_FOR = 1024
# Anything shaped like a key, whatever follows it: a secret sent in a header must not be
# written to an append-only ledger, where it could never be removed.
_KEY_LIKE = re.compile(r"fgk_[^\s,]*", re.IGNORECASE)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_audit(
    kind: str,
    severity: str,
    tenant_id: str | None,
    *,
    now: datetime,
    key_id: str | None = None,
    address: ClientAddress | None = None,
    route: str | None = None,
    count: int = 1,
    detail: Mapping[str, Any] | None = None,
) -> PendingAudit:
    return PendingAudit(
        tenant_id=tenant_id or PLATFORM,
        event_id=str(uuid_utils.uuid7()),
        kind=kind,
        severity=severity,
        created_at=now,
        actor_key_id=key_id,
        client_ip=address.ip if address else None,
        peer_ip=address.peer if address else None,
        forwarded_for=_evidence(address.forwarded_for) if address else None,
        route=route,
        count=count,
        detail=dict(detail or {}),
    )


def _evidence(claimed: str | None) -> str | None:
    """The claimed X-Forwarded-For as it may be kept: key-like text redacted, at most
    :data:`MAX_FORWARDED_FOR` characters (a header may hold 16 KiB of anything)."""
    if claimed is None:
        return None
    kept = _KEY_LIKE.sub("fgk_[redacted]", claimed)
    if len(kept) > MAX_FORWARDED_FOR:
        kept = f"{kept[:MAX_FORWARDED_FOR]}...[{len(claimed)} characters]"
    return kept


@dataclass(slots=True)
class _Summary:
    first: PendingAudit
    repeats: int = 0
    opened: float = field(default_factory=time.monotonic)


class AuditRecorder:
    def __init__(
        self,
        writer: GroupCommitWriter,
        *,
        window_seconds: float,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._writer = writer
        self._window = window_seconds
        self._clock = clock
        self._open: dict[tuple[str, str, str | None], _Summary] = {}
        self._overflow: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def record(
        self,
        kind: str,
        severity: str,
        tenant_id: str | None,
        *,
        key_id: str | None = None,
        address: ClientAddress | None = None,
        route: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a request-level security event (summarised when noisy)."""
        event = new_audit(
            kind,
            severity,
            tenant_id,
            now=self._clock(),
            key_id=key_id,
            address=address,
            route=route,
            detail=detail,
        )
        if kind in SUMMARISED_KINDS:
            # Who repeats: the key for a canary (one alarm per leaked key, from anywhere),
            # else the client, an IPv6 /64 as one.
            if kind in _SUMMARISED_BY_KEY:
                who = event.actor_key_id
            else:
                who = None if event.client_ip is None else address_group(event.client_ip)
            key = (event.tenant_id, kind, who)
            summary = self._open.get(key)
            if summary is not None:
                summary.repeats += 1
                return
            if len(self._open) >= _MAX_OPEN_SUMMARIES:
                overflow_key = (event.tenant_id, kind)
                self._overflow[overflow_key] = self._overflow.get(overflow_key, 0) + 1
                return
            self._open[key] = _Summary(first=event)
        self._submit([event])

    async def flush(self, *, everything: bool = False) -> None:
        """Write the summaries whose window has closed (all of them when ``everything``)."""
        now = time.monotonic()
        events: list[PendingAudit] = []
        for key, summary in list(self._open.items()):
            if everything or now - summary.opened >= self._window:
                del self._open[key]
                if summary.repeats:
                    first = summary.first
                    events.append(
                        new_audit(
                            first.kind,
                            first.severity,
                            first.tenant_id,
                            now=self._clock(),
                            key_id=first.actor_key_id,
                            route=first.route,
                            count=summary.repeats,
                            detail={"summary_of": first.event_id, **first.detail},
                            address=ClientAddress(
                                first.client_ip, first.peer_ip, first.forwarded_for, False
                            ),
                        )
                    )
        for (tenant_id, kind), count in self._overflow.items():
            events.append(
                new_audit(
                    kind,
                    "warning",
                    tenant_id,
                    now=self._clock(),
                    count=count,
                    detail={"overflow": True},
                )
            )
        self._overflow.clear()
        if events:
            await self._writer.write(events)

    async def drain(self) -> None:
        """Wait for background writes (tests and shutdown)."""
        loop = asyncio.get_running_loop()
        mine = [t for t in self._tasks if t.get_loop() is loop]
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)

    def _submit(self, events: list[PendingAudit]) -> None:
        task = asyncio.get_running_loop().create_task(self._write(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, events: list[PendingAudit]) -> None:
        try:
            await self._writer.write(events)
        except Exception:
            # The request was already answered; the loss of its audit record is itself
            # an operational alarm, logged with the event ids so it can be traced.
            log.exception("audit events not stored: %s", [e.event_id for e in events])
