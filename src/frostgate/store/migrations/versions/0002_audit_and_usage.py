"""Security audit log (hash-chained per stream) and per-tenant daily usage.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # tenant_id is the tenant whose stream the event belongs to, or '_platform' for the
    # platform stream (events with no tenant: unknown keys, platform administration).
    op.create_table(
        "audit_events",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("actor_key_id", sa.String(32), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("peer_ip", sa.String(64), nullable=True),
        sa.Column("forwarded_for", sa.Text, nullable=True),
        sa.Column("route", sa.String(200), nullable=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("prev_chain_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name="ck_audit_events_severity"
        ),
    )
    op.create_index("ix_audit_events_kind", "audit_events", ["tenant_id", "kind", "seq"])
    op.create_index("ix_audit_events_created", "audit_events", ["tenant_id", "created_at"])
    op.create_table(
        "tenant_usage",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", name="pk_tenant_usage"),
    )
