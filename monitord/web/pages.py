"""The desk's pages: my queue, an incident with its actions, the help desk's Form HD-01, the
reporter's status page and the monthly recap. Every change goes through the same engine calls
as the CLI (`WorkflowEngine.open_report`, `.act`), one transaction each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from monitord import incident_json
from monitord.i18n import N_, _
from monitord.incidents.manager import TIMELINE_WORDS
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import IncidentRow
from monitord.records import Category, Level
from monitord.web import status as status_tokens
from monitord.web.app import STATUS_WORDS, Visit, WebContext, iso_local, page, read_form, render
from monitord.web.auth import Forbidden, Principal

QUEUE_LIMIT = 500


class Refused(Exception):
    """The SOP refused an action; the message (one line) is shown on the page."""

CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # PostgreSQL text cannot hold NUL
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
NUMBER = re.compile(r"^\d{4}-\d{6}$")
# Sorting and filtering take only these names; anything else falls back to the default.
SORTS = {"number": IncidentRow.id, "due": IncidentRow.step_due_at,
         "priority": IncidentRow.priority, "status": IncidentRow.status,
         "category": IncidentRow.category, "severity": IncidentRow.severity,
         "recorded": IncidentRow.recorded_at, "division": IncidentRow.division}
SORT_WORDS = {"number": N_("Number"), "due": N_("Due"), "priority": N_("Priority"),
              "status": N_("Status"), "category": N_("Category"), "severity": N_("Severity"),
              "recorded": N_("Recorded"), "division": N_("Division")}
STATUSES = ("open", "resolved", "closed", "maintenance", "all")
PRIORITIES = ("P1", "P2", "P3", "P4")
DIVISIONS = ("SIM", "IPL", "IPK")
ACTION_WORDS = {"accept": N_("Accept"), "direct": N_("Give direction"),
                "report": N_("Report the result"), "verify": N_("Verify"),
                "resolve": N_("Resolve"), "inform": N_("Inform the reporter"),
                "forward": N_("Forward"), "note": N_("Add a note"),
                "assign": N_("Assign (name the person in the note)"),
                "involve": N_("Involve an outside party (name it in the note)"),
                "set_priority": N_("Change priority"), "reopen": N_("Reopen"),
                "close": N_("Close"), "approve": N_("Approve"), "classify": N_("Classify"),
                "record": N_("Record")}
OUTCOME_WORDS = {"resolved": N_("resolved"), "not_resolved": N_("not resolved")}
SLA_WORDS = {"on_time": N_("on time"), "due_soon": N_("due soon"), "breached": N_("breached"),
             "none": N_("no time standard")}
# Who may read the recap: the heads who answer for the SLA.
RECAP_ROLES = ("KD", "KS", "KB")
REPORT_ROLES = ("HD",)
DESK_ROLES = ("HD", "PO", "KD", "KS", "KB")
HD01_FIELDS = ("place", "reporter_name", "agency", "phone", "email", "description")
FIELD_LIMITS = {"place": 200, "reporter_name": 200, "agency": 200, "phone": 50, "email": 200,
                "description": 4000}


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """The queue's query string, reduced to allow-listed values."""

    scope: str = "mine"  # mine | office
    status: str = "open"
    category: str = ""
    priority: str = ""
    division: str = ""
    q: str = ""
    sort: str = "due"
    order: str = "asc"

    def sort_link(self, key: str) -> str:
        """The queue's URL sorted by `key` (toggling the order when it is already sorted by
        it), keeping the filters; every value is one of the allow-listed ones or quoted."""
        order = ("desc" if self.order == "asc" else "asc") if self.sort == key else "asc"
        params = {"scope": self.scope, "status": self.status, "category": self.category,
                  "priority": self.priority, "division": self.division, "q": self.q,
                  "sort": key, "order": order}
        return "/incidents?" + urlencode({k: v for k, v in params.items() if v})

    @classmethod
    def parse(cls, params: Any, principal: Principal) -> "QueueFilter":
        def pick(name: str, allowed, default: str) -> str:
            value = params.get(name, default)
            return value if value in allowed else default
        scope = pick("scope", ("mine", "office"), "mine")
        if not principal.office_wide:
            scope = "mine"
        return cls(scope=scope, status=pick("status", STATUSES, "open"),
                   category=pick("category", [c.value for c in Category], ""),
                   priority=pick("priority", PRIORITIES, ""),
                   division=pick("division", DIVISIONS, ""),
                   q=CONTROL.sub("", params.get("q") or "")[:100],
                   sort=pick("sort", SORTS, "due"),
                   order=pick("order", ("asc", "desc"), "asc"))


def sla_state(row: IncidentRow, now: datetime, due_soon) -> str:
    if row.step_breached_at is not None or (row.step_due_at is not None and row.step_due_at <= now):
        return "breached"
    if row.step_due_at is None:
        return "none"
    return "due_soon" if row.step_due_at - now <= due_soon else "on_time"


def may_view(principal: Principal, row: IncidentRow) -> bool:
    """People see their division's incidents; people without a division, and KS/KB, all."""
    return principal.office_wide or principal.division is None or row.division is None \
        or principal.division == row.division


def my_steps(engine, principal: Principal) -> dict[str, list[str]]:
    """workflow -> the steps whose acting role the person holds (their queue)."""
    return {name: [step for step, spec in workflow.steps.items()
                   if spec.role and spec.role in principal.roles]
            for name, workflow in engine.workflows.items()}


def queue_rows(session: Session, engine, principal: Principal, flt: QueueFilter,
               now: datetime, due_soon) -> list[dict[str, Any]]:
    query = select(IncidentRow)
    if flt.status != "all":
        query = query.where(IncidentRow.status == flt.status)
    if flt.category:
        query = query.where(IncidentRow.category == flt.category)
    if flt.priority:
        query = query.where(IncidentRow.priority == flt.priority)
    if flt.division:
        query = query.where(IncidentRow.division == flt.division)
    if flt.q:
        like = "%" + flt.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(*(column.ilike(like, escape="\\") for column in (
            IncidentRow.number, IncidentRow.summary, IncidentRow.device,
            IncidentRow.location, IncidentRow.reporter_name))))
    if flt.scope == "mine":  # in SQL, so the limit applies to my queue, not to everything
        mine = [and_(IncidentRow.workflow == name, IncidentRow.step.in_(steps))
                for name, steps in my_steps(engine, principal).items()]
        query = query.where(or_(*mine) if mine else false())
    if principal.division and not principal.office_wide:
        query = query.where(or_(IncidentRow.division.is_(None),
                                IncidentRow.division == principal.division))
    column = SORTS[flt.sort]
    ordering = column.asc() if flt.order == "asc" else column.desc()
    query = query.order_by(ordering.nulls_last(), IncidentRow.id.desc()).limit(QUEUE_LIMIT)
    rows = []
    for row in session.scalars(query).all():
        step = engine.step_of(row) if row.workflow in engine.workflows else None
        role = step.role if step is not None else None
        if flt.scope == "mine":
            if role is None or role not in principal.roles:
                continue
            if principal.division and row.division and principal.division != row.division:
                continue
        elif not may_view(principal, row):
            continue
        rows.append({"row": row, "role": role or "-",
                     "step_title": step.title.get(_lang()) if step else "-",
                     "sla": sla_state(row, now, due_soon) if row.status != "closed" else "none"})
    return rows


def _lang() -> str:
    from monitord.i18n import active_language
    return active_language()


def routes(ctx: WebContext) -> list[BaseRoute]:
    def tz():
        return ctx.config().tz

    @page(ctx, *DESK_ROLES)
    async def queue(request: Request, visit: Visit) -> Response:
        flt = QueueFilter.parse(request.query_params, visit.principal)
        now, config = ctx.clock.now(), ctx.config()
        rows = await ctx.db(queue_rows, ctx.engine(), visit.principal, flt, now,
                            config.web.due_soon)
        return render(request, "queue.html", rows=rows, flt=flt, sorts=SORT_WORDS,
                      statuses=STATUSES, categories=[c.value for c in Category],
                      priorities=PRIORITIES, divisions=DIVISIONS, sla_words=SLA_WORDS,
                      status_words=STATUS_WORDS, when=lambda m: iso_local(m, tz()))

    def load(session: Session, number: str):
        row = repo.get_incident(session, number) if NUMBER.match(number) else None
        return row, (repo.outbox_for(session, row.id) if row is not None else [])

    @page(ctx, *DESK_ROLES)
    async def incident(request: Request, visit: Visit) -> Response:
        number = request.path_params["number"]
        row, outbox = await ctx.db(load, number)
        if row is None:
            return render(request, "error.html", status=404,
                          message=_("No incident numbered {number}.").format(number=number))
        if not may_view(visit.principal, row):
            raise Forbidden()
        return _incident_page(request, visit, row, outbox, None)

    def _incident_page(request, visit, row, outbox, error, status=200):
        engine = ctx.engine()
        detail = incident_json.incident_detail(row, outbox, engine)
        mine = [a for a in detail["allowed_actions"]
                if set(a["roles"]) & set(visit.principal.roles)
                and (not visit.principal.division or not row.division
                     or visit.principal.division == row.division or a["action"] == "reopen")]
        step = engine.step_of(row) if row.workflow in engine.workflows else None
        return render(request, "incident.html", status=status, d=detail, row=row, mine=mine,
                      step=step, error=error, words=TIMELINE_WORDS, status_words=STATUS_WORDS,
                      sla=SLA_WORDS[sla_state(row, ctx.clock.now(), ctx.config().web.due_soon)]
                      if row.status != "closed" else "-",
                      when=lambda m: iso_local(m, tz()),
                      when_iso=lambda s: iso_local(datetime.fromisoformat(s), tz()) if s else "-",
                      lang=visit.language, levels=[lv.value for lv in Level],
                      action_words=ACTION_WORDS, outcome_words=OUTCOME_WORDS)

    @page(ctx, *DESK_ROLES)
    async def act(request: Request, visit: Visit) -> Response:
        from monitord.incidents.workflow.engine import WorkflowError
        number = request.path_params["number"]
        form = await read_form(request)
        action = form.get("action", "")[:32]
        outcome = form.get("outcome") or None
        note = (form.get("note") or "")[:4000] or None
        impact = form.get("impact") if form.get("impact") in ("low", "medium", "high") else None
        urgency = form.get("urgency") if form.get("urgency") in ("low", "medium", "high") \
            else None
        name, now = visit.principal.name, ctx.clock.now()

        def do(session: Session):
            row = repo.get_incident(session, number) if NUMBER.match(number) else None
            if row is None:
                return None, None
            try:
                ctx.engine().act(session, row, name, action, now, outcome=outcome, note=note,
                                 impact=impact, urgency=urgency)
            except (WorkflowError, ValueError) as exc:
                raise Refused(str(exc)) from None  # the transaction rolls back whole
            return row.number, ""

        try:
            found, error = await ctx.db(do)
        except Refused as exc:
            found, error = number, str(exc)
        if found is None:
            return render(request, "error.html", status=404,
                          message=_("No incident numbered {number}.").format(number=number))
        if error:
            row, outbox = await ctx.db(load, number)
            return _incident_page(request, visit, row, outbox, error, status=409)
        ctx.kick()
        return RedirectResponse(f"/incidents/{found}", status_code=303)

    @page(ctx, *REPORT_ROLES)
    async def report(request: Request, visit: Visit) -> Response:
        routing = ctx.config().workflows.routing  # only categories that have an SOP route
        categories = [c.value for c in Category if c in routing]
        if request.method == "GET":
            return render(request, "report.html", values={}, errors=[],
                          categories=categories, levels=[lv.value for lv in Level])
        form = await read_form(request)
        values = {k: (form.get(k) or "").strip() for k in (*HD01_FIELDS, "category", "impact",
                                                            "urgency")}
        errors = []
        if values["category"] not in categories:
            errors.append(_("Choose a category."))
        for key in ("place", "reporter_name", "description"):
            if not values[key]:
                errors.append(_("Fill in: {field}").format(field=_(FIELD_LABELS[key])))
        for key, limit in FIELD_LIMITS.items():
            if len(values[key]) > limit:
                errors.append(_("{field} is longer than {limit} characters").format(
                    field=_(FIELD_LABELS[key]), limit=limit))
        for key in ("impact", "urgency"):
            if values[key] not in ("low", "medium", "high"):
                values[key] = "medium"
        if errors:
            return render(request, "report.html", status=422, values=values, errors=errors,
                          categories=categories, levels=[lv.value for lv in Level])
        from monitord.incidents.workflow.engine import Report
        officer = visit.principal.full_name or visit.principal.name
        now, config = ctx.clock.now(), ctx.config()
        public_url = config.web.public_url or f"{request.url.scheme}://{request.url.netloc}"

        def record(session: Session):
            row = ctx.engine().open_report(session, Report(
                category=Category(values["category"]), place=values["place"],
                reporter_name=values["reporter_name"], agency=values["agency"],
                phone=values["phone"], email=values["email"],
                description=values["description"], impact=Level(values["impact"]),
                urgency=Level(values["urgency"]), officer=officer), now)
            session.flush()
            token = status_tokens.issue(session, config, row, now, public_url)
            return row.number, token

        number, token = await ctx.db(record)
        ctx.kick()
        link = status_tokens.link(public_url, number, token)
        return render(request, "receipt.html", number=number, token=token, link=link)

    @page(ctx, public=True)
    async def status(request: Request, visit: Visit) -> Response:
        number, token = request.path_params["number"], request.query_params.get("t", "")

        def find(session: Session):
            row = status_tokens.incident_for(session, number, token)
            return row, (list(row.timeline) if row is not None else [])

        row, timeline = await ctx.db(find) if NUMBER.match(number) else (None, [])
        if row is None:
            ctx.web_metrics.refused.labels("status_token").inc()
            return render(request, "error.html", status=404, message=_(
                "This status link is not valid. Use the link from your ticket or e-mail."))
        engine = ctx.engine()
        step = engine.step_of(row) if row.workflow in engine.workflows else None
        progress = [{"at": iso_local(t.at, tz()),
                     "what": _(TIMELINE_WORDS.get(t.action, t.action)),
                     "outcome": (t.data or {}).get("outcome")}
                    for t in timeline if t.action in status_tokens.PUBLIC_ACTIONS]
        return render(request, "status.html", row=row, progress=progress,
                      step_title=step.title.get(visit.language) if step else "",
                      status_words=STATUS_WORDS, outcome_words=OUTCOME_WORDS,
                      when=lambda m: iso_local(m, tz()))

    @page(ctx, *RECAP_ROLES)
    async def recap(request: Request, visit: Visit) -> Response:
        from monitord.incidents.report import _bars, monthly_recap
        month = request.path_params["month"]
        if not MONTH.match(month):
            return render(request, "error.html", status=404,
                          message=_("{month}: expected a month as YYYY-MM").format(month=month))
        data = await ctx.db(lambda s: monthly_recap(s, ctx.engine(), month))
        year, number = int(month[:4]), int(month[5:])
        previous = f"{year - (number == 1)}-{(number - 2) % 12 + 1:02d}"
        following = f"{year + (number == 12)}-{number % 12 + 1:02d}"
        return render(request, "recap.html", recap=data, bars=_bars, previous=previous,
                      following=following,
                      acknowledge=data.stats(data.acknowledge_s),
                      resolve=data.stats(data.resolve_s),
                      hours=lambda s: "-" if s is None else f"{s / 3600:.1f} h")

    async def recap_now(request: Request) -> Response:
        month = ctx.clock.now().astimezone(ctx.config().tz).strftime("%Y-%m")
        return RedirectResponse(f"/recap/{month}", status_code=303)

    return [
        Route("/incidents", queue),
        Route("/incidents/{number}", incident),
        Route("/incidents/{number}/act", act, methods=["POST"]),
        Route("/report", report, methods=["GET", "POST"]),
        Route("/status/{number}", status),
        Route("/recap", recap_now),
        Route("/recap/{month}", recap),
    ]


FIELD_LABELS = {"place": N_("Place"), "reporter_name": N_("Reporter's name"),
                "agency": N_("Agency (SKPD/UKPD)"), "phone": N_("Phone"), "email": N_("E-mail"),
                "description": N_("Description")}

