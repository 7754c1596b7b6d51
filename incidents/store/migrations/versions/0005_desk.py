"""The web desk: people's password hashes and language, server-side sessions, the login
throttle, and the reporters' status tokens (hashes only).

Revision ID: 0005_desk
"""

import sqlalchemy as sa
from alembic import op

from monitord.incidents.store.models import Id, UTCDateTime

revision = "0005_desk"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_people",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("language", sa.String(8)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("person", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_web_sessions_person", "web_sessions", ["person"])
    op.create_table(
        "web_login_throttle",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("first_failure_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime()),
    )
    op.create_table(
        "incident_status_tokens",
        sa.Column("id", Id, primary_key=True),
        sa.Column("incident_id", Id, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_incident_status_tokens_incident_id", "incident_status_tokens",
                    ["incident_id"])


def downgrade() -> None:
    op.drop_table("incident_status_tokens")
    op.drop_table("web_login_throttle")
    op.drop_table("web_sessions")
    op.drop_table("web_people")
