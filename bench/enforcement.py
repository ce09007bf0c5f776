#!/usr/bin/env python3
"""Bouncer-side benchmark (issue 6 part 5): 100,000 active mitigations, FrostGate beside
CrowdSec's LAPI in the same run.

For each service, one process on loopback with an SQLite database in a temporary
directory, and the same bouncer calls (CrowdSec's LAPI protocol, which FrostGate serves
under ``/crowdsec``):

* **load**: with the service up and empty, 100,000 active IP bans are written (FrostGate:
  straight through its repository; CrowdSec: ``cscli decisions import``), then the first
  startup pull (``/v1/decisions/stream?startup=true``), which loads them;
* **startup stream, warm**: the median of 5 more startup pulls;
* **extra RSS**: the server's resident memory after those pulls, less what it was when
  empty (after one empty startup pull);
* **delta pulls** with nothing new (``/v1/decisions/stream``) and **single-IP lookups**
  (``/v1/decisions?ip=``) per second, each with ``wrk -t2 -c16`` for ``--seconds``;
* **restart**: the service is stopped and started again: the time until it answers, and
  its first startup pull.

CrowdSec (Debian package ``crowdsec``) is measured when it is installed, with its agent
and every online feature off (``crowdsec -no-cs -no-capi``, a private configuration in the
temporary directory; nothing touches ``/etc/crowdsec`` or a system service). Prints a
table and writes ``bench-results/<utc>-enforcement.json``. ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import free_port, provision, rss_bytes, server_env

ROOT = Path(__file__).resolve().parent.parent
FG = [sys.executable, "-m", "frostgate.cli"]
PROBE_IP = "10.1.2.3"


def address(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def get(url: str, key: str) -> tuple[float, int]:
    request = urllib.request.Request(url, headers={"X-Api-Key": key})  # noqa: S310
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        body = response.read()
    return (time.perf_counter() - started) * 1000, len(body)


def wait_until_answering(url: str, key: str, process: subprocess.Popen[bytes]) -> float:
    """Seconds until ``url`` answers 200 (the process must stay alive meanwhile)."""
    started = time.perf_counter()
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            get(url, key)
            return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within 120 s")


def wrk(url: str, key: str, seconds: int, connections: int) -> float:
    out = subprocess.run(  # noqa: S603
        [
            shutil.which("wrk") or "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "-H",
            f"X-Api-Key: {key}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or non2xx is not None:
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    return float(match.group(1))


@dataclass
class Service:
    """One bouncer API under test: how to start it, fill it, and call it."""

    name: str
    base: str  # the LAPI root: {base}/v1/decisions/stream
    key: str
    start: Callable[[], subprocess.Popen[bytes]]
    fill: Callable[[int], None]


def measure(service: Service, count: int, seconds: int, connections: int) -> dict[str, Any]:
    stream = f"{service.base}/v1/decisions/stream"
    probe = f"{service.base}/v1/decisions?ip={PROBE_IP}"
    process = service.start()
    try:
        wait_until_answering(probe, service.key, process)
        get(f"{stream}?startup=true", service.key)
        rss_empty = rss_bytes(process.pid)
        started = time.perf_counter()
        service.fill(count)
        fill_s = time.perf_counter() - started
        load_ms, size = get(f"{stream}?startup=true", service.key)
        warm = [get(f"{stream}?startup=true", service.key)[0] for _ in range(5)]
        rss_loaded = rss_bytes(process.pid)
        get(stream, service.key)  # from here on, nothing is new for this key
        deltas = wrk(stream, service.key, seconds, connections)
        lookups = wrk(probe, service.key, seconds, connections)
    finally:
        stop(process)
    process = service.start()
    try:
        restart_s = wait_until_answering(probe, service.key, process)
        first_ms, _ = get(f"{stream}?startup=true", service.key)
    finally:
        stop(process)
    return {
        "fill_seconds": round(fill_s, 1),
        "load_first_pull_ms": round(load_ms, 1),
        "startup_warm_median_ms": round(statistics.median(warm), 1),
        "startup_bytes": size,
        "extra_rss_mib": round((rss_loaded - rss_empty) / 2**20, 1),
        "delta_pulls_per_s": deltas,
        "lookups_per_s": lookups,
        "restart_until_answering_s": round(restart_s, 2),
        "restart_first_pull_ms": round(first_ms, 1),
    }


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def seed_frostgate(db_url: str, tenant: str, count: int) -> None:
    """``count`` active block_ip mitigations, written straight through the repository,
    as decisions raise them: each from its own event, at its own time."""
    sys.path.insert(0, str(ROOT / "src"))
    from frostgate.store import mitigations as repo
    from frostgate.store import open_database

    db = open_database(db_url)
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        created = now - timedelta(milliseconds=n)
        rows.append(
            {
                "mitigation_id": repo.new_mitigation_id(),
                "action": "block_ip",
                "scope": "ip",
                "value": address(n),
                "reason": f"10 failed logins within 60 s from {address(n)}",
                "origin": "decision",
                "origin_event_id": f"sshd-{n:08d}-{created.timestamp():.6f}",
                "status": "active",
                "status_reason": None,
                "ttl_seconds": 86_400,
                "created_at": created,
                "activated_at": created,
                "expires_at": created + timedelta(days=1),
                "ended_at": None,
                "proposed_by": None,
                "approved_by": None,
                "lifted_by": None,
            }
        )
    for start in range(0, count, 10_000):
        with db.write.begin() as conn:
            repo.insert_mitigations(conn, tenant, rows[start : start + 10_000])
    db.dispose()


@contextmanager
def frostgate(tmp: Path) -> Iterator[Service]:
    db_url = f"sqlite:///{tmp}/frostgate.db"
    port = free_port()
    env = server_env(tmp, port, db_url)
    env["FG_PROFILE"] = "test"
    key = provision(FG, env, "bench", "enforcement:read")
    yield Service(
        name="FrostGate",
        base=f"http://127.0.0.1:{port}/crowdsec",
        key=key,
        start=lambda: subprocess.Popen([*FG, "serve", "--port", str(port)], env=env),  # noqa: S603
        fill=lambda count: seed_frostgate(db_url, "bench", count),
    )


_LAPI_CONFIG = """\
common:
  daemonize: false
  log_media: file
  log_dir: {dir}
  log_level: warning
  working_dir: {dir}
config_paths:
  config_dir: {dir}/
  data_dir: {dir}/data/
  simulation_path: {dir}/simulation.yaml
  hub_dir: {dir}/hub/
  index_path: {dir}/hub/.index.json
db_config:
  type: sqlite
  db_path: {dir}/data/crowdsec.db
  use_wal: true
api:
  client:
    credentials_path: {dir}/local_api_credentials.yaml
  server:
    log_level: warning
    listen_uri: 127.0.0.1:{port}
    profiles_path: {dir}/profiles.yaml
prometheus:
  enabled: false
"""


@contextmanager
def crowdsec(tmp: Path) -> Iterator[Service | None]:
    """CrowdSec's LAPI alone, private to this run, or None when it is not installed."""
    lapi, cscli = shutil.which("crowdsec"), shutil.which("cscli")
    profiles = Path("/etc/crowdsec/profiles.yaml")
    if lapi is None or cscli is None or not profiles.exists():
        yield None
        return
    home = tmp / "crowdsec"
    (home / "data").mkdir(parents=True)
    (home / "hub").mkdir()
    (home / "hub" / ".index.json").write_text("{}")
    (home / "simulation.yaml").write_text("simulation: off\n")
    shutil.copy(profiles, home / "profiles.yaml")
    port = free_port()
    config = home / "config.yaml"
    config.write_text(_LAPI_CONFIG.format(dir=home, port=port))

    def cscli_run(*args: str) -> str:
        return subprocess.run(  # noqa: S603
            [cscli, "-c", str(config), *args], check=True, capture_output=True, text=True
        ).stdout

    key = cscli_run("bouncers", "add", "bench", "-o", "raw").strip()
    credentials = home / "local_api_credentials.yaml"
    cscli_run("machines", "add", "bench", "--auto", "-f", str(credentials))

    def fill(count: int) -> None:
        csv = home / "decisions.csv"
        lines = ["duration,scope,value,reason,type,origin"]
        lines += [f"24h,ip,{address(n)},bench,ban,cscli" for n in range(count)]
        csv.write_text("\n".join(lines) + "\n")
        cscli_run("decisions", "import", "-i", str(csv))

    yield Service(
        name=f"CrowdSec {cscli_version(cscli)}",
        base=f"http://127.0.0.1:{port}",
        key=key,
        start=lambda: subprocess.Popen(  # noqa: S603
            [lapi, "-c", str(config), "-no-cs", "-no-capi"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        fill=fill,
    )


def cscli_version(cscli: str) -> str:
    out = subprocess.run([cscli, "version"], capture_output=True, text=True, check=False)  # noqa: S603
    match = re.search(r"version:\s*v?([\w.\-~+]+)", out.stdout + out.stderr)
    return match.group(1) if match else "?"


TARGETS = {
    "startup_warm_median_ms": ("≤ 300", lambda v: v <= 300),
    "extra_rss_mib": ("≤ 60 MB (57.2 MiB)", lambda v: v <= 60e6 / 2**20),
    "delta_pulls_per_s": ("≥ 3,000", lambda v: v >= 3000),
    "lookups_per_s": ("≥ 3,000", lambda v: v >= 3000),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mitigations", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fg-bench-enf-") as tmp:
        with frostgate(Path(tmp)) as service:
            results[service.name] = measure(
                service, args.mitigations, args.seconds, args.connections
            )
        with crowdsec(Path(tmp)) as lapi:
            if lapi is None:
                print("CrowdSec is not installed (apt-get install crowdsec): FrostGate only")
            else:
                results[lapi.name] = measure(lapi, args.mitigations, args.seconds, args.connections)
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {
        "mitigations": args.mitigations,
        "connections": args.connections,
        "seconds": args.seconds,
        "loadavg_at_end": os.getloadavg()[0],
        "results": results,
    }
    (out_dir / f"{stamp}-enforcement.json").write_text(json.dumps(document, indent=2))
    names = list(results)
    print(f"{'measure':28s} " + " ".join(f"{n:>18s}" for n in names) + "  target")
    for measure_name in results[names[0]]:
        target, met = TARGETS.get(measure_name, ("", None))
        cells = " ".join(f"{results[n][measure_name]:>18,}" for n in names)
        verdict = (
            "" if met is None else (" met" if met(results[names[0]][measure_name]) else " MISSED")
        )
        print(f"{measure_name:28s} {cells}  {target}{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
