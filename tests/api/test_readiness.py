"""``/health/ready`` includes Redis when any state lives there: with Redis down every
write answers 503, so the node must not say it is ready (a load balancer would keep
sending it traffic). A private ``redis-server`` is started, stopped and started again."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from frostgate.api import build_app
from tests.conftest import Env
from tests.e2e.served import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server installed"
)

EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.2).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


BACKENDS = ["rate_limit_backend", "window_backend", "replay_cache_backend"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ready_follows_redis_down_and_back(
    env: Env, private_redis: PrivateRedis, backend: str
) -> None:
    settings = env.settings.model_copy(update={backend: "redis", "redis_url": private_redis.url})
    with TestClient(build_app(settings)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["redis"] == "ok"

        private_redis.stop()
        down = client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["error_code"] == "NOT_READY"
        assert client.get("/health/live").status_code == 200  # alive, just not ready

        private_redis.start()
        assert client.get("/health/ready").status_code == 200
        assert client.post("/v1/defend", json=EVENT, headers=env.headers()).status_code == 200


def test_ready_without_redis_backends_does_not_mention_redis(env: Env) -> None:
    with TestClient(build_app(env.settings)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert "redis" not in ready.json()
