"""Tables of the incident store. The schema itself is created by the Alembic migrations in
`migrations/versions/`; these classes must match them (tests/test_store.py checks)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# BIGINT keys on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else \
            value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class DeviceRow(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(253))
    site: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    parent: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime]


class IncidentSequence(Base):
    """Per-year counter behind the readable number 2026-000123 (Form HD-01's Nomor Urut)."""

    __tablename__ = "incident_sequences"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class IncidentRow(Base):
    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("year", "seq", name="uq_incidents_year_seq"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    # Form HD-01
    recorded_at: Mapped[datetime]
    reported_at: Mapped[datetime]
    location: Mapped[str] = mapped_column(String(200), default="")
    reporter_name: Mapped[str] = mapped_column(String(200))
    reporter_agency: Mapped[str] = mapped_column(String(200), default="")
    reporter_phone: Mapped[str] = mapped_column(String(50), default="")
    reporter_email: Mapped[str] = mapped_column(String(200), default="")
    classification: Mapped[int] = mapped_column(Integer)
    helpdesk_officer: Mapped[str] = mapped_column(String(200), default="")
    # what it is
    source: Mapped[str] = mapped_column(String(16))  # monitor | report
    kind: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    impact: Mapped[str] = mapped_column(String(16))
    urgency: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(200))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedup_key: Mapped[str] = mapped_column(String(400), index=True)
    # open_key equals dedup_key while the incident is open and NULL afterwards: its unique
    # constraint makes "at most one open incident per problem" hold across daemons.
    open_key: Mapped[str | None] = mapped_column(String(400), unique=True)
    # lifecycle
    status: Mapped[str] = mapped_column(String(16))  # open | resolved | closed
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    clearing_since: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    transitions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the SOP workflow's position (incidents/workflow/engine.py)
    workflow: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    step_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime]
    division: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[str | None] = mapped_column(String(4))
    step_started_at: Mapped[datetime | None]
    step_breached_at: Mapped[datetime | None]
    step_entries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    people_acted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    condition_cleared_at: Mapped[datetime | None]
    assignee: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None]
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # the priority's SLA targets (workflows.priority.sla), beside the steps' own deadlines
    respond_due_at: Mapped[datetime | None]
    resolve_due_at: Mapped[datetime | None]
    respond_breached_at: Mapped[datetime | None]
    resolve_breached_at: Mapped[datetime | None]

    # Read-only view, loaded only where it is shown (repository.get_incident/list_incidents):
    # the manager appends rows through TimelineRow.incident and never loads the history.
    timeline: Mapped[list["TimelineRow"]] = relationship(
        order_by="TimelineRow.id", viewonly=True, lazy="raise_on_sql")


class TimelineRow(Base):
    """Append-only: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "incident_timeline"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    incident: Mapped[IncidentRow] = relationship()


class OutboxRow(Base):
    """Transactional outbox: written with the state change, delivered later by the notifier."""

    __tablename__ = "notification_outbox"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    created_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")

    incident: Mapped[IncidentRow] = relationship()


class MaintenanceRow(Base):
    """A maintenance window set by a person (KD/KS/KB) with `monitord maintenance add`."""

    __tablename__ = "maintenance_windows"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # device | site | category
    value: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


# -- web desk (issue 8, migration 0005_desk) ------------------------------------------------


class WebPersonRow(Base):
    """What the desk keeps per person of the config's directory: the argon2 hash of the
    password (set with `monitord people set-password`) and the chosen language."""

    __tablename__ = "web_people"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime]


class WebSessionRow(Base):
    """A server-side session: the cookie holds a random id, the table only its SHA-256, so a
    copy of the database does not log anyone in. Logout deletes the row."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person: Mapped[str] = mapped_column(String(64), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class WebLoginThrottleRow(Base):
    """Failed logins per account ("account:NAME") and per address ("address:IP")."""

    __tablename__ = "web_login_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_failure_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class StatusTokenRow(Base):
    """The reporter's status-page token, stored as its SHA-256 only."""

    __tablename__ = "incident_status_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


# -- netconfig (issue 7): device configuration versions fetched over SSH ------------------------


class NetconfigVersionRow(Base):
    """One distinct (masked) text a device returned for `command`: its running configuration
    (kind "config") or a `show` command's output (kind "show"). A new row only when the text
    changes; `last_seen_at` moves on every fetch that returned the same text. Secrets are masked
    before the row is written (collectors/netconfig/mask.py), so no row ever holds one."""

    __tablename__ = "netconfig_versions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    device: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # config | show
    command: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    lines: Mapped[int] = mapped_column(Integer)
    fetched_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


# -- snmp-traps (issue 5): topology holds ------------------------------------------------------


class TopologyHoldRow(Base):
    """A child device's `device_unreachable` finding waiting (`incidents.topology_hold`) for its
    parent's: if the parent's incident opens meanwhile the child folds into it; if not, the
    child's own incident opens when the hold runs out. Kept in the store so that an
    acknowledged finding survives a restart."""

    __tablename__ = "topology_holds"
    dedup_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    device: Mapped[str] = mapped_column(String(64))
    finding: Mapped[dict[str, Any]] = mapped_column(JSON)
    held_until: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime]
# -- JSON API (issue 8, migration 0007_api_tokens) ------------------------------------------


class ApiTokenRow(Base):
    """An API token of a person or an integration (itself a person of the directory with its
    role). Only the SHA-256 of the token is stored: tokens are 256 random bits, so a plain
    hash is enough and a copy of the database authenticates nobody. Revoked rows stay, for
    the audit trail; a name is unique among the tokens not revoked (so "glpi" can be
    rotated: revoke, then create again)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    person: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
