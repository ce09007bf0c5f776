"""What the benchmark harnesses share (``bench/run.py``, ``bench/soak.py``).

Both start a real ``frostgate serve`` on a fresh data directory the same way, drive it
with ``wrk``, read CPU and memory from ``/proc`` and count what the database stored, and
both must leave no process behind however they end. Keeping that here means a fix to
(say) the readiness wait or the persistence count reaches every harness at once.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LUA_SCRIPT = REPO / "bench" / "events.lua"

CLK_TCK = os.sysconf("SC_CLK_TCK")


class HarnessError(Exception):
    """The harness could not measure (as opposed to: it measured a miss)."""


class Interrupted(Exception):
    """SIGTERM/SIGHUP, handled like Ctrl-C."""


def env_value(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


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


def raise_interrupted(signum: int, _frame: Any) -> None:
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
                f"{name} exited with {proc.returncode} before it was ready; log:\n{tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback only
                if resp.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise HarnessError(f"{name} not ready at {url} after {timeout:.0f} s; log:\n{tail(log)}")


def check_alive(*servers: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    for proc, name, log in servers:
        if proc.poll() is not None:
            raise HarnessError(
                f"{name} exited with {proc.returncode} during the run; log:\n{tail(log)}"
            )


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_cmd(cmd: list[str], env: dict[str, str], what: str) -> str:
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


@dataclass
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


@contextlib.contextmanager
def read_database(db_url: str, data_dir: Path) -> Iterator[Callable[..., list[Any]]]:
    """A read-only query function on the server's database, after the server has stopped:
    ``query(sql, *params)`` with ``{p}`` as the placeholder, returning all rows."""
    if not db_url:
        path = data_dir / "frostgate.db"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            yield lambda sql, *params: conn.execute(sql.format(p="?"), params).fetchall()
        finally:
            conn.close()
        return
    import psycopg  # only for --db-url runs

    with psycopg.connect(db_url) as pg:
        yield lambda sql, *params: pg.execute(sql.format(p="%s"), params).fetchall()


def count_persisted(
    db_url: str, data_dir: Path, tenant: str, prefixes: list[str]
) -> dict[str, Any]:
    """Decision rows per event-id prefix, total rows and the ledger head size for ``tenant``."""
    out: dict[str, Any] = {"by_prefix": {}}
    with read_database(db_url, data_dir) as query:
        for prefix in prefixes:
            out["by_prefix"][prefix] = query(
                "SELECT count(*) FROM decisions WHERE tenant_id = {p} AND event_id LIKE {p}",
                tenant,
                prefix + "-%",
            )[0][0]
        out["total_rows"] = query("SELECT count(*) FROM decisions WHERE tenant_id = {p}", tenant)[
            0
        ][0]
        head = query("SELECT size FROM ledger_heads WHERE stream = {p}", f"decisions/{tenant}")
        out["ledger_head_size"] = head[0][0] if head else 0
    if not db_url:
        out["db_files_bytes"] = {p.name: p.stat().st_size for p in data_dir.glob("frostgate.db*")}
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


# -- a FrostGate server on a fresh data directory --------------------------------------------


def require_wrk(wrk: str) -> None:
    if not (Path(wrk).is_file() and os.access(wrk, os.X_OK)):
        raise HarnessError(f"wrk not found at {wrk!r} (install wrk or pass --wrk)")


def default_python(explicit: str) -> str:
    """The interpreter that runs the server: the flag, else the repo .venv, else this one."""
    venv = REPO / ".venv/bin/python"
    return explicit or (str(venv) if venv.exists() else sys.executable)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise HarnessError(f"no VmRSS for pid {pid}")


def server_env(data_dir: Path, port: int, db_url: str) -> dict[str, str]:
    """This process's environment minus the harnesses' own ``FG_BENCH_*``/``FG_SOAK_*``
    settings (the server would refuse unknown ``FG_`` names), pointed at ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FG_BENCH_", "FG_SOAK_"))}
    env.pop("FG_DB_URL", None)
    env.update({"FG_DATA_DIR": str(data_dir), "FG_PORT": str(port), "PYTHONUNBUFFERED": "1"})
    if db_url:
        env["FG_DB_URL"] = db_url
    return env


def provision(fg: list[str], env: dict[str, str], tenant: str, scopes: str) -> str:
    """Migrate, create ``tenant`` and mint a key with ``scopes`` through the real CLI; the key."""
    run_cmd([*fg, "migrate"], env, "frostgate migrate")
    run_cmd([*fg, "tenants", "create", tenant], env, "frostgate tenants create")
    minted = run_cmd(
        [*fg, "keys", "mint", "--tenant", tenant, "--scopes", scopes], env, "frostgate keys mint"
    )
    lines = minted.strip().splitlines()
    key = lines[-1].strip() if lines else ""
    if not key.startswith("fgk_"):
        raise HarnessError(f"keys mint printed no key: {minted!r}")
    return key


def start_serve(
    procs: Processes, fg: list[str], port: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``frostgate serve`` in its own process group, output to ``log`` (not yet ready)."""
    with log.open("wb") as out:
        return procs.start(
            "frostgate",
            [*fg, "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run_main(name: str, keep: bool, body: Callable[[Processes, Path], int]) -> int:
    """Run ``body(procs, tmp)`` with the harnesses' exit contract: 2 when the harness itself
    fails, 130 on Ctrl-C/SIGTERM/SIGHUP, and every started process group killed and the temp
    directory removed (unless ``keep``) however it ends."""
    # Ctrl-C must work even when started with SIGINT ignored (e.g. as a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_interrupted)
    signal.signal(signal.SIGHUP, raise_interrupted)
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix=f"fg-{name}-"))
    try:
        return body(procs, tmp)
    except HarnessError as exc:
        print(f"{name}: harness failure: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print(f"{name}: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # do not interrupt the cleanup itself
        procs.stop_all()
        if keep:
            print(f"{name}: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
