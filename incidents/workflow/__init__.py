"""The seam where the SOP escalation workflow plugs in.

The manager calls a `WorkflowHook` inside the same transaction as the incident's state change,
so whatever the workflow writes (the first step, its deadline, the tickets) commits or rolls
back together with it. Until the SOP engine lands, `NoWorkflow` leaves incidents unassigned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from monitord.incidents.store.models import IncidentRow


class WorkflowHook(Protocol):
    def incident_opened(self, session: Session, incident: IncidentRow, at: datetime) -> None: ...

    def incident_resolved(self, session: Session, incident: IncidentRow, at: datetime) -> None: ...

    def incident_reopened(self, session: Session, incident: IncidentRow, at: datetime) -> None: ...

    def condition_cleared(self, session: Session, incident: IncidentRow, at: datetime) -> bool:
        """The finding cleared and held: True lets the manager resolve the incident."""
        ...


class NoWorkflow:
    """Incidents without an SOP: they resolve when their condition clears."""

    def condition_cleared(self, session: Session, incident: IncidentRow, at: datetime) -> bool:
        return True

    def incident_opened(self, session: Session, incident: IncidentRow, at: datetime) -> None:
        return None

    def incident_resolved(self, session: Session, incident: IncidentRow, at: datetime) -> None:
        return None

    def incident_reopened(self, session: Session, incident: IncidentRow, at: datetime) -> None:
        return None
