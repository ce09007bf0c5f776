"""PostgreSQL row-level security on every table with a tenant_id (audit F9).

Every such table gets ENABLE + FORCE ROW LEVEL SECURITY (FORCE: the table owner is held
to the policies too; only superusers and BYPASSRLS roles skip them, and the application
role is neither). The policies read two per-transaction settings, never role names, so
this migration needs no role to exist (``frostgate db init`` creates the roles and
grants):

* ``fg.tenant_id``: the tenant a transaction is bound to (``store.tenancy.bind_tenant``).
  Tenant tables admit exactly the rows of that tenant, for reading and writing. An
  unset setting is NULL and an empty one is turned into NULL, and ``tenant_id = NULL`` is
  never true: no context, no rows.
* ``fg.platform = 'on'``: platform administration. It opens ``tenants`` and ``api_keys``
  (every tenant, and platform keys whose tenant_id is NULL) and nothing else: platform
  keys never read tenant data.

``fg_lookup_key(key_id)`` is how authentication reads one key (joined to its tenant's
status) before any tenant is known: a SECURITY DEFINER function, owned by the role that
runs the migrations, with a pinned ``search_path`` and fully qualified names. It raises
the platform context for its one exact-match query only and puts the caller's value back
before it returns. EXECUTE is revoked from PUBLIC here and granted to the application
role by ``db init``.

On SQLite (no RLS) this migration does nothing.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"

TENANT_TABLES = ("decisions", "audit_events", "ledger_heads", "tenant_usage")
PLATFORM_TABLES = ("tenants", "api_keys")

_TENANT = "tenant_id = NULLIF(pg_catalog.current_setting('fg.tenant_id', true), '')"
_PLATFORM = "pg_catalog.current_setting('fg.platform', true) = 'on'"

# name -> (table, command, USING, WITH CHECK)
_POLICIES: dict[str, tuple[str, str, str | None, str | None]] = {
    **{f"fg_{table}_tenant": (table, "ALL", _TENANT, _TENANT) for table in TENANT_TABLES},
    # A tenant context sees and manages its own keys; the platform context every key.
    "fg_api_keys_access": (
        "api_keys",
        "ALL",
        f"({_PLATFORM}) OR ({_TENANT})",
        f"({_PLATFORM}) OR ({_TENANT})",
    ),
    # A tenant context reads its own tenant row (status, quota); only the platform
    # context creates or changes tenants. No DELETE policy: deleting matches nothing.
    "fg_tenants_read": ("tenants", "SELECT", f"({_PLATFORM}) OR ({_TENANT})", None),
    "fg_tenants_insert": ("tenants", "INSERT", None, _PLATFORM),
    "fg_tenants_update": ("tenants", "UPDATE", _PLATFORM, _PLATFORM),
}

LOOKUP_FUNCTION = "fg_lookup_key"


def _lookup_function_sql(schema: str) -> str:
    keys = f"{schema}.api_keys"
    tenants = f"{schema}.tenants"
    # schema is a quoted identifier (current_schema()); the rest is constant text.
    return f"""
CREATE OR REPLACE FUNCTION {schema}.{LOOKUP_FUNCTION}(p_key_id text)
RETURNS TABLE (
    key_id varchar, tenant_id varchar, kind varchar, scopes text, secret_hash varchar,
    pepper_id varchar, label varchar, created_at timestamptz, expires_at timestamptz,
    revoked_at timestamptz, last_used_at timestamptz, status varchar
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    saved text := pg_catalog.current_setting('fg.platform', true);
BEGIN
    PERFORM pg_catalog.set_config('fg.platform', 'on', true);
    RETURN QUERY
        SELECT k.key_id, k.tenant_id, k.kind, k.scopes, k.secret_hash, k.pepper_id,
               k.label, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, t.status
        FROM {keys} AS k
        LEFT JOIN {tenants} AS t ON t.tenant_id = k.tenant_id
        WHERE k.key_id = p_key_id;
    PERFORM pg_catalog.set_config('fg.platform', coalesce(saved, ''), true);
END
$fn$
"""  # noqa: S608


def _schema() -> str:
    bind = op.get_bind()
    name: str = bind.exec_driver_sql("SELECT current_schema()").scalar_one()
    return bind.dialect.identifier_preparer.quote_identifier(name)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = _schema()
    for table in (*TENANT_TABLES, *PLATFORM_TABLES):
        op.execute(f"ALTER TABLE {schema}.{table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {schema}.{table} FORCE ROW LEVEL SECURITY")
    for name, (table, command, using, check) in _POLICIES.items():
        op.execute(f"DROP POLICY IF EXISTS {name} ON {schema}.{table}")
        clauses = f" USING ({using})" if using else ""
        clauses += f" WITH CHECK ({check})" if check else ""
        op.execute(f"CREATE POLICY {name} ON {schema}.{table} FOR {command}{clauses}")
    op.execute(_lookup_function_sql(schema))
    op.execute(f"REVOKE ALL ON FUNCTION {schema}.{LOOKUP_FUNCTION}(text) FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = _schema()
    op.execute(f"DROP FUNCTION IF EXISTS {schema}.{LOOKUP_FUNCTION}(text)")
    for name, (table, *_rest) in _POLICIES.items():
        op.execute(f"DROP POLICY IF EXISTS {name} ON {schema}.{table}")
    for table in (*TENANT_TABLES, *PLATFORM_TABLES):
        op.execute(f"ALTER TABLE {schema}.{table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {schema}.{table} DISABLE ROW LEVEL SECURITY")
