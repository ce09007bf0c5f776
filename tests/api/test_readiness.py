"""``/health/ready`` includes Redis when any state lives there: with Redis down every
write answers 503, so the node must not say it is ready (a load balancer would keep
sending it traffic). A private ``redis-server`` is started, killed and started again."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.jobs.chaos.processes import PrivateRedis
from tests.conftest import Env
from tests.e2e.served import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server installed"
)

EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """The chaos job's own private ``redis-server`` (stopped with SIGKILL)."""
    server = PrivateRedis(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.kill()


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

        private_redis.kill()
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
