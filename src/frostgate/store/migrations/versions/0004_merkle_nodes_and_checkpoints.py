"""Merkle subtree hashes and signed checkpoints for every ledger stream.

``ledger_nodes`` holds the hash of every complete, aligned subtree of every stream
(RFC 9162 §2.1; level 0 = the leaves), inserted in the same transaction as the leaves
that complete them and never updated, so an inclusion or consistency proof reads
O(log n) rows instead of the log. ``checkpoints`` keeps every signed tree head
(C2SP tlog-checkpoint), never rewritten. Both are tenant tables under row-level
security on PostgreSQL, like the streams they describe.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

_TENANT = "tenant_id = NULLIF(pg_catalog.current_setting('fg.tenant_id', true), '')"
_TABLES = ("ledger_nodes", "checkpoints")


def upgrade() -> None:
    op.create_table(
        "ledger_nodes",
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("stream", "level", "idx", name="pk_ledger_nodes"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stream", "size", name="pk_checkpoints"),
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
