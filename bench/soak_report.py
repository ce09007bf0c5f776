"""The soak's arithmetic and its verdict, kept free of I/O so a test can pin both.

``minute_rows`` turns the load generator's per-request slots and the per-minute samples
of the server into the table; ``exactly_once`` compares acknowledged requests with what
the database holds; ``judge`` applies the release criteria of issue 7 part 7 (no 5xx, no
lost event, RSS growth under 10 %, the target rate achieved) and returns every miss, so
a soak passes only when that list is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MINUTE_S = 60.0
MAX_RSS_GROWTH = 0.10  # from the end of minute 1 (after warm-up) to the end
MIN_RATE_RATIO = 0.95  # answered 2xx per second over the whole soak / target
MIN_MINUTE_RATE_RATIO = 0.80  # the same, for every single minute
MIN_MINUTES = 2  # RSS growth is measured from the end of minute 1
# The load generator's status slots that are not HTTP statuses:
UNFINISHED = 0  # no outcome when the drain ended: never sent (backlog) or still in flight
FAILED = 1  # sent, but the connection failed (refused, reset, closed) or timed out


@dataclass(frozen=True)
class Sample:
    """The server at the end of one minute: resident memory and CPU use over the minute."""

    rss_bytes: int
    server_cores: float
    other_cores: float  # every process but the server and the load generator


@dataclass(frozen=True)
class Minute:
    minute: int  # 1-based
    requests: int  # scheduled to be sent in this minute
    ok_per_s: float  # 2xx answers that arrived in this minute, per second
    p50_ms: float | None  # of the minute's requests, from their intended send time
    p99_ms: float | None
    max_ms: float | None
    five_xx: int
    errors: int  # connection failed or timed out, or a status other than 2xx and 5xx
    unfinished: int  # no outcome when the drain ended (the server fell too far behind)
    rss_mib: float
    server_cores: float
    other_cores: float


@dataclass(frozen=True)
class Integrity:
    """What the database says after the server stopped."""

    acknowledged: int
    lost: int  # acknowledged (2xx) but not stored
    duplicated: int  # stored more than once
    stored_unacknowledged: int  # stored though the answer never arrived (allowed)
    ledger_matches_rows: bool  # the ledger head size equals the tenant's decision rows
    peak_run_persisted: bool  # the wrk peak measurement's 2xx were stored too


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (``q`` in 0..100)."""
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


def minute_rows(
    rate: float, status: Sequence[int], done: Sequence[float], samples: Sequence[Sample]
) -> list[Minute]:
    """One row per sampled minute. Request ``i`` was due at ``i / rate`` seconds: its latency
    is ``done[i] - i / rate`` and it belongs to the minute it was due in. The achieved rate
    counts 2xx answers by the minute they arrived in; answers that arrive after the last
    minute (the drain) count for integrity and latency but for no minute's rate, so a server
    that falls behind cannot make up the rate after the clock stopped."""
    minutes = len(samples)
    latencies: list[list[float]] = [[] for _ in range(minutes)]
    requests = [0] * minutes
    five_xx = [0] * minutes
    errors = [0] * minutes
    unfinished = [0] * minutes
    ok_arrived = [0] * minutes
    for i, code in enumerate(status):
        due = i / rate
        m = min(int(due // MINUTE_S), minutes - 1)
        requests[m] += 1
        if 200 <= code < 300:
            latencies[m].append(done[i] - due)
            arrived = int(done[i] // MINUTE_S)
            if arrived < minutes:
                ok_arrived[arrived] += 1
        elif 500 <= code < 600:
            five_xx[m] += 1
        elif code == UNFINISHED:
            unfinished[m] += 1
        else:
            errors[m] += 1
    rows = []
    for m, sample in enumerate(samples):
        lat = sorted(latencies[m])
        rows.append(
            Minute(
                minute=m + 1,
                requests=requests[m],
                ok_per_s=ok_arrived[m] / MINUTE_S,
                p50_ms=percentile(lat, 50) * 1000 if lat else None,
                p99_ms=percentile(lat, 99) * 1000 if lat else None,
                max_ms=lat[-1] * 1000 if lat else None,
                five_xx=five_xx[m],
                errors=errors[m],
                unfinished=unfinished[m],
                rss_mib=sample.rss_bytes / 2**20,
                server_cores=sample.server_cores,
                other_cores=sample.other_cores,
            )
        )
    return rows


def exactly_once(status: Sequence[int], stored: Sequence[int]) -> tuple[int, int, int, int]:
    """(acknowledged, lost, duplicated, stored but unacknowledged) from each request's status
    and the number of decision rows holding its event_id."""
    acknowledged = lost = duplicated = unacknowledged = 0
    for code, rows in zip(status, stored, strict=True):
        ok = 200 <= code < 300
        acknowledged += ok
        lost += ok and rows == 0
        duplicated += rows > 1
        unacknowledged += not ok and rows > 0
    return acknowledged, lost, duplicated, unacknowledged


def rss_growth(rows: Sequence[Minute]) -> float:
    """Relative RSS growth from the end of minute 1 to the end of the last minute."""
    return (rows[-1].rss_mib - rows[0].rss_mib) / rows[0].rss_mib


def judge(rows: Sequence[Minute], target_rate: float, integrity: Integrity) -> list[str]:
    """Every criterion the soak missed, as one sentence each; empty means pass."""
    if len(rows) < MIN_MINUTES:
        return [f"ran {len(rows)} minute(s); the RSS criterion needs at least {MIN_MINUTES}"]
    misses = []
    five_xx = sum(r.five_xx for r in rows)
    if five_xx:
        misses.append(f"{five_xx} answers were 5xx")
    errors = sum(r.errors for r in rows)
    if errors:
        misses.append(f"{errors} requests failed (connection, timeout) or got a 4xx")
    unfinished = sum(r.unfinished for r in rows)
    if unfinished:
        misses.append(f"{unfinished} requests had no outcome by the end (the server fell behind)")
    if integrity.lost:
        misses.append(f"{integrity.lost} acknowledged events are not stored")
    if integrity.duplicated:
        misses.append(f"{integrity.duplicated} events are stored more than once")
    if not integrity.ledger_matches_rows:
        misses.append("the ledger head size differs from the number of decision rows")
    if not integrity.peak_run_persisted:
        misses.append("the peak measurement's acknowledged events are not all stored")
    growth = rss_growth(rows)
    if growth >= MAX_RSS_GROWTH:
        misses.append(f"server RSS grew {growth:.1%} after minute 1 (limit {MAX_RSS_GROWTH:.0%})")
    achieved = sum(r.ok_per_s for r in rows) / len(rows)
    if achieved < MIN_RATE_RATIO * target_rate:
        misses.append(
            f"achieved {achieved:,.0f} 2xx/s, below {MIN_RATE_RATIO:.0%} of the target "
            f"{target_rate:,.0f}/s"
        )
    slow = [r.minute for r in rows if r.ok_per_s < MIN_MINUTE_RATE_RATIO * target_rate]
    if slow:
        misses.append(
            f"minute(s) {', '.join(map(str, slow))} below {MIN_MINUTE_RATE_RATIO:.0%} of the "
            "target rate"
        )
    return misses
