"""PostgreSQL row-level security under the application role (audit F9).

Runs only when ``FG_TEST_DB_URL`` names a PostgreSQL server whose user may create roles
and databases. Self-contained: the module creates its own scratch database, runs
``frostgate db init`` (roles, migrations as the owner, grants) against it, stores two
tenants' rows as the owner, and then connects AS THE APPLICATION ROLE, exactly as the
service would, to show what that role can and cannot reach. The scratch database is
dropped at the end; the two roles are cluster-wide and stay (db init converges them).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import errors as pg_errors
from typer.testing import CliRunner

from frostgate.store import decisions as decision_repo
from frostgate.store import migrate, schema
from frostgate.store.audit import PLATFORM, PendingAudit, append_audit, audit_page
from frostgate.store.roles import APP_GRANTS, DEFAULT_APP, DEFAULT_OWNER, init_roles
from frostgate.store.tenancy import bind_tenant
from frostgate.store.writer import GroupCommitWriter, PendingDecision

PG_URL = os.environ.get("FG_TEST_DB_URL", "")

A, B = "alpha", "bravo"
TENANT_TABLES = (
    "decisions",
    "audit_events",
    "ledger_heads",
    "tenant_usage",
    "ledger_nodes",
    "checkpoints",
)
PLATFORM_TABLES = ("api_keys", "tenants")
ALL_TENANT_ID_TABLES = (*TENANT_TABLES, *PLATFORM_TABLES)
# rows per tenant stored by the fixture
ROWS = {
    A: {
        "decisions": 3,
        "audit_events": 2,
        "ledger_heads": 2,
        "tenant_usage": 1,
        "ledger_nodes": 2,
        "checkpoints": 1,
        "api_keys": 2,
    },
    B: {
        "decisions": 2,
        "audit_events": 1,
        "ledger_heads": 2,
        "tenant_usage": 2,
        "ledger_nodes": 1,
        "checkpoints": 1,
        "api_keys": 1,
    },
}
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HASH = "ab" * 32

needs_pg = pytest.mark.skipif(not PG_URL, reason="FG_TEST_DB_URL is not set")


def _url(url: str) -> sa.URL:
    return sa.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))


@dataclass(frozen=True)
class Cluster:
    admin_url: str  # the superuser URL from FG_TEST_DB_URL (maintenance database)
    database: str
    admin: sa.Engine  # superuser on the scratch database
    owner: sa.Engine  # superuser session that SET ROLEs to the owner
    app: sa.Engine  # logged in as the application role
    tables: tuple[str, ...]  # every table with a tenant_id column, from the catalog

    def zero(self) -> dict[str, int]:
        return dict.fromkeys(self.tables, 0)


def _owner_engine(url: sa.URL) -> sa.Engine:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _become_owner(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute(f'SET ROLE "{DEFAULT_OWNER}"')
        dbapi_conn.commit()

    return engine


def _set(conn: sa.Connection, name: str, value: str) -> None:
    conn.execute(sa.text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def _platform(conn: sa.Connection) -> None:
    _set(conn, "fg.platform", "on")


def _decision(tenant: str, seq: int) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "seq": seq,
        "event_id": f"{tenant}-{seq}",
        "source": "sshd",
        "event_type": "auth.failed",
        "src_ip": "203.0.113.9",
        "threat_level": "high",
        "score": 80,
        "rules": "[]",
        "actions": "[]",
        "actionable": False,
        "changed": True,
        "diff": None,
        "policy_hash": HASH,
        "created_at": NOW,
        "request_json": "{}",
        "request_sha256": HASH,
        "response_json": "{}",
        "response_sha256": HASH,
        "leaf_hash": HASH,
        "prev_chain_hash": HASH,
        "chain_hash": HASH,
    }


def _audit(tenant: str, seq: int) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "seq": seq,
        "event_id": f"audit-{tenant}-{seq}",
        "kind": "auth.failed",
        "severity": "warning",
        "count": 1,
        "detail": "{}",
        "created_at": NOW,
        "leaf_hash": HASH,
        "prev_chain_hash": HASH,
        "chain_hash": HASH,
    }


def _key(key_id: str, tenant: str | None) -> dict[str, Any]:
    return {
        "key_id": key_id,
        "tenant_id": tenant,
        "kind": "tenant" if tenant else "platform",
        "scopes": "decisions:read",
        "secret_hash": HASH,
        "pepper_id": "t1",
        "label": key_id,
        "created_at": NOW,
    }


def _seed(owner: sa.Engine) -> None:
    """Two tenants' rows in every tenant table, written as the owner (who is held to the
    policies too: FORCE ROW LEVEL SECURITY), each under its own context."""
    with owner.begin() as conn:
        _platform(conn)
        for tenant in (A, B):
            conn.execute(
                schema.tenants.insert().values(
                    tenant_id=tenant, name=tenant, status="active", created_at=NOW
                )
            )
        conn.execute(
            schema.api_keys.insert(),
            [_key("ka1", A), _key("ka2", A), _key("kb1", B), _key("kplat", None)],
        )
    for tenant in (A, B, PLATFORM):
        with owner.begin() as conn:
            bind_tenant(conn, tenant)
            if tenant != PLATFORM:
                n = ROWS[tenant]
                conn.execute(
                    schema.decisions.insert(), [_decision(tenant, i) for i in range(n["decisions"])]
                )
                conn.execute(
                    schema.tenant_usage.insert(),
                    [
                        {"tenant_id": tenant, "day": date(2026, 1, 1 + i), "events": 1}
                        for i in range(n["tenant_usage"])
                    ],
                )
                conn.execute(
                    schema.metadata.tables["ledger_nodes"].insert(),
                    [
                        {
                            "stream": f"decisions/{tenant}",
                            "tenant_id": tenant,
                            "level": 0,
                            "idx": i,
                            "hash": bytes(32),
                        }
                        for i in range(n["ledger_nodes"])
                    ],
                )
                conn.execute(
                    schema.metadata.tables["checkpoints"].insert(),
                    [
                        {
                            "stream": f"decisions/{tenant}",
                            "tenant_id": tenant,
                            "size": i + 1,
                            "root_hash": HASH,
                            "note": "note",
                            "created_at": NOW,
                        }
                        for i in range(n["checkpoints"])
                    ],
                )
                conn.execute(
                    schema.ledger_heads.insert().values(
                        stream=f"decisions/{tenant}",
                        tenant_id=tenant,
                        size=n["decisions"],
                        chain_hash=HASH,
                    )
                )
            if tenant == PLATFORM:
                # One platform audit row, far from the stream's start and without a head:
                # the app role appends a real, verifiable stream from index 0 later on.
                conn.execute(schema.audit_events.insert(), [_audit(tenant, 1000)])
                continue
            count = ROWS[tenant]["audit_events"]
            conn.execute(schema.audit_events.insert(), [_audit(tenant, i) for i in range(count)])
            conn.execute(
                schema.ledger_heads.insert().values(
                    stream=f"audit/{tenant}", tenant_id=tenant, size=count, chain_hash=HASH
                )
            )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not PG_URL:
        pytest.skip("FG_TEST_DB_URL is not set")
    base = _url(PG_URL)
    name = f"frostgate_rls_{os.getpid()}"
    server = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with server.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    init_roles(PG_URL, name, DEFAULT_OWNER, DEFAULT_APP, create_database=True)
    target = base.set(database=name)
    admin = sa.create_engine(target, poolclass=sa.pool.NullPool)
    owner = _owner_engine(target)
    app = sa.create_engine(
        target.set(username=DEFAULT_APP, password=None), poolclass=sa.pool.NullPool
    )
    _seed(owner)
    with admin.connect() as conn:
        tables = tuple(_tenant_id_tables(conn))
    try:
        yield Cluster(PG_URL, name, admin, owner, app, tables)
    finally:
        for engine in (admin, owner, app):
            engine.dispose()
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


def _tenant_id_tables(conn: sa.Connection) -> list[str]:
    return list(
        conn.exec_driver_sql(
            "SELECT DISTINCT c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
            " AND a.attname = 'tenant_id' AND NOT a.attisdropped ORDER BY 1"
        ).scalars()
    )


def _count(conn: sa.Connection, table: str, where: str = "") -> int:
    return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table} {where}").scalar_one())


def _counts(conn: sa.Connection, tables: tuple[str, ...]) -> dict[str, int]:
    return {table: _count(conn, table) for table in tables}


def _denied(engine: sa.Engine, statement: str, *, tenant: str | None = A) -> str:
    """Run ``statement`` as the app role (bound to ``tenant``); it must fail with
    SQLSTATE 42501 (insufficient privilege). Returns the server's message."""
    with engine.connect() as conn:
        if tenant is not None:
            bind_tenant(conn, tenant)
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.exec_driver_sql(statement)
    assert isinstance(caught.value.orig, pg_errors.InsufficientPrivilege), caught.value
    return str(caught.value.orig)


def _refused_by_policy(engine: sa.Engine, insert: sa.Insert) -> None:
    """``insert`` under tenant A's context must fail the policy's WITH CHECK."""
    with engine.connect() as conn:
        bind_tenant(conn, A)
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.execute(insert)
    assert isinstance(caught.value.orig, pg_errors.InsufficientPrivilege), caught.value
    assert "new row violates row-level security policy" in str(caught.value.orig)


# -- reading ---------------------------------------------------------------------------


@needs_pg
def test_tenant_context_reads_only_own_rows(cluster: Cluster) -> None:
    with cluster.app.begin() as conn:
        bind_tenant(conn, A)
        expected = {t: ROWS[A][t] for t in (*TENANT_TABLES, "api_keys")}
        assert _counts(conn, (*TENANT_TABLES, "api_keys")) == expected
        assert _count(conn, "tenants") == 1  # its own tenant row (status, quota)
        for table in cluster.tables:
            assert _count(conn, table, f"WHERE tenant_id = '{B}'") == 0, table
            assert _count(conn, table, f"WHERE tenant_id <> '{A}'") == 0, table
        # The platform audit stream is not the tenant's either.
        assert _count(conn, "audit_events", f"WHERE tenant_id = '{PLATFORM}'") == 0
        # Nor do the repositories see anything when asked for the other tenant.
        assert decision_repo.get_decision(conn, A, f"{B}-0") is None


@needs_pg
def test_empty_context_reads_nothing(cluster: Cluster) -> None:
    with cluster.app.begin() as conn:
        _set(conn, "fg.tenant_id", "")
        _set(conn, "fg.platform", "")
        assert _counts(conn, cluster.tables) == cluster.zero()


@needs_pg
def test_no_context_reads_nothing(cluster: Cluster) -> None:
    with cluster.app.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_setting('fg.tenant_id', true)").scalar() in (
            None,
            "",
        )
        assert _counts(conn, cluster.tables) == cluster.zero()


@needs_pg
def test_context_does_not_outlive_its_transaction(cluster: Cluster) -> None:
    with cluster.app.connect() as conn:
        with conn.begin():
            bind_tenant(conn, A)
            assert _count(conn, "decisions") == ROWS[A]["decisions"]
        with conn.begin():  # same session, next transaction: SET LOCAL is gone
            assert _counts(conn, cluster.tables) == cluster.zero()


@needs_pg
def test_nonexistent_tenant_reads_nothing(cluster: Cluster) -> None:
    with cluster.app.begin() as conn:
        bind_tenant(conn, "no-such-tenant")
        assert _counts(conn, cluster.tables) == cluster.zero()


@needs_pg
def test_platform_context_reads_no_tenant_data(cluster: Cluster) -> None:
    with cluster.app.begin() as conn:
        _platform(conn)
        data = tuple(t for t in cluster.tables if t not in PLATFORM_TABLES)
        assert set(TENANT_TABLES) <= set(data)
        assert _counts(conn, data) == dict.fromkeys(data, 0)
        seen = _counts(conn, PLATFORM_TABLES)
    with cluster.admin.connect() as conn:  # the superuser sees everything
        everything = _counts(conn, PLATFORM_TABLES)
        assert _count(conn, "api_keys", "WHERE tenant_id IS NULL") > 0
    # every tenant and every key, platform keys (tenant_id NULL) included
    assert seen == everything
    assert seen["tenants"] >= 2


# -- writing ---------------------------------------------------------------------------


@needs_pg
@pytest.mark.parametrize("table", [*TENANT_TABLES, "api_keys"])
def test_insert_for_other_tenant_is_refused(cluster: Cluster, table: str) -> None:
    rows = {
        "decisions": _decision(B, 99),
        "audit_events": _audit(B, 99),
        "ledger_heads": {"stream": "x/bravo", "tenant_id": B, "size": 0, "chain_hash": HASH},
        "tenant_usage": {"tenant_id": B, "day": date(2027, 1, 1), "events": 1},
        "ledger_nodes": {
            "stream": "decisions/bravo",
            "tenant_id": B,
            "level": 3,
            "idx": 0,
            "hash": bytes(32),
        },
        "checkpoints": {
            "stream": "decisions/bravo",
            "tenant_id": B,
            "size": 99,
            "root_hash": HASH,
            "note": "forged",
            "created_at": NOW,
        },
        "api_keys": _key("kb-forged", B),
    }
    _refused_by_policy(cluster.app, schema.metadata.tables[table].insert().values(rows[table]))


@needs_pg
def test_tenant_context_cannot_create_tenants_or_platform_keys(cluster: Cluster) -> None:
    _refused_by_policy(
        cluster.app,
        schema.tenants.insert().values(
            tenant_id="charlie", name="c", status="active", created_at=NOW
        ),
    )
    _refused_by_policy(cluster.app, schema.api_keys.insert().values(_key("kplat-forged", None)))


@needs_pg
def test_other_tenants_mutable_rows_are_out_of_reach(cluster: Cluster) -> None:
    with cluster.app.begin() as conn:
        bind_tenant(conn, A)
        for sql in (
            f"UPDATE ledger_heads SET size = 0 WHERE tenant_id = '{B}'",
            f"UPDATE tenant_usage SET events = 0 WHERE tenant_id = '{B}'",
            f"UPDATE api_keys SET revoked_at = now() WHERE tenant_id = '{B}'",
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id IS NULL",
            "UPDATE tenants SET status = 'suspended'",
        ):
            assert conn.exec_driver_sql(sql).rowcount == 0, sql


@needs_pg
@pytest.mark.parametrize("table", ["decisions", "audit_events", "ledger_nodes", "checkpoints"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = '{tenant}'",
        "DELETE FROM {table}",
        "TRUNCATE {table}",
    ],
    ids=["update", "delete", "truncate"],
)
def test_decisions_and_audit_are_append_only(cluster: Cluster, table: str, statement: str) -> None:
    message = _denied(cluster.app, statement.format(table=table, tenant=A))
    assert "permission denied" in message
    with cluster.admin.connect() as conn:  # and nothing changed
        assert _count(conn, table, f"WHERE tenant_id = '{A}'") == ROWS[A][table]


@needs_pg
@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM ledger_heads",
        "DELETE FROM tenant_usage",
        "DELETE FROM api_keys",
        "DELETE FROM tenants",
        "UPDATE api_keys SET scopes = 'admin' WHERE key_id = 'ka1'",
        "UPDATE api_keys SET tenant_id = 'bravo' WHERE key_id = 'ka1'",
        "UPDATE api_keys SET kind = 'platform' WHERE key_id = 'ka1'",
        "UPDATE api_keys SET replaces = NULL",
        "UPDATE hook_source_secrets SET created_by = NULL",
        "UPDATE ledger_heads SET tenant_id = 'bravo'",
        "UPDATE tenants SET tenant_id = 'x'",
        "TRUNCATE ledger_heads",
        "CREATE TABLE public.sneaky (x int)",
        "CREATE TEMPORARY TABLE sneaky (x int)",
        "CREATE SCHEMA sneaky",
        "DROP TABLE decisions",
    ],
)
def test_app_role_has_dml_only(cluster: Cluster, statement: str) -> None:
    _denied(cluster.app, statement)


@needs_pg
def test_own_rows_writable_where_granted(cluster: Cluster) -> None:
    """The updates the service needs work under the tenant (or platform) context."""
    with cluster.app.begin() as conn:
        bind_tenant(conn, A)
        assert (
            conn.exec_driver_sql(
                "SELECT size FROM ledger_heads WHERE stream = 'decisions/alpha' FOR UPDATE"
            ).scalar()
            == ROWS[A]["decisions"]
        )
        assert conn.exec_driver_sql("UPDATE ledger_heads SET size = size").rowcount == 2
        assert conn.exec_driver_sql("UPDATE tenant_usage SET events = events").rowcount == 1
        assert (
            conn.exec_driver_sql(
                "UPDATE api_keys SET last_used_at = last_used_at WHERE key_id = 'ka1'"
            ).rowcount
            == 1
        )
        conn.rollback()
    with cluster.admin.connect() as conn:
        everything = _counts(conn, PLATFORM_TABLES)
    with cluster.app.begin() as conn:
        _platform(conn)
        updated = {
            "tenants": conn.exec_driver_sql("UPDATE tenants SET status = status").rowcount,
            "api_keys": conn.exec_driver_sql("UPDATE api_keys SET label = label").rowcount,
        }
        assert updated == everything
        conn.rollback()


# -- the role itself -------------------------------------------------------------------


@needs_pg
def test_app_role_cannot_escalate(cluster: Cluster) -> None:
    _denied(cluster.app, f'SET ROLE "{DEFAULT_OWNER}"', tenant=None)
    _denied(cluster.app, "SET ROLE postgres", tenant=None)
    for table in cluster.tables:
        message = _denied(cluster.app, f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        assert "must be owner" in message
        _denied(cluster.app, f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    with cluster.admin.connect() as conn:
        policies = conn.exec_driver_sql("SELECT policyname, tablename FROM pg_policies").all()
    assert len(policies) >= len(cluster.tables)
    for policy, table in policies:
        _denied(cluster.app, f"DROP POLICY {policy} ON {table}")
        _denied(cluster.app, f"ALTER POLICY {policy} ON {table} USING (true)")
    _denied(cluster.app, "SET row_security = off; SELECT count(*) FROM decisions", tenant=None)

    with cluster.app.connect() as conn:
        role = conn.execute(
            sa.text(
                "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit,"
                " rolreplication FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
        assert tuple(role) == (False,) * 6
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
                " WHERE r.rolname = current_user"
            ).scalar_one()
            == 0
        )
        owned = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_class WHERE relowner ="
            " (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        ).scalar_one()
        assert owned == 0
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_proc WHERE proowner ="
                " (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            ).scalar_one()
            == 0
        )
        assert conn.exec_driver_sql("SELECT current_user").scalar() == DEFAULT_APP


@needs_pg
def test_every_tenant_table_forces_row_level_security(cluster: Cluster) -> None:
    """From the catalog, so a new table with a tenant_id but without RLS fails here."""
    with cluster.admin.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
            " AND a.attname = 'tenant_id' AND NOT a.attisdropped"
        ).all()
        tables = {r[0]: r[1:] for r in rows}
        assert set(ALL_TENANT_ID_TABLES) <= set(tables)  # the query is not vacuous
        for table, (enabled, forced, policies) in tables.items():
            assert enabled, table
            assert forced, table
            assert policies > 0, table
        # And every table in the schema is either such a table or has no tenant data.
        others = set(
            conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).scalars()
        ) - set(tables)
        assert others == {"alembic_version"}
        # Every table the app role may touch is listed in APP_GRANTS, nothing else.
        granted = set(
            conn.exec_driver_sql(
                "SELECT DISTINCT table_name FROM information_schema.role_table_grants"
                f" WHERE grantee = '{DEFAULT_APP}'"
            ).scalars()
        ) | set(
            conn.exec_driver_sql(
                "SELECT DISTINCT table_name FROM information_schema.role_column_grants"
                f" WHERE grantee = '{DEFAULT_APP}'"
            ).scalars()
        )
        assert granted == set(APP_GRANTS)


@needs_pg
def test_new_owner_objects_grant_nothing_by_default(cluster: Cluster) -> None:
    with cluster.owner.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE future_table (tenant_id text)")
        conn.exec_driver_sql("CREATE FUNCTION future_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    try:
        _denied(cluster.app, "SELECT * FROM future_table")
        _denied(cluster.app, "SELECT future_fn()")
    finally:
        with cluster.owner.begin() as conn:
            conn.exec_driver_sql("DROP TABLE future_table")
            conn.exec_driver_sql("DROP FUNCTION future_fn()")


# -- authentication before any tenant is known -----------------------------------------


@needs_pg
def test_key_lookup_without_context_returns_only_that_key(cluster: Cluster) -> None:
    lookup = sa.text("SELECT * FROM fg_lookup_key(:k)")
    with cluster.app.connect() as conn:
        rows = conn.execute(lookup, {"k": "kb1"}).mappings().all()
        assert len(rows) == 1
        assert rows[0]["key_id"] == "kb1"
        assert rows[0]["tenant_id"] == B
        assert rows[0]["status"] == "active"
        assert rows[0]["secret_hash"] == HASH
        platform = conn.execute(lookup, {"k": "kplat"}).mappings().one()
        assert platform["tenant_id"] is None
        assert platform["status"] is None
        for probe in ("nope", "", "%", "ka%", "ka1' OR '1'='1"):
            assert conn.execute(lookup, {"k": probe}).all() == [], probe
        # The function's platform context does not leak into the caller's transaction.
        assert conn.exec_driver_sql("SELECT current_setting('fg.platform', true)").scalar() in (
            None,
            "",
        )
        assert _counts(conn, cluster.tables) == cluster.zero()
    with cluster.app.begin() as conn:  # a caller that is in the platform context stays in it
        _platform(conn)
        assert conn.execute(lookup, {"k": "ka1"}).one().key_id == "ka1"
        assert conn.exec_driver_sql("SELECT current_setting('fg.platform', true)").scalar() == "on"
    with cluster.app.begin() as conn:  # the same from inside a tenant context
        bind_tenant(conn, A)
        assert conn.execute(lookup, {"k": "kb1"}).one().tenant_id == B
        assert _count(conn, "api_keys") == ROWS[A]["api_keys"]


@needs_pg
def test_key_lookup_function_is_pinned(cluster: Cluster) -> None:
    with cluster.admin.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner),"
            " has_function_privilege('public', p.oid, 'EXECUTE')"
            " FROM pg_proc p WHERE p.proname = 'fg_lookup_key'"
        ).one()
    assert row[0] is True
    assert row[1] == ["search_path=pg_catalog, pg_temp"]
    assert row[2] == DEFAULT_OWNER
    assert row[3] is False  # PUBLIC may not call it; only the app role


# -- the application's own code paths as the app role ----------------------------------


@needs_pg
def test_writer_and_repositories_work_as_app_role(cluster: Cluster) -> None:
    """The service's own code, connected as the app role: a platform transaction creates
    a tenant, the group-commit writer stores its decision (rows, Merkle nodes, head,
    usage), audit events land in its stream and in the platform stream, and the read
    repositories see them for that tenant only."""
    c = "delta"
    with cluster.app.begin() as conn:
        _platform(conn)
        conn.execute(
            schema.tenants.insert().values(tenant_id=c, name=c, status="active", created_at=NOW)
        )
    writer = GroupCommitWriter(cluster.app)
    writer.start()
    try:
        pending = PendingDecision(
            tenant_id=c,
            event_id="written-by-app",
            source="sshd",
            event_type="auth.failed",
            src_ip="203.0.113.9",
            threat_level="high",
            score=80,
            rules=["r1"],
            actions=[],
            policy_hash=HASH,
            created_at=datetime.now(UTC),
            request_json="{}",
            response_json='{"ok":true}',
        )

        async def write() -> list[Any]:
            return await writer.write([pending])

        (result,) = asyncio.run(write())
        assert result.status == "created"
    finally:
        writer.stop()
    with cluster.app.begin() as conn:
        append_audit(
            conn,
            [
                PendingAudit(c, "audit-by-app", "auth.failed", "warning", NOW),
                PendingAudit(PLATFORM, "audit-platform-by-app", "auth.unknown_key", "info", NOW),
            ],
        )
    with cluster.app.connect() as conn:
        stored = decision_repo.get_decision(conn, c, "written-by-app")
        assert stored is not None
        assert stored["response_json"] == '{"ok":true}'
        assert decision_repo.get_decision(conn, A, "written-by-app") is None
        page = decision_repo.list_page(
            conn, c, decision_repo.DecisionFilter(), before_seq=None, limit=100
        )
        assert [r["event_id"] for r in page] == ["written-by-app"]
        stats = decision_repo.stats(
            conn, c, since=NOW - timedelta(days=1), until=datetime.now(UTC) + timedelta(days=1)
        )
        assert stats["total"] == 1
        assert [e["event_id"] for e in audit_page(conn, c)] == ["audit-by-app"]
        assert audit_page(conn, B)[0]["tenant_id"] == B
        bind_tenant(conn, c)
        assert _count(conn, "tenant_usage") == 1
        assert _count(conn, "ledger_heads") == 2  # decisions/delta and audit/delta
    with cluster.admin.connect() as conn:  # the platform stream got its entry too
        assert _count(conn, "audit_events", "WHERE event_id = 'audit-platform-by-app'") == 1
    # What the app role wrote, it cannot take back.
    _denied(cluster.app, "DELETE FROM decisions WHERE event_id = 'written-by-app'", tenant=c)


# -- db init ---------------------------------------------------------------------------


@needs_pg
def test_db_init_is_idempotent(cluster: Cluster) -> None:
    from frostgate.cli.db import app as db_app

    def seen_by(tenant: str) -> dict[str, int]:
        with cluster.app.begin() as conn:
            bind_tenant(conn, tenant)
            return _counts(conn, cluster.tables)

    before = {tenant: seen_by(tenant) for tenant in (A, B)}
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(
            db_app,
            ["init", "--database", cluster.database],
            env={"FG_DB_ADMIN_URL": cluster.admin_url},
        )
        assert result.exit_code == 0, result.output
        assert "verified" in result.output
    report = init_roles(cluster.admin_url, cluster.database)
    assert report.revision_before == report.revision_after == migrate.head_revision()
    assert not any(a.startswith("created") for a in report.actions)
    # Nothing was lost or opened up by running it again.
    assert {tenant: seen_by(tenant) for tenant in (A, B)} == before
    with cluster.app.connect() as conn:
        assert _counts(conn, cluster.tables) == cluster.zero()
    _denied(cluster.app, "DELETE FROM audit_events")


@needs_pg
def test_db_init_takes_back_what_was_given_away(cluster: Cluster) -> None:
    """Converges: a stray membership, table or privilege of the app role is removed."""
    with cluster.admin.begin() as conn:
        conn.exec_driver_sql(f'GRANT "{DEFAULT_OWNER}" TO "{DEFAULT_APP}"')
        conn.exec_driver_sql(f'GRANT DELETE, UPDATE ON decisions TO "{DEFAULT_APP}"')
        conn.exec_driver_sql("CREATE TABLE app_owned (x int)")
        conn.exec_driver_sql(f'ALTER TABLE app_owned OWNER TO "{DEFAULT_APP}"')
    try:
        report = init_roles(cluster.admin_url, cluster.database)
        assert any("revoked membership" in a for a in report.actions)
        assert any("reassigned" in a for a in report.actions)
        _denied(cluster.app, f'SET ROLE "{DEFAULT_OWNER}"', tenant=None)
        _denied(cluster.app, "DELETE FROM decisions")
        _denied(cluster.app, "DROP TABLE app_owned")
    finally:
        with cluster.admin.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS app_owned")


@needs_pg
def test_db_init_adopts_a_database_migrated_by_a_superuser(cluster: Cluster) -> None:
    """An existing deployment: schema 0002 created by `postgres`, no RLS yet. db init
    hands the tables to the owner, applies 0003 as the owner and grants the app role."""
    from alembic import command

    base = _url(PG_URL)
    name = f"{cluster.database}_legacy"
    server = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with server.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    legacy = sa.create_engine(base.set(database=name), poolclass=sa.pool.NullPool)
    try:
        config = migrate._config()
        with legacy.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
        report = init_roles(PG_URL, name)
        assert report.revision_before == "0002"
        assert report.revision_after == migrate.head_revision()
        assert any("owner postgres -> frostgate_owner" in a for a in report.actions)
        with legacy.connect() as conn:
            owners = set(
                conn.exec_driver_sql(
                    "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
                ).scalars()
            )
            function_owner = conn.exec_driver_sql(
                "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'fg_lookup_key'"
            ).scalar_one()
        assert owners == {DEFAULT_OWNER}
        assert function_owner == DEFAULT_OWNER
        app = sa.create_engine(
            base.set(database=name, username=DEFAULT_APP, password=None),
            poolclass=sa.pool.NullPool,
        )
        try:
            with app.connect() as conn:
                assert _counts(conn, cluster.tables) == cluster.zero()
            _denied(app, "DELETE FROM decisions")
        finally:
            app.dispose()
    finally:
        legacy.dispose()
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


@needs_pg
def test_db_init_refuses_a_missing_database(cluster: Cluster) -> None:
    from frostgate.cli.db import app as db_app

    result = CliRunner().invoke(
        db_app,
        ["init", "--admin-url", cluster.admin_url, "--database", f"{cluster.database}_absent"],
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_migration_is_a_noop_on_sqlite(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fg.db'}")
    try:
        migrate.upgrade(engine)
        assert migrate.is_migrated(engine)
        with engine.connect() as conn:  # no RLS on SQLite, and nothing tried to add it
            assert conn.exec_driver_sql("SELECT count(*) FROM tenants").scalar() == 0
    finally:
        engine.dispose()


# -- alerting tables (0006): the delivery and hook-lookup contexts ---------------------

_ALERTING = ("webhook_endpoints", "outbox", "delivery_attempts", "hook_sources")


def _seed_alerting(owner: sa.Engine) -> None:
    for tenant in (A, B):
        with owner.begin() as conn:
            bind_tenant(conn, tenant)
            conn.execute(
                schema.webhook_endpoints.insert().values(
                    endpoint_id=f"whe_{tenant}",
                    tenant_id=tenant,
                    url="https://hooks.example.com/",
                    secret_pepper_id="p",
                    secret_sealed="x",
                    min_threat_level="high",
                    filters='{"event_types": [], "tripwires": true}',
                    enabled=True,
                    max_per_minute=60,
                    description="",
                    created_at=NOW,
                )
            )
            conn.execute(
                schema.outbox.insert().values(
                    message_id=f"msg_{tenant}",
                    tenant_id=tenant,
                    endpoint_id=f"whe_{tenant}",
                    event_type="decision.alert",
                    count=1,
                    payload="{}",
                    status="pending",
                    attempts=0,
                    created_at=NOW,
                    last_seen_at=NOW,
                    next_attempt_at=NOW,
                )
            )
            conn.execute(
                schema.delivery_attempts.insert().values(
                    message_id=f"msg_{tenant}",
                    attempt=1,
                    tenant_id=tenant,
                    endpoint_id=f"whe_{tenant}",
                    started_at=NOW,
                    duration_ms=1,
                    outcome="failed",
                )
            )
            conn.execute(
                schema.hook_sources.insert().values(
                    source_id=f"hsrc_{tenant}", tenant_id=tenant, name="s", created_at=NOW
                )
            )


@needs_pg
def test_alerting_contexts_open_exactly_their_tables(cluster: Cluster) -> None:
    """Tenant: own rows only. Delivery: outbox, endpoints, attempts of all tenants and
    nothing else. Platform (inbound source lookup): hook sources, not the outbox."""
    _seed_alerting(cluster.owner)
    try:
        with cluster.app.begin() as conn:
            bind_tenant(conn, A)
            assert _counts(conn, _ALERTING) == dict.fromkeys(_ALERTING, 1)
        with cluster.app.begin() as conn:
            _set(conn, "fg.delivery", "on")
            assert _counts(conn, ("webhook_endpoints", "outbox", "delivery_attempts")) == {
                "webhook_endpoints": 2,
                "outbox": 2,
                "delivery_attempts": 2,
            }
            others = tuple(
                t for t in cluster.tables if t not in (*_ALERTING, "tenant_egress_hosts")
            )
            assert _counts(conn, (*others, "hook_sources")) == dict.fromkeys(
                (*others, "hook_sources"), 0
            )
        with cluster.app.begin() as conn:
            _platform(conn)
            assert _count(conn, "hook_sources") == 2
            assert _counts(conn, ("outbox", "webhook_endpoints")) == {
                "outbox": 0,
                "webhook_endpoints": 0,
            }
        # a tenant context cannot queue a message for another tenant
        _refused_by_policy(
            cluster.app,
            schema.outbox.insert().values(
                message_id="msg_forged",
                tenant_id=B,
                endpoint_id=f"whe_{B}",
                event_type="decision.alert",
                count=1,
                payload="{}",
                status="pending",
                attempts=0,
                created_at=NOW,
                last_seen_at=NOW,
                next_attempt_at=NOW,
            ),
        )
    finally:
        with cluster.admin.begin() as conn:
            for table in (*_ALERTING, "hook_source_secrets"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
