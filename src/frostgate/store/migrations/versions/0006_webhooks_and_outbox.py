"""Alert endpoints, the durable outbox, delivery attempts, inbound hook sources.

Row-level security (PostgreSQL): every table is tenant-bound like the others. Two extra
per-transaction contexts open exactly what their job needs and nothing else:

* ``fg.delivery = 'on'``: the delivery worker claims due messages of every tenant and
  reads their endpoints, and records attempts. It sees no decision, key or audit row.
* ``fg.platform = 'on'``: finding the tenant of an inbound ``/v1/hooks/{source}``
  request (the source id is all the request names) and its secrets.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

_TENANT = "tenant_id = NULLIF(pg_catalog.current_setting('fg.tenant_id', true), '')"
_DELIVERY = "pg_catalog.current_setting('fg.delivery', true) = 'on'"
_PLATFORM = "pg_catalog.current_setting('fg.platform', true) = 'on'"

_POLICIES = {
    "webhook_endpoints": f"({_TENANT}) OR ({_DELIVERY})",
    "outbox": f"({_TENANT}) OR ({_DELIVERY})",
    "delivery_attempts": f"({_TENANT}) OR ({_DELIVERY})",
    "hook_sources": f"({_TENANT}) OR ({_PLATFORM})",
    "hook_source_secrets": f"({_TENANT}) OR ({_PLATFORM})",
    "tenant_egress_hosts": f"({_TENANT}) OR ({_DELIVERY}) OR ({_PLATFORM})",
}


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret_pepper_id", sa.String(32), nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("min_threat_level", sa.String(16), nullable=False),
        sa.Column("filters", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("max_per_minute", sa.Integer, nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(32), nullable=True),
        _ts("deleted_at", nullable=True),
    )
    op.create_index("ix_webhook_endpoints_tenant", "webhook_endpoints", ["tenant_id"])
    op.create_table(
        "outbox",
        sa.Column("message_id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("aggregate_key", sa.String(300), nullable=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("last_seen_at"),
        _ts("next_attempt_at"),
        _ts("lease_until", nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _ts("delivered_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'inflight', 'delivered', 'dead')", name="ck_outbox_status"
        ),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_aggregate", "outbox", ["endpoint_id", "aggregate_key", "created_at"])
    op.create_index("ix_outbox_tenant", "outbox", ["tenant_id", "created_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("message_id", sa.String(40), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        _ts("started_at"),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_delivery_attempts_endpoint", "delivery_attempts", ["endpoint_id", "started_at"]
    )
    op.create_table(
        "hook_sources",
        sa.Column("source_id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(32), nullable=True),
    )
    op.create_table(
        "hook_source_secrets",
        sa.Column("secret_id", sa.String(40), primary_key=True),
        sa.Column("source_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("secret_pepper_id", sa.String(32), nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
    )
    op.create_index("ix_hook_source_secrets_source", "hook_source_secrets", ["source_id"])
    op.create_table(
        "tenant_egress_hosts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(253), primary_key=True),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, rule in _POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY fg_{table}_access ON {table} FOR ALL USING ({rule}) WITH CHECK ({rule})"
        )
