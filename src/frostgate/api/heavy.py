"""Reads that walk much of a tenant's history run a few per tenant at a time.

Verifying a chain reads and re-hashes a tenant's whole chain; a forensic packet reads up
to 50,000 entries and builds a signed zip. Both run in worker threads holding the GIL for
most of their time, so one tenant asking for dozens at once slowed every other tenant's
answers from milliseconds to tens of seconds, then to 504s, while staying inside its
in-flight share (an attacker review measured it). Each tenant now runs one such read at a
time and the process at most ``process_limit``; one more is refused at once, 429
``CONCURRENCY_LIMITED``, rather than queued behind somebody else's audit. Statistics
over a wide window (two scans of the window and one of its rules) have their own slots,
two per tenant: sixteen at once over 351,000 decisions took another tenant's one-row
read from 10 ms to 24.5 s, and sixty-four exhausted the connection pool. Live streams
(SSE) hold slots of their own for as long as they are open: each polls the database
every second, and 256 of one tenant cost a seventh of a core while idle.

The slot is held for as long as the awaited worker thread runs: ``anyio.to_thread``
shields the awaiting task until its thread ends, so a request that times out or whose
client leaves cannot start a second read while the first still runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from frostgate.errors import ErrorCode, FrostGateError

__all__ = ["HeavyReads"]


class HeavyReads:
    def __init__(
        self,
        *,
        per_tenant: int = 1,
        process_limit: int = 2,
        what: str = "a chain verification or forensic packet is",
    ) -> None:
        self._per_tenant = per_tenant
        self._limit = process_limit
        self._what = what
        self._running: Counter[str] = Counter()

    def free(self, tenant_id: str) -> bool:
        """Whether ``tenant_id`` could take a slot now."""
        return self._running[tenant_id] < self._per_tenant and self._running.total() < self._limit

    def check(self, tenant_id: str) -> None:
        """Refuse (429) now if ``tenant_id`` has no free slot. For a streamed answer,
        which can take its slot only once its body starts (:meth:`slot` there), after the
        status line: this check lets it be refused while it still can be."""
        if not self.free(tenant_id):
            raise FrostGateError(
                ErrorCode.CONCURRENCY_LIMITED,
                "heavy read refused",
                reason=f"{self._what} already running; retry when one ends",
            )

    @contextmanager
    def slot(self, tenant_id: str) -> Iterator[None]:
        """Hold one of ``tenant_id``'s slots (event-loop thread only: no lock needed)."""
        self.check(tenant_id)
        self._running[tenant_id] += 1
        try:
            yield
        finally:
            self._running[tenant_id] -= 1
            if self._running[tenant_id] <= 0:
                del self._running[tenant_id]
