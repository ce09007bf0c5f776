"""The soak's per-minute arithmetic and its verdict (bench/soak_report.py).

A soak passes only when ``judge`` returns nothing, so each criterion is pinned at its
boundary: weakening one (a threshold, a ``>=`` turned ``>``, a check dropped) fails here.
No soak runs in the test suite; these are the pure parts.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from bench.soak_report import (
    FAILED,
    MINUTE_S,
    UNFINISHED,
    Integrity,
    Minute,
    Sample,
    exactly_once,
    judge,
    minute_rows,
    percentile,
)

CLEAN = Integrity(
    acknowledged=1000,
    lost=0,
    duplicated=0,
    stored_unacknowledged=0,
    ledger_matches_rows=True,
    peak_run_persisted=True,
)


def _minute(m: int, *, rss_mib: float = 100.0, ok_per_s: float = 100.0) -> Minute:
    return Minute(
        minute=m,
        requests=6000,
        ok_per_s=ok_per_s,
        p50_ms=5.0,
        p99_ms=20.0,
        max_ms=40.0,
        five_xx=0,
        errors=0,
        unfinished=0,
        rss_mib=rss_mib,
        server_cores=0.7,
        other_cores=0.1,
    )


def _rows(n: int = 3) -> list[Minute]:
    return [_minute(m) for m in range(1, n + 1)]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_minute_rows_bucket_latency_by_due_time_and_rate_by_arrival() -> None:
    rate = 1.0  # request i is due at i seconds: 60 per minute
    status = [200] * 120
    done = [i + 0.010 for i in range(120)]  # 10 ms each ...
    done[59] = 61.0  # due in minute 1, answered in minute 2
    done[119] = 125.0  # answered in the drain, after the last minute
    status[70] = 503
    status[80] = FAILED
    status[85] = UNFINISHED
    status[90] = 429
    samples = [Sample(100 * 2**20, 0.5, 0.1), Sample(105 * 2**20, 0.6, 0.2)]

    first, second = minute_rows(rate, status, done, samples)

    assert (first.requests, second.requests) == (60, 60)
    assert first.max_ms == pytest.approx(2000.0)  # the late answer counts from its due time
    assert first.p50_ms == pytest.approx(10.0)
    assert first.p99_ms == pytest.approx(2000.0)  # rank 60 of 60 (nearest rank)
    assert first.ok_per_s == pytest.approx(59 / MINUTE_S)
    # 60 due - 4 not 2xx - 1 answered in the drain + 1 late from minute 1
    assert second.ok_per_s == pytest.approx(56 / MINUTE_S)
    assert second.max_ms == pytest.approx(6000.0)
    assert (first.five_xx, first.errors, first.unfinished) == (0, 0, 0)
    assert (second.five_xx, second.errors, second.unfinished) == (1, 2, 1)
    assert (first.rss_mib, second.rss_mib) == (100.0, 105.0)
    assert (second.server_cores, second.other_cores) == (0.6, 0.2)


def test_exactly_once_counts_lost_duplicated_and_unacknowledged() -> None:
    status = [200, 201, 200, 500, 0, 200]
    stored = [1, 0, 2, 1, 0, 1]
    assert exactly_once(status, stored) == (4, 1, 1, 1)


def test_a_clean_soak_passes() -> None:
    assert judge(_rows(), 100.0, CLEAN) == []


def test_fewer_than_two_minutes_never_passes() -> None:
    assert judge(_rows(1), 100.0, CLEAN) != []


@pytest.mark.parametrize(
    "change",
    [
        {"five_xx": 1},
        {"errors": 1},
        {"unfinished": 1},
    ],
)
def test_any_failed_request_fails(change: dict[str, int]) -> None:
    rows = _rows()
    rows[1] = replace(rows[1], **change)
    assert len(judge(rows, 100.0, CLEAN)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"lost": 1},
        {"duplicated": 1},
        {"ledger_matches_rows": False},
        {"peak_run_persisted": False},
    ],
)
def test_any_integrity_miss_fails(change: dict[str, object]) -> None:
    assert len(judge(_rows(), 100.0, replace(CLEAN, **change))) == 1  # type: ignore[arg-type]


def test_stored_without_an_answer_is_allowed() -> None:
    assert judge(_rows(), 100.0, replace(CLEAN, stored_unacknowledged=3)) == []


def test_rss_growth_limit_is_ten_percent_from_the_end_of_minute_one() -> None:
    rows = [_minute(1, rss_mib=200.0), _minute(2, rss_mib=80.0), _minute(3, rss_mib=219.9)]
    assert judge(rows, 100.0, CLEAN) == []
    rows[2] = _minute(3, rss_mib=220.0)
    assert len(judge(rows, 100.0, CLEAN)) == 1


def test_achieved_rate_must_reach_95_percent_of_the_target() -> None:
    rows = [_minute(m, ok_per_s=95.0) for m in (1, 2, 3)]
    assert judge(rows, 100.0, CLEAN) == []
    rows = [_minute(m, ok_per_s=94.9) for m in (1, 2, 3)]
    assert len(judge(rows, 100.0, CLEAN)) == 1


def test_no_single_minute_may_fall_below_80_percent() -> None:
    rows = [_minute(1, ok_per_s=110.0), _minute(2, ok_per_s=79.9), _minute(3, ok_per_s=110.0)]
    misses = judge(rows, 100.0, CLEAN)
    assert len(misses) == 1
    assert "minute(s) 2 " in misses[0]
