"""Active mitigations, their per-tenant change sequence, bouncer cursors, envelopes.

``mitigations.seq`` is taken from ``mitigation_heads`` (one row per tenant, updated in
the same transaction), so changes of one tenant are numbered in commit order: a
bouncer that has seen up to N never misses a change numbered below N. Every table here
is tenant-bound only; the expiry job binds each tenant in turn.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

_TENANT = "tenant_id = NULLIF(pg_catalog.current_setting('fg.tenant_id', true), '')"
_TABLES = ("mitigations", "mitigation_heads", "enforcement_cursors", "tenant_envelopes")


def upgrade() -> None:
    op.create_table(
        "mitigations",
        sa.Column("mitigation_id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("origin_event_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(200), nullable=True),
        sa.Column("ttl_seconds", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposed_by", sa.String(32), nullable=True),
        sa.Column("approved_by", sa.String(32), nullable=True),
        sa.Column("lifted_by", sa.String(32), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'lifted', 'expired', 'rejected')",
            name="ck_mitigations_status",
        ),
        sa.CheckConstraint("scope IN ('ip', 'range', 'user', 'host')", name="ck_mitigations_scope"),
    )
    op.create_index("ix_mitigations_seq", "mitigations", ["tenant_id", "seq"])
    op.create_index("ix_mitigations_status", "mitigations", ["status", "expires_at"])
    op.create_index("ix_mitigations_value", "mitigations", ["tenant_id", "value"])
    op.create_table(
        "mitigation_heads",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "enforcement_cursors",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tenant_envelopes",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY fg_{table}_tenant ON {table} FOR ALL"
            f" USING ({_TENANT}) WITH CHECK ({_TENANT})"
        )
