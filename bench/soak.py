#!/usr/bin/env python3
"""FrostGate soak (``make soak``, issue 7 part 7): steady load for a long time, then proof
that nothing was dropped, failed or leaked.

One run:

1. starts ``frostgate serve`` on a fresh data directory exactly as ``bench/run.py`` does
   (``harness``): migrate, tenant ``soak``, a ``defend:write`` key, one process, SQLite
   unless ``--db-url``;
2. measures the peak ``/v1/defend`` throughput with wrk (``--peak-seconds`` at
   ``--connections``, after a short warm-up), and sets the target to ``--load`` (70 %)
   of it;
3. drives that rate, open-loop and paced (``loadgen``), for ``--minutes`` (10;
   ``SOAK_MINUTES``); latency is measured from each request's intended send time; every
   event has its own event_id;
4. at the end of every minute samples the server's RSS (``/proc/<pid>/status``) and the
   CPU the server and every other process used (the machine is shared);
5. stops the server with SIGINT (in-flight requests finish, the writer drains), then
   checks every acknowledged event_id is stored exactly once, the ledger head size equals
   the row count, and the peak run's acknowledged events are stored too;
6. prints the per-minute table and the verdict (``soak_report.judge``), writes
   ``bench-results/soak-<utc>-<commit>.json``, and exits 0 on pass, 1 on any miss,
   2 when the harness itself fails, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import sys
import time
import uuid
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import loadgen
import soak_report
from harness import (
    REPO,
    HarnessError,
    Processes,
    Scenario,
    check_alive,
    count_persisted,
    default_python,
    derive,
    env_value,
    free_port,
    machine_info,
    persistence_verdict,
    proc_cpu_seconds,
    provision,
    read_database,
    require_wrk,
    rss_bytes,
    run_main,
    run_wrk,
    server_env,
    start_serve,
    system_busy_seconds,
    tail,
    wait_idle,
    wait_quiet,
    wait_ready,
)

QUIET_CORES = 0.15  # as bench/run.py: other processes below this count as a quiet machine


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Soak FrostGate /v1/defend at a fraction of its measured peak.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--minutes",
        type=int,
        default=int(env_value("SOAK_MINUTES", "10") or "10"),
        help=f"soak length, at least {soak_report.MIN_MINUTES} (SOAK_MINUTES)",
    )
    p.add_argument("--load", type=float, default=0.70, help="target rate as a share of the peak")
    p.add_argument("--peak-seconds", type=int, default=15, help="measured seconds of the peak")
    p.add_argument("--connections", type=int, default=16, help="wrk connections for the peak")
    p.add_argument("--threads", type=int, default=2, help="wrk threads for the peak")
    p.add_argument(
        "--soak-connections",
        type=int,
        default=64,
        help="most connections the paced load may hold open (requests queue beyond that)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before the peak run, wait up to this many seconds for other processes to use "
        "< 0.15 cores (the machine is shared; 0: do not wait)",
    )
    p.add_argument(
        "--db-url",
        default=env_value("FG_SOAK_DB_URL", ""),
        help="FG_DB_URL for the server (empty: SQLite in the temp data dir) (FG_SOAK_DB_URL)",
    )
    p.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="wrk binary")
    p.add_argument("--python", default="", help="interpreter with frostgate installed")
    p.add_argument("--out", default=str(REPO / "bench-results"), help="directory for the JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir and server log")
    args = p.parse_args(argv)
    if args.minutes < soak_report.MIN_MINUTES:
        p.error(f"--minutes must be at least {soak_report.MIN_MINUTES}")
    if not 0 < args.load <= 1 or args.peak_seconds < 1 or args.soak_connections < 1:
        p.error("0 < --load <= 1, --peak-seconds >= 1, --soak-connections >= 1")
    if args.threads > args.connections:
        p.error("wrk needs connections >= threads")
    return args


def own_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class MinuteSampler:
    """``on_tick`` for the load loop: RSS and CPU shares of the minute that just ended."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[soak_report.Sample] = []
        self._last = self._read()

    def _read(self) -> tuple[float, float, float, float]:
        server = proc_cpu_seconds(self.pid)
        if server is None:
            raise HarnessError("the server process is gone")
        return time.monotonic(), server, own_cpu_seconds(), system_busy_seconds()

    def tick(self, _minute: int) -> None:
        now = self._read()
        wall, server, own, busy = (b - a for a, b in zip(self._last, now, strict=True))
        self._last = now
        self.samples.append(
            soak_report.Sample(
                rss_bytes=rss_bytes(self.pid),
                server_cores=server / wall,
                other_cores=max(0.0, busy - server - own) / wall,
            )
        )
        print(
            f"soak: minute {len(self.samples)}: server RSS "
            f"{self.samples[-1].rss_bytes / 2**20:,.1f} MiB",
            file=sys.stderr,
        )


def stored_counts(db_url: str, data_dir: Path, tenant: str, prefix: str, n: int) -> array[int]:
    """Decision rows per soak request index, from the event ids stored under ``prefix``."""
    counts = array("H", bytes(2 * n))
    with read_database(db_url, data_dir) as query:
        rows = query(
            "SELECT event_id FROM decisions WHERE tenant_id = {p} AND event_id LIKE {p}",
            tenant,
            prefix + "-%",
        )
    for (event_id,) in rows:
        counts[int(event_id.rsplit("-", 1)[1])] += 1
    return counts


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_main("soak", args.keep, lambda procs, tmp: _soak(args, procs, tmp))


def _soak(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    require_wrk(args.wrk)
    python = default_python(args.python)
    started_at = datetime.now(UTC)
    token = uuid.uuid4().hex[:10]
    data_dir = tmp / "data"
    data_dir.mkdir()
    port = free_port()
    tenant = "soak" if not args.db_url else f"soak-{token}"
    env = server_env(data_dir, port, args.db_url)
    fg = [python, "-m", "frostgate.cli"]
    machine = machine_info(python, args.wrk)
    key = provision(fg, env, tenant, "defend:write")
    log = tmp / "frostgate.log"
    server = start_serve(procs, fg, port, env, log)
    wait_ready(server, f"http://127.0.0.1:{port}/health/ready", "frostgate serve", log)
    url = f"http://127.0.0.1:{port}"

    peak = Scenario("peak", "/v1/defend", "frostgate", "defend", "/v1/defend", 1)
    quiet = None
    for phase, seconds in (("warmup", 3), ("measured", args.peak_seconds)):
        wait_idle(server.pid)
        if phase == "measured" and args.quiet_wait > 0:
            quiet = wait_quiet(args.quiet_wait, QUIET_CORES)
        print(
            f"soak: peak {phase} {seconds} s (wrk, {args.connections} connections)",
            file=sys.stderr,
        )
        peak.runs[phase] = run_wrk(
            procs, args, url, peak, phase[0], seconds, token, key, server.pid
        )
    peak_figures = derive(peak, quiet_cores=QUIET_CORES) | {"quiet_before": quiet}
    target = args.load * peak_figures["ok_requests_per_s"]
    print(
        f"soak: peak {peak_figures['ok_requests_per_s']:,.0f} 2xx/s (p99 "
        f"{peak_figures['p99_ms']:.1f} ms, other processes "
        f"{peak.runs['measured']['cpu']['other_cores']} cores); soaking at {target:,.0f}/s "
        f"for {args.minutes} min",
        file=sys.stderr,
    )
    check_alive((server, "frostgate serve", log))
    wait_idle(server.pid)

    prefix = f"{token}-soak"
    sampler = MinuteSampler(server.pid)
    load = loadgen.Load(
        "127.0.0.1",
        port,
        key,
        prefix,
        rate=target,
        seconds=args.minutes * soak_report.MINUTE_S,
        connections=args.soak_connections,
    )
    recording = loadgen.drive(load, sampler.tick)
    check_alive((server, "frostgate serve", log))
    Processes.stop(server, sig=signal.SIGINT, grace=60.0)

    counts = count_persisted(
        args.db_url, data_dir, tenant, [p["id_prefix"] for p in peak.runs.values()]
    )
    peak_persisted = persistence_verdict(peak, counts, args.connections)
    stored = stored_counts(args.db_url, data_dir, tenant, prefix, len(recording.status))
    acknowledged, lost, duplicated, unacknowledged = soak_report.exactly_once(
        recording.status, stored
    )
    integrity = soak_report.Integrity(
        acknowledged=acknowledged,
        lost=lost,
        duplicated=duplicated,
        stored_unacknowledged=unacknowledged,
        ledger_matches_rows=counts["ledger_head_size"] == counts["total_rows"],
        peak_run_persisted=bool(peak_persisted["ok"]),
    )
    rows = soak_report.minute_rows(
        recording.rate, recording.status, recording.done, sampler.samples
    )
    misses = soak_report.judge(rows, target, integrity)

    result = {
        "schema": 1,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "command": [sys.executable, *sys.argv],
        "config": {k: v for k, v in vars(args).items() if k != "db_url"}
        | {"db": "PostgreSQL" if args.db_url else "SQLite"},
        "machine": machine,
        "peak": peak_figures,
        "target_rate": target,
        "minutes": [vars(r) for r in rows],
        "integrity": vars(integrity),
        "database": counts,
        "server_exit_code_after_sigint": server.returncode,
        "misses": misses,
        "pass": not misses,
        "server_log_tail": tail(log, 40),
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{started_at:%Y%m%dT%H%M%SZ}-{(machine['git_commit'] or 'nogit')[:10]}"
    out_file = out_dir / f"soak-{stamp}.json"
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    print_report(rows, args.load, target, peak_figures, integrity, misses, machine, out_file)
    return 1 if misses else 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def print_report(
    rows: list[soak_report.Minute],
    load: float,
    target: float,
    peak: dict[str, Any],
    integrity: soak_report.Integrity,
    misses: list[str],
    machine: dict[str, Any],
    out_file: Path,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(
        title=(
            f"FrostGate soak — /v1/defend at {target:,.0f}/s ({load:.0%} of the measured peak "
            f"{peak['ok_requests_per_s']:,.0f}/s), {len(rows)} min, {machine['nproc']} CPUs, "
            f"commit {machine['git_commit'][:10]}{'+dirty' if machine['git_dirty_files'] else ''}"
        ),
        title_justify="left",
    )
    for col in (
        "minute", "requests", "2xx/s", "p50 ms", "p99 ms", "max ms", "5xx", "errors", "unfinished",
        "RSS MiB", "server cores", "other cores",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r.minute),
            f"{r.requests:,}",
            f"{r.ok_per_s:,.0f}",
            _ms(r.p50_ms),
            _ms(r.p99_ms),
            _ms(r.max_ms),
            str(r.five_xx),
            str(r.errors),
            str(r.unfinished),
            f"{r.rss_mib:,.1f}",
            f"{r.server_cores:.2f}",
            f"{r.other_cores:.2f}",
        )
    console.print(table)
    console.print(
        f"acknowledged {integrity.acknowledged:,}; lost {integrity.lost}; stored twice "
        f"{integrity.duplicated}; stored without an answer {integrity.stored_unacknowledged}; "
        f"ledger head = rows: {integrity.ledger_matches_rows}; peak run stored: "
        f"{integrity.peak_run_persisted}; RSS growth after minute 1: "
        f"{soak_report.rss_growth(rows):+.1%}"
    )
    if misses:
        console.print("[red]FAIL[/red]:")
        for miss in misses:
            console.print(f"  - {miss}")
    else:
        console.print("[green]PASS[/green]")
    console.print(f"results: {out_file}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
