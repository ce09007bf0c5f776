"""The world one chaos round runs in, built from nothing and torn down after.

Its database is one of the two FrostGate runs on: a private PostgreSQL cluster set up by
``frostgate db init`` (the service logs in as the unprivileged application role, under
row-level security, as in production), or the embedded SQLite file in the service's data
directory (the single-site default). Besides: a private Redis holding rate limits,
windows and the replay cache, a loopback webhook receiver, one tenant with one key and
one alert endpoint, and one ``frostgate serve``. The
service's egress allowlist names only the receiver's port, under the ``test`` profile;
nothing about the production policy changes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from frostgate.config import Profile, Settings
from frostgate.egress import EgressClient, EgressFailed
from frostgate.jobs.chaos.load import service_client
from frostgate.jobs.chaos.processes import (
    PrivatePostgres,
    PrivateRedis,
    ServeProcess,
    free_port,
)
from frostgate.jobs.chaos.receiver import WebhookReceiver
from frostgate.security import TENANT_SCOPES, admin
from frostgate.security.peppers import load_peppers
from frostgate.store import Database, open_database, upgrade
from frostgate.store.roles import DEFAULT_APP, DEFAULT_OWNER, init_roles

__all__ = ["DATABASES", "TENANT", "Rig", "RigError", "open_rig"]

TENANT = "chaos"
#: The databases a round runs on, in order.
DATABASES = ("postgresql", "sqlite")
_DATABASE = "frostgate"

#: Service settings that make recovery observable within a scenario: short delivery
#: timeouts, lease and backoff (a hung receiver costs seconds, not minutes), a one-second
#: alert window, checkpoints every two seconds. Production defaults are untouched.
_SERVICE_TUNING = {
    "FG_PROFILE": "test",
    "FG_RATE_LIMIT_BACKEND": "redis",
    "FG_WINDOW_BACKEND": "redis",
    "FG_REPLAY_CACHE_BACKEND": "redis",
    "FG_EGRESS_CONNECT_TIMEOUT_SECONDS": "2",
    "FG_EGRESS_READ_TIMEOUT_SECONDS": "2",
    "FG_EGRESS_TOTAL_TIMEOUT_SECONDS": "3",
    "FG_DELIVERY_POLL_SECONDS": "0.2",
    "FG_DELIVERY_LEASE_SECONDS": "5",
    "FG_DELIVERY_BACKOFF_BASE_SECONDS": "0.2",
    "FG_DELIVERY_BACKOFF_CAP_SECONDS": "1",
    "FG_ALERT_AGGREGATE_SECONDS": "1",
    "FG_ANCHOR_INTERVAL_SECONDS": "2",
}


class RigError(RuntimeError):
    """The round's world could not be built or did not come up."""


@dataclass
class Rig:
    root: Path
    evidence: Path
    postgres: PrivatePostgres | None
    redis: PrivateRedis
    serve: ServeProcess
    receiver: WebhookReceiver
    client: EgressClient
    db: Database
    settings: Settings
    key: str = ""
    endpoint_id: str = ""
    sent: set[str] = field(default_factory=set)

    @property
    def database(self) -> str:
        return "sqlite" if self.postgres is None else "postgresql"

    def own_postgres(self) -> PrivatePostgres:
        """The round's PostgreSQL; a scenario that needs one never runs on SQLite."""
        if self.postgres is None:
            raise RigError("this round runs on SQLite: there is no PostgreSQL to stop")
        return self.postgres

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    async def ready(self, timeout: float) -> float | None:
        """Seconds until ``/health/ready`` answered 200, or None if it did not in time."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.serve.exited() is not None:
                return None
            try:
                answer = await self.client.get(f"{self.serve.url}/health/ready", {}, tenant_id=None)
                if answer.status == 200:
                    return time.monotonic() - started
            except EgressFailed:
                pass
            await asyncio.sleep(0.1)
        return None

    async def start_serve(self) -> None:
        await asyncio.to_thread(self.serve.start)
        if await self.ready(60) is None:
            raise RigError(f"frostgate serve did not become ready; see {self.serve.log}")

    async def close(self) -> None:
        """Stop everything the round started and keep its logs as evidence."""
        await asyncio.to_thread(self.serve.terminate)
        await self.receiver.close()
        self.db.dispose()
        await asyncio.to_thread(self.redis.kill)
        logs = [self.redis.log]
        try:
            if self.postgres is not None:
                logs.append(self.postgres.log)
                await asyncio.to_thread(self.postgres.stop, "fast")
        finally:
            for log in logs:
                if log.exists():
                    shutil.copy(log, self.evidence / log.name)
            shutil.rmtree(self.root, ignore_errors=True)


async def open_rig(evidence: Path, database: str) -> Rig:
    """Build a round's world on ``database`` (``postgresql`` or ``sqlite``); on failure,
    whatever was started is stopped again."""
    if database not in DATABASES:
        raise ValueError(f"database must be one of {DATABASES}")
    evidence.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="frostgate-chaos-"))
    # Traverse only (no listing): the postgres user must reach its own subdirectory.
    os.chmod(root, 0o711)  # noqa: S103
    postgres = None
    if database == "postgresql":
        postgres = PrivatePostgres(root / "pg", await free_port())
    redis = PrivateRedis(root / "redis", await free_port())
    receiver = WebhookReceiver()
    await receiver.start()
    port = await free_port()
    peppers = "c1:" + secrets.token_hex(32)
    data_dir = root / "fg"
    data_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
    env.update(
        _SERVICE_TUNING,
        FG_DATA_DIR=str(data_dir),
        FG_KEY_PEPPERS=peppers,
        FG_REDIS_URL=redis.url,
        FG_EGRESS_ALLOW_HOSTS=f"127.0.0.1:{receiver.port}",
    )
    owner_url = ""  # empty: SQLite in the data directory
    if postgres is not None:
        owner_url = f"postgresql://postgres@127.0.0.1:{postgres.port}/{_DATABASE}"
        env["FG_DB_URL"] = f"postgresql://{DEFAULT_APP}@127.0.0.1:{postgres.port}/{_DATABASE}"
    settings = Settings(
        profile=Profile.TEST, data_dir=data_dir, db_url=owner_url, key_peppers=peppers
    )
    rig = Rig(
        root=root,
        evidence=evidence,
        postgres=postgres,
        redis=redis,
        serve=ServeProcess(env, port, evidence / "serve.log"),
        receiver=receiver,
        client=service_client(port),
        db=open_database(settings.database_url),
        settings=settings,
    )
    try:
        if postgres is not None:
            await asyncio.to_thread(postgres.init)
            await asyncio.to_thread(postgres.start)
            await asyncio.to_thread(
                init_roles,
                postgres.admin_url,
                _DATABASE,
                DEFAULT_OWNER,
                DEFAULT_APP,
                None,
                owner_password=None,
                create_database=True,
            )
        else:
            await asyncio.to_thread(upgrade, rig.db.write)
        await asyncio.to_thread(redis.start)
        await asyncio.to_thread(_tenant_and_key, rig)
        await rig.start_serve()
        await _alert_endpoint(rig)
    except BaseException:
        await rig.close()
        raise
    return rig


def _tenant_and_key(rig: Rig) -> None:
    admin.create_tenant(rig.db, TENANT, "Chaos run")
    issued = admin.mint_key(
        rig.db, load_peppers(rig.settings), tenant_id=TENANT, scopes=TENANT_SCOPES, label="chaos"
    )
    rig.key = issued.token


async def _alert_endpoint(rig: Rig) -> None:
    # The default cap (60 a minute) would make delivery, not recovery, the bottleneck.
    body = orjson.dumps(
        {"url": rig.receiver.url, "min_threat_level": "high", "max_per_minute": 10_000}
    )
    answer = await rig.client.post(f"{rig.serve.url}/v1/webhooks", body, rig.auth, tenant_id=None)
    if answer.status != 201:
        raise RigError(f"creating the alert endpoint answered {answer.status}: {answer.body!r}")
    created = orjson.loads(answer.body)
    rig.endpoint_id = created["endpoint_id"]
    rig.receiver.secret = created["secret"]
