"""SOP workflow state on incidents: division, priority, step timing and breaches, who acted.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

from monitord.incidents.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("division", sa.String(16)))
        batch.add_column(sa.Column("priority", sa.String(4)))
        batch.add_column(sa.Column("step_started_at", UTCDateTime()))
        batch.add_column(sa.Column("step_breached_at", UTCDateTime()))
        batch.add_column(sa.Column("step_entries", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("people_acted", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("condition_cleared_at", UTCDateTime()))
        batch.add_column(sa.Column("assignee", sa.String(64)))
        batch.add_column(sa.Column("closed_at", UTCDateTime()))
        batch.add_column(sa.Column("description", sa.Text, nullable=False, server_default=""))
    op.create_index("ix_incidents_step_due_at", "incidents", ["step_due_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_step_due_at", "incidents")
    with op.batch_alter_table("incidents") as batch:
        for column in ("division", "priority", "step_started_at", "step_breached_at",
                       "step_entries", "people_acted", "condition_cleared_at", "assignee",
                       "closed_at", "description"):
            batch.drop_column(column)
