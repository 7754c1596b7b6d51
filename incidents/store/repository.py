"""Queries and writes on the incident store, shared by the manager, the CLI and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Collection, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

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


def take_numbers(session: Session, year: int, count: int = 1) -> list[tuple[int, str]]:
    """Take the next `count` per-year sequence numbers atomically (row lock on PostgreSQL,
    the write lock on SQLite), so two daemons on one database never hand out the same one."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(IncidentSequence).values(year=year, last=count)
    statement = statement.on_conflict_do_update(
        index_elements=[IncidentSequence.year], set_={"last": IncidentSequence.last + count}
    ).returning(IncidentSequence.last)
    last = session.execute(statement).scalar_one()
    return [(seq, f"{year}-{seq:06d}") for seq in range(last - count + 1, last + 1)]


def find_open(session: Session, keys: Collection[str]) -> dict[str, IncidentRow]:
    """The open incident of each of these problems (one query for a whole batch)."""
    if not keys:
        return {}
    rows = session.scalars(select(IncidentRow).where(IncidentRow.open_key.in_(list(keys))))
    return {row.dedup_key: row for row in rows}


def find_recently_resolved(session: Session, keys: Collection[str],
                           since: datetime) -> dict[str, IncidentRow]:
    """For each problem, the newest incident that resolved itself after `since`, if any."""
    if not keys:
        return {}
    rows = session.scalars(
        select(IncidentRow)
        .where(IncidentRow.dedup_key.in_(list(keys)), IncidentRow.status == "resolved",
               IncidentRow.resolved_at >= since)
        .order_by(IncidentRow.resolved_at)
    )
    return {row.dedup_key: row for row in rows}  # later (newer) rows win


def due_for_resolution(session: Session, before: datetime) -> Sequence[IncidentRow]:
    return session.scalars(
        select(IncidentRow).where(IncidentRow.status.in_(("open", "maintenance")),
                                  IncidentRow.clearing_since.is_not(None),
                                  IncidentRow.clearing_since <= before)
    ).all()


def append_timeline(session: Session, incident: IncidentRow, at: datetime, action: str,
                    note: str = "", actor: str = SYSTEM_ACTOR, role: str = SYSTEM_ROLE,
                    data: dict[str, Any] | None = None) -> TimelineRow:
    row = TimelineRow(incident=incident, at=at, actor=actor, role=role, action=action,
                      note=note, data=data or {})
    session.add(row)
    return row


def enqueue_notification(session: Session, incident: IncidentRow, channel: str, event: str,
                         at: datetime, idempotency_key: str, payload: dict[str, Any]) -> OutboxRow:
    row = OutboxRow(incident=incident, created_at=at, channel=channel, event=event,
                    idempotency_key=idempotency_key, payload=payload, status="pending",
                    attempts=0, next_attempt_at=at, last_error="")
    session.add(row)
    return row


def get_incident(session: Session, number: str) -> IncidentRow | None:
    return session.scalars(select(IncidentRow).where(IncidentRow.number == number)
                           .options(selectinload(IncidentRow.timeline))).first()


def list_incidents(session: Session, status: str | None = None, limit: int = 100) -> Sequence[IncidentRow]:
    query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit) \
        .options(selectinload(IncidentRow.timeline))
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


def workflow_counts(session: Session, engine: Any, now: datetime):
    """Open incidents per workflow step, and acknowledge/resolve times of the last 30 days."""
    from datetime import timedelta
    from monitord.metrics import WorkflowCounts
    rows = session.execute(
        select(IncidentRow.workflow, IncidentRow.step, IncidentRow.priority, func.count())
        .where(IncidentRow.status.in_(("open", "resolved", "maintenance")),
               IncidentRow.workflow.is_not(None), IncidentRow.step.is_not(None))
        .group_by(IncidentRow.workflow, IncidentRow.step, IncidentRow.priority)).all()
    open_by_step = []
    for workflow, step, priority, count in rows:
        known = engine.workflows.get(workflow)
        role = known.steps[step].role if known and step in known.steps else ""
        open_by_step.append((workflow, step, role or "", priority or "", count))
    since = now - timedelta(days=30)
    recent = session.execute(
        select(IncidentRow.recorded_at, IncidentRow.resolved_at)
        .where(IncidentRow.recorded_at >= since)).all()
    resolve = [(r - rec).total_seconds() for rec, r in recent if r is not None]
    first_action = session.execute(
        select(IncidentRow.recorded_at, func.min(TimelineRow.at))
        .join(TimelineRow, TimelineRow.incident_id == IncidentRow.id)
        .where(IncidentRow.recorded_at >= since, TimelineRow.actor != SYSTEM_ACTOR,
               TimelineRow.role != SYSTEM_ROLE, TimelineRow.action != "reported")
        .group_by(IncidentRow.id, IncidentRow.recorded_at)).all()
    acknowledge = [(at - rec).total_seconds() for rec, at in first_action if at is not None]
    return WorkflowCounts(open_by_step, acknowledge, resolve)
