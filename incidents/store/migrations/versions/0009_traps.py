"""Topology holds: a child's device_unreachable waiting for its parent's (issue 5).

Revision ID: 0009_traps
"""

import sqlalchemy as sa
from alembic import op

from monitord.incidents.store.models import UTCDateTime

revision = "0009_traps"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topology_holds",
        sa.Column("dedup_key", sa.String(400), primary_key=True),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("finding", sa.JSON, nullable=False),
        sa.Column("held_until", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_topology_holds_held_until", "topology_holds", ["held_until"])


def downgrade() -> None:
    op.drop_table("topology_holds")
