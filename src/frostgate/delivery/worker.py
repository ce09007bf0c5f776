"""The delivery worker: sends due outbox messages through the egress client.

Runs inside ``frostgate serve``. Several processes may run it at once: messages are
claimed with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the exclusive write
transaction on SQLite), so each due message goes to one worker, and a worker killed
mid-delivery only delays its messages until their lease runs out. Each message is sent
as its own task with the egress client's time and size bounds, and at most
``concurrency`` are in flight, at most half of them one tenant's, so a receiver that
hangs, resets or floods never holds up another endpoint's deliveries, another tenant's
or the API.

Every attempt is recorded. Success (2xx) delivers; anything else (3xx included: we do
not follow redirects) is retried with backoff and jitter, honouring ``Retry-After``,
until the deadline, after which the message is dead-lettered and a warning audit event
is written. ``webhook-id`` is the message id, identical on every retry, with an
identical body; only ``webhook-timestamp`` and hence the signature change per attempt.
The per-endpoint rate cap (messages per minute, per process) defers messages without
counting an attempt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio.to_thread

from frostgate import __version__
from frostgate.delivery.retry import backoff, retry_after
from frostgate.egress import EgressClient, EgressFailed, EgressRefused
from frostgate.security.audit import AuditRecorder
from frostgate.security.secret_box import SecretBox
from frostgate.security.webhook_signature import decode_secret, signed_headers
from frostgate.store import Database
from frostgate.store.outbox import Claimed, any_due, claim_due, due_candidates, finish_attempt
from frostgate.store.webhooks import secret_binding

__all__ = ["DeliverySettings", "DeliveryWorker"]

log = logging.getLogger("frostgate.delivery")


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    poll_seconds: float = 0.5
    lease: timedelta = timedelta(seconds=60)
    deadline: timedelta = timedelta(hours=24)
    concurrency: int = 16
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class _Result:
    outcome: str
    status_code: int | None
    error: str | None
    retry_after: timedelta | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        egress: EgressClient,
        box: SecretBox,
        *,
        settings: DeliverySettings,
        audit: AuditRecorder | None = None,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._egress = egress
        self._box = box
        self.settings = settings
        self._audit = audit
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._inflight: set[asyncio.Task[None]] = set()
        self._held: Counter[str] = Counter()  # in flight here, per tenant
        self._sent: dict[str, deque[float]] = {}
        self.delivered = 0

    async def run(self) -> None:
        """Poll for due messages until cancelled."""
        while True:
            try:
                await self.pump()
            except Exception:
                # A failed claim (database restarting) is retried on the next poll; the
                # messages stay in the outbox, nothing is lost.
                log.exception("delivery poll failed; retrying")
            await asyncio.sleep(self.settings.poll_seconds)

    async def pump(self) -> int:
        """Claim as many due messages as there are free slots and start sending them."""
        free = self.settings.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        claimed = await anyio.to_thread.run_sync(self._claim, free, dict(self._held))
        for message in claimed:
            task = asyncio.create_task(self._deliver(message))
            self._inflight.add(task)
            self._held[message.tenant_id] += 1
            task.add_done_callback(self._inflight.discard)
            task.add_done_callback(functools.partial(self._release, message.tenant_id))
        return len(claimed)

    def _release(self, tenant_id: str, _task: asyncio.Task[None]) -> None:
        self._held[tenant_id] -= 1
        if self._held[tenant_id] <= 0:
            del self._held[tenant_id]

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests)."""
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def cancel_inflight(self) -> None:
        """Shutdown: stop sending; the claimed messages are retried once their lease ends."""
        for task in self._inflight:
            task.cancel()
        await self.drain()

    def _claim(self, limit: int, held: dict[str, int]) -> list[Claimed]:
        now = self._clock()
        # Half the slots at most per tenant: a backlog to a receiver that never answers
        # cannot hold the others' alerts back.
        cap = max(1, self.settings.concurrency // 2)
        with self._db.read.connect() as conn:
            if not any_due(conn, now):
                return []
            chosen = due_candidates(conn, now, limit=limit, tenant_cap=cap, held=held)
        if not chosen:
            return []
        with self._db.write.begin() as conn:
            return claim_due(conn, now, chosen, lease=self.settings.lease)

    async def _deliver(self, message: Claimed) -> None:
        started = self._clock()
        clock_start = time.monotonic()
        try:
            result = await self._attempt(message, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Anything unexpected is a failed, recorded attempt with backoff: a message
            # must never stay claimed and unrecorded (it would return on every lease).
            log.exception("delivery of %s failed unexpectedly", message.message_id)
            result = _Result("failed", None, f"unexpected: {type(exc).__name__}", None)
        if result is None:
            return
        duration_ms = int((time.monotonic() - clock_start) * 1000)
        next_at = self._next_attempt(message, result, self._clock())
        try:
            status = await anyio.to_thread.run_sync(
                self._finish, message, started, duration_ms, result, next_at
            )
        except Exception:
            # The lease runs out and the message is claimed again: at-least-once, same id.
            log.exception("recording delivery of %s failed", message.message_id)
            return
        if status == "delivered":
            self.delivered += 1
        elif status == "dead" and self._audit is not None:
            self._audit.record(
                "delivery_dead_letter",
                "warning",
                message.tenant_id,
                detail={"message_id": message.message_id, "last_error": result.error},
            )

    async def _attempt(self, message: Claimed, now: datetime) -> _Result | None:
        endpoint = message.endpoint
        if endpoint is None:
            return _Result("endpoint_gone", None, "endpoint deleted or disabled", None)
        if not self._within_rate(endpoint.endpoint_id, endpoint.max_per_minute):
            await anyio.to_thread.run_sync(self._defer, message)
            return None
        try:
            secret = self._box.open(
                endpoint.secret_pepper_id,
                endpoint.secret_sealed,
                bound_to=secret_binding(endpoint.tenant_id, endpoint.endpoint_id),
            )
        except (ValueError, LookupError) as exc:
            return _Result("secret_unavailable", None, str(exc), None)
        headers = signed_headers(
            decode_secret(secret), message.message_id, int(now.timestamp()), message.body
        )
        headers["content-type"] = "application/json"
        headers["user-agent"] = f"FrostGate-Webhooks/{__version__}"
        try:
            response = await self._egress.post(
                endpoint.url,
                message.body,
                headers,
                tenant_id=message.tenant_id,
                tenant_hosts=message.tenant_hosts,
            )
        except EgressRefused as refused:
            return _Result("refused", None, refused.reason, None)
        except EgressFailed as failed:
            return _Result("failed", None, failed.reason, None)
        if response.ok:
            return _Result("delivered", response.status, None, None)
        outcome = "redirect_refused" if 300 <= response.status < 400 else "http_error"
        return _Result(
            outcome,
            response.status,
            f"HTTP {response.status}",
            retry_after(response.headers.get("retry-after"), now),
        )

    def _within_rate(self, endpoint_id: str, per_minute: int) -> bool:
        now = time.monotonic()
        sent = self._sent.setdefault(endpoint_id, deque())
        while sent and now - sent[0] >= 60.0:
            sent.popleft()
        if len(sent) >= per_minute:
            return False
        sent.append(now)
        return True

    def _next_attempt(self, message: Claimed, result: _Result, now: datetime) -> datetime | None:
        if result.outcome == "delivered" or result.outcome == "endpoint_gone":
            return None
        delay = backoff(
            message.attempts + 1,
            base=self.settings.backoff_base_seconds,
            cap=self.settings.backoff_cap_seconds,
            rng=self._rng,
        )
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        next_at = now + delay
        if next_at > message.created_at + self.settings.deadline:
            return None
        return next_at

    def _finish(
        self,
        message: Claimed,
        started: datetime,
        duration_ms: int,
        result: _Result,
        next_at: datetime | None,
    ) -> str:
        with self._db.write.begin() as conn:
            return finish_attempt(
                conn,
                message,
                started_at=started,
                duration_ms=duration_ms,
                status_code=result.status_code,
                outcome=result.outcome,
                error=result.error,
                next_attempt_at=next_at,
            )

    def _defer(self, message: Claimed) -> None:
        """Over the endpoint's rate cap: try again when the oldest send leaves the minute."""
        endpoint = message.endpoint
        assert endpoint is not None
        oldest = self._sent[endpoint.endpoint_id][0]
        wait = max(1.0, 60.0 - (time.monotonic() - oldest))
        with self._db.write.begin() as conn:
            finish_attempt(
                conn,
                message,
                started_at=self._clock(),
                duration_ms=0,
                status_code=None,
                outcome="deferred",
                error="endpoint rate cap",
                next_attempt_at=self._clock() + timedelta(seconds=wait),
                count_attempt=False,
            )
