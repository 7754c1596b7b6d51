"""Findings -> incidents: open, fold repeats, resolve after a hold time, detect flapping.

All writes caused by one batch of findings happen in ONE transaction: the incident rows, their
timeline entries and the outbox rows of the notifications they cause. A caller is acknowledged
only after that transaction commits, so an acknowledged finding survives a crash. Each finding
runs in a savepoint, so one bad finding fails alone and the rest of the batch commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session

from monitord.clock import Clock
from monitord.config import Config
from monitord.i18n import N_
from monitord.incidents import topology as topo
from monitord.incidents.store import Store
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import IncidentRow, TopologyHoldRow
from monitord.incidents.workflow import NoWorkflow, WorkflowHook
from monitord.incidents.workflow.tickets import incident_snapshot
from monitord.records import HD01_CLASSIFICATION, Finding, Severity

log = logging.getLogger("monitord.incidents")

OPENED, UPDATED, CLEARING, RESOLVED, REOPENED, IGNORED, FAILED = (
    "opened", "updated", "clearing", "resolved", "reopened", "ignored", "failed")

# Timeline action words (translated where they are shown).
TIMELINE_WORDS = {
    "opened": N_("opened"), "clearing": N_("clearing"), "refired": N_("fired again"),
    "resolved": N_("resolved"), "reopened": N_("reopened"), "flapping": N_("flapping"),
    "severity_raised": N_("severity raised"),
    # the SOP workflow's entries (incidents/workflow/engine.py) and its action vocabulary
    "recorded": N_("recorded on Form HD-01"), "reported": N_("reported"),
    "auto_resolved": N_("resolved by itself"), "condition_cleared": N_("condition cleared"),
    "maintenance": N_("in maintenance"), "maintenance_ended": N_("maintenance ended"),
    "sla_breach": N_("SLA breach"), "escalate": N_("escalated"), "forward": N_("forwarded"),
    "accept": N_("accepted"), "direct": N_("gave direction"), "report": N_("reported result"),
    "verify": N_("verified"), "resolve": N_("resolved"), "inform": N_("informed the reporter"),
    "close": N_("closed"), "reopen": N_("reopened"), "note": N_("note"),
    "assign": N_("assigned"), "involve": N_("involved an outside party"),
    "set_priority": N_("changed priority"), "approve": N_("approved"),
    "classify": N_("classified"), "record": N_("recorded"),
    "folded": N_("a device behind it is unreachable too"),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finding did: the action taken and the incident it touched."""

    action: str
    number: str | None = None
    error: str | None = None


@dataclass(slots=True)
class _Known:
    """What one transaction read about the problems in its findings."""

    open: dict[str, IncidentRow]
    recent: dict[str, IncidentRow]
    numbers: list[tuple[int, str]]
    year: int
    held: dict[str, TopologyHoldRow] = field(default_factory=dict)  # topology holds


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    resolve_hold: timedelta
    flap_window: timedelta
    flap_threshold: int

    @classmethod
    def from_config(cls, config: Config) -> "ManagerSettings":
        s = config.incidents
        return cls(s.resolve_hold, s.flap_window, s.flap_threshold)


def _belongs_to_the_finding(exc: Exception) -> bool:
    """A value the database refused (too long, wrong type) fails one finding; a lost
    connection or any other database trouble fails the batch, which is then retried."""
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True  # our bind-parameter processing refused a value
    return not isinstance(exc, SQLAlchemyError)


class IncidentManager:
    def __init__(self, store: Store, config: Config, clock: Clock,
                 workflow: WorkflowHook | None = None,
                 on_outcome: Callable[[Finding, Outcome], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.workflow = workflow or NoWorkflow()
        self.on_outcome = on_outcome
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.settings = ManagerSettings.from_config(config)
        self.topology = topo.Topology.from_config(config)

    # -- findings ---------------------------------------------------------------------------

    def apply(self, findings: Sequence[Finding]) -> list[Outcome]:
        """Apply a batch in one transaction; returns one outcome per finding, in order.
        Raises only when the database itself fails (then nothing of the batch is
        acknowledged and the caller retries)."""
        try:
            outcomes = self._apply_together(findings)
        except Exception as exc:
            if not (isinstance(exc, IntegrityError) or _belongs_to_the_finding(exc)):
                raise
            # A value the database refused, or another daemon opened the same problem a
            # moment ago: replay finding by finding so that only the bad one fails.
            log.warning("batch replayed one finding at a time findings=%d reason=%s",
                        len(findings), type(exc).__name__)
            outcomes = self._apply_each(findings)
        if self.on_outcome:
            for finding, outcome in zip(findings, outcomes):
                self.on_outcome(finding, outcome)
        return outcomes

    def _apply_together(self, findings: Sequence[Finding]) -> list[Outcome]:
        """The fast path: a handful of statements for the whole batch, not per finding."""
        with self.store.sessions() as session, session.begin():
            now = self.clock.now()
            known = self._look_up(session, findings, now)
            with session.no_autoflush:
                return [self._apply_finding(session, known, finding, now)
                        for finding in findings]

    def _apply_each(self, findings: Sequence[Finding]) -> list[Outcome]:
        """The careful path: each finding in its own savepoint."""
        outcomes = []
        with self.store.sessions() as session, session.begin():
            now = self.clock.now()
            for finding in findings:
                outcomes.append(self._apply_alone(session, finding, now))
        return outcomes

    def _apply_alone(self, session: Session, finding: Finding, now: datetime) -> Outcome:
        for attempt in (1, 2):
            savepoint = session.begin_nested()
            try:
                outcome = self._apply_finding(session, self._look_up(session, [finding], now),
                                              finding, now)
                session.flush()  # constraints speak here, inside the savepoint
                savepoint.commit()
                return outcome
            except IntegrityError:
                savepoint.rollback()  # someone else opened it: the second look finds it
                if attempt == 2:
                    raise
            except Exception as exc:
                if not _belongs_to_the_finding(exc):
                    raise  # the database is unreachable: the whole batch waits and retries
                savepoint.rollback()
                log.exception("finding could not be applied kind=%s key=%s",
                              finding.kind, finding.dedup_key)
                return Outcome(FAILED, error=type(exc).__name__)
        raise AssertionError("unreachable")

    def _look_up(self, session: Session, findings: Sequence[Finding], now: datetime) -> "_Known":
        """Everything the batch needs from the store, in three statements at most."""
        keys = {f.dedup_key for f in findings}
        parent_keys, hold_keys = self._topology_keys(findings)
        open_by_key = repo.find_open(session, keys | parent_keys)
        new_keys = {f.dedup_key for f in findings if f.firing and f.dedup_key not in open_by_key}
        recent = repo.find_recently_resolved(session, new_keys, now - self.settings.flap_window)
        # a finding the topology may fold or hold takes its number only if it really opens
        foldable = {f.dedup_key for f in findings if self.topology.foldable(f)}
        to_open = len(new_keys - recent.keys() - foldable)
        year = now.astimezone(self.config.tz).year
        numbers = repo.take_numbers(session, year, to_open) if to_open else []
        held = topo.find_holds(session, hold_keys) if hold_keys else {}
        return _Known(open_by_key, recent, numbers, year, held)

    def _topology_keys(self, findings: Sequence[Finding]) -> tuple[set[str], set[str]]:
        """(the parents' unreachable keys to look up, the holds that may be touched)."""
        parents: set[str] = set()
        holds: set[str] = set()
        for f in findings:
            if f.kind != topo.UNREACHABLE or not f.device:
                continue
            holds.add(f.dedup_key)
            holds.update(topo.unreachable_key(d) for d in self.topology.descendants(f.device))
            ancestors = {topo.unreachable_key(a) for a in self.topology.ancestors(f.device)}
            parents.update(ancestors)
            holds.update(ancestors)
        return parents, holds

    def _apply_finding(self, session: Session, known: "_Known", finding: Finding,
                       now: datetime) -> Outcome:
        key = finding.dedup_key
        incident = known.open.get(key)
        if incident is None and self.topology.foldable(finding):
            folded = self._topology(session, known, finding, now)
            if folded is not None:
                return folded
        if not finding.firing:
            return self._clear(session, incident, finding) if incident else Outcome(IGNORED)
        if incident is not None:
            return self._update(session, incident, finding, now)
        recent = known.recent.pop(key, None)
        if recent is not None:
            known.open[key] = recent
            return self._reopen(session, recent, finding, now)
        number = known.numbers.pop(0) if known.numbers else \
            repo.take_numbers(session, known.year, 1)[0]
        incident = self._open(session, finding, now, known.year, number)
        known.open[key] = incident
        if finding.kind == topo.UNREACHABLE and finding.device:
            self._fold_held_children(session, known, incident, finding.device, now)
        return Outcome(OPENED, incident.number)

    # -- topology ---------------------------------------------------------------------------

    def _topology(self, session: Session, known: "_Known", finding: Finding,
                  now: datetime) -> Outcome | None:
        """A child's unreachable finding with no incident of its own: fold it into an open
        ancestor's incident, or hold it for the parent's, or (None) let it open as usual."""
        key = finding.dedup_key
        held = known.held.get(key)
        if not finding.firing:
            if held is None:
                return None
            topo.release(session, held)
            del known.held[key]
            return Outcome(IGNORED)  # it came back while held: nothing was ever opened
        for ancestor in self.topology.ancestors(finding.device or ""):
            parent = known.open.get(topo.unreachable_key(ancestor))
            if parent is not None:
                topo.fold(session, parent, finding, now)
                if held is not None:
                    topo.release(session, held)
                    del known.held[key]
                return Outcome(topo.FOLDED, parent.number)
        if held is not None:
            waiting_for = [known.held[k].held_until for k in
                           map(topo.unreachable_key, self.topology.ancestors(finding.device or ""))
                           if k in known.held]
            if waiting_for and held.held_until <= now:  # an ancestor is held too: it decides
                held.held_until = max(max(waiting_for), now) + timedelta(seconds=1)
            if held.held_until > now:
                held.finding = topo.finding_to_json(finding)  # keep the newest evidence
                return Outcome(topo.HELD)
            topo.release(session, held)  # the parent stayed fine: the child's own problem
            del known.held[key]
            return None
        if self.topology.hold.total_seconds() <= 0:
            return None
        known.held[key] = topo.hold(session, finding, now + self.topology.hold, now)
        return Outcome(topo.HELD)

    def _fold_held_children(self, session: Session, known: "_Known", parent: IncidentRow,
                            device: str, now: datetime) -> None:
        """The parent's incident just opened: every child held for it folds in now."""
        for child in self.topology.descendants(device):
            held = known.held.pop(topo.unreachable_key(child), None)
            if held is not None:
                topo.fold(session, parent, topo.finding_from_json(held.finding), now)
                topo.release(session, held)

    def _open(self, session: Session, finding: Finding, now: datetime, year: int,
              number: tuple[int, str]) -> IncidentRow:
        device = self.config.device(finding.device) if finding.device else None
        site = self.config.site(device.site) if device else None
        seq, text = number
        incident = IncidentRow(
            number=text, year=year, seq=seq,
            recorded_at=now, reported_at=finding.first_seen,
            location=(site.description or site.name) if site else "",
            reporter_name=repo.SYSTEM_ACTOR, reporter_agency="", reporter_phone="",
            reporter_email="", classification=HD01_CLASSIFICATION[finding.category],
            helpdesk_officer=repo.SYSTEM_ACTOR, source="monitor", kind=finding.kind,
            category=finding.category.value, severity=finding.severity.value,
            impact=finding.impact.value, urgency=finding.urgency.value,
            summary=finding.summary, device=finding.device, subject=finding.subject,
            evidence=dict(finding.evidence), dedup_key=finding.dedup_key,
            open_key=finding.dedup_key, status="open", first_seen=finding.first_seen,
            last_seen=finding.last_seen, occurrences=1, flapping=False,
            transitions={"clears": []}, updated_at=now,
        )
        session.add(incident)
        repo.append_timeline(session, incident, now, "opened", finding.summary,
                             data={"kind": finding.kind, "severity": finding.severity.value})
        self.workflow.incident_opened(session, incident, now)
        if incident.status != "maintenance":  # in a window: recorded and shown, no ticket
            self._notify(session, incident, "incident_opened", now)
        return incident

    def _update(self, session: Session, incident: IncidentRow, finding: Finding,
                now: datetime) -> Outcome:
        incident.last_seen = max(incident.last_seen, finding.last_seen)
        incident.occurrences += 1
        folded = (incident.evidence or {}).get("folded_devices")
        incident.evidence = {**dict(finding.evidence),
                             **({"folded_devices": folded} if folded else {})}
        incident.updated_at = now
        if incident.clearing_since is not None:
            incident.clearing_since = None
            if not incident.flapping:
                repo.append_timeline(session, incident, now, "refired")
        if Severity(finding.severity).rank > Severity(incident.severity).rank:
            repo.append_timeline(session, incident, now, "severity_raised",
                                 data={"from": incident.severity, "to": finding.severity.value})
            incident.severity = finding.severity.value
        return Outcome(UPDATED, incident.number)

    def _reopen(self, session: Session, incident: IncidentRow, finding: Finding,
                now: datetime) -> Outcome:
        incident.status, incident.open_key = "open", incident.dedup_key
        incident.resolved_at, incident.clearing_since = None, None
        incident.last_seen = max(incident.last_seen, finding.last_seen)
        incident.occurrences += 1
        incident.updated_at = now
        if not incident.flapping:
            repo.append_timeline(session, incident, now, "reopened", finding.summary)
            self._notify(session, incident, "incident_reopened", now)
        self.workflow.incident_reopened(session, incident, now)
        return Outcome(REOPENED, incident.number)

    def _clear(self, session: Session, incident: IncidentRow, finding: Finding) -> Outcome:
        if incident.clearing_since is not None:
            return Outcome(CLEARING, incident.number)
        at = finding.last_seen
        incident.clearing_since = at
        incident.updated_at = at
        clears = [c for c in incident.transitions.get("clears", [])
                  if datetime.fromisoformat(c) > at - self.settings.flap_window]
        clears.append(at.isoformat())
        incident.transitions = {"clears": clears[-self.settings.flap_threshold:]}
        if not incident.flapping and len(clears) >= self.settings.flap_threshold:
            incident.flapping = True
            repo.append_timeline(session, incident, at, "flapping",
                                 data={"cycles": len(clears),
                                       "window_s": self.settings.flap_window.total_seconds()})
            self._notify(session, incident, "incident_flapping", at)
        elif not incident.flapping:
            repo.append_timeline(session, incident, at, "clearing")
        return Outcome(CLEARING, incident.number)

    # -- time -------------------------------------------------------------------------------

    def hold_for(self, incident: IncidentRow) -> timedelta:
        """A flapping problem must stay quiet for the whole flap window to count as resolved."""
        if incident.flapping:
            return max(self.settings.resolve_hold, self.settings.flap_window)
        return self.settings.resolve_hold

    def tick(self) -> list[Outcome]:
        """Resolve incidents whose clear has held long enough. Safe to call at any time and
        after a restart: the resolution time is the moment the hold ran out, not now."""
        now = self.clock.now()
        outcomes = self._release_holds(now)
        with self.store.sessions() as session, session.begin():
            for incident in repo.due_for_resolution(session, now - self.settings.resolve_hold):
                resolved_at = incident.clearing_since + self.hold_for(incident)
                if resolved_at > now:
                    continue
                incident.clearing_since = None
                if not self.workflow.condition_cleared(session, incident, resolved_at):
                    continue  # people are on it: they verify and close it through the SOP
                incident.status, incident.open_key = "resolved", None
                incident.resolved_at, incident.updated_at = resolved_at, now
                repo.append_timeline(session, incident, resolved_at, "resolved",
                                     data={"hold_s": self.hold_for(incident).total_seconds()})
                self._notify(session, incident, "incident_resolved", resolved_at)
                self.workflow.incident_resolved(session, incident, resolved_at)
                outcomes.append(Outcome(RESOLVED, incident.number))
        return outcomes

    def _release_holds(self, now: datetime) -> list[Outcome]:
        """Held children whose hold ran out: fold (the parent opened) or open their own."""
        with self.store.sessions() as session, session.begin():
            due = topo.due_holds(session, now)
            if not due:
                return []
            applied = []
            for row in due:
                finding = topo.finding_from_json(row.finding)
                known = self._look_up(session, [finding], now)
                applied.append((finding, self._apply_finding(session, known, finding, now)))
                session.flush()
        if self.on_outcome:
            for finding, outcome in applied:
                self.on_outcome(finding, outcome)
        return [outcome for _finding, outcome in applied]

    # -- notifications ----------------------------------------------------------------------

    def _notify(self, session: Session, incident: IncidentRow, event: str, at: datetime) -> None:
        """The NOC's feed: one outbox row per channel with fixed targets (an e-mail `to` list,
        a Telegram group, a webhook, the log) that wants this event at this severity.
        Tickets to people are the workflow's (incidents/workflow/tickets.py)."""
        severity = Severity(incident.severity)
        for channel in self.config.notifications.channels:
            if event not in channel.events or severity.rank < channel.min_severity.rank:
                continue
            if (channel.type == "email" and not channel.to) or \
                    (channel.type == "telegram" and not channel.chat_id):
                continue  # no fixed target: this channel only carries tickets to people
            key = f"{incident.number}:{event}:{at.isoformat()}:{channel.name}"
            repo.enqueue_notification(session, incident, channel.name, event, at, key, {
                "event": event, "incident": incident_snapshot(incident), "step": None,
                "workflow": None, "note": None, "actor": repo.SYSTEM_ACTOR,
                "at": at.isoformat(),
                "recipient": {"name": None, "full_name": None, "address": None, "role": None,
                              "language": self.config.language or "en"},
            })
