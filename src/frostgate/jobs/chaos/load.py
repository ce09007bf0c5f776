"""Load for a chaos run: sensors posting events to ``/v1/defend`` while faults happen.

Requests go through :class:`frostgate.egress.EgressClient`, FrostGate's only HTTP client,
with a policy that lets through exactly the run's own loopback ``serve`` port: the same
way ``frostgate verify --url`` reaches a local service. Every event has a unique id and
its outcome is recorded as the sensor saw it: acknowledged (2xx), refused (another
status) or failed (no answer). The invariants are judged against these records.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from frostgate.egress import EgressClient, EgressFailed, EgressPolicy, EgressTimeouts

__all__ = ["BURST", "LoadGenerator", "Outcome", "chaos_event", "service_client"]

#: Pause after a request got no answer or a 503, as a sensor backs off from a service in
#: trouble (and so the outage is not measured in thousands of refusals).
_BACKOFF_SECONDS = 0.2
#: Bursts (the first load of a scenario, the retries after it) are this many times the
#: steady concurrency: connections pooled then but idle during a fault are the ones a
#: recovering service must not hand out broken.
BURST = 4


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request of one event got: ``status`` None means no HTTP answer.
    ``started`` and ``ended`` are monotonic times, to tell refusals during a fault from
    refusals after it."""

    event_id: str
    status: int | None
    error_code: str | None
    started: float = 0.0
    ended: float = 0.0

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def service_client(port: int) -> EgressClient:
    """An egress client allowed to reach ``http://127.0.0.1:<port>`` and nothing private
    besides; answers up to 1 MiB (a decision is a few hundred bytes)."""
    return EgressClient(
        EgressPolicy(https_only=False, allow_hosts=frozenset({("127.0.0.1", port)})),
        timeouts=EgressTimeouts(connect=2.0, read=20.0, total=25.0),
        max_response_bytes=1024 * 1024,
    )


def chaos_event(event_id: str, n: int) -> dict[str, Any]:
    """Event ``n``: alternately a brute-force report (alerts, mitigation, window probes in
    Redis) and a benign login (no alert), from one of 200 documentation addresses."""
    ip = f"198.51.100.{n % 200 + 1}"
    if n % 2 == 0:
        return {
            "event_id": event_id,
            "source": "chaos-sshd",
            "event_type": "auth.failed",
            "payload": {"src_ip": ip, "failed_auths": 7, "user": f"u{n % 7}"},
        }
    return {
        "event_id": event_id,
        "source": "chaos-app",
        "event_type": "login",
        "payload": {"src_ip": ip, "user": f"u{n % 7}"},
    }


class LoadGenerator:
    """``concurrency`` sensors posting events named ``<prefix>-<n>`` until stopped."""

    def __init__(
        self, client: EgressClient, base_url: str, key: str, prefix: str, concurrency: int
    ) -> None:
        self.client = client
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.prefix = prefix
        self.concurrency = concurrency
        self.outcomes: list[Outcome] = []
        self.sent: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count()

    async def run(self, stop: asyncio.Event) -> None:
        """A burst of :data:`BURST` times ``concurrency`` events at once (a backlog flushed
        after a network blip: the service's connection pools grow beyond what steady
        load keeps busy), then steady load from ``concurrency`` sensors until ``stop``."""
        await asyncio.gather(*(self._one() for _ in range(BURST * self.concurrency)))
        await asyncio.gather(*(self._sensor(stop) for _ in range(self.concurrency)))

    async def _one(self) -> Outcome:
        n = next(self._numbers)
        event_id = f"{self.prefix}-{n}"
        event = chaos_event(event_id, n)
        self.sent[event_id] = event
        outcome = await self.send(event)
        self.outcomes.append(outcome)
        return outcome

    async def _sensor(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            outcome = await self._one()
            if outcome.status is None or outcome.status == 503:
                await asyncio.sleep(_BACKOFF_SECONDS)

    async def send(self, event: Mapping[str, Any]) -> Outcome:
        """Post one event once; a refused or failed request is an outcome, not an error."""
        event_id = str(event["event_id"])
        started = time.monotonic()
        try:
            response = await self.client.post(
                f"{self.base_url}/v1/defend", orjson.dumps(event), self.headers, tenant_id=None
            )
        except EgressFailed as failed:
            return Outcome(event_id, None, failed.reason, started, time.monotonic())
        code = None
        if not response.ok:
            try:
                code = str(orjson.loads(response.body).get("error_code"))
            except (orjson.JSONDecodeError, AttributeError):
                code = "unreadable error body"
        return Outcome(event_id, response.status, code, started, time.monotonic())
