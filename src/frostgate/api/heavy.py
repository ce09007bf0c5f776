"""Reads that walk much of a tenant's history run one per tenant at a time.

Verifying a chain reads and re-hashes a tenant's whole chain; a forensic packet reads up
to 50,000 entries and builds a signed zip. Both run in worker threads holding the GIL for
most of their time, so one tenant asking for dozens at once slowed every other tenant's
answers from milliseconds to tens of seconds, then to 504s, while staying inside its
in-flight share (an attacker review measured it). Each tenant now runs one such read at a
time and the process at most ``process_limit``; one more is refused at once, 429
``CONCURRENCY_LIMITED``, rather than queued behind somebody else's audit.

The slot is held for as long as the awaited worker thread runs: ``anyio.to_thread``
shields the awaiting task until its thread ends, so a request that times out or whose
client leaves cannot start a second read while the first still runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from frostgate.errors import ErrorCode, FrostGateError

__all__ = ["HeavyReads"]


class HeavyReads:
    def __init__(self, process_limit: int = 2) -> None:
        self._limit = process_limit
        self._running: set[str] = set()

    @contextmanager
    def slot(self, tenant_id: str) -> Iterator[None]:
        """Hold ``tenant_id``'s one slot (event-loop thread only: no lock needed)."""
        if tenant_id in self._running or len(self._running) >= self._limit:
            raise FrostGateError(
                ErrorCode.CONCURRENCY_LIMITED,
                "heavy read refused",
                reason="a chain verification or forensic packet is already running; "
                "retry when it ends",
            )
        self._running.add(tenant_id)
        try:
            yield
        finally:
            self._running.discard(tenant_id)
