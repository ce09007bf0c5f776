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
from frostgate.store.roles import DEFAULT_APP, DEFAULT_OWNER, init_roles

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


def _pg_admin_url() -> sa.URL:
    return sa.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))


@dataclass(frozen=True)
class PgUrls:
    """The session's scratch database, as the test sees it (a superuser: it seeds and
    inspects every tenant's rows) and as the service runs on it in production (the
    unprivileged application role, held to row-level security)."""

    admin: str
    app: str


@pytest.fixture(scope="session")
def pg_urls() -> Iterator[PgUrls | None]:
    if not PG_URL:
        yield None
        return
    name = f"frostgate_test_{os.getpid()}"
    server = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    # Roles, migrations as the owner and the app role's grants: `frostgate db init`.
    init_roles(PG_URL, name, DEFAULT_OWNER, DEFAULT_APP, create_database=True)
    target = _pg_admin_url().set(database=name)
    yield PgUrls(
        admin=target.render_as_string(hide_password=False),
        app=target.set(username=DEFAULT_APP, password=None).render_as_string(hide_password=False),
    )
    with server.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.dispose()


@pytest.fixture
def pg_url(pg_urls: PgUrls | None) -> str | None:
    """The URL the service under test uses: on PostgreSQL, the application role."""
    return None if pg_urls is None else pg_urls.app


@pytest.fixture
def settings(tmp_path: Path, pg_url: str | None) -> Settings:
    db_url = pg_url or f"sqlite:///{tmp_path / 'frostgate.db'}"
    return Settings(
        profile=Profile.TEST, data_dir=tmp_path, db_url=db_url, key_peppers=TEST_PEPPERS
    )


@pytest.fixture
def db(settings: Settings, pg_urls: PgUrls | None) -> Iterator[Database]:
    """The test's own view of the database (on PostgreSQL a superuser, so fixtures can
    seed any tenant and assertions see every row)."""
    database = open_database(pg_urls.admin if pg_urls is not None else settings.database_url)
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


def second_key(env: Env, scopes: set[str]) -> dict[str, str]:
    """Headers of a further acme key holding ``scopes``, minted as the CLI mints (no
    issuing key), for tests that need a second holder."""
    token = admin.mint_key(
        env.db, load_peppers(env.settings), tenant_id="acme", scopes=frozenset(scopes)
    ).token
    return {"Authorization": f"Bearer {token}"}


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
