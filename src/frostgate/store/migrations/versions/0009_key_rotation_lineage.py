"""Record which key a rotated key replaces.

Rotation issues a successor to whoever asks, with the old key's scopes. The successor
was linked to its predecessor only in the audit log, so the approval rule for pending
mitigations (never the proposing key, nor a key the proposer issued) could not see that
a successor made by someone else's rotation stands for the proposer's key.
``api_keys.replaces`` holds the predecessor's id; it is written once, at rotation, and
the application role has no UPDATE on it (store/roles.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("replaces", sa.String(32), nullable=True))
