"""Queries and writes on the incident store, shared by the manager, the CLI and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitord.config import Device
from monitord.incidents.store.models import (
    DeviceRow,
    IncidentRow,
    IncidentSequence,
    OutboxRow,
    TimelineRow,
)

SYSTEM_ACTOR = "monitord"
SYSTEM_ROLE = "system"


def next_number(session: Session, year: int) -> tuple[int, str]:
    """Take the next per-year sequence number atomically (row lock on PostgreSQL, the write
    lock on SQLite), so two daemons on one database never hand out the same number."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(IncidentSequence).values(year=year, last=1)
    statement = statement.on_conflict_do_update(
        index_elements=[IncidentSequence.year], set_={"last": IncidentSequence.last + 1}
    ).returning(IncidentSequence.last)
    seq = session.execute(statement).scalar_one()
    return seq, f"{year}-{seq:06d}"


def find_open(session: Session, dedup_key: str) -> IncidentRow | None:
    return session.scalars(select(IncidentRow).where(IncidentRow.open_key == dedup_key)).first()


def find_recently_resolved(session: Session, dedup_key: str, since: datetime) -> IncidentRow | None:
    """The newest incident for this problem that resolved itself after `since`, if any."""
    return session.scalars(
        select(IncidentRow)
        .where(IncidentRow.dedup_key == dedup_key, IncidentRow.status == "resolved",
               IncidentRow.resolved_at >= since)
        .order_by(IncidentRow.resolved_at.desc())
        .limit(1)
    ).first()


def due_for_resolution(session: Session, before: datetime) -> Sequence[IncidentRow]:
    return session.scalars(
        select(IncidentRow).where(IncidentRow.status == "open",
                                  IncidentRow.clearing_since.is_not(None),
                                  IncidentRow.clearing_since <= before)
    ).all()


def append_timeline(session: Session, incident: IncidentRow, at: datetime, action: str,
                    note: str = "", actor: str = SYSTEM_ACTOR, role: str = SYSTEM_ROLE,
                    data: dict[str, Any] | None = None) -> TimelineRow:
    row = TimelineRow(incident_id=incident.id, at=at, actor=actor, role=role, action=action,
                      note=note, data=data or {})
    session.add(row)
    return row


def enqueue_notification(session: Session, incident: IncidentRow, channel: str, event: str,
                         at: datetime, idempotency_key: str, payload: dict[str, Any]) -> OutboxRow:
    row = OutboxRow(incident_id=incident.id, created_at=at, channel=channel, event=event,
                    idempotency_key=idempotency_key, payload=payload, status="pending",
                    attempts=0, next_attempt_at=at, last_error="")
    session.add(row)
    return row


def get_incident(session: Session, number: str) -> IncidentRow | None:
    return session.scalars(select(IncidentRow).where(IncidentRow.number == number)).first()


def list_incidents(session: Session, status: str | None = None, limit: int = 100) -> Sequence[IncidentRow]:
    query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
    if status and status != "all":
        query = query.where(IncidentRow.status == status)
    return session.scalars(query).all()


def outbox_for(session: Session, incident_id: int) -> Sequence[OutboxRow]:
    return session.scalars(select(OutboxRow).where(OutboxRow.incident_id == incident_id)
                           .order_by(OutboxRow.id)).all()


@dataclass(frozen=True, slots=True)
class OpenCount:
    category: str
    severity: str
    count: int


def open_counts(session: Session) -> list[OpenCount]:
    rows = session.execute(
        select(IncidentRow.category, IncidentRow.severity, func.count())
        .where(IncidentRow.status == "open")
        .group_by(IncidentRow.category, IncidentRow.severity)
    ).all()
    return [OpenCount(category, severity, count) for category, severity, count in rows]


def sync_devices(session: Session, devices: Iterable[Device], now: datetime) -> None:
    """Make the devices table mirror the configuration (kept for incidents' history)."""
    existing = {row.name: row for row in session.scalars(select(DeviceRow))}
    for device in devices:
        row = existing.get(device.name) or DeviceRow(name=device.name)
        row.address, row.site, row.kind = device.address, device.site, device.kind
        row.parent, row.tags, row.updated_at = device.parent, {"tags": list(device.tags)}, now
        session.add(row)
