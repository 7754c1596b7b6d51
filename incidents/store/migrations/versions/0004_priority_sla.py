"""Per-priority SLA targets on incidents: respond and resolve deadlines and their breaches.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

from monitord.incidents.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("respond_due_at", "resolve_due_at", "respond_breached_at", "resolve_breached_at")


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        for column in COLUMNS:
            batch.drop_column(column)
