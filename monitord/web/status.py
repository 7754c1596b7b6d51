"""The reporter's status link: /status/NUMBER?t=TOKEN.

The token is 256 random bits, shown once (on the receipt the help desk prints and in the
reporter's e-mail) and stored only as its SHA-256, so neither the database nor a log line
holds a working link. The e-mail's outbox row carries the link only until it is delivered
(or given up): the notify worker blanks `forget_after_delivery` fields then. The page it opens shows progress and outcome, never internal notes."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from monitord.config import Config
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import IncidentRow, StatusTokenRow
from monitord.web.auth import new_token

# Timeline entries a reporter may see (as words and times only; notes are never shown).
PUBLIC_ACTIONS = frozenset({"recorded", "reported", "forward", "accept", "direct", "report",
                            "verify", "escalate", "resolve", "inform", "close", "reopen",
                            "auto_resolved", "resolved", "involve"})
RECEIPT_EVENT = "reporter_receipt"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link(public_url: str, number: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/status/{quote(number)}?t={quote(token, safe='')}"


def issue(session: Session, config: Config, incident: IncidentRow, now: datetime,
          public_url: str) -> str:
    """A new token for `incident` (its hash stored) and, when the reporter gave an e-mail
    address, the receipt with the link queued on every e-mail channel in this transaction."""
    token = new_token()
    session.add(StatusTokenRow(incident_id=incident.id, token_hash=_digest(token),
                               created_at=now))
    if incident.reporter_email:
        from monitord.incidents.workflow.tickets import incident_snapshot
        url = link(public_url, incident.number, token)
        for channel in config.notifications.channels:
            if channel.type != "email":
                continue
            payload = {"event": RECEIPT_EVENT, "incident": incident_snapshot(incident),
                       "step": None, "workflow": None, "note": url, "actor": "monitord",
                       "at": now.isoformat(), "forget_after_delivery": ["note"],
                       "recipient": {"name": None, "full_name": incident.reporter_name,
                                     "role": "", "address": incident.reporter_email,
                                     "language": config.language or "en"}}
            repo.enqueue_notification(session, incident, channel.name, RECEIPT_EVENT, now,
                                      f"{incident.number}:{RECEIPT_EVENT}:{_digest(token)[:16]}"
                                      f":{channel.name}", payload)
    return token


def incident_for(session: Session, number: str, token: str) -> IncidentRow | None:
    """The incident `number` if `token` is one of its status tokens; None otherwise (the same
    answer for an unknown number and a wrong token)."""
    if not token or len(token) > 100:
        return None
    digest = _digest(token)
    row = session.execute(
        select(IncidentRow, StatusTokenRow.token_hash)
        .join(StatusTokenRow, StatusTokenRow.incident_id == IncidentRow.id)
        .where(IncidentRow.number == number, StatusTokenRow.token_hash == digest)
        .options(selectinload(IncidentRow.timeline))).first()
    if row is None or not hmac.compare_digest(row[1], digest):
        return None
    return row[0]
