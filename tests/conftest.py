"""Shared fixtures. The suite runs on SQLite by default and on PostgreSQL when
``FG_TEST_DB_URL`` names a server (``make test`` runs both); never on mocks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.config import Profile, Settings
from frostgate.security import PLATFORM_SCOPES, TENANT_SCOPES, admin
from frostgate.security.peppers import load_peppers
from frostgate.store import Database, open_database, upgrade

PG_URL = os.environ.get("FG_TEST_DB_URL", "")
TEST_PEPPERS = "t1:" + "11" * 32
_TABLES = (
    "decisions",
    "audit_events",
    "tenant_usage",
    "ledger_heads",
    "ledger_nodes",
    "checkpoints",
    "forensic_packets",
    "webhook_endpoints",
    "outbox",
    "delivery_attempts",
    "hook_sources",
    "hook_source_secrets",
    "tenant_egress_hosts",
    "mitigations",
    "mitigation_heads",
    "enforcement_cursors",
    "tenant_envelopes",
    "api_keys",
    "tenants",
)


def _pg_database_url() -> str:
    base = sa.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"frostgate_test_{os.getpid()}"
    admin_engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin_engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    url = _pg_database_url()
    db = open_database(url)
    upgrade(db.write)
    db.dispose()
    yield url
    engine = sa.create_engine(
        sa.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)),
        isolation_level="AUTOCOMMIT",
    )
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)')
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, pg_url: str | None) -> Settings:
    db_url = pg_url or f"sqlite:///{tmp_path / 'frostgate.db'}"
    return Settings(
        profile=Profile.TEST, data_dir=tmp_path, db_url=db_url, key_peppers=TEST_PEPPERS
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_database(settings.database_url)
    if database.dialect == "postgresql":
        with database.write.begin() as conn:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(_TABLES) + " CASCADE")
    else:
        upgrade(database.write)
    yield database
    database.dispose()


@dataclass
class Env:
    client: TestClient
    settings: Settings
    db: Database
    keys: dict[str, str]

    def headers(self, who: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture
def env(settings: Settings, db: Database) -> Iterator[Env]:
    """A served app with tenants ``acme`` and ``globex``, each with an all-scopes key,
    and a platform key with every platform scope (``keys["platform"]``)."""
    peppers = load_peppers(settings)
    keys: dict[str, str] = {}
    for tenant in ("acme", "globex"):
        admin.create_tenant(db, tenant)
        keys[tenant] = admin.mint_key(db, peppers, tenant_id=tenant, scopes=TENANT_SCOPES).token
    keys["platform"] = admin.mint_key(
        db, peppers, tenant_id=None, kind="platform", scopes=PLATFORM_SCOPES
    ).token
    with TestClient(build_app(settings), raise_server_exceptions=False) as client:
        yield Env(client=client, settings=settings, db=db, keys=keys)
