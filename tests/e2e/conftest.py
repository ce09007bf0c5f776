"""The ``server`` fixture: the product as a user runs it, one process per test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from frostgate.config import Settings
from frostgate.store import Database
from tests.e2e.served import FG, Server, free_port, served_env


@pytest.fixture
def server(settings: Settings, db: Database, tmp_path: Path) -> Iterator[Server]:
    env = served_env(settings, tmp_path, FG_SSE_HEARTBEAT_SECONDS="1")
    port = free_port()
    boot = subprocess.run(
        [*FG, "bootstrap"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    key = (tmp_path / "demo-key").read_text().strip()
    assert boot.stdout.strip().splitlines()[-1] == key
    assert (tmp_path / "demo-key").stat().st_mode & 0o777 == 0o600
    srv = Server(env=env, port=port, key=key)
    srv.start()
    yield srv
    if srv.process is not None:
        srv.process.terminate()
        srv.process.wait(timeout=10)
