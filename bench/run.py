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
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
LUA_SCRIPT = BENCH_DIR / "events.lua"
BARE_APP = BENCH_DIR / "bare_app.py"
PROBE_DIR = BENCH_DIR / "_probe"  # a sitecustomize for --gc-stats / --gc-off / --switch-interval
RESULTS_DIR = REPO / "bench-results"

TARGETS = {
    "defend": {"min_events_per_s": 2000.0, "max_p99_ms": 25.0, "min_ratio_to_bare": 0.5},
    "ingest": {"min_events_per_s": 30000.0},
}

CLK_TCK = os.sysconf("SC_CLK_TCK")


class HarnessError(Exception):
    """The harness could not measure (as opposed to: it measured a miss)."""


class Interrupted(Exception):
    """SIGTERM/SIGHUP, handled like Ctrl-C."""


# -- configuration ------------------------------------------------------------------------


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark FrostGate /v1/defend and /v1/ingest against bare FastAPI.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--duration",
        type=int,
        default=int(_env("FG_BENCH_DURATION", "15")),
        help="measured seconds per scenario (FG_BENCH_DURATION)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=int(_env("FG_BENCH_WARMUP", "3")),
        help="warm-up seconds per scenario, not reported (FG_BENCH_WARMUP)",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=int(_env("FG_BENCH_CONNECTIONS", "16")),
        help="wrk connections (FG_BENCH_CONNECTIONS)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(_env("FG_BENCH_THREADS", "2")),
        help="wrk threads (FG_BENCH_THREADS)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=int(_env("FG_BENCH_BATCH", "1000")),
        help="events per /v1/ingest request (FG_BENCH_BATCH)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        default=_env("FG_BENCH_QUICK", "0") not in ("0", "false", ""),
        help="smoke check: 1 s warm-up, 3 s measured (FG_BENCH_QUICK=1)",
    )
    p.add_argument(
        "--only",
        default=_env("FG_BENCH_ONLY", "defend,ingest"),
        help="comma-separated subset of: defend, ingest (FG_BENCH_ONLY)",
    )
    p.add_argument(
        "--db-url",
        default=_env("FG_BENCH_DB_URL", ""),
        help="FG_DB_URL for the server (empty: SQLite in the temp data dir) (FG_BENCH_DB_URL)",
    )
    p.add_argument(
        "--wrk",
        default=_env("FG_BENCH_WRK", shutil.which("wrk") or "/usr/bin/wrk"),
        help="wrk binary (FG_BENCH_WRK)",
    )
    p.add_argument(
        "--python",
        default=_env("FG_BENCH_PYTHON", ""),
        help="interpreter with frostgate installed (default: the repo .venv, else this one)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        default=_env("FG_BENCH_PROFILE", "0") not in ("0", "false", ""),
        help="sample the FrostGate server with py-spy during measured runs (FG_BENCH_PROFILE=1)",
    )
    p.add_argument(
        "--py-spy",
        default=_env("FG_BENCH_PYSPY", ""),
        help="py-spy binary for --profile (FG_BENCH_PYSPY; default: PATH, /tmp/fg-bench-pyspy/bin)",
    )
    p.add_argument(
        "--profile-rate",
        type=int,
        default=int(_env("FG_BENCH_PROFILE_RATE", "200")),
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
        default=float(_env("FG_BENCH_QUIET_WAIT", "60")),
        help="before each measured run, wait up to this many seconds for other processes to "
        "use < --quiet-cores (0: do not wait) (FG_BENCH_QUIET_WAIT)",
    )
    p.add_argument(
        "--quiet-cores",
        type=float,
        default=float(_env("FG_BENCH_QUIET_CORES", "0.15")),
        help="CPU cores other processes may use for the machine to count as quiet",
    )
    p.add_argument(
        "--gc-stats",
        action="store_true",
        default=_env("FG_BENCH_GC_STATS", "0") not in ("0", "false", ""),
        help="record every garbage collection in the FrostGate server and report the pauses "
        "inside each measured run (FG_BENCH_GC_STATS=1)",
    )
    p.add_argument(
        "--gc-off",
        action="store_true",
        default=_env("FG_BENCH_GC_OFF", "0") not in ("0", "false", ""),
        help="experiment: gc.disable() in the FrostGate server (FG_BENCH_GC_OFF=1)",
    )
    p.add_argument(
        "--switch-interval",
        type=float,
        default=float(_env("FG_BENCH_SWITCH_INTERVAL", "0")),
        help="experiment: sys.setswitchinterval() in both servers, via a sitecustomize on "
        "PYTHONPATH (0: leave Python's default, 0.005 s) (FG_BENCH_SWITCH_INTERVAL)",
    )
    p.add_argument(
        "--out",
        default=_env("FG_BENCH_OUT", str(RESULTS_DIR)),
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


# -- process management -------------------------------------------------------------------


def _child_setup() -> None:  # runs in the child between fork and exec
    os.setsid()  # own process group: Ctrl-C reaches only us; we kill the group
    with contextlib.suppress(Exception):
        import ctypes

        # PR_SET_PDEATHSIG: if the harness dies without cleanup, the child gets SIGTERM.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Processes:
    """Every process the harness starts; ``stop_all`` ends them (group-wise, by pid)."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, preexec_fn=_child_setup, **kwargs)  # noqa: S603
        self._procs.append((name, proc))
        return proc

    @staticmethod
    def stop(
        proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, grace: float = 15.0
    ) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        # Whatever is left of its group (the leader has exited or ignored the signal).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        for _name, proc in reversed(self._procs):
            self.stop(proc, grace=5.0)
        self._procs.clear()


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


# -- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, name: str, log: Path, timeout: float = 60.0
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise HarnessError(
                f"{name} exited with {proc.returncode} before it was ready; log:\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback only
                if resp.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise HarnessError(f"{name} not ready at {url} after {timeout:.0f} s; log:\n{_tail(log)}")


def check_alive(*servers: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    for proc, name, log in servers:
        if proc.poll() is not None:
            raise HarnessError(
                f"{name} exited with {proc.returncode} during the run; log:\n{_tail(log)}"
            )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(cmd: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    if done.returncode != 0:
        raise HarnessError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def proc_cpu_split(pid: int) -> tuple[float, float] | None:
    """(utime, stime) of a process (all its threads) in seconds, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float | None:
    split = proc_cpu_split(pid)
    return None if split is None else split[0] + split[1]


def wait_idle(
    pid: int, *, below_cores: float = 0.05, window: float = 0.25, timeout: float = 60.0
) -> float:
    """Wait until the server's CPU use drops below ``below_cores`` over ``window`` seconds:
    requests left in flight by the previous wrk run must not spill into the next one."""
    started = time.monotonic()
    last = proc_cpu_seconds(pid)
    while last is not None and time.monotonic() - started < timeout:
        time.sleep(window)
        now = proc_cpu_seconds(pid)
        if now is None or (now - last) / window < below_cores:
            break
        last = now
    return time.monotonic() - started


def wait_quiet(limit_s: float, cores: float, *, window: float = 1.0) -> dict[str, Any]:
    """Wait (up to ``limit_s``) until the whole machine uses < ``cores`` CPU over ``window``
    seconds. Called while our servers are idle, so what is measured is other processes."""
    started = time.monotonic()
    level = None
    while True:
        busy0 = system_busy_seconds()
        time.sleep(window)
        level = (system_busy_seconds() - busy0) / window
        waited = time.monotonic() - started
        if level < cores or waited >= limit_s:
            return {
                "waited_s": round(waited, 1),
                "other_cores": round(level, 3),
                "quiet": level < cores,
            }


def system_busy_seconds() -> float:
    """CPU seconds spent not idle, summed over all CPUs, since boot."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user/nice
    return (total - idle) / CLK_TCK


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def git(*args: str) -> str:
    try:
        return subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info(python: str, wrk: str) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    versions_code = (
        "import json, sys, sqlite3, importlib.metadata as m\n"
        "out = {'python': sys.version.split()[0], 'sqlite': sqlite3.sqlite_version}\n"
        "for d in ('frostgate', 'fastapi', 'starlette', 'uvicorn', 'uvloop', 'httptools',\n"
        "          'orjson', 'pydantic', 'sqlalchemy'):\n"
        "    try: out[d] = m.version(d)\n"
        "    except Exception: out[d] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        server_versions = json.loads(
            subprocess.run(  # noqa: S603
                [python, "-c", versions_code],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        server_versions = {}
    wrk_version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
        wrk_version = (out.stdout + out.stderr).splitlines()[0].strip()
    status = git("status", "--porcelain")
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "mem_total_mib": mem_kb // 1024,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python_harness": sys.version.split()[0],
        "python": server_versions.get("python"),
        "packages": server_versions,
        "wrk": wrk_version,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty_files": len(status.splitlines()) if status else 0,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


# -- scenarios ----------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str  # unique, used in event ids (no "_" or "%": they are LIKE wildcards)
    label: str
    server: str  # "bare" | "frostgate"
    mode: str  # "defend" | "ingest"
    path: str
    batch: int
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # phase -> wrk figures
    cpu: dict[str, Any] = field(default_factory=dict)
    persisted: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    gc: dict[str, Any] = field(default_factory=dict)


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


_FGBENCH = re.compile(r"^FGBENCH (\{.*\})\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)


def run_wrk(
    procs: Processes,
    args: argparse.Namespace,
    base_url: str,
    scenario: Scenario,
    phase: str,
    seconds: int,
    token: str,
    key: str,
    server_pid: int,
    profiler: list[str] | None = None,
) -> dict[str, Any]:
    prefix = f"{token}-{scenario.key}-{phase}"
    cmd = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        base_url,
        "--",
        scenario.mode,
        scenario.path,
        prefix,
        key or "-",
        str(scenario.batch),
    ]
    spy = None
    if profiler:
        spy = procs.start("py-spy", profiler, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.3)  # let it attach before load starts
    cpu_server0 = proc_cpu_split(server_pid)
    busy0 = system_busy_seconds()
    kids0 = children_cpu_seconds()
    wall0 = time.monotonic()
    epoch0 = time.time()
    proc = procs.start(
        f"wrk {scenario.key} {phase}", cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate(timeout=seconds + 120)
    wall = time.monotonic() - wall0
    wrk_cpu = children_cpu_seconds() - kids0
    busy = system_busy_seconds() - busy0
    cpu_server1 = proc_cpu_split(server_pid)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        detail = err.decode(errors="replace")[-2000:]
        raise HarnessError(f"wrk failed ({proc.returncode}) for {scenario.label}: {detail}")
    match = _FGBENCH.search(text)
    if match is None:
        raise HarnessError(f"wrk printed no FGBENCH line for {scenario.label}:\n{text[-2000:]}")
    figures: dict[str, Any] = json.loads(match.group(1))
    rps = _RPS.search(text)
    figures["wrk_requests_per_sec"] = float(rps.group(1)) if rps else None
    figures["wrk_text"] = text.replace(match.group(0), "").strip()
    figures["id_prefix"] = prefix
    server_user = server_sys = server_cpu = None
    if cpu_server0 is not None and cpu_server1 is not None:
        server_user = cpu_server1[0] - cpu_server0[0]
        server_sys = cpu_server1[1] - cpu_server0[1]
        server_cpu = server_user + server_sys
    figures["window"] = [epoch0, epoch0 + wall]
    figures["cpu"] = {
        "wall_s": round(wall, 3),
        "server_cpu_s": server_cpu,
        "server_cores": None if server_cpu is None else round(server_cpu / wall, 3),
        "server_user_cores": None if server_user is None else round(server_user / wall, 3),
        "server_sys_cores": None if server_sys is None else round(server_sys / wall, 3),
        "wrk_cores": round(wrk_cpu / wall, 3),
        "system_busy_cores": round(busy / wall, 3),
        "other_cores": None
        if server_cpu is None
        else round(max(0.0, busy - server_cpu - wrk_cpu) / wall, 3),
    }
    if spy is not None:
        spy_out, _ = spy.communicate(timeout=60)
        figures["py_spy_output"] = (spy_out or b"").decode(errors="replace")[-2000:]
    return figures


def derive(s: Scenario, quiet_cores: float) -> dict[str, Any]:
    m = s.runs["measured"]
    other = m["cpu"]["other_cores"]
    secs = m["duration_us"] / 1e6
    socket_errors = sum(m["errors"][k] for k in ("connect", "read", "write", "timeout"))
    return {
        "seconds": round(secs, 3),
        "requests": m["requests"],
        "requests_per_s": m["requests"] / secs,
        "ok_requests_per_s": m["ok"] / secs,
        "events_per_s": m["ok"] * s.batch / secs,
        "p50_ms": m["latency_us"]["p50"] / 1000,
        "p90_ms": m["latency_us"]["p90"] / 1000,
        "p99_ms": m["latency_us"]["p99"] / 1000,
        "max_ms": m["latency_us"]["max"] / 1000,
        "non2xx": m["non2xx"],
        "status_codes": m["codes"],
        "socket_errors": socket_errors,
        "errors": m["non2xx"] + socket_errors,
        # Server CPU (user + system, all threads) per event answered 2xx; requests still in
        # flight when wrk stops make this a slight overestimate.
        "server_cpu_us_per_event": (
            m["cpu"]["server_cpu_s"] * 1e6 / (m["ok"] * s.batch)
            if m["cpu"].get("server_cpu_s") is not None and m["ok"]
            else None
        ),
        # Other processes used more CPU than --quiet-cores during the measured run.
        "disturbed": other is not None and other > quiet_cores,
    }


# -- persistence check --------------------------------------------------------------------


def count_persisted(
    db_url: str, data_dir: Path, tenant: str, prefixes: list[str]
) -> dict[str, Any]:
    """Decision rows per event-id prefix, total rows and the ledger head size for ``tenant``."""
    queries_count = "SELECT count(*) FROM decisions WHERE tenant_id = {p} AND event_id LIKE {p}"
    query_total = "SELECT count(*) FROM decisions WHERE tenant_id = {p}"
    query_head = "SELECT size FROM ledger_heads WHERE stream = {p}"
    stream = f"decisions/{tenant}"
    out: dict[str, Any] = {"by_prefix": {}}
    if not db_url:
        path = data_dir / "frostgate.db"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            for prefix in prefixes:
                out["by_prefix"][prefix] = conn.execute(
                    queries_count.format(p="?"), (tenant, prefix + "-%")
                ).fetchone()[0]
            out["total_rows"] = conn.execute(query_total.format(p="?"), (tenant,)).fetchone()[0]
            head = conn.execute(query_head.format(p="?"), (stream,)).fetchone()
            out["ledger_head_size"] = head[0] if head else 0
        finally:
            conn.close()
        sizes = {p.name: p.stat().st_size for p in data_dir.glob("frostgate.db*")}
        out["db_files_bytes"] = sizes
        return out
    import psycopg  # only for --db-url runs

    with psycopg.connect(db_url) as conn:
        for prefix in prefixes:
            out["by_prefix"][prefix] = conn.execute(
                queries_count.format(p="%s"), (tenant, prefix + "-%")
            ).fetchone()[0]
        out["total_rows"] = conn.execute(query_total.format(p="%s"), (tenant,)).fetchone()[0]
        head = conn.execute(query_head.format(p="%s"), (stream,)).fetchone()
        out["ledger_head_size"] = head[0] if head else 0
    return out


def persistence_verdict(s: Scenario, counts: dict[str, Any], connections: int) -> dict[str, Any]:
    """The DB must hold at least every decision a 2xx claimed; it may hold a few more (requests
    in flight when wrk stopped are answered and committed after wrk stopped counting)."""
    phases = {}
    ok = True
    for phase, run in s.runs.items():
        claimed = run["ok"] * s.batch
        stored = counts["by_prefix"].get(run["id_prefix"], 0)
        slack = connections * s.batch
        phase_ok = claimed <= stored <= claimed + slack
        ok = ok and phase_ok
        phases[phase] = {
            "claimed_by_2xx": claimed,
            "rows_in_db": stored,
            "allowed_extra": slack,
            "ok": phase_ok,
        }
    return {"ok": ok, "phases": phases}


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
    # Ctrl-C must work even when started with SIGINT ignored (e.g. as a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGHUP, _raise_interrupted)
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="fg-bench-"))
    try:
        return _bench(args, procs, tmp)
    except HarnessError as exc:
        print(f"bench: harness failure: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("bench: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # do not interrupt the cleanup itself
        procs.stop_all()
        if args.keep:
            print(f"bench: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _bench(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    if not (Path(args.wrk).is_file() and os.access(args.wrk, os.X_OK)):
        raise HarnessError(f"wrk not found at {args.wrk!r} (install wrk or pass --wrk)")
    python = args.python or (
        str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else sys.executable
    )
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

    env = {k: v for k, v in os.environ.items() if not k.startswith("FG_BENCH_")}
    env.pop("FG_DB_URL", None)
    env.update({"FG_DATA_DIR": str(data_dir), "FG_PORT": str(fg_port), "PYTHONUNBUFFERED": "1"})
    if args.db_url:
        env["FG_DB_URL"] = args.db_url
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

    _run([*fg, "migrate"], env, "frostgate migrate")
    _run([*fg, "tenants", "create", tenant], env, "frostgate tenants create")
    minted = _run(
        [*fg, "keys", "mint", "--tenant", tenant, "--scopes", "defend:write,ingest:write"],
        env,
        "frostgate keys mint",
    )
    lines = minted.strip().splitlines()
    key = lines[-1].strip() if lines else ""
    if not key.startswith("fgk_"):
        raise HarnessError(f"keys mint printed no key: {minted!r}")

    fg_log = tmp / "frostgate.log"
    bare_log = tmp / "bare.log"
    with fg_log.open("wb") as fg_out, bare_log.open("wb") as bare_out:
        fg_proc = procs.start(
            "frostgate",
            [*fg, "serve", "--port", str(fg_port)],
            env=serve_env,
            stdout=fg_out,
            stderr=subprocess.STDOUT,
        )
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
        "server_log_tail": _tail(fg_log, 40),
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
