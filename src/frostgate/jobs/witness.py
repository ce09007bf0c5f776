"""Exporting new signed checkpoints to witnesses (``FG_ANCHOR_WITNESS_URLS``).

A witness is an independent party that keeps the checkpoints it has seen, so the log
cannot later show anyone a history that forks from them. After each anchoring pass the
service hands the checkpoints it just signed to :class:`WitnessPublisher`, which POSTs
each signed note (``text/plain``, the exact note bytes) to every configured URL through
the egress client — the policy, the size and time bounds and the audit of refusals all
apply.

Anchoring never waits for witnesses: the anchoring job runs in a worker thread and only
*submits* its outcomes; a separate task posts them. Per stream only the newest
unposted checkpoint is kept, so a slow or dead witness costs bounded memory; skipping
an intermediate checkpoint loses nothing, since checkpoints of one stream are
consistent (the job checks it before signing) and the newest commits to every earlier
tree. A witness that refuses, fails or answers non-2xx is logged and recorded as a
``witness_failed`` audit event of the platform stream (the operator configured it),
one per witness and pass however many streams it missed; nothing is retried until
the stream's next checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from frostgate.egress import EgressClient, EgressFailed, EgressRefused
from frostgate.jobs.anchor import AnchorOutcome
from frostgate.security.audit import new_audit
from frostgate.store import Database
from frostgate.store.audit import append_audit

__all__ = [
    "WitnessFailure",
    "WitnessPublisher",
    "WitnessResult",
    "failure_detail",
    "parse_witness_urls",
    "store_failures",
]

log = logging.getLogger("frostgate.witness")

#: Witness posts in flight at once (each is bounded by the egress timeouts).
CONCURRENCY: Final = 8
_HEADERS: Final = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class WitnessResult:
    stream: str
    size: int
    witness: int  # position in FG_ANCHOR_WITNESS_URLS
    host: str
    ok: bool
    reason: str | None = None


#: Called once per witness and publishing pass with failures: the first failed result
#: and how many of that witness's posts failed in the pass (the service records one
#: audit event), so a dead witness costs one event per pass, not one per stream.
WitnessFailure = Callable[[WitnessResult, int], None]


def parse_witness_urls(spec: str) -> list[str]:
    """``FG_ANCHOR_WITNESS_URLS``: comma-separated URLs; blanks ignored, order kept."""
    return [url.strip() for url in spec.split(",") if url.strip()]


def _host(url: str) -> str:
    """Only the host goes into logs and audit events: a URL may carry a token."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


class WitnessPublisher:
    def __init__(
        self, egress: EgressClient, urls: Sequence[str], *, on_failure: WitnessFailure
    ) -> None:
        self._egress = egress
        self._urls = list(urls)
        self._on_failure = on_failure
        self._pending: dict[str, AnchorOutcome] = {}
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def submit(self, outcomes: Iterable[AnchorOutcome]) -> None:
        """Queue the newly signed checkpoints among ``outcomes``; never blocks."""
        for outcome in outcomes:
            if outcome.status == "anchored" and outcome.note:
                self._pending[outcome.stream] = outcome
        if self._pending:
            self._wake.set()

    async def run(self) -> None:
        """Post whatever is submitted, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.publish_pending()

    async def publish(self, outcomes: Iterable[AnchorOutcome]) -> list[WitnessResult]:
        """Submit and post at once (``frostgate anchor``, tests)."""
        self.submit(outcomes)
        return await self.publish_pending()

    async def publish_pending(self) -> list[WitnessResult]:
        batch = list(self._pending.values())
        self._pending.clear()
        posts = [
            self._post(outcome, position, url)
            for outcome in batch
            for position, url in enumerate(self._urls)
        ]
        results = list(await asyncio.gather(*posts))
        failed: dict[int, list[WitnessResult]] = {}
        for result in results:
            if not result.ok:
                failed.setdefault(result.witness, []).append(result)
        for position, failures in failed.items():
            first = failures[0]
            log.warning(
                "witness %d (%s) did not take %d checkpoint(s), first %s@%d: %s",
                position,
                first.host,
                len(failures),
                first.stream,
                first.size,
                first.reason,
            )
            self._on_failure(first, len(failures))
        return results

    async def _post(self, outcome: AnchorOutcome, position: int, url: str) -> WitnessResult:
        reason: str | None
        async with self._limit:
            try:
                answer = await self._egress.post(
                    url, outcome.note.encode(), _HEADERS, tenant_id=None
                )
            except EgressRefused as exc:
                reason = f"refused by the egress policy: {exc.reason}"
            except EgressFailed as exc:
                reason = f"failed: {exc.reason}"
            else:
                reason = None if answer.ok else f"answered {answer.status}"
        return WitnessResult(
            outcome.stream, outcome.size, position, _host(url), reason is None, reason
        )


def failure_detail(first: WitnessResult, failed_posts: int) -> dict[str, object]:
    """The ``witness_failed`` audit detail: the first failure and how many there were."""
    return {
        "stream": first.stream,
        "size": first.size,
        "witness": first.witness,
        "host": first.host,
        "reason": first.reason,
        "failed_posts": failed_posts,
    }


def store_failures(db: Database) -> WitnessFailure:
    """A failure hook that writes the audit event at once (no service running)."""

    def record(first: WitnessResult, failed_posts: int) -> None:
        event = new_audit(
            "witness_failed",
            "warning",
            None,
            now=datetime.now(UTC),
            detail=failure_detail(first, failed_posts),
        )
        with db.write.begin() as conn:
            append_audit(conn, [event])

    return record
