"""``frostgate serve`` refuses to start, with a reason and no traceback, when the database
cannot be served from."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def _serve(tmp_path: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
    env.update(FG_PROFILE="test", FG_DATA_DIR=str(tmp_path), FG_DB_URL=db_url)
    return subprocess.run(
        [sys.executable, "-m", "frostgate.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_database_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    result = _serve(tmp_path, f"postgresql://frostgate@127.0.0.1:{_closed_port()}/frostgate")
    assert result.returncode == 2, result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert "refusing to start: database unreachable:" in text
    assert "Traceback" not in text


def test_an_unmigrated_database_is_refused(tmp_path: Path) -> None:
    result = _serve(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 2
    assert "refusing to start: schema not current" in " ".join(result.stderr.split())
