"""Forensic audit packets: what each packet covers, so it can be downloaded again.

A packet is a deterministic zip over an append-only range, so it is rebuilt on download
from these parameters and checked against the SHA-256 recorded at creation; a mismatch
means the stored history changed underneath it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

_TENANT = "tenant_id = NULLIF(pg_catalog.current_setting('fg.tenant_id', true), '')"


def upgrade() -> None:
    op.create_table(
        "forensic_packets",
        sa.Column("packet_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("start_index", sa.BigInteger, nullable=False),
        sa.Column("end_index", sa.BigInteger, nullable=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("since", sa.String(40), nullable=True),
        sa.Column("until", sa.String(40), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_forensic_packets_tenant", "forensic_packets", ["tenant_id", "created_at"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE forensic_packets ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE forensic_packets FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY fg_forensic_packets_tenant ON forensic_packets FOR ALL"
        f" USING ({_TENANT}) WITH CHECK ({_TENANT})"
    )
