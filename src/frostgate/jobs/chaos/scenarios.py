"""The faults, and one scenario run: load, fault, recovery, invariants.

A scenario starts with a burst of events, then steady load; the fault is injected after
30 % of ``duration``, held for 40 % and lifted; load goes on for the last 30 %. Then,
in order:

1. the fault showed in what the load saw, and nothing was refused outside it;
2. the service is ready again and acknowledges a new event, without anything being
   restarted that the fault did not kill (the ``serve`` process id is unchanged unless
   the scenario is the SIGKILL);
3. storage is judged as the fault left it (acknowledged once, nothing half-stored) and
   the ledger is verified;
4. like sensors flushing a backlog, every event that was not acknowledged is sent again,
   once, with the same body: each must now be acknowledged (created, or replayed if it
   had been stored), and every event is then stored exactly once;
5. bouncers are served the stored mitigations, checkpoints cover every decision again,
   and the outbox delivers every message to the (recovered) receiver, each within its
   bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from frostgate.jobs.chaos.invariants import (
    Invariant,
    active_mitigations,
    anchored_sizes,
    check_ledger,
    check_stored,
    outbox_state,
    refused_only_during,
)
from frostgate.jobs.chaos.load import BURST, LoadGenerator, Outcome, chaos_event
from frostgate.jobs.chaos.receiver import ReceiverMode
from frostgate.jobs.chaos.rig import DATABASES, TENANT, Rig

__all__ = ["SCENARIOS", "Scenario", "ScenarioResult", "run_scenario"]

#: Bounds on recovery: readiness after the fault is lifted, and outbox delivery.
READY_BOUND_SECONDS = 30.0
DELIVERY_BOUND_SECONDS = 60.0
INDEX_BOUND_SECONDS = 5.0
ANCHOR_BOUND_SECONDS = 20.0
#: After a fault is lifted, requests already under way may still fail for this long.
REFUSAL_GRACE_SECONDS = 1.0

Fault = Callable[[Rig, float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Observed:
    """What the load and the receiver saw during a scenario: proof the fault happened."""

    outcomes: list[Outcome]
    serve_starts: int
    receiver_failures: int


#: Reads what was observed; returns how the fault showed, or None if it did not show.
Felt = Callable[[Observed], str | None]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    what: str
    fault: Fault
    felt: Felt
    kills_serve: bool = False
    databases: frozenset[str] = frozenset(DATABASES)


async def _sigkill_serve(rig: Rig, hold: float) -> None:
    await asyncio.to_thread(rig.serve.kill)
    await asyncio.sleep(hold / 4)
    await rig.start_serve()  # the supervisor's restart; the fault lasts until it is ready


def _sigkill_felt(seen: Observed) -> str | None:
    cut = sum(1 for o in seen.outcomes if o.status is None)
    if seen.serve_starts != 1 or not cut:
        return None
    return f"killed once; {cut} requests got no answer"


def _outage(stop: Callable[[Rig], None], start: Callable[[Rig], None]) -> Fault:
    """A server stopped for the hold time, then started again by the run."""

    async def fault(rig: Rig, hold: float) -> None:
        await asyncio.to_thread(stop, rig)
        await asyncio.sleep(hold)
        await asyncio.to_thread(start, rig)

    return fault


def _refused_with(code: str) -> Felt:
    """The outage showed if sensors were refused with ``503 <code>`` (fail closed)."""

    def felt(seen: Observed) -> str | None:
        refused = sum(1 for o in seen.outcomes if o.status == 503 and o.error_code == code)
        return f"{refused} requests answered 503 {code}" if refused else None

    return felt


async def _receiver_faults(rig: Rig, hold: float) -> None:
    for mode in (ReceiverMode.HANG, ReceiverMode.RESET, ReceiverMode.ERROR):
        rig.receiver.set_mode(mode)
        await asyncio.sleep(hold / 3)
    rig.receiver.set_mode(ReceiverMode.OK)


def _receiver_felt(seen: Observed) -> str | None:
    failed = seen.receiver_failures
    return f"{failed} deliveries hung, reset or answered 500" if failed else None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "sigkill-serve",
        "SIGKILL frostgate serve mid-load, then start it",
        _sigkill_serve,
        _sigkill_felt,
        kills_serve=True,
    ),
    Scenario(
        "postgres-restart",
        "PostgreSQL stopped (immediate) and started",
        _outage(
            lambda rig: rig.own_postgres().stop("immediate"),
            lambda rig: rig.own_postgres().start(),
        ),
        _refused_with("STORAGE_UNAVAILABLE"),
        databases=frozenset({"postgresql"}),
    ),
    Scenario(
        "redis-restart",
        "Redis killed and started (empty)",
        _outage(lambda rig: rig.redis.kill(), lambda rig: rig.redis.start()),
        _refused_with("RATE_LIMITER_UNAVAILABLE"),
    ),
    Scenario(
        "webhook-faults",
        "receiver hangs, then resets, then answers 500",
        _receiver_faults,
        _receiver_felt,
    ),
)


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    round: int
    database: str
    seconds: float
    sent: int
    acknowledged: int
    refused: dict[str, int]
    unanswered: int
    invariants: tuple[Invariant, ...]

    @property
    def passed(self) -> bool:
        return bool(self.invariants) and all(i.held for i in self.invariants)


def _refusals(outcomes: list[Outcome]) -> dict[str, int]:
    counts = Counter(
        f"{o.status} {o.error_code}"
        for o in outcomes
        if o.status is not None and not o.acknowledged
    )
    return dict(sorted(counts.items()))


async def run_scenario(
    rig: Rig, scenario: Scenario, *, round_number: int, duration: float, concurrency: int
) -> ScenarioResult:
    started = time.monotonic()
    prefix = f"r{round_number}-{scenario.name}"
    load = LoadGenerator(rig.client, rig.serve.url, rig.key, prefix, concurrency)
    pid_before = rig.serve.pid
    starts_before = rig.serve.starts
    failures_before = rig.receiver.failures
    stop = asyncio.Event()
    driving = asyncio.create_task(load.run(stop))
    await asyncio.sleep(duration * 0.3)
    fault_started = time.monotonic()
    await scenario.fault(rig, duration * 0.4)
    fault_ended = time.monotonic()
    await asyncio.sleep(duration * 0.3)
    stop.set()
    await driving
    rig.sent.update(load.sent)
    outcomes = list(load.outcomes)
    seen = Observed(
        outcomes, rig.serve.starts - starts_before, rig.receiver.failures - failures_before
    )
    shown = scenario.felt(seen)
    invariants = [
        Invariant("the fault took effect", shown is not None, shown or "no sign of the fault"),
        refused_only_during(outcomes, fault_started, fault_ended, REFUSAL_GRACE_SECONDS),
        await _recovered(rig, scenario, pid_before, load),
    ]
    invariants += await asyncio.to_thread(
        check_stored, rig.db, TENANT, outcomes, rig.sent, endpoint_id=rig.endpoint_id
    )
    invariants.append(await asyncio.to_thread(check_ledger, rig.settings))
    invariants += await _retried(rig, load, outcomes)
    invariants.append(await _bouncer_view(rig))
    invariants.append(await _anchored(rig))
    invariants.append(await _delivered(rig))
    return ScenarioResult(
        name=scenario.name,
        round=round_number,
        database=rig.database,
        seconds=time.monotonic() - started,
        sent=len(outcomes),
        acknowledged=sum(1 for o in outcomes if o.acknowledged),
        refused=_refusals(outcomes),
        unanswered=sum(1 for o in outcomes if o.status is None),
        invariants=tuple(invariants),
    )


async def _recovered(
    rig: Rig, scenario: Scenario, pid_before: int | None, load: LoadGenerator
) -> Invariant:
    name = "service recovered by itself"
    waited = await rig.ready(READY_BOUND_SECONDS)
    if waited is None:
        return Invariant(name, False, f"/health/ready not 200 within {READY_BOUND_SECONDS:.0f} s")
    if not scenario.kills_serve and rig.serve.pid != pid_before:
        return Invariant(
            name, False, "frostgate serve was restarted though the fault did not kill it"
        )
    probe_id = f"{load.prefix}-probe"
    probe = chaos_event(probe_id, 0)
    load.sent[probe_id] = probe
    rig.sent.add(probe_id)
    deadline = time.monotonic() + READY_BOUND_SECONDS
    outcome = await load.send(probe)
    while not outcome.acknowledged and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        outcome = await load.send(probe)
    if not outcome.acknowledged:
        return Invariant(
            name, False, f"ready, but a new event still gets {outcome.status} {outcome.error_code}"
        )
    return Invariant(
        name, True, f"ready {waited:.1f} s after the fault ended; new events acknowledged"
    )


async def _retried(rig: Rig, load: LoadGenerator, outcomes: list[Outcome]) -> list[Invariant]:
    acknowledged = {o.event_id for o in outcomes if o.acknowledged}
    pending = sorted({o.event_id for o in outcomes} - acknowledged)
    gate = asyncio.Semaphore(BURST * load.concurrency)  # sensors flush their backlog

    async def again(event_id: str) -> Outcome:
        async with gate:
            return await load.send(load.sent[event_id])

    retries = list(await asyncio.gather(*(again(event_id) for event_id in pending)))
    failed = [r for r in retries if not r.acknowledged]
    answer = Invariant(
        "unacknowledged events acknowledged when sent again",
        not failed,
        f"{len(pending)} sent again, all acknowledged"
        if not failed
        else f"{len(failed)} of {len(pending)} still refused, e.g. {failed[0].event_id}: "
        f"{failed[0].status} {failed[0].error_code}",
    )
    every = [o for o in outcomes if o.acknowledged] + retries
    stored = await asyncio.to_thread(
        check_stored, rig.db, TENANT, every, rig.sent, endpoint_id=rig.endpoint_id
    )
    once = stored[0]
    return [
        answer,
        Invariant("every event stored exactly once after retries", once.held, once.detail),
    ]


async def _anchored(rig: Rig) -> Invariant:
    """Checkpoints are signed again after the fault: the newest covers every decision
    (checkpoints every 2 s in a maintenance pass of at most 5 s)."""
    name = "anchoring resumed"
    deadline = time.monotonic() + ANCHOR_BOUND_SECONDS
    while True:
        size, anchored = await asyncio.to_thread(anchored_sizes, rig.db, TENANT)
        if anchored == size:
            return Invariant(name, True, f"checkpoint at {anchored} covers all {size} decisions")
        if time.monotonic() > deadline:
            return Invariant(
                name,
                False,
                f"after {ANCHOR_BOUND_SECONDS:.0f} s the newest checkpoint is at {anchored} "
                f"of {size}",
            )
        await asyncio.sleep(0.5)


async def _bouncer_view(rig: Rig) -> Invariant:
    """A bouncer starting now gets exactly the stored active mitigations (the index
    follows the database within 0.25 s; the bound allows for a busy machine)."""
    name = "bouncers see the stored mitigations"
    deadline = time.monotonic() + INDEX_BOUND_SECONDS
    while True:
        stored = await asyncio.to_thread(active_mitigations, rig.db, TENANT)
        answer = await rig.client.get(
            f"{rig.serve.url}/v1/mitigations/stream?startup=true", rig.auth, tenant_id=None
        )
        if answer.ok:
            served = {str(m["mitigation_id"]) for m in orjson.loads(answer.body)["new"]}
            if served == stored:
                return Invariant(name, True, f"{len(stored)} active mitigations, all served")
            problem = (
                f"{len(stored - served)} stored but not served, "
                f"{len(served - stored)} served but not active"
            )
        else:
            problem = f"the stream answered {answer.status}"
        if time.monotonic() > deadline:
            return Invariant(name, False, problem)
        await asyncio.sleep(0.25)


async def _delivered(rig: Rig) -> Invariant:
    name = "outbox delivered everything"
    deadline = time.monotonic() + DELIVERY_BOUND_SECONDS
    started = time.monotonic()
    while True:
        state = await asyncio.to_thread(outbox_state, rig.db, TENANT, rig.endpoint_id)
        unseen = state.delivered_ids - set(rig.receiver.acknowledged)
        if unseen:
            return Invariant(
                name, False, f"marked delivered but never acknowledged: {sorted(unseen)[:3]}"
            )
        if state.by_status.get("dead"):
            return Invariant(name, False, f"{state.by_status['dead']} message(s) dead-lettered")
        if state.settled:
            total = sum(state.by_status.values())
            return Invariant(
                name, True, f"{total} messages delivered within {time.monotonic() - started:.1f} s"
            )
        if time.monotonic() > deadline:
            return Invariant(
                name, False, f"after {DELIVERY_BOUND_SECONDS:.0f} s: {dict(state.by_status)}"
            )
        await asyncio.sleep(0.25)
