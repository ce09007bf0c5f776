"""A real ``frostgate serve`` process for end-to-end tests: start, kill, call it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from frostgate.config import Settings

FG = [sys.executable, "-m", "frostgate.cli"]
BRUTE = {
    "source": "sshd",
    "event_type": "auth.failed",
    "payload": {"src_ip": "203.0.113.9", "failed_auths": 7},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    env: dict[str, str]
    port: int
    key: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*FG, *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    def start(self) -> None:
        self.process = subprocess.Popen([*FG, "serve", "--port", str(self.port)], env=self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


def served_env(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a served process: this one's without any ``FG_`` variable,
    the test profile, the suite's database and peppers, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
    env.update(
        FG_PROFILE="test",
        FG_DATA_DIR=str(data_dir),
        FG_DB_URL=settings.database_url,
        FG_KEY_PEPPERS=settings.key_peppers,
        **extra,
    )
    return env
