"""Incidents as JSON: the one shape shared by the CLI's `--json`, the web API (`/api/v1/`) and
the desk, so a script that reads one reads them all.

Text in these dicts (summaries, evidence, reporter fields) is hostile and returned as data: a
consumer that prints or renders it must escape it itself (`render.safe_text`, Jinja2 autoescape).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from monitord.incidents.store.models import IncidentRow, OutboxRow, TimelineRow


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def incident_summary(row: IncidentRow) -> dict[str, Any]:
    return {
        "number": row.number, "status": row.status, "severity": row.severity,
        "category": row.category, "kind": row.kind, "device": row.device,
        "subject": row.subject, "summary": row.summary, "flapping": row.flapping,
        "occurrences": row.occurrences, "first_seen": _iso(row.first_seen),
        "last_seen": _iso(row.last_seen), "resolved_at": _iso(row.resolved_at),
    }


def incident_detail(row: IncidentRow, outbox: Sequence[OutboxRow], engine=None) -> dict[str, Any]:
    step = engine.step_of(row) if engine is not None and row.workflow in engine.workflows \
        else None
    return {
        **incident_summary(row),
        "workflow": row.workflow, "division": row.division, "step": row.step,
        "role": step.role if step else None, "priority": row.priority,
        "due_at": _iso(row.step_due_at), "assignee": row.assignee,
        "allowed_actions": engine.allowed_actions(row) if engine is not None and
        row.workflow in engine.workflows else [],
        "sla_breaches": [{"step": t.data.get("step"), "target": t.data.get("target", "step"),
                          "due_at": t.data.get("due_at"), "breached_at": _iso(t.at)}
                         for t in row.timeline if t.action == "sla_breach"],
        "sla_targets": {"respond_due_at": _iso(row.respond_due_at),
                        "resolve_due_at": _iso(row.resolve_due_at)},
        "condition_cleared_at": _iso(row.condition_cleared_at),
        "closed_at": _iso(row.closed_at), "description": row.description,
        "hd01": {
            "number": row.number, "recorded_at": _iso(row.recorded_at),
            "reported_at": _iso(row.reported_at), "location": row.location,
            "reporter": {"name": row.reporter_name, "agency": row.reporter_agency,
                         "phone": row.reporter_phone, "email": row.reporter_email},
            "classification": row.classification, "helpdesk_officer": row.helpdesk_officer,
        },
        "source": row.source, "impact": row.impact, "urgency": row.urgency,
        "dedup_key": row.dedup_key, "evidence": row.evidence,
        "clearing_since": _iso(row.clearing_since),
        "timeline": [timeline_entry(t) for t in row.timeline],
        "outbox": [{"channel": o.channel, "event": o.event, "status": o.status,
                    "created_at": _iso(o.created_at)} for o in outbox],
    }


def timeline_entry(row: TimelineRow) -> dict[str, Any]:
    return {"at": _iso(row.at), "actor": row.actor, "role": row.role, "action": row.action,
            "note": row.note, "data": row.data}


def report_result(incident: IncidentRow) -> dict[str, Any]:
    """What `incidents report` answers: where the new HD-01 report entered the SOP."""
    return {"number": incident.number, "status": incident.status,
            "workflow": incident.workflow, "division": incident.division,
            "step": incident.step, "priority": incident.priority,
            "due_at": _iso(incident.step_due_at)}


def act_result(incident: IncidentRow, step: str | None) -> dict[str, Any]:
    """What `incidents act` answers: the step the incident is at after the action."""
    return {"number": incident.number, "status": incident.status, "step": step,
            "due_at": _iso(incident.step_due_at)}
