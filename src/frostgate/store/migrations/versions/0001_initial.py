"""Initial schema: tenants, API keys, decisions with their hash chain, ledger heads.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("daily_event_quota", sa.BigInteger, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.CheckConstraint("status IN ('active', 'suspended')", name="ck_tenants_status"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("pepper_id", sa.String(32), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.CheckConstraint("kind IN ('tenant', 'platform', 'canary')", name="ck_api_keys_kind"),
        # A platform key belongs to no tenant; every other key to exactly one (F6).
        sa.CheckConstraint(
            "(kind = 'platform' AND tenant_id IS NULL)"
            " OR (kind <> 'platform' AND tenant_id IS NOT NULL)",
            name="ck_api_keys_tenancy",
        ),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant_id"])
    op.create_table(
        "decisions",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("event_type", sa.String(256), nullable=False),
        sa.Column("src_ip", sa.String(64), nullable=True),
        sa.Column("threat_level", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("actions", sa.Text, nullable=False),
        sa.Column("actionable", sa.Boolean, nullable=False),
        sa.Column("changed", sa.Boolean, nullable=False),
        sa.Column("diff", sa.Text, nullable=True),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("response_json", sa.Text, nullable=False),
        sa.Column("response_sha256", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("prev_chain_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name="pk_decisions"),
        sa.UniqueConstraint("tenant_id", "event_id", name="uq_decisions_tenant_event"),
        sa.CheckConstraint(
            "threat_level IN ('none', 'low', 'medium', 'high', 'critical')",
            name="ck_decisions_level",
        ),
    )
    op.create_index(
        "ix_decisions_lineage", "decisions", ["tenant_id", "source", "event_type", "seq"]
    )
    op.create_index("ix_decisions_level", "decisions", ["tenant_id", "threat_level", "seq"])
    op.create_index("ix_decisions_created", "decisions", ["tenant_id", "created_at"])
    op.create_table(
        "ledger_heads",
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
    )
