"""The SOP as a state machine per incident.

The engine knows steps, roles, outcomes and deadlines from the workflow files, never "KD" or
"Jakarta". Every action is checked against the current step's role (or a higher tier), written
as an append-only timeline entry, and sends its tickets through the outbox in the same
transaction. Deadlines are stored on the incident, so timers survive restarts: `tick(at)`
handles whatever is overdue at `at`, records the breach at the moment the deadline passed, and
never handles one step's deadline twice (`step_breached_at`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitord.config import Config, Person
from monitord.i18n import N_, _
from monitord.incidents.maintenance import MaintenanceCalendar
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import IncidentRow
from monitord.incidents.workflow.calendar import OfficeCalendar
from monitord.incidents.workflow.priority import priority_for, sla_for
from monitord.incidents.workflow.schema import UNIVERSAL_ACTIONS, Step, Workflow
from monitord.incidents.workflow.tickets import enqueue_tickets
from monitord.records import HD01_CLASSIFICATION, Category, Level

log = logging.getLogger("monitord.workflow")
SYSTEM = "monitord"
TARGET_WORDS = {"respond": N_("respond"), "resolve": N_("resolve")}


@dataclass(frozen=True, slots=True)
class TimerEvent:
    number: str
    workflow: str
    step: str
    event: str  # sla_breach | maintenance_ended


class WorkflowError(Exception):
    """An action that the SOP does not allow now; the message says what it expects."""


@dataclass(frozen=True, slots=True)
class Report:
    """Form HD-01 as the help desk fills it for a person's report."""

    category: Category
    place: str
    reporter_name: str
    agency: str
    phone: str
    email: str
    description: str
    impact: Level = Level.MEDIUM
    urgency: Level = Level.MEDIUM
    reported_at: datetime | None = None
    officer: str = ""


class WorkflowEngine:
    def __init__(self, config: Config, workflows: dict[str, Workflow]) -> None:
        self.config = config
        self.workflows = workflows
        self.calendar = OfficeCalendar(config.workflows.calendar, config.tz)
        self.maintenance = MaintenanceCalendar(config)

    # -- lookups ----------------------------------------------------------------------------

    def workflow_of(self, incident: IncidentRow) -> Workflow:
        return self.workflows[incident.workflow]

    def step_of(self, incident: IncidentRow) -> Step | None:
        if not incident.workflow or not incident.step:
            return None
        return self.workflow_of(incident).step(incident.step)

    def person(self, name: str) -> Person:
        for person in self.config.people:
            if person.name == name:
                return person
        raise WorkflowError(_("no person named {name} in the configuration's people")
                            .format(name=name))

    # -- the manager's hooks (same transaction as the incident change) ----------------------

    def incident_opened(self, session: Session, incident: IncidentRow, at: datetime) -> None:
        route = self.config.workflows.routing[Category(incident.category)]
        workflow = self.workflows[route.workflow]
        incident.workflow, incident.division = workflow.name, route.division
        incident.priority = priority_for(self.config.workflows.priority, incident.impact,
                                         incident.urgency)
        window = self._window(session, incident, at)
        if window is not None:
            incident.status = "maintenance"
            repo.append_timeline(session, incident, at, "maintenance", _(
                "Opened during a maintenance window ({reason}): no ticket until it ends")
                .format(reason=window.reason or window.scope), actor=SYSTEM, role="system",
                data={"scope": window.scope, "value": window.value,
                      "until": window.end.isoformat()})
            return
        self._set_targets(incident, at)  # counted from when the SOP starts (after a window)
        start = workflow.step(workflow.start)
        if incident.source == "monitor" and workflow.auto_start and start.system:
            # The help desk's recording step, done by monitord itself (Form HD-01 filled).
            repo.append_timeline(session, incident, at, "recorded", _(
                "Form HD-01 filled in by monitord; ticket sent to the {role} of {division}")
                .format(role=workflow.step(workflow.auto_start).role, division=route.division),
                actor=SYSTEM, role=start.role or "", data={"step": workflow.start})
        self._enter(session, incident, workflow.entry(incident.source), at, SYSTEM, None)

    def incident_reopened(self, session: Session, incident: IncidentRow, at: datetime) -> None:
        workflow = self.workflow_of(incident) if incident.workflow else None
        if workflow is None:
            return self.incident_opened(session, incident, at)
        incident.condition_cleared_at = None
        self._enter(session, incident, workflow.entry(incident.source), at, SYSTEM, None)

    def condition_cleared(self, session: Session, incident: IncidentRow, at: datetime) -> bool:
        """True when monitord may resolve it itself (nobody acted yet); otherwise the people
        working on it are told and verify it themselves."""
        if not incident.people_acted:
            repo.append_timeline(session, incident, at, "auto_resolved", _(
                "The condition cleared before anyone acted; resolved by monitord."),
                actor=SYSTEM, role="system", data={"step": incident.step})
            incident.step, incident.step_due_at, incident.step_breached_at = None, None, None
            return True
        if incident.condition_cleared_at is None:
            incident.condition_cleared_at = at
            repo.append_timeline(session, incident, at, "condition_cleared", _(
                "The condition cleared; waiting for verification by the people on it."),
                actor=SYSTEM, role="system", data={"step": incident.step})
            step = self.step_of(incident)
            if step is not None:
                self._tickets(session, incident, "condition_cleared", at, step.recipients(),
                              SYSTEM, None)
        return False

    def incident_resolved(self, session: Session, incident: IncidentRow, at: datetime) -> None:
        return None

    # -- people's reports -------------------------------------------------------------------

    def open_report(self, session: Session, report: Report, at: datetime) -> IncidentRow:
        """A person's report enters at the help desk's first step (Form HD-01)."""
        year = at.astimezone(self.config.tz).year
        [(seq, number)] = repo.take_numbers(session, year, 1)
        key = f"report:{number}"
        incident = IncidentRow(
            number=number, year=year, seq=seq, recorded_at=at,
            reported_at=report.reported_at or at, location=report.place,
            reporter_name=report.reporter_name, reporter_agency=report.agency,
            reporter_phone=report.phone, reporter_email=report.email,
            classification=HD01_CLASSIFICATION[report.category],
            helpdesk_officer=report.officer, source="report", kind="reported",
            category=report.category.value, severity="medium", impact=report.impact.value,
            urgency=report.urgency.value, summary=report.description.splitlines()[0][:200]
            if report.description else "", description=report.description, device=None,
            subject=None, evidence={}, dedup_key=key, open_key=key, status="open",
            first_seen=report.reported_at or at, last_seen=report.reported_at or at,
            occurrences=1, flapping=False, transitions={"clears": []}, updated_at=at,
        )
        session.add(incident)
        self.incident_opened(session, incident, at)
        workflow = self.workflow_of(incident)
        repo.append_timeline(session, incident, at, "reported", report.description,
                             actor=report.officer or SYSTEM,
                             role=workflow.step(workflow.start).role or "")
        return incident

    # -- actions ----------------------------------------------------------------------------

    def allowed_actions(self, incident: IncidentRow) -> list[dict[str, Any]]:
        """What can be done now, by whom: [{action, roles, outcomes}]."""
        if incident.status == "maintenance":
            return []
        if incident.status == "closed" or incident.step is None:
            workflow = self.workflows.get(incident.workflow or "")
            if workflow and workflow.reopen_to:
                return [{"action": "reopen", "roles": list(workflow.roles), "outcomes": []}]
            return []
        workflow, step = self.workflow_of(incident), self.step_of(incident)
        roles = self._roles_allowed(workflow, step)
        actions = [{"action": name, "roles": roles,
                    "outcomes": sorted(t.outcomes) if t.outcomes else []}
                   for name, t in step.actions.items()]
        actions += [{"action": name, "roles": roles, "outcomes": []}
                    for name in UNIVERSAL_ACTIONS]
        return actions

    def act(self, session: Session, incident: IncidentRow, actor: str, action: str,
            at: datetime, outcome: str | None = None, note: str | None = None,
            impact: str | None = None, urgency: str | None = None) -> str:
        """Do `action` as person `actor`; returns the step the incident is at afterwards."""
        person = self.person(actor)
        if action == "reopen":
            return self._reopen(session, incident, person, at, note)
        step = self.step_of(incident)
        if step is None or incident.status == "closed":
            raise WorkflowError(_("incident {number} is {status}: only reopen is possible")
                                .format(number=incident.number, status=_(incident.status)))
        workflow = self.workflow_of(incident)
        role = self._authorise(workflow, step, incident, person)
        if action in UNIVERSAL_ACTIONS:
            self._universal(session, incident, person, role, action, at, note, impact, urgency)
            return incident.step
        transition = step.actions.get(action)
        if transition is None:
            raise WorkflowError(_("step {step} ({title}) has no action {action}; "
                                  "expected one of {actions}").format(
                step=incident.step, title=step.title.get(_language()), action=action,
                actions=", ".join([*step.actions, *UNIVERSAL_ACTIONS])))
        if transition.outcomes is not None:
            if outcome not in transition.outcomes:
                raise WorkflowError(_("action {action} at step {step} needs --outcome "
                                      "resolved or not_resolved").format(
                    action=action, step=incident.step))
            target = transition.outcomes[outcome]
        else:
            if outcome:
                raise WorkflowError(_("action {action} takes no outcome").format(action=action))
            target = transition.next
        if transition.needs_note and not (note and note.strip()):
            raise WorkflowError(_("action {action} at step {step} must record the solution "
                                  "(--note)").format(action=action, step=incident.step))
        incident.people_acted = True
        repo.append_timeline(session, incident, at, action, note or "", actor=person.name,
                             role=role, data={"step": incident.step, "outcome": outcome,
                                              "to": target})
        self._enter(session, incident, target, at, person.name, note)
        return target

    def _reopen(self, session: Session, incident: IncidentRow, person: Person, at: datetime,
                note: str | None) -> str:
        workflow = self.workflows.get(incident.workflow or "")
        if incident.status not in ("closed", "resolved") or not workflow or not workflow.reopen_to:
            raise WorkflowError(_("incident {number} is not closed; reopen is for closed "
                                  "incidents").format(number=incident.number))
        roles = [r for r in person.roles if r in workflow.roles]
        if not roles:
            raise WorkflowError(_("{name} has no role in workflow {workflow}").format(
                name=person.name, workflow=workflow.name))
        incident.open_key = incident.dedup_key if incident.source == "report" else None
        incident.people_acted, incident.closed_at = True, None
        repo.append_timeline(session, incident, at, "reopen", note or "", actor=person.name,
                             role=roles[0], data={"to": workflow.reopen_to})
        self._enter(session, incident, workflow.reopen_to, at, person.name, note)
        return workflow.reopen_to

    def _universal(self, session: Session, incident: IncidentRow, person: Person, role: str,
                   action: str, at: datetime, note: str | None, impact: str | None,
                   urgency: str | None) -> None:
        data: dict[str, Any] = {"step": incident.step}
        if action == "assign":
            assignee = self.person((note or "").strip())  # the note names the person
            incident.assignee = assignee.name
            data["assignee"] = assignee.name
        elif action == "set_priority":
            before = {"impact": incident.impact, "urgency": incident.urgency,
                      "priority": incident.priority}
            incident.impact = Level(impact or incident.impact).value
            incident.urgency = Level(urgency or incident.urgency).value
            incident.priority = priority_for(self.config.workflows.priority, incident.impact,
                                             incident.urgency)
            self._set_targets(incident, incident.recorded_at)
            data.update({"from": before, "to": {"impact": incident.impact,
                                                 "urgency": incident.urgency,
                                                 "priority": incident.priority}})
        elif action == "involve" and not (note and note.strip()):
            raise WorkflowError(_("involve needs --note naming the outside party"))
        incident.people_acted = True
        incident.updated_at = at
        repo.append_timeline(session, incident, at, action, note or "", actor=person.name,
                             role=role, data=data)

    def _set_targets(self, incident: IncidentRow, start: datetime) -> None:
        """The priority's respond and resolve targets, counted from `start`."""
        target = sla_for(self.config.workflows.priority, incident.priority)
        incident.respond_due_at = self.calendar.add(start, target.respond, target.working_time)
        incident.resolve_due_at = self.calendar.add(start, target.resolve, target.working_time)

    def _priority_breaches(self, session: Session, at: datetime, windows: list) -> list:
        """Respond (nobody acted yet) and resolve targets that passed by `at`, once each."""
        events = []
        for kind in ("respond", "resolve"):
            due_col = getattr(IncidentRow, f"{kind}_due_at")
            breached_col = getattr(IncidentRow, f"{kind}_breached_at")
            query = select(IncidentRow).where(
                due_col.is_not(None), due_col <= at, breached_col.is_(None),
                IncidentRow.status.in_(("open",)))
            if kind == "respond":
                query = query.where(IncidentRow.people_acted.is_(False))
            for incident in session.scalars(query).all():
                if self._window(session, incident, at, windows) is not None:
                    continue
                due = getattr(incident, f"{kind}_due_at")
                setattr(incident, f"{kind}_breached_at", due)
                repo.append_timeline(session, incident, due, "sla_breach", _(
                    "The {priority} {target} target passed").format(
                        priority=incident.priority, target=_(TARGET_WORDS[kind])),
                    actor=SYSTEM, role="system",
                    data={"step": incident.step, "target": kind, "due_at": due.isoformat(),
                          "priority": incident.priority})
                step = self.step_of(incident)
                if step is not None:
                    self._tickets(session, incident, "sla_breach", at, step.recipients(),
                                  SYSTEM, None, tag=kind)
                events.append(TimerEvent(incident.number, incident.workflow or "",
                                         f"{kind}_target", "sla_breach"))
        return events

    def _roles_allowed(self, workflow: Workflow, step: Step) -> list[str]:
        base = workflow.tier(step.role)
        return [step.role] + [r for r in workflow.tiers if workflow.tier(r) > base and r != step.role]

    def _authorise(self, workflow: Workflow, step: Step, incident: IncidentRow,
                   person: Person) -> str:
        allowed = self._roles_allowed(workflow, step)
        held = [r for r in allowed if r in person.roles]
        if not held:
            raise WorkflowError(_("step {step} ({title}) is for role {role}{higher}; {name} "
                                  "holds {roles}").format(
                step=incident.step, title=step.title.get(_language()), role=step.role,
                higher=_(" or a higher tier ({tiers})").format(tiers=", ".join(allowed[1:]))
                if len(allowed) > 1 else "", name=person.name, roles=", ".join(person.roles)))
        if person.division and incident.division and person.division != incident.division:
            raise WorkflowError(_("incident {number} belongs to division {division}; {name} "
                                  "works in {own}").format(
                number=incident.number, division=incident.division, name=person.name,
                own=person.division))
        return held[0]

    # -- moving and timing ------------------------------------------------------------------

    def _enter(self, session: Session, incident: IncidentRow, step_name: str, at: datetime,
               actor: str, note: str | None) -> None:
        workflow = self.workflow_of(incident)
        step = workflow.step(step_name)
        incident.step, incident.step_started_at = step_name, at
        incident.step_entries = (incident.step_entries or 0) + 1
        incident.step_breached_at = None
        incident.step_due_at = self.calendar.add(at, step.time, step.working_time) \
            if step.time else None
        incident.updated_at = at
        if step.status == "closed":
            incident.status, incident.open_key, incident.closed_at = "closed", None, at
            incident.step_due_at = None
            # the intake role (the help desk in the DKI ladder) hears the outcome
            intake = workflow.step(workflow.start).role
            self._tickets(session, incident, "incident_closed", at, (intake,) if intake else (),
                          actor, note)
            return
        incident.status = step.status
        if step.status == "resolved":
            incident.resolved_at = incident.resolved_at or at
        self._tickets(session, incident, "ticket", at, step.recipients(), actor, note)

    def _window(self, session: Session, incident: IncidentRow, at: datetime,
                windows: list | None = None):
        if windows is None:
            windows = self.maintenance.windows(session, at)
        return self.maintenance.covering(windows, incident.device, incident.category, at)

    def _end_of_maintenance(self, session: Session, at: datetime, windows: list) -> list[str]:
        """Incidents opened in a window whose condition is still present when it ends."""
        started = []
        for incident in session.scalars(select(IncidentRow).where(
                IncidentRow.status == "maintenance")).all():
            if self._window(session, incident, at, windows) is not None:
                continue
            repo.append_timeline(session, incident, at, "maintenance_ended", _(
                "The maintenance window ended and the condition is still present"),
                actor=SYSTEM, role="system")
            incident.status = "open"
            self.incident_opened(session, incident, at)
            started.append(TimerEvent(incident.number, incident.workflow or "", "",
                                      "maintenance_ended"))
        return started

    def tick(self, session: Session, at: datetime) -> list[str]:
        """Handle every step whose deadline passed by `at` (outside maintenance windows) and
        every maintenance window that ended; returns what was done, for logs and metrics."""
        windows = self.maintenance.windows(session, at)
        handled = self._end_of_maintenance(session, at, windows)
        handled += self._priority_breaches(session, at, windows)
        due = session.scalars(
            select(IncidentRow).where(IncidentRow.step_due_at.is_not(None),
                                      IncidentRow.step_due_at <= at,
                                      IncidentRow.step_breached_at.is_(None),
                                      IncidentRow.status != "closed")
            .order_by(IncidentRow.step_due_at)).all()
        for incident in due:
            if self._window(session, incident, at, windows) is not None:
                continue  # in maintenance nothing escalates; the timer waits for the end
            step = self.step_of(incident)
            if step is None or step.on_timeout is None:
                incident.step_breached_at = incident.step_due_at
                continue
            breached_at, breached_step = incident.step_due_at, incident.step
            incident.step_breached_at = breached_at
            timeout = step.on_timeout
            repo.append_timeline(session, incident, breached_at, "sla_breach", _(
                "Step {step} passed its time standard").format(step=incident.step),
                actor=SYSTEM, role="system",
                data={"step": incident.step, "due_at": breached_at.isoformat(),
                      "started_at": incident.step_started_at.isoformat()
                      if incident.step_started_at else None, "timeout": timeout.action})
            self._tickets(session, incident, "sla_breach", at,
                          (*step.recipients(), *timeout.notify), SYSTEM, None)
            if timeout.action == "escalate":
                repo.append_timeline(session, incident, at, "escalate",
                                     f"{incident.step} -> {timeout.next}", actor=SYSTEM,
                                     role="system", data={"step": incident.step,
                                                          "to": timeout.next, "reason": "timeout"})
                self._enter(session, incident, timeout.next, at, SYSTEM, None)
            handled.append(TimerEvent(incident.number, incident.workflow or "",
                                      breached_step, "sla_breach"))
        return handled

    # -- tickets ----------------------------------------------------------------------------

    def _tickets(self, session: Session, incident: IncidentRow, event: str, at: datetime,
                 roles: Sequence[str], actor: str, note: str | None, tag: str = "") -> None:
        workflow = self.workflow_of(incident)
        step = workflow.step(incident.step) if incident.step else None
        step_info = None if step is None else {
            "name": incident.step, "title": step.title.model_dump(), "role": step.role,
            "due_at": incident.step_due_at.isoformat() if incident.step_due_at else None,
            "action_needed": step.action_needed.model_dump() if step.action_needed else None,
        }
        enqueue_tickets(session, self.config, incident, event, at, roles, step_info,
                        {"name": workflow.name, "title": workflow.title.model_dump()},
                        actor, note, tag)

def _language() -> str:
    from monitord.i18n import active_language
    return active_language()


def load_engine(config: Config) -> WorkflowEngine:
    """The engine for `config`: bundled SOPs plus the office's files, routing checked."""
    from monitord.config_loader import ConfigError, ConfigProblem
    from monitord.incidents.workflow.schema import load_workflows

    workflows = load_workflows(config.workflows.files)
    problems = []
    for category, route in config.workflows.routing.items():
        if route.workflow not in workflows:
            problems.append(ConfigProblem(
                "<config>", 0, f"workflows.routing.{category.value}.workflow",
                repr(route.workflow), _("a loaded workflow ({names})").format(
                    names=", ".join(sorted(workflows)))))
    if problems:
        raise ConfigError(problems)
    return WorkflowEngine(config, workflows)
