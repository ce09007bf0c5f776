"""Record which key added each inbound hook secret.

A delivery signed with a source's secret has no API key; the mitigations it proposes
were attributed to the key that created the source. A second key that added a secret
to the source could then send deliveries signed with it and approve the blocks they
proposed: one holder on both sides of the two-key rule. ``hook_source_secrets.created_by``
names the key that added (and was shown) the secret; the application role can insert it
but never update it (store/roles.py). Secrets added before this revision keep none, and
the code attributes them to their source's creator, as it did until now. (No backfill:
on PostgreSQL the owner running migrations is held to the forced row-level security and
would see no rows to update.)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.add_column("hook_source_secrets", sa.Column("created_by", sa.String(32), nullable=True))
