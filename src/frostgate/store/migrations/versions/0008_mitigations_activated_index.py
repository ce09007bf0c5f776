"""Index the blast-radius count: mitigations by tenant and activation time.

``store.mitigations.count_recent_blocks`` runs in the writer's transaction for every
batch that proposes a mitigation. Without this index it read every mitigation row of the
tenant (``ix_mitigations_seq`` on ``tenant_id``), so decisions got slower as the table
grew: the soak (issue 7) saw /v1/defend fall from 711 to 375 decisions/s over ten
minutes with the server on a full core. Pending rows have no ``activated_at``, so the
range now touches only what took effect inside the window (at most the cap, plus what
analysts approved).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_index("ix_mitigations_activated", "mitigations", ["tenant_id", "activated_at"])
