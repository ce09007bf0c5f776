#!/usr/bin/env python3
"""FrostGate benchmark harness (``make bench`` runs ``.venv/bin/python bench/run.py``).

One run:

1. creates a fresh temporary data directory, runs ``frostgate migrate``, creates tenant
   ``bench``, mints a key with ``defend:write,ingest:write`` and starts ``frostgate serve``
   (one process) on a free loopback port; starts the bare FastAPI baseline
   (``bench/bare_app.py``, same uvicorn settings) on another free port;
2. drives ``wrk`` (``bench/events.lua``) against: bare ``/v1/defend``, FrostGate
   ``/v1/defend``, bare ``/v1/ingest`` and FrostGate ``/v1/ingest`` (1,000-event batches),
   each with a warm-up run and a measured run; every event carries a fresh event_id and a
   varying src_ip / failed_auths count, so nothing is an idempotent replay or a cache hit;
3. stops the server gracefully and counts the rows in its ``decisions`` table, per
   scenario and phase, against the 2xx answers wrk counted, and checks the ledger head
   size equals the number of decision rows;
4. measures the CPU the server, wrk and every other process used during each measured
   run (a run during which other processes used more than ``--quiet-cores`` is flagged
   ``disturbed``; before each measured run the harness waits up to ``--quiet-wait`` s
   for a quiet machine);
5. prints one table and writes the raw figures, machine facts and configuration to
   ``bench-results/<utc>-<commit>.json`` (``bench/summarize.py`` takes medians over files);
6. exits 0 whether or not targets are met (misses are in the table); non-zero only when
   the harness itself fails (2: wrk missing, a server did not start, wrk produced no
   result; 130: interrupted);
7. kills every process it started, on success, on error and on Ctrl-C / SIGTERM.

Configuration: flags, or the matching ``FG_BENCH_*`` environment variables (flags win).
``--profile`` additionally samples the server with py-spy during each measured FrostGate
run (profiled figures carry py-spy's overhead; take throughput figures from plain runs).
``--gc-stats`` reports the server's garbage-collection pauses inside each measured run.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    provision,
    require_wrk,
    run_main,
    run_wrk,
    server_env,
    start_serve,
    tail,
    wait_idle,
    wait_quiet,
    wait_ready,
)

BENCH_DIR = REPO / "bench"
BARE_APP = BENCH_DIR / "bare_app.py"
PROBE_DIR = BENCH_DIR / "_probe"  # a sitecustomize for --gc-stats / --gc-off / --switch-interval
RESULTS_DIR = REPO / "bench-results"

TARGETS = {
    "defend": {"min_events_per_s": 2000.0, "max_p99_ms": 25.0, "min_ratio_to_bare": 0.5},
    "ingest": {"min_events_per_s": 30000.0},
}

# -- configuration ------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark FrostGate /v1/defend and /v1/ingest against bare FastAPI.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--duration",
        type=int,
        default=int(env_value("FG_BENCH_DURATION", "15")),
        help="measured seconds per scenario (FG_BENCH_DURATION)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=int(env_value("FG_BENCH_WARMUP", "3")),
        help="warm-up seconds per scenario, not reported (FG_BENCH_WARMUP)",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=int(env_value("FG_BENCH_CONNECTIONS", "16")),
        help="wrk connections (FG_BENCH_CONNECTIONS)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(env_value("FG_BENCH_THREADS", "2")),
        help="wrk threads (FG_BENCH_THREADS)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=int(env_value("FG_BENCH_BATCH", "1000")),
        help="events per /v1/ingest request (FG_BENCH_BATCH)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        default=env_value("FG_BENCH_QUICK", "0") not in ("0", "false", ""),
        help="smoke check: 1 s warm-up, 3 s measured (FG_BENCH_QUICK=1)",
    )
    p.add_argument(
        "--only",
        default=env_value("FG_BENCH_ONLY", "defend,ingest"),
        help="comma-separated subset of: defend, ingest (FG_BENCH_ONLY)",
    )
    p.add_argument(
        "--db-url",
        default=env_value("FG_BENCH_DB_URL", ""),
        help="FG_DB_URL for the server (empty: SQLite in the temp data dir) (FG_BENCH_DB_URL)",
    )
    p.add_argument(
        "--wrk",
        default=env_value("FG_BENCH_WRK", shutil.which("wrk") or "/usr/bin/wrk"),
        help="wrk binary (FG_BENCH_WRK)",
    )
    p.add_argument(
        "--python",
        default=env_value("FG_BENCH_PYTHON", ""),
        help="interpreter with frostgate installed (default: the repo .venv, else this one)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        default=env_value("FG_BENCH_PROFILE", "0") not in ("0", "false", ""),
        help="sample the FrostGate server with py-spy during measured runs (FG_BENCH_PROFILE=1)",
    )
    p.add_argument(
        "--py-spy",
        default=env_value("FG_BENCH_PYSPY", ""),
        help="py-spy binary for --profile (FG_BENCH_PYSPY; default: PATH, /tmp/fg-bench-pyspy/bin)",
    )
    p.add_argument(
        "--profile-rate",
        type=int,
        default=int(env_value("FG_BENCH_PROFILE_RATE", "200")),
        help="py-spy samples per second",
    )
    p.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only the thread holding the GIL (where Python CPU goes)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=float(env_value("FG_BENCH_QUIET_WAIT", "60")),
        help="before each measured run, wait up to this many seconds for other processes to "
        "use < --quiet-cores (0: do not wait) (FG_BENCH_QUIET_WAIT)",
    )
    p.add_argument(
        "--quiet-cores",
        type=float,
        default=float(env_value("FG_BENCH_QUIET_CORES", "0.15")),
        help="CPU cores other processes may use for the machine to count as quiet",
    )
    p.add_argument(
        "--gc-stats",
        action="store_true",
        default=env_value("FG_BENCH_GC_STATS", "0") not in ("0", "false", ""),
        help="record every garbage collection in the FrostGate server and report the pauses "
        "inside each measured run (FG_BENCH_GC_STATS=1)",
    )
    p.add_argument(
        "--gc-off",
        action="store_true",
        default=env_value("FG_BENCH_GC_OFF", "0") not in ("0", "false", ""),
        help="experiment: gc.disable() in the FrostGate server (FG_BENCH_GC_OFF=1)",
    )
    p.add_argument(
        "--switch-interval",
        type=float,
        default=float(env_value("FG_BENCH_SWITCH_INTERVAL", "0")),
        help="experiment: sys.setswitchinterval() in both servers, via a sitecustomize on "
        "PYTHONPATH (0: leave Python's default, 0.005 s) (FG_BENCH_SWITCH_INTERVAL)",
    )
    p.add_argument(
        "--out",
        default=env_value("FG_BENCH_OUT", str(RESULTS_DIR)),
        help="directory for the JSON result",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp data dir and server logs")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3, 1
    if args.duration < 1 or args.warmup < 0 or args.connections < 1 or args.threads < 1:
        p.error("duration >= 1, warmup >= 0, connections >= 1, threads >= 1")
    if args.threads > args.connections:
        p.error("wrk needs connections >= threads")
    if not 1 <= args.batch <= 1000:
        p.error("--batch must be 1..1000 (the server's max_batch_events)")
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if not args.only or any(s not in ("defend", "ingest") for s in args.only):
        p.error("--only takes defend and/or ingest")
    return args


# -- scenarios ----------------------------------------------------------------------------


def build_scenarios(only: list[str], batch: int) -> list[Scenario]:
    out: list[Scenario] = []
    if "defend" in only:
        out.append(Scenario("bare-defend", "bare /v1/defend", "bare", "defend", "/v1/defend", 1))
        out.append(Scenario("defend", "/v1/defend", "frostgate", "defend", "/v1/defend", 1))
    if "ingest" in only:
        out.append(
            Scenario(
                "bare-ingest",
                f"bare /v1/ingest ({batch}/req)",
                "bare",
                "ingest",
                "/v1/ingest",
                batch,
            )
        )
        out.append(
            Scenario(
                "ingest", f"/v1/ingest ({batch}/req)", "frostgate", "ingest", "/v1/ingest", batch
            )
        )
    return out


# -- profile ------------------------------------------------------------------------------


def find_py_spy(explicit: str) -> str | None:
    for candidate in (explicit, shutil.which("py-spy") or "", "/tmp/fg-bench-pyspy/bin/py-spy"):  # noqa: S108
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(file: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def summarize_profile(raw: Path, *, rate: int, seconds: float, top: int = 25) -> dict[str, Any]:
    """Top frames from py-spy's collapsed ("raw") output, overall and per thread.

    ``self`` counts samples whose innermost frame is the function (with its line);
    ``inclusive`` counts samples with the function anywhere on the stack. ``busy`` is a
    thread's sampled (non-idle) fraction of the wall time."""
    if not raw.is_file():
        return {"error": "py-spy wrote no output"}
    total = 0
    per_thread: dict[str, dict[str, collections.Counter[str]]] = {}
    thread_totals: collections.Counter[str] = collections.Counter()
    self_all: collections.Counter[str] = collections.Counter()
    incl_all: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        thread = "?"
        if frames and frames[0].startswith("thread ("):
            thread = frames[0].split(":", 1)[1].strip() if ":" in frames[0] else frames[0]
            frames = frames[1:]
        counters = per_thread.setdefault(
            thread,
            {
                "self": collections.Counter(),
                "incl": collections.Counter(),
                "app": collections.Counter(),
                "package": collections.Counter(),
            },
        )
        thread_totals[thread] += count
        if frames:
            leaf = _with_line(frames[-1])
            counters["self"][leaf] += count
            counters["package"][_package(frames[-1])] += count
            self_all[leaf] += count
        for name in {_function(f) for f in frames}:
            counters["incl"][name] += count
            incl_all[name] += count
            if "(frostgate/" in name:
                counters["app"][name] += count

    def table(counter: collections.Counter[str], denominator: int) -> list[dict[str, Any]]:
        return [
            {
                "frame": name,
                "samples": n,
                "percent": round(100 * n / denominator, 1) if denominator else 0.0,
            }
            for name, n in counter.most_common(top)
        ]

    expected = rate * seconds
    return {
        "samples": total,
        "rate_hz": rate,
        "seconds": seconds,
        "top_self": table(self_all, total),
        "top_inclusive": table(incl_all, total),
        "threads": [
            {
                "thread": name,
                "samples": n,
                "busy": round(n / expected, 3) if expected else None,
                "top_self": table(per_thread[name]["self"], n),
                "top_inclusive": table(per_thread[name]["incl"], n),
                # Inclusive, FrostGate's own functions only: the wrappers around them
                # (uvicorn, Starlette, Typer) dominate the plain inclusive list.
                "top_inclusive_frostgate": table(per_thread[name]["app"], n),
                # Self samples by the package of the innermost frame.
                "self_by_package": table(per_thread[name]["package"], n),
            }
            for name, n in thread_totals.most_common()
        ],
    }


def _package(frame: str) -> str:
    """Top-level package or module of a frame (py-spy prints paths relative to sys.path)."""
    m = _FRAME.match(frame)
    if not m:
        return "?"
    return _short(m["file"]).split("/", 1)[0].removesuffix(".py")


def _function(frame: str) -> str:
    m = _FRAME.match(frame)
    return f"{m['func']} ({_short(m['file'])})" if m else frame


def _with_line(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    line = f":{m['line']}" if m["line"] else ""
    return f"{m['func']} ({_short(m['file'])}{line})"


# -- garbage collection ------------------------------------------------------------------


def attribute_gc(path: Path, scenarios: list[Scenario]) -> None:
    """Per FrostGate scenario: the collections that started inside its measured run."""
    try:
        collections_ = json.loads(path.read_text())["collections"]
    except (OSError, ValueError, KeyError):
        for s in scenarios:
            if s.server == "frostgate":
                s.gc = {"error": "the server wrote no GC record (did it exit cleanly?)"}
        return
    for s in scenarios:
        if s.server != "frostgate" or "measured" not in s.runs:
            continue
        start, end = s.runs["measured"]["window"]
        inside = [(gen, secs) for wall, gen, secs in collections_ if start <= wall <= end]
        out: dict[str, Any] = {"window_s": round(end - start, 3)}
        for gen in (0, 1, 2):
            pauses = sorted(secs * 1000 for g, secs in inside if g == gen)
            out[f"gen{gen}"] = {
                "count": len(pauses),
                "total_ms": round(sum(pauses), 1),
                "max_ms": round(pauses[-1], 2) if pauses else 0.0,
                "median_ms": round(pauses[len(pauses) // 2], 2) if pauses else 0.0,
            }
        total = sum(secs for _, secs in inside)
        out["total_ms"] = round(total * 1000, 1)
        out["share_of_wall"] = round(total / (end - start), 4) if end > start else None
        s.gc = out


# -- output -------------------------------------------------------------------------------


def _rate(value: float) -> str:
    """Requests per second: whole numbers, one decimal below 100 (ingest batches)."""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def evaluate_targets(scenarios: list[Scenario]) -> None:
    bare = {s.mode: s for s in scenarios if s.server == "bare"}
    for s in scenarios:
        d = s.runs["measured"]["derived"]
        base = bare.get(s.mode)
        if s.server == "bare" or base is None:
            d["ratio_to_bare"] = 1.0 if s.server == "bare" else None
        else:
            base_rps = base.runs["measured"]["derived"]["ok_requests_per_s"]
            d["ratio_to_bare"] = d["ok_requests_per_s"] / base_rps if base_rps else None
        if s.server == "bare":
            d["target"] = "baseline"
            d["pass"] = None
            continue
        t = TARGETS[s.mode]
        checks = {
            "throughput": d["events_per_s"] >= t["min_events_per_s"],
            "errors": d["errors"] == 0,
            "persisted": bool(s.persisted.get("ok")),
        }
        parts = [f"≥{t['min_events_per_s']:,.0f} ev/s"]
        if "max_p99_ms" in t:
            checks["p99"] = d["p99_ms"] <= t["max_p99_ms"]
            parts.append(f"p99≤{t['max_p99_ms']:g}ms")
        if "min_ratio_to_bare" in t:
            checks["ratio"] = (
                d["ratio_to_bare"] is not None and d["ratio_to_bare"] >= t["min_ratio_to_bare"]
            )
            parts.append(f"≥{t['min_ratio_to_bare']:.2f}xbare")
        d["target"] = ", ".join(parts)
        d["checks"] = checks
        d["pass"] = all(checks.values())


def print_table(
    scenarios: list[Scenario], config: dict[str, Any], machine: dict[str, Any], out_file: Path
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    title = (
        f"FrostGate bench — {config['connections']} connections, {config['threads']} wrk threads, "
        f"{config['duration_s']} s measured (+{config['warmup_s']} s warm-up), "
        f"{'PostgreSQL' if config['db_url'] else 'SQLite'}, {machine['nproc']} CPUs, "
        f"commit {machine['git_commit'][:10]}{'+dirty' if machine['git_dirty_files'] else ''}"
        + (
            f", switch interval {config['switch_interval_s']} s"
            if config["switch_interval_s"]
            else ""
        )
        + (", GC DISABLED in the server (experiment)" if config["gc_off"] else "")
    )
    table = Table(title=title, title_justify="left")
    for col, justify in (
        ("endpoint", "left"),
        ("requests/s", "right"),
        ("events/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("errors", "right"),
        ("CPU µs/event", "right"),
        ("x bare", "right"),
        ("db rows / 2xx", "right"),
        ("target", "left"),
        ("result", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in scenarios:
        d = s.runs["measured"]["derived"]
        ratio = d.get("ratio_to_bare")
        if s.persisted:
            ph = s.persisted["phases"]["measured"]
            mark = "[green]✓[/green]" if s.persisted["ok"] else "[red]✗[/red]"
            persisted = f"{mark} {ph['rows_in_db']:,} / {ph['claimed_by_2xx']:,}"
        else:
            persisted = "-"
        if d["pass"] is None:
            result = "-"
        elif d["pass"]:
            result = "[green]PASS[/green]"
        else:
            missed = [k for k, v in d["checks"].items() if not v]
            result = "[red]FAIL[/red]: " + ",".join(missed)
        errors = f"{d['errors']:,}"
        if d["status_codes"]:
            errors += f" ({d['status_codes']})"
        table.add_row(
            s.label,
            _rate(d["requests_per_s"]),
            f"{d['events_per_s']:,.0f}",
            f"{d['p50_ms']:.2f}",
            f"{d['p99_ms']:.2f}",
            errors,
            "-" if d["server_cpu_us_per_event"] is None else f"{d['server_cpu_us_per_event']:,.0f}",
            "-" if ratio is None else f"{ratio:.3f}",
            persisted,
            d["target"],
            result,
        )
    console.print(table)
    for s in scenarios:
        c = s.runs["measured"]["cpu"]
        console.print(
            f"  {s.label}: server {c['server_cores']} cores (user {c['server_user_cores']}, "
            f"sys {c['server_sys_cores']}), wrk {c['wrk_cores']} cores, "
            f"other processes {c['other_cores']} cores (of {machine['nproc']})"
        )
        if s.runs["measured"]["derived"]["disturbed"]:
            console.print(
                f"  [yellow]warning:[/yellow] other processes used {c['other_cores']} cores during "
                f"{s.label}; figures are disturbed"
            )
    for s in scenarios:
        for thread in s.profile.get("threads", [])[:3]:
            console.print(
                f"\n[bold]py-spy {s.label}[/bold] thread {thread['thread']}: "
                f"{thread['samples']} samples, busy {thread['busy']:.0%} of wall time; "
                "top self frames (% of the thread's samples):"
            )
            for row in thread["top_self"][:12]:
                console.print(f"  {row['percent']:5.1f}%  {row['frame']}")
    for s in scenarios:
        if s.gc and "error" not in s.gc:
            g = s.gc
            console.print(
                f"  GC in {s.label} (measured run): {g['total_ms']:,.0f} ms = "
                f"{g['share_of_wall']:.1%} of wall; gen2 {g['gen2']['count']}x "
                f"(median {g['gen2']['median_ms']} ms, max {g['gen2']['max_ms']} ms), "
                f"gen1 {g['gen1']['count']}x (max {g['gen1']['max_ms']} ms), "
                f"gen0 {g['gen0']['count']}x (max {g['gen0']['max_ms']} ms)"
            )
        elif s.gc:
            console.print(f"  GC in {s.label}: {s.gc['error']}")
    console.print(f"\nresults: {out_file}")


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_main("bench", args.keep, lambda procs, tmp: _bench(args, procs, tmp))


def _bench(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    require_wrk(args.wrk)
    python = default_python(args.python)
    profiler_bin = None
    if args.profile:
        profiler_bin = find_py_spy(args.py_spy)
        if profiler_bin is None:
            raise HarnessError(
                "--profile needs py-spy (pip install py-spy into a separate venv; pass --py-spy)"
            )

    started_at = datetime.now(UTC)
    token = uuid.uuid4().hex[:10]
    data_dir = tmp / "data"
    data_dir.mkdir()
    fg_port, bare_port = free_port(), free_port()
    while bare_port == fg_port:
        bare_port = free_port()
    tenant = "bench" if not args.db_url else f"bench-{token}"

    env = server_env(data_dir, fg_port, args.db_url)
    for name in ("BENCH_PROBE_SWITCH_INTERVAL", "BENCH_PROBE_GC_OFF", "BENCH_PROBE_GC_OUT"):
        env.pop(name, None)
    gc_out = tmp / "gc.json"
    serve_env = dict(env)
    if args.switch_interval > 0 or args.gc_stats or args.gc_off:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROBE_DIR), env.get("PYTHONPATH")]))
        if args.switch_interval > 0:
            env["BENCH_PROBE_SWITCH_INTERVAL"] = repr(args.switch_interval)
        serve_env = dict(env)
        if args.gc_off:
            serve_env["BENCH_PROBE_GC_OFF"] = "1"
        if args.gc_stats:
            serve_env["BENCH_PROBE_GC_OUT"] = str(gc_out)
    fg = [python, "-m", "frostgate.cli"]

    machine = machine_info(python, args.wrk)
    config = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "threads": args.threads,
        "batch": args.batch,
        "quick": args.quick,
        "db_url": args.db_url.split("@")[-1] if args.db_url else "",
        "profile": args.profile,
        "profile_rate": args.profile_rate if args.profile else None,
        "profile_gil": args.profile_gil if args.profile else None,
        "switch_interval_s": args.switch_interval or None,
        "gc_stats": args.gc_stats,
        "gc_off": args.gc_off,
        "quiet_wait_s": args.quiet_wait,
        "quiet_cores": args.quiet_cores,
        "server_env": sorted(k for k in env if k.startswith("FG_")),
        "python": python,
        "wrk_timeout_s": 30,
    }
    print(
        f"bench: token {token}, data dir {data_dir}, FrostGate :{fg_port}, bare :{bare_port}",
        file=sys.stderr,
    )

    key = provision(fg, env, tenant, "defend:write,ingest:write")

    fg_log = tmp / "frostgate.log"
    bare_log = tmp / "bare.log"
    fg_proc = start_serve(procs, fg, fg_port, serve_env, fg_log)
    with bare_log.open("wb") as bare_out:
        bare_proc = procs.start(
            "bare",
            [python, str(BARE_APP), "--port", str(bare_port)],
            env=env,
            stdout=bare_out,
            stderr=subprocess.STDOUT,
        )
    fg_ready = wait_ready(
        fg_proc, f"http://127.0.0.1:{fg_port}/health/ready", "frostgate serve", fg_log
    )
    bare_ready = wait_ready(
        bare_proc, f"http://127.0.0.1:{bare_port}/health/ready", "bare app", bare_log
    )
    print(
        f"bench: servers ready (frostgate {fg_ready:.1f} s, bare {bare_ready:.1f} s)",
        file=sys.stderr,
    )

    scenarios = build_scenarios(args.only, args.batch)
    for s in scenarios:
        port, pid, key_arg = (
            (fg_port, fg_proc.pid, key)
            if s.server == "frostgate"
            else (bare_port, bare_proc.pid, "")
        )
        url = f"http://127.0.0.1:{port}"
        for phase, seconds in (("warmup", args.warmup), ("measured", args.duration)):
            if seconds == 0:
                continue
            check_alive((fg_proc, "frostgate serve", fg_log), (bare_proc, "bare app", bare_log))
            profiler = None
            raw_profile = tmp / f"profile-{s.key}.txt"
            if profiler_bin and phase == "measured" and s.server == "frostgate":
                profiler = [
                    profiler_bin,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(args.duration),
                    "--rate",
                    str(args.profile_rate),
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "--output",
                    str(raw_profile),
                    *(["--gil"] if args.profile_gil else []),
                ]
            settle = wait_idle(pid)
            quiet = None
            if phase == "measured" and args.quiet_wait > 0:
                quiet = wait_quiet(args.quiet_wait, args.quiet_cores)
                if not quiet["quiet"]:
                    print(
                        f"bench: machine not quiet after {quiet['waited_s']} s (other processes "
                        f"{quiet['other_cores']} cores); measuring anyway",
                        file=sys.stderr,
                    )
            print(
                f"bench: {s.label} {phase} {seconds} s (server idle after {settle:.1f} s) ...",
                file=sys.stderr,
            )
            s.runs[phase] = run_wrk(
                procs, args, url, s, phase[0], seconds, token, key_arg, pid, profiler
            )
            s.runs[phase]["quiet_before"] = quiet
            if profiler:
                s.profile = summarize_profile(
                    raw_profile, rate=args.profile_rate, seconds=args.duration
                )
                keep = Path(args.out) / f"profile-{started_at:%Y%m%dT%H%M%SZ}-{s.key}.txt"
                with contextlib.suppress(OSError):
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(raw_profile, keep)
                    s.profile["raw_file"] = str(keep)
        s.runs["measured"]["derived"] = derive(s, args.quiet_cores)
        print(
            f"bench: {s.label}: {s.runs['measured']['derived']['requests_per_s']:,.0f} req/s, "
            f"p99 {s.runs['measured']['derived']['p99_ms']:.2f} ms",
            file=sys.stderr,
        )

    check_alive((fg_proc, "frostgate serve", fg_log), (bare_proc, "bare app", bare_log))
    # Stop FrostGate gracefully (in-flight requests finish, the writer drains), then count.
    procs.stop(fg_proc, sig=signal.SIGINT, grace=30.0)
    fg_exit = fg_proc.returncode
    if args.gc_stats:
        attribute_gc(gc_out, scenarios)
    fg_scenarios = [s for s in scenarios if s.server == "frostgate"]
    counts: dict[str, Any] = {}
    if fg_scenarios:
        prefixes = [run["id_prefix"] for s in fg_scenarios for run in s.runs.values()]
        try:
            counts = count_persisted(args.db_url, data_dir, tenant, prefixes)
        except Exception as exc:
            raise HarnessError(f"could not count decisions in the database: {exc}") from exc
        for s in fg_scenarios:
            s.persisted = persistence_verdict(s, counts, args.connections)
        rows_by_prefix = sum(counts["by_prefix"].values())
        counts["ledger_head_matches_rows"] = counts.get("ledger_head_size") == counts.get(
            "total_rows"
        )
        counts["rows_outside_bench_prefixes"] = counts.get("total_rows", 0) - rows_by_prefix
        if not counts["ledger_head_matches_rows"]:
            for s in fg_scenarios:
                s.persisted["ok"] = False

    evaluate_targets(scenarios)
    finished_at = datetime.now(UTC)
    machine["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    result = {
        "schema": 1,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "command": [sys.executable, *sys.argv],
        "config": config,
        "machine": machine,
        "targets": TARGETS,
        "frostgate_exit_code_after_sigint": fg_exit,
        "database": counts,
        "scenarios": [
            {
                "key": s.key,
                "label": s.label,
                "server": s.server,
                "mode": s.mode,
                "path": s.path,
                "events_per_request": s.batch,
                "measured": s.runs["measured"]["derived"],
                "wrk": {
                    phase: {k: v for k, v in run.items() if k != "derived"}
                    for phase, run in s.runs.items()
                },
                "persisted": s.persisted,
                "profile": s.profile,
                "gc": s.gc,
            }
            for s in scenarios
        ],
        "server_log_tail": tail(fg_log, 40),
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = (
        out_dir / f"{started_at:%Y%m%dT%H%M%SZ}-{(machine['git_commit'] or 'nogit')[:10]}.json"
    )
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    print_table(scenarios, config, machine, out_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
