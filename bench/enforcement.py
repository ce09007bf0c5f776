#!/usr/bin/env python3
"""Bouncer-side benchmark (issue 6 part 5): 100,000 active mitigations, then measure

* the startup stream (``/crowdsec/v1/decisions/stream?startup=true``): cold (first pull
  after start: the index loads) and warm (median of 5), and the server's extra RSS;
* delta pulls with nothing new (``/crowdsec/v1/decisions/stream``) per second, and
* single-address lookups (``/crowdsec/v1/decisions?ip=``) per second,

both with ``wrk`` at 16 connections for ``--seconds``. One ``frostgate serve`` process on
loopback, SQLite in a temporary directory. Prints a table and writes
``bench-results/<utc>-enforcement.json``. ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FG = [sys.executable, "-m", "frostgate.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def seed(db_url: str, tenant: str, count: int) -> None:
    """``count`` active block_ip mitigations, written straight through the repository."""
    sys.path.insert(0, str(ROOT / "src"))
    from frostgate.store import mitigations as repo
    from frostgate.store import open_database

    db = open_database(db_url)
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        rows.append(
            {
                "mitigation_id": repo.new_mitigation_id(),
                "action": "block_ip",
                "scope": "ip",
                "value": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                "reason": "bench",
                "origin": "manual",
                "origin_event_id": None,
                "status": "active",
                "status_reason": None,
                "ttl_seconds": 86_400,
                "created_at": now,
                "activated_at": now,
                "expires_at": now + timedelta(days=1),
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


def get(url: str, key: str) -> tuple[float, int]:
    request = urllib.request.Request(url, headers={"X-Api-Key": key})  # noqa: S310
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        body = response.read()
    return (time.perf_counter() - started) * 1000, len(body)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mitigations", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fg-bench-enf-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
        db_url = f"sqlite:///{tmp}/frostgate.db"
        env.update(FG_PROFILE="test", FG_DATA_DIR=tmp, FG_DB_URL=db_url)

        def run(*a: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(  # noqa: S603
                [*FG, *a], env=env, check=True, capture_output=True, text=True
            )

        run("migrate")
        run("tenants", "create", "bench")
        key = (
            run("keys", "mint", "--tenant", "bench", "--scopes", "enforcement:read")
            .stdout.strip()
            .splitlines()[-1]
        )
        started = time.perf_counter()
        seed(db_url, "bench", args.mitigations)
        seeded_s = time.perf_counter() - started
        port = free_port()
        server = subprocess.Popen([*FG, "serve", "--port", str(port)], env=env)  # noqa: S603
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/health/ready", timeout=1)  # noqa: S310
                    break
                except OSError:
                    time.sleep(0.1)
            rss_before = rss_kib(server.pid)
            stream = f"{base}/crowdsec/v1/decisions/stream"
            cold_ms, size = get(f"{stream}?startup=true", key)
            warm = [get(f"{stream}?startup=true", key)[0] for _ in range(5)]
            rss_after = rss_kib(server.pid)
            deltas = wrk(stream, key, args.seconds, args.connections)
            lookups = wrk(
                f"{base}/crowdsec/v1/decisions?ip=10.1.2.3", key, args.seconds, args.connections
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "mitigations": args.mitigations,
        "seed_seconds": round(seeded_s, 1),
        "startup_cold_ms": round(cold_ms, 1),
        "startup_warm_median_ms": round(statistics.median(warm), 1),
        "startup_bytes": size,
        "extra_rss_mib": round((rss_after - rss_before) / 1024, 1),
        "delta_pulls_per_s": deltas,
        "lookups_per_s": lookups,
        "connections": args.connections,
        "targets": {
            "startup_ms": 300,
            "extra_rss_mib": 60,
            "delta_per_s": 3000,
            "lookup_per_s": 3000,
        },
    }
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"{stamp}-enforcement.json").write_text(json.dumps(result, indent=2))
    for name, value in result.items():
        print(f"{name:28s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
