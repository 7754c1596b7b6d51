"""Initial incident store: devices, incidents (Form HD-01), timeline, outbox, sequences.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from monitord.incidents.store.models import Id, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("address", sa.String(253), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent", sa.String(64)),
        sa.Column("tags", sa.JSON, nullable=False),
        _when("updated_at"),
    )
    op.create_table(
        "incident_sequences",
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "incidents",
        sa.Column("id", Id, primary_key=True),
        sa.Column("number", sa.String(16), nullable=False, unique=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        _when("recorded_at"),
        _when("reported_at"),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("reporter_name", sa.String(200), nullable=False),
        sa.Column("reporter_agency", sa.String(200), nullable=False),
        sa.Column("reporter_phone", sa.String(50), nullable=False),
        sa.Column("reporter_email", sa.String(200), nullable=False),
        sa.Column("classification", sa.Integer, nullable=False),
        sa.Column("helpdesk_officer", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("impact", sa.String(16), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("device", sa.String(64)),
        sa.Column("subject", sa.String(200)),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("dedup_key", sa.String(400), nullable=False),
        sa.Column("open_key", sa.String(400), unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        _when("first_seen"),
        _when("last_seen"),
        sa.Column("occurrences", sa.Integer, nullable=False),
        _when("clearing_since", nullable=True),
        _when("resolved_at", nullable=True),
        sa.Column("flapping", sa.Boolean, nullable=False),
        sa.Column("transitions", sa.JSON, nullable=False),
        sa.Column("workflow", sa.String(64)),
        sa.Column("step", sa.String(64)),
        _when("step_due_at", nullable=True),
        _when("updated_at"),
        sa.UniqueConstraint("year", "seq", name="uq_incidents_year_seq"),
    )
    op.create_index("ix_incidents_dedup_key", "incidents", ["dedup_key"])
    op.create_index("ix_incidents_status", "incidents", ["status", "category", "severity"])
    op.create_table(
        "incident_timeline",
        sa.Column("id", Id, primary_key=True),
        sa.Column("incident_id", Id, sa.ForeignKey("incidents.id"), nullable=False),
        _when("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_incident_timeline_incident_id", "incident_timeline", ["incident_id"])
    op.create_table(
        "notification_outbox",
        sa.Column("id", Id, primary_key=True),
        sa.Column("incident_id", Id, sa.ForeignKey("incidents.id"), nullable=False),
        _when("created_at"),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("next_attempt_at", nullable=True),
        _when("sent_at", nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_index("ix_notification_outbox_incident_id", "notification_outbox", ["incident_id"])
    op.create_index("ix_notification_outbox_status", "notification_outbox", ["status"])
    _append_only_timeline()


def _append_only_timeline() -> None:
    """The timeline is a record of what happened: the database itself refuses edits."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION monitord_timeline_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'incident_timeline is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER incident_timeline_append_only BEFORE UPDATE OR DELETE "
            "ON incident_timeline FOR EACH ROW EXECUTE FUNCTION monitord_timeline_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER incident_timeline_no_{verb.lower()} BEFORE {verb} "
                "ON incident_timeline BEGIN SELECT RAISE(ABORT, "
                "'incident_timeline is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS incident_timeline_append_only ON incident_timeline")
        op.execute("DROP FUNCTION IF EXISTS monitord_timeline_append_only()")
    for table in ("notification_outbox", "incident_timeline", "incidents",
                  "incident_sequences", "devices"):
        op.drop_table(table)
