"""PostgreSQL roles and grants for row-level security (audit F9): ``frostgate db init``.

Two roles:

* the **owner** (default ``frostgate_owner``) owns the schema objects and runs the
  migrations. It is NOLOGIN unless given a password, and it is not exempt from RLS
  either (the tables are FORCE ROW LEVEL SECURITY).
* the **application** role (default ``frostgate_app``) is what the service logs in as.
  It owns nothing, is a member of no role, cannot bypass RLS, and holds only the DML in
  :data:`APP_GRANTS`: decisions and audit events are INSERT + SELECT (append-only,
  enforced by the database, not by code discipline).

:func:`init_roles` is idempotent: every run converges the cluster to that state again
(attributes, memberships, ownership of the FrostGate objects, privileges), runs the
migrations as the owner, and re-grants exactly :data:`APP_GRANTS`, so it is also the
step to run after every upgrade (a new table is invisible to the application role until
it is listed here).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from frostgate.store.migrate import upgrade
from frostgate.store.schema import metadata

__all__ = [
    "APP_FUNCTIONS",
    "APP_GRANTS",
    "DEFAULT_APP",
    "DEFAULT_OWNER",
    "InitReport",
    "RoleSetupError",
    "init_roles",
]

DEFAULT_OWNER = "frostgate_owner"
DEFAULT_APP = "frostgate_app"
SCHEMA = "public"

# table -> privileges of the application role (column lists keep identities immutable:
# no UPDATE of a key's tenant, kind or scopes, of a tenant's id, of a stream's tenant).
APP_GRANTS: dict[str, tuple[str, ...]] = {
    "decisions": ("SELECT", "INSERT"),
    "audit_events": ("SELECT", "INSERT"),
    "ledger_heads": ("SELECT", "INSERT", "UPDATE (size, chain_hash)"),
    "tenant_usage": ("SELECT", "INSERT", "UPDATE (events)"),
    # Merkle subtree hashes and signed checkpoints (0004): written once, never changed.
    "ledger_nodes": ("SELECT", "INSERT"),
    "checkpoints": ("SELECT", "INSERT"),
    # What each forensic packet covers (0005): written once.
    "forensic_packets": ("SELECT", "INSERT"),
    "api_keys": (
        "SELECT",
        "INSERT",
        "UPDATE (secret_hash, pepper_id, label, expires_at, revoked_at, last_used_at)",
    ),
    "tenants": ("SELECT", "INSERT", "UPDATE (name, status, daily_event_quota)"),
    # Alerting and inbound webhooks (0006). Endpoints are soft-deleted (deleted_at) so
    # their delivery history stays; outbox rows change state as deliveries progress;
    # attempts are written once. Egress host allowlists are replaced wholesale.
    "webhook_endpoints": ("SELECT", "INSERT", "UPDATE (enabled, deleted_at)"),
    "outbox": (
        "SELECT",
        "INSERT",
        "UPDATE (count, last_seen_at, body, status, attempts, next_attempt_at, lease_until,"
        " last_error, delivered_at)",
    ),
    "delivery_attempts": ("SELECT", "INSERT"),
    "hook_sources": ("SELECT", "INSERT"),
    "hook_source_secrets": ("SELECT", "INSERT", "UPDATE (revoked_at)"),
    "tenant_egress_hosts": ("SELECT", "INSERT", "DELETE"),
    # Enforcement (0007): mitigations change state (approve, lift, expire), never
    # identity; heads and cursors are counters; envelopes are replaced.
    "mitigations": (
        "SELECT",
        "INSERT",
        "UPDATE (seq, status, status_reason, activated_at, expires_at, ended_at,"
        " approved_by, lifted_by)",
    ),
    "mitigation_heads": ("SELECT", "INSERT", "UPDATE (seq)"),
    "enforcement_cursors": ("SELECT", "INSERT", "UPDATE (seq, updated_at)"),
    "tenant_envelopes": ("SELECT", "INSERT", "UPDATE (envelope, updated_at)"),
    # ``is_migrated`` (serve, readiness) reads the schema revision.
    "alembic_version": ("SELECT",),
}
APP_FUNCTIONS = ("fg_lookup_key(text)",)

# The objects FrostGate creates; db init takes ownership of them for the owner role if
# an earlier run (or a manual `frostgate migrate` as a superuser) left them elsewhere.
_OWNED_TABLES = (*sorted(metadata.tables), "alembic_version")

_ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DB_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")


class RoleSetupError(RuntimeError):
    """The cluster cannot be brought to the required state (message says why)."""


@dataclass(slots=True)
class InitReport:
    """What :func:`init_roles` did, step by step, for the CLI to print."""

    database: str
    owner: str
    app: str
    revision_before: str | None = None
    revision_after: str | None = None
    actions: list[str] = field(default_factory=list)

    def did(self, action: str) -> None:
        self.actions.append(action)


def _q(name: str) -> str:
    """A double-quoted identifier (the names are also validated by pattern)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _psycopg_url(url: str) -> sa.URL:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise RoleSetupError("db init needs a PostgreSQL URL (postgresql://user@host/db)")
    return parsed


@contextmanager
def _engine(url: sa.URL, **kwargs: Any) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


def _scram(conn: sa.Connection, role: str, password: str) -> str:
    """The SCRAM verifier of ``password``, computed client-side (libpq), so the plain
    password never reaches the server or its statement log."""
    raw: Any = conn.connection.dbapi_connection
    verifier = raw.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return str(verifier.decode())


def _role_oid(conn: sa.Connection, role: str) -> int | None:
    oid = conn.execute(
        sa.text("SELECT oid FROM pg_catalog.pg_roles WHERE rolname = :r"), {"r": role}
    ).scalar()
    return None if oid is None else int(oid)


def _ensure_role(
    conn: sa.Connection,
    report: InitReport,
    role: str,
    *,
    login: bool | None,
    inherit: bool,
    password: str | None,
    superuser: bool,
) -> None:
    if _role_oid(conn, role) is None:
        conn.exec_driver_sql(f"CREATE ROLE {_q(role)} {'LOGIN' if login else 'NOLOGIN'}")
        report.did(f"created role {role} ({'LOGIN' if login else 'NOLOGIN'})")
    else:
        report.did(f"role {role} exists")
    options = ["NOCREATEDB", "NOCREATEROLE", "INHERIT" if inherit else "NOINHERIT"]
    if login is not None:
        options.append("LOGIN" if login else "NOLOGIN")
    if superuser:
        # Only a superuser may state these; a CREATEROLE admin is checked below instead.
        options += ["NOSUPERUSER", "NOBYPASSRLS", "NOREPLICATION"]
    if password is not None:
        options.append("PASSWORD " + _literal(_scram(conn, role, password)))
    conn.exec_driver_sql(f"ALTER ROLE {_q(role)} " + " ".join(options))
    flags = conn.execute(
        sa.text(
            "SELECT rolsuper, rolbypassrls, rolreplication FROM pg_catalog.pg_roles"
            " WHERE rolname = :r"
        ),
        {"r": role},
    ).one()
    if any(flags):
        raise RoleSetupError(
            f"role {role} has SUPERUSER, BYPASSRLS or REPLICATION and only a superuser"
            " can remove it; run db init as a superuser"
        )
    report.did(
        f"role {role}: {' '.join(o for o in options if not o.startswith('PASSWORD'))}"
        + ("; password set (SCRAM)" if password is not None else "")
    )


def _revoke_memberships(conn: sa.Connection, report: InitReport, role: str) -> None:
    """The application role is a member of no role: no SET ROLE, nothing inherited."""
    granted: list[str] = list(
        conn.execute(
            sa.text(
                "SELECT g.rolname FROM pg_catalog.pg_auth_members m"
                " JOIN pg_catalog.pg_roles g ON g.oid = m.roleid"
                " JOIN pg_catalog.pg_roles u ON u.oid = m.member"
                " WHERE u.rolname = :r ORDER BY 1"
            ),
            {"r": role},
        ).scalars()
    )
    for group in granted:
        conn.exec_driver_sql(f"REVOKE {_q(group)} FROM {_q(role)}")
        report.did(f"revoked membership of {role} in {group}")


def _admin_flags(conn: sa.Connection) -> tuple[str, bool, bool, bool]:
    row = conn.execute(
        sa.text(
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb"
            " FROM pg_catalog.pg_roles WHERE rolname = current_user"
        )
    ).one()
    return str(row[0]), bool(row[1]), bool(row[2]), bool(row[3])


def _server_setup(
    conn: sa.Connection,
    report: InitReport,
    *,
    owner_password: str | None,
    app_password: str | None,
    create_database: bool,
) -> None:
    """Cluster-wide part (roles, the database), in autocommit mode."""
    admin, superuser, createrole, createdb = _admin_flags(conn)
    if not (superuser or createrole):
        raise RoleSetupError(f"{admin} can neither create roles nor is a superuser")
    if report.owner == report.app:
        raise RoleSetupError("the owner and the application role must differ")
    owner_exists = _role_oid(conn, report.owner) is not None
    _ensure_role(
        conn,
        report,
        report.owner,
        # A new owner without a password cannot log in; an existing one keeps its LOGIN
        # state unless a password is given now.
        login=True if owner_password is not None else (None if owner_exists else False),
        inherit=True,
        password=owner_password,
        superuser=superuser,
    )
    _ensure_role(
        conn,
        report,
        report.app,
        login=True,
        inherit=False,
        password=app_password,
        superuser=superuser,
    )
    _revoke_memberships(conn, report, report.app)
    if not superuser:
        # SET ROLE to the owner (migrations, grants) needs membership.
        conn.exec_driver_sql(f"GRANT {_q(report.owner)} TO {_q(admin)}")
        report.did(f"granted {report.owner} to {admin} (needed to act as the owner)")

    exists = conn.execute(
        sa.text("SELECT 1 FROM pg_catalog.pg_database WHERE datname = :d"),
        {"d": report.database},
    ).scalar()
    if exists:
        report.did(f"database {report.database} exists")
    elif create_database:
        if not (superuser or createdb):
            raise RoleSetupError(f"{admin} may not create databases")
        conn.exec_driver_sql(f"CREATE DATABASE {_q(report.database)} OWNER {_q(report.owner)}")
        report.did(f"created database {report.database} owned by {report.owner}")
    else:
        raise RoleSetupError(
            f"database {report.database} does not exist (pass --create-database to create it)"
        )


def _database_setup(conn: sa.Connection, report: InitReport) -> None:
    """Per-database hardening and ownership, before the migrations (one transaction)."""
    db, owner, app = _q(report.database), _q(report.owner), _q(report.app)
    conn.exec_driver_sql(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {db} TO {owner}, {app}")
    report.did("database: revoked CONNECT/TEMPORARY from PUBLIC; CONNECT to owner and app")
    conn.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC")
    conn.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM {app}")
    conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO {owner}")
    report.did(f"schema {SCHEMA}: no CREATE for PUBLIC or app; USAGE, CREATE for owner")

    # The application role owns nothing (an owner could disable RLS on its tables).
    owns: int = conn.execute(
        sa.text(
            "SELECT count(*) FROM pg_catalog.pg_shdepend d"
            " JOIN pg_catalog.pg_roles r ON r.oid = d.refobjid"
            " WHERE r.rolname = :r AND d.deptype = 'o' AND d.dbid IN"
            " (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))"
        ),
        {"r": report.app},
    ).scalar_one()
    if owns:
        conn.exec_driver_sql(f"REASSIGN OWNED BY {app} TO {owner}")
        report.did(f"reassigned {owns} object(s) owned by {report.app} to {report.owner}")

    # Objects left by an earlier migration run as another role (e.g. a superuser).
    stray = conn.execute(
        sa.text(
            "SELECT c.relname, pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND c.relname = ANY(:t)"
            " AND pg_catalog.pg_get_userbyid(c.relowner) <> :o ORDER BY 1"
        ),
        {"s": SCHEMA, "t": list(_OWNED_TABLES), "o": report.owner},
    ).all()
    for table, previous in stray:
        conn.exec_driver_sql(f"ALTER TABLE {SCHEMA}.{_q(str(table))} OWNER TO {owner}")
        report.did(f"table {table}: owner {previous} -> {report.owner}")
    functions = conn.execute(
        sa.text(
            "SELECT p.oid::regprocedure::text, pg_catalog.pg_get_userbyid(p.proowner)"
            " FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = :s AND p.oid::regprocedure::text = ANY(:f)"
            " AND pg_catalog.pg_get_userbyid(p.proowner) <> :o"
        ),
        {"s": SCHEMA, "f": list(APP_FUNCTIONS), "o": report.owner},
    ).all()
    for signature, previous in functions:
        conn.exec_driver_sql(f"ALTER FUNCTION {SCHEMA}.{signature} OWNER TO {owner}")
        report.did(f"function {signature}: owner {previous} -> {report.owner}")


def _current_revision(conn: sa.Connection) -> str | None:
    exists = conn.execute(
        sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": SCHEMA + ".alembic_version"}
    ).scalar()
    if not exists:
        return None
    revision = conn.exec_driver_sql("SELECT version_num FROM public.alembic_version").scalar()
    return None if revision is None else str(revision)


def _migrate_as_owner(url: sa.URL, report: InitReport) -> None:
    with _engine(url) as engine:

        @sa.event.listens_for(engine, "connect")
        def _become_owner(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute(f"SET ROLE {_q(report.owner)}")
            dbapi_conn.commit()

        with engine.connect() as conn:
            report.revision_before = _current_revision(conn)
        upgrade(engine)
        with engine.connect() as conn:
            report.revision_after = _current_revision(conn)
    report.did(
        f"migrations run as {report.owner}: {report.revision_before or 'empty'}"
        f" -> {report.revision_after}"
    )


def _grant(conn: sa.Connection, report: InitReport) -> None:
    """Exactly :data:`APP_GRANTS` for the application role (one transaction: the
    revoke-all and the grants become visible together)."""
    owner, app = _q(report.owner), _q(report.app)
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {app}")
    # Act as the owner: grants are recorded with the owner as grantor, and the default
    # privileges below are the owner's.
    conn.exec_driver_sql(f"SET LOCAL ROLE {owner}")
    for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
        conn.exec_driver_sql(f"REVOKE ALL ON ALL {kind} IN SCHEMA {SCHEMA} FROM {app}")
    present: set[str] = set(
        conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :s AND c.relkind IN ('r', 'p')"
            ),
            {"s": SCHEMA},
        ).scalars()
    )
    missing = sorted(set(APP_GRANTS) - present)
    if missing:
        raise RoleSetupError(f"tables missing after the migrations: {', '.join(missing)}")
    for table, privileges in APP_GRANTS.items():
        conn.exec_driver_sql(
            f"GRANT {', '.join(privileges)} ON TABLE {SCHEMA}.{_q(table)} TO {app}"
        )
        report.did(f"granted {report.app}: {', '.join(privileges)} on {table}")
    for function in APP_FUNCTIONS:
        conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {SCHEMA}.{function} FROM PUBLIC")
        conn.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.{function} TO {app}")
        report.did(f"granted {report.app}: EXECUTE on {function}")
    # Future objects of the owner grant nothing to anyone until listed in APP_GRANTS.
    conn.exec_driver_sql(
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"
    )
    for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
        conn.exec_driver_sql(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE ALL ON {kind} FROM {app}"
        )
    report.did(f"default privileges of {report.owner}: nothing for PUBLIC or {report.app}")


def _verify(conn: sa.Connection, report: InitReport) -> None:
    """Refuse to report success unless the invariants the tests check hold."""
    problems: list[str] = []
    role: bool = conn.execute(
        sa.text(
            "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolinherit"
            " FROM pg_catalog.pg_roles WHERE rolname = :r"
        ),
        {"r": report.app},
    ).scalar_one()
    if role:
        problems.append(f"{report.app} has a forbidden role attribute")
    owned: int = conn.execute(
        sa.text(
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r"
            " ON r.oid = c.relowner WHERE r.rolname = :r"
        ),
        {"r": report.app},
    ).scalar_one()
    if owned:
        problems.append(f"{report.app} owns {owned} relation(s)")
    unforced: list[str] = list(
        conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
                " WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND a.attname = 'tenant_id'"
                " AND NOT a.attisdropped"
                " AND NOT (c.relrowsecurity AND c.relforcerowsecurity) ORDER BY 1"
            ),
            {"s": SCHEMA},
        ).scalars()
    )
    problems += [f"table {t} has a tenant_id but no forced row-level security" for t in unforced]
    if problems:
        raise RoleSetupError("; ".join(problems))
    report.did("verified: app role unprivileged, owns nothing; RLS forced on every tenant table")


def init_roles(
    admin_url: str,
    database: str | None = None,
    owner: str = DEFAULT_OWNER,
    app: str = DEFAULT_APP,
    app_password: str | None = None,
    *,
    owner_password: str | None = None,
    create_database: bool = False,
) -> InitReport:
    """Create or converge the roles, the database, the schema and the grants.

    ``admin_url`` names a superuser (or, best effort, a CREATEROLE role) on any database
    of the cluster; ``database`` defaults to the one in the URL.
    """
    url = _psycopg_url(admin_url)
    database = database or url.database
    if not database or not _DB_RE.fullmatch(database):
        raise RoleSetupError(f"invalid database name {database!r}")
    for role in (owner, app):
        if not _ROLE_RE.fullmatch(role):
            raise RoleSetupError(f"invalid role name {role!r} (use a-z, 0-9 and _)")
    report = InitReport(database=database, owner=owner, app=app)

    with _engine(url, isolation_level="AUTOCOMMIT") as engine, engine.connect() as conn:
        _server_setup(
            conn,
            report,
            owner_password=owner_password,
            app_password=app_password,
            create_database=create_database,
        )
    target = url.set(database=database)
    with _engine(target) as engine:
        with engine.begin() as conn:
            _database_setup(conn, report)
        _migrate_as_owner(target, report)
        with engine.begin() as conn:
            _grant(conn, report)
        with engine.connect() as conn:
            _verify(conn, report)
    return report
