"""Tickets: the outbox rows a state change writes, one per (recipient, channel), in the same
transaction. The payload is everything the notify worker needs to render the ticket later
(notify/worker.py), so delivery never reads the incident again."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from sqlalchemy.orm import Session

from monitord.config import Config, Person
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import IncidentRow


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def incident_snapshot(incident: IncidentRow) -> dict[str, Any]:
    return {
        "number": incident.number, "summary": incident.summary, "severity": incident.severity,
        "priority": incident.priority, "category": incident.category,
        "division": incident.division, "device": incident.device, "subject": incident.subject,
        "status": incident.status, "evidence": dict(incident.evidence or {}),
        "description": incident.description or "",
        "hd01": {
            "recorded_at": _iso(incident.recorded_at), "reported_at": _iso(incident.reported_at),
            "location": incident.location,
            "reporter": {"name": incident.reporter_name, "agency": incident.reporter_agency,
                         "phone": incident.reporter_phone, "email": incident.reporter_email},
            "classification": incident.classification,
            "helpdesk_officer": incident.helpdesk_officer,
        },
    }


def people_for(config: Config, roles: Iterable[str], division: str | None,
               at: datetime | None = None) -> list[tuple[Person, str]]:
    """(person, role) for the people holding one of `roles` in the incident's division
    (people without a division serve every division): those on duty at `at`, or all of a
    role's holders when none of them is on duty."""
    found: list[tuple[Person, str]] = []
    seen: set[str] = set()
    local = at.astimezone(config.tz) if at else None
    for role in roles:
        holders = [p for p in config.people if role in p.roles and p.name not in seen and
                   (division is None or p.division in (None, division))]
        on_duty = [p for p in holders if local is None or p.on_duty(local)]
        for person in on_duty or holders:
            found.append((person, role))
            seen.add(person.name)
    return found


def _address(channel_type: str, person: Person) -> str | None:
    if channel_type == "email":
        return person.email
    if channel_type == "telegram":
        return person.telegram_chat_id
    return None


def enqueue_tickets(session: Session, config: Config, incident: IncidentRow, event: str,
                    at: datetime, roles: Iterable[str], step: dict[str, Any] | None,
                    workflow: dict[str, Any] | None, actor: str, note: str | None,
                    tag: str = "") -> int:
    """Write one outbox row per person of `roles` per channel that can reach them; webhook
    and log channels get one row per event. Returns how many rows were written."""
    base = {"event": event, "incident": incident_snapshot(incident), "step": step,
            "workflow": workflow, "note": note, "actor": actor, "at": at.isoformat()}
    entry = incident.step_entries
    rows = 0
    people = people_for(config, roles, incident.division, at)
    for channel in config.notifications.channels:
        if channel.type in ("webhook", "log"):
            targets = [({"name": None, "full_name": None, "address": None, "language": None,
                         "role": ",".join(roles)}, "all")]
        else:
            targets = [({"name": p.name, "full_name": p.full_name, "role": role,
                         "address": _address(channel.type, p),
                         "language": p.language or config.language or "en"}, p.name)
                       for p, role in people if _address(channel.type, p)]
        for recipient, who in targets:
            # unique per step entry, event (and what the event is about), person and channel
            key = f"{incident.number}:{entry}:{event}{':' + tag if tag else ''}:{who}:{channel.name}"
            repo.enqueue_notification(session, incident, channel.name, event, at, key,
                                      {**base, "recipient": recipient})
            rows += 1
    return rows
