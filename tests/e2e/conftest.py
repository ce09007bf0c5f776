"""The ``server`` fixture: the product as a user runs it, one process per test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from frostgate.config import Settings
from frostgate.store import Database
from tests.e2e.served import FG, Server, free_port


@pytest.fixture
def server(settings: Settings, db: Database, tmp_path: Path) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
    env.update(
        FG_PROFILE="test",
        FG_DATA_DIR=str(tmp_path),
        FG_DB_URL=settings.database_url,
        FG_KEY_PEPPERS=settings.key_peppers,
        FG_SSE_HEARTBEAT_SECONDS="1",
    )
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
