"""netconfig (issue 7): device configuration versions fetched over SSH with netmiko.

Revision ID: 0006_netconfig
"""

import sqlalchemy as sa
from alembic import op

from monitord.incidents.store.models import Id, UTCDateTime

revision = "0006_netconfig"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "netconfig_versions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("command", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_netconfig_versions_device", "netconfig_versions", ["device"])


def downgrade() -> None:
    op.drop_index("ix_netconfig_versions_device", "netconfig_versions")
    op.drop_table("netconfig_versions")
