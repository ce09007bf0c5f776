"""The servers a chaos run owns: a private PostgreSQL cluster, a private Redis, and
``frostgate serve``.

Why they are private: the chaos job stops and kills what it tests, and this machine's
shared PostgreSQL (5432) and Redis (6379) serve other people's work. Every process here
is started by the run on a free loopback port, under a directory the run created, and is
the only thing the run ever signals. A process that will not start is an error naming
its log, never a silent fallback to a shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "OwnedProcessError",
    "PrivatePostgres",
    "PrivateRedis",
    "ServeProcess",
    "free_port",
    "postgres_tools",
]

_POSTGRES_USER = "postgres"


class OwnedProcessError(RuntimeError):
    """A server the run owns could not be started, stopped or found."""


async def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (bound, read, released)."""
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


def postgres_tools() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's
    versioned directories, newest first), or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _run(argv: list[str], log: Path, timeout: float = 60.0) -> None:
    with log.open("ab") as out:
        done = subprocess.run(  # noqa: S603 - fixed argv built here, never a shell
            argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if done.returncode != 0:
        raise OwnedProcessError(f"{Path(argv[0]).name} exited {done.returncode}; see {log}")


class PrivatePostgres:
    """A throw-away cluster in ``root`` listening on 127.0.0.1:``port`` only.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
    system user and its tools run through ``runuser``; otherwise as the current user.
    Authentication is ``trust`` on loopback: the cluster holds only this run's data and
    is deleted with it.
    """

    def __init__(self, root: Path, port: int) -> None:
        tools = postgres_tools()
        if tools is None:
            raise OwnedProcessError("PostgreSQL server tools (initdb, pg_ctl) are not installed")
        self.tools = tools
        self.root = root
        self.port = port
        self.data = root / "pgdata"
        self.log = root / "postgres.log"
        self._as_root = os.geteuid() == 0
        self.running = False

    @property
    def admin_url(self) -> str:
        return f"postgresql://{_POSTGRES_USER}@127.0.0.1:{self.port}/postgres"

    def _argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.tools / tool), *args]
        return ["runuser", "-u", _POSTGRES_USER, "--", *argv] if self._as_root else argv

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            user = pwd.getpwnam(_POSTGRES_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        _run(
            self._argv(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                _POSTGRES_USER,
                "--auth=trust",
                "--no-instructions",
                "-E",
                "UTF8",
            ),
            self.root / "initdb.log",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        _run(
            self._argv(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
            ),
            self.root / "pg_ctl.log",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash: no checkpoint, WAL recovery at the next start."""
        if not self.running:
            return
        _run(
            self._argv("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"),
            self.root / "pg_ctl.log",
        )
        self.running = False


class PrivateRedis:
    """``redis-server`` on 127.0.0.1:``port`` without persistence (bucket and window
    state only, as in production), stopped with SIGKILL like a crashed node."""

    def __init__(self, root: Path, port: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise OwnedProcessError("redis-server is not installed")
        self.binary = binary
        self.root = root
        self.port = port
        self.log = root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
            "--logfile",
            str(self.log),
        ]
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(argv)  # noqa: S603 - fixed argv
        _wait_for_log(self.log, offset, "Ready to accept connections", self.process, timeout=10)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


def _wait_for_log(
    log: Path, offset: int, marker: str, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Wait until ``marker`` appears in ``log`` after ``offset`` (this start's lines)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OwnedProcessError(f"exited {process.returncode} while starting; see {log}")
        with contextlib.suppress(FileNotFoundError), log.open("rb") as handle:
            handle.seek(offset)
            if marker.encode() in handle.read():
                return
        time.sleep(0.05)
    raise OwnedProcessError(f"not ready after {timeout:.0f} s; see {log}")


class ServeProcess:
    """One ``frostgate serve`` child with the run's environment; output to ``log``."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        argv = [sys.executable, "-m", "frostgate.cli", "serve", "--port", str(self.port)]
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, whatever was in flight is cut."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def terminate(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None
