"""The JSON API under /api/v1/ for scripts and other tools (an office's GLPI, a chat bot).

List, show, report (Form HD-01) and act on incidents with the same JSON shapes as the CLI's
`--json` (`monitord.incident_json`), through the same engine calls as the CLI and the desk
(`WorkflowEngine.open_report`, `.act`), one transaction each.

Authentication is by API token only (`Authorization: Bearer mdt_...`, created with `monitord
api-token create`); the API never reads the desk's session cookie, so a browser cannot be
tricked into calling it (no CSRF surface). A token acts as one person of the directory and the
role rules are the desk's (`monitord.web.auth.check_roles`, `pages.may_view`, and the SOP
engine's own step/tier/division check when acting). Query parameters are allow-listed: an
unknown value is a 400 naming the parameter and what it accepts, never part of a query.
`/api/v1/openapi.json` describes all of it (built from `ENDPOINTS` below)."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from monitord import __version__, incident_json
from monitord.i18n import _, language_for
from monitord.incidents.store import repository as repo
from monitord.records import Category, Level
from monitord.web import auth, tokens
from monitord.web.app import WebContext
from monitord.web.auth import Forbidden, NotAuthenticated, Principal
from monitord.web.pages import (
    CONTROL,
    DESK_ROLES,
    DIVISIONS,
    NUMBER,
    PRIORITIES,
    REPORT_ROLES,
    SORTS,
    STATUSES,
    QueueFilter,
    may_view,
    queue_rows,
)

log = logging.getLogger("monitord.api")
PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
# The list's parameters and the values each accepts (anything else: 400).
LIST_CHOICES: dict[str, tuple[str, ...]] = {
    "status": STATUSES,
    "category": tuple(c.value for c in Category),
    "priority": PRIORITIES,
    "division": DIVISIONS,
    "sort": tuple(SORTS),
    "order": ("asc", "desc"),
    "scope": ("all", "mine"),
}
LIST_DEFAULTS = {"status": "all", "sort": "number", "order": "desc", "scope": "all"}
LIST_PARAMS = (*LIST_CHOICES, "q", "limit")


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL, and it never belongs in a form: dropped, as the desk does
    return value.replace("\x00", "") if isinstance(value, str) else value


class ReportIn(BaseModel):
    """Form HD-01 for a person's report, as the help desk fills it."""

    model_config = ConfigDict(extra="forbid")
    category: Category
    place: str = Field(min_length=1, max_length=200)
    reporter_name: str = Field(min_length=1, max_length=200)
    agency: str = Field("", max_length=200)
    phone: str = Field("", max_length=50)
    email: str = Field("", max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    impact: Level = Level.MEDIUM
    urgency: Level = Level.MEDIUM

    @field_validator("place", "reporter_name", "agency", "phone", "email", "description",
                     mode="before")
    @classmethod
    def _strip_nul(cls, value: Any) -> Any:
        return _no_nul(value)


class ActIn(BaseModel):
    """An action on the incident's current step (or note/assign/involve/set_priority/reopen)."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    outcome: Literal["resolved", "not_resolved"] | None = None
    note: str | None = Field(None, max_length=4000)
    impact: Level | None = None
    urgency: Level | None = None

    @field_validator("note", mode="before")
    @classmethod
    def _strip_nul(cls, value: Any) -> Any:
        return _no_nul(value)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def error(status: int, message: str, details: Any = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": message, **({"details": details} if details is not None else {})}
    return JSONResponse(body, status_code=status,
                        headers={"cache-control": "no-store", **(headers or {})})


Handler = Callable[[Request, Principal], Awaitable[Response]]


def endpoint(ctx: WebContext, *roles: str) -> Callable[[Handler], Callable]:
    """Authenticate the bearer token, speak the person's language, check the role (the
    desk's rule), and turn refusals into JSON: 401 (no or bad token), 403 (role), 4xx."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            config, now = ctx.config(), ctx.clock.now()
            token = bearer(request)
            person = await ctx.db(tokens.authenticate, token, now) if token else None
            principal = auth.principal_for(config, person, via="token") if person else None
            language = (principal.language if principal else None) or config.language or "en"
            with language_for(language):
                try:
                    auth.check_roles(principal, roles)
                    response = await handler(request, principal)
                except NotAuthenticated:
                    ctx.web_metrics.refused.labels("token" if token else "anonymous").inc()
                    return error(401, _("A valid API token is required "
                                        "(Authorization: Bearer TOKEN)."),
                                 headers={"www-authenticate": 'Bearer realm="monitord"'})
                except Forbidden:
                    ctx.web_metrics.refused.labels("role").inc()
                    return error(403, _("Your role does not give access to this."))
                except ApiError as exc:
                    return error(exc.status, exc.message, exc.details)
            response.headers["cache-control"] = "no-store"
            return response
        return run
    return wrap


async def read_json(request: Request, model: type[BaseModel]) -> Any:
    declared = request.headers.get("content-length") or "0"
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, _("The request body is too large."))
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, _("The request body is too large."))
    try:
        return model.model_validate(json.loads(body))
    except ValueError as exc:  # json.JSONDecodeError and pydantic's ValidationError
        details = exc.errors(include_url=False, include_input=False) \
            if isinstance(exc, ValidationError) else None
        raise ApiError(422, _("The request body is not valid JSON for this endpoint."),
                       details) from None


def list_filter(params: Any, principal: Principal) -> tuple[QueueFilter, int]:
    """The list's query string, allow-listed; anything else is a 400."""
    unknown = sorted(set(params.keys()) - set(LIST_PARAMS))
    if unknown:
        raise ApiError(400, _("Unknown parameter {name}; expected {names}").format(
            name=unknown[0][:40], names=", ".join(LIST_PARAMS)))
    values = {}
    for name, allowed in LIST_CHOICES.items():
        value = params.get(name, LIST_DEFAULTS.get(name, ""))
        if value and value not in allowed:
            raise ApiError(400, _("Parameter {name}: expected one of {values}").format(
                name=name, values=", ".join(allowed)))
        values[name] = value
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise ApiError(400, _("Parameter limit: expected a whole number from 1 to {max}")
                       .format(max=MAX_LIMIT))
    scope = "mine" if values.pop("scope") == "mine" else "office"
    flt = QueueFilter(scope=scope, q=CONTROL.sub("", params.get("q") or "")[:100], **values)
    return flt, int(raw_limit)


def _act_status(engine, row, principal: Principal, action: str) -> int:
    """403 when the refusal is about who acts (role or division), 409 when about the SOP's
    state (wrong action now, missing outcome or note)."""
    allowed = {a["action"]: a["roles"] for a in engine.allowed_actions(row)}
    if action in allowed and not principal.holds(*allowed[action]):
        return 403
    if action != "reopen" and principal.division and row.division \
            and principal.division != row.division:
        return 403
    return 409


def routes(ctx: WebContext) -> list[BaseRoute]:
    @endpoint(ctx, *DESK_ROLES)
    async def list_incidents(request: Request, me: Principal) -> Response:
        flt, limit = list_filter(request.query_params, me)
        config = ctx.config()

        def rows(session: Session):
            found = queue_rows(session, ctx.engine(), me, flt, ctx.clock.now(),
                               config.web.due_soon)
            return [incident_json.incident_summary(r["row"]) for r in found[:limit]]
        return JSONResponse(await ctx.db(rows))

    def number_of(request: Request) -> str:
        number = request.path_params["number"]
        if not NUMBER.match(number):
            raise ApiError(404, _("No incident numbered {number}.").format(number=number[:40]))
        return number

    @endpoint(ctx, *DESK_ROLES)
    async def show_incident(request: Request, me: Principal) -> Response:
        number = number_of(request)

        def show(session: Session):
            row = repo.get_incident(session, number)
            if row is None:
                return None
            if not may_view(me, row):
                raise Forbidden()
            return incident_json.incident_detail(row, repo.outbox_for(session, row.id),
                                                 ctx.engine())
        detail = await ctx.db(show)
        if detail is None:
            raise ApiError(404, _("No incident numbered {number}.").format(number=number))
        return JSONResponse(detail)

    @endpoint(ctx, *REPORT_ROLES)
    async def report(request: Request, me: Principal) -> Response:
        from monitord.incidents.workflow.engine import Report
        from monitord.web import status as status_tokens
        form = await read_json(request, ReportIn)
        config, now = ctx.config(), ctx.clock.now()
        public_url = config.web.public_url or f"{request.url.scheme}://{request.url.netloc}"

        def record(session: Session):
            row = ctx.engine().open_report(session, Report(
                category=form.category, place=form.place, reporter_name=form.reporter_name,
                agency=form.agency, phone=form.phone, email=form.email,
                description=form.description, impact=form.impact, urgency=form.urgency,
                officer=me.full_name or me.name), now)
            session.flush()
            token = status_tokens.issue(session, config, row, now, public_url)
            return {**incident_json.report_result(row),
                    "status_url": status_tokens.link(public_url, row.number, token)}
        result = await ctx.db(record)
        ctx.kick()
        log.info("api report number=%s by=%s", result["number"], me.name)
        return JSONResponse(result, status_code=201,
                            headers={"location": f"{PREFIX}/incidents/{result['number']}"})

    @endpoint(ctx, *DESK_ROLES)
    async def act(request: Request, me: Principal) -> Response:
        from monitord.incidents.workflow.engine import WorkflowError
        number = number_of(request)
        form = await read_json(request, ActIn)
        now = ctx.clock.now()

        def do(session: Session):
            row = repo.get_incident(session, number)
            if row is None:
                raise ApiError(404, _("No incident numbered {number}.").format(number=number))
            if not may_view(me, row):
                raise Forbidden()
            engine = ctx.engine()
            try:
                step = engine.act(session, row, me.name, form.action, now,
                                  outcome=form.outcome, note=form.note,
                                  impact=form.impact.value if form.impact else None,
                                  urgency=form.urgency.value if form.urgency else None)
            except (WorkflowError, ValueError) as exc:
                # raised out of ctx.db: the whole transaction rolls back
                raise ApiError(_act_status(engine, row, me, form.action), str(exc)) from None
            return incident_json.act_result(row, step)
        result = await ctx.db(do)
        ctx.kick()
        log.info("api act number=%s action=%s by=%s", number, form.action, me.name)
        return JSONResponse(result)

    @endpoint(ctx)
    async def whoami(request: Request, me: Principal) -> Response:
        return JSONResponse({"name": me.name, "full_name": me.full_name,
                             "roles": list(me.roles), "division": me.division,
                             "language": me.language})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(), headers={"cache-control": "no-cache"})

    return [
        Route(f"{PREFIX}/incidents", list_incidents, methods=["GET"]),
        Route(f"{PREFIX}/incidents", report, methods=["POST"]),
        Route(f"{PREFIX}/incidents/{{number}}", show_incident, methods=["GET"]),
        Route(f"{PREFIX}/incidents/{{number}}/actions", act, methods=["POST"]),
        Route(f"{PREFIX}/me", whoami, methods=["GET"]),
        Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"]),
    ]


# -- the OpenAPI description ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One row of the route table the OpenAPI document is built from (and the tests' role
    matrix reads): method, path, roles allowed (empty: any person; None: public)."""

    method: str
    path: str
    operation: str
    summary: str
    roles: tuple[str, ...] | None
    ok: int = 200


ENDPOINTS = (
    Endpoint("get", "/incidents", "listIncidents",
             "Incidents the caller may see, newest first (the CLI's `incidents list --json`).",
             DESK_ROLES),
    Endpoint("post", "/incidents", "reportIncident",
             "Record a person's report (Form HD-01); answers like `incidents report --json` "
             "(with the reporter's status link).", REPORT_ROLES, 201),
    Endpoint("get", "/incidents/{number}", "showIncident",
             "One incident (the CLI's `incidents show --json`).", DESK_ROLES),
    Endpoint("post", "/incidents/{number}/actions", "actOnIncident",
             "Act on the incident's current step (the CLI's `incidents act --json`); the SOP "
             "engine checks the step's role, higher tiers and the division.", DESK_ROLES),
    Endpoint("get", "/me", "whoAmI", "The person the token acts as.", ()),
    Endpoint("get", "/openapi.json", "openapi", "This description.", None),
)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _defs(*models: type[BaseModel]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for model in models:
        defs.update(model.model_json_schema(
            ref_template="#/components/schemas/{model}").get("$defs", {}))
    return defs


_NULLABLE_STR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
SUMMARY_SCHEMA = {
    "type": "object",
    "properties": {
        "number": {"type": "string", "example": "2026-000123"}, "status": {"type": "string"},
        "severity": {"type": "string"}, "category": {"type": "string"},
        "kind": {"type": "string"}, "device": _NULLABLE_STR, "subject": _NULLABLE_STR,
        "summary": {"type": "string"}, "flapping": {"type": "boolean"},
        "occurrences": {"type": "integer"}, "first_seen": _TIME, "last_seen": _TIME,
        "resolved_at": _TIME},
    "required": ["number", "status", "severity", "category", "kind", "summary"],
}
DETAIL_SCHEMA = {
    "allOf": [{"$ref": "#/components/schemas/IncidentSummary"}, {
        "type": "object",
        "properties": {
            "workflow": _NULLABLE_STR, "division": _NULLABLE_STR, "step": _NULLABLE_STR,
            "role": _NULLABLE_STR, "priority": _NULLABLE_STR, "due_at": _TIME,
            "assignee": _NULLABLE_STR,
            "allowed_actions": {"type": "array", "items": {
                "type": "object", "properties": {
                    "action": {"type": "string"},
                    "roles": {"type": "array", "items": {"type": "string"}},
                    "outcomes": {"type": "array", "items": {"type": "string"}}}}},
            "sla_breaches": {"type": "array", "items": {"type": "object"}},
            "sla_targets": {"type": "object"}, "condition_cleared_at": _TIME,
            "closed_at": _TIME, "description": {"type": "string"},
            "hd01": {"type": "object"}, "source": {"type": "string"},
            "impact": {"type": "string"}, "urgency": {"type": "string"},
            "dedup_key": {"type": "string"}, "evidence": {"type": "object"},
            "clearing_since": _TIME,
            "timeline": {"type": "array", "items": {"type": "object", "properties": {
                "at": _TIME, "actor": {"type": "string"}, "role": {"type": "string"},
                "action": {"type": "string"}, "note": {"type": "string"},
                "data": {"type": "object"}}}},
            "outbox": {"type": "array", "items": {"type": "object"}}}}],
}
REPORT_RESULT_SCHEMA = {
    "type": "object",
    "properties": {"number": {"type": "string"}, "status": {"type": "string"},
                   "workflow": _NULLABLE_STR, "division": _NULLABLE_STR,
                   "step": _NULLABLE_STR, "priority": _NULLABLE_STR, "due_at": _TIME,
                   "status_url": {"type": "string"}},
    "required": ["number", "status", "status_url"],
}
ACT_RESULT_SCHEMA = {
    "type": "object",
    "properties": {"number": {"type": "string"}, "status": {"type": "string"},
                   "step": _NULLABLE_STR, "due_at": _TIME},
    "required": ["number", "status"],
}
ME_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "full_name": {"type": "string"},
                   "roles": {"type": "array", "items": {"type": "string"}},
                   "division": _NULLABLE_STR, "language": _NULLABLE_STR},
}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "details": {}},
    "required": ["error"],
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the routes above, from ENDPOINTS and the request models."""
    bodies = {"reportIncident": "ReportIn", "actOnIncident": "ActIn"}
    answers = {"listIncidents": {"type": "array", "items": _ref("IncidentSummary")},
               "reportIncident": _ref("ReportResult"), "showIncident": _ref("IncidentDetail"),
               "actOnIncident": _ref("ActResult"), "whoAmI": _ref("Me"),
               "openapi": {"type": "object"}}
    number = {"name": "number", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": NUMBER.pattern},
              "description": "The incident's number, e.g. 2026-000123."}
    list_params = [
        {"name": name, "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(values),
                    **({"default": LIST_DEFAULTS[name]} if name in LIST_DEFAULTS else {})}}
        for name, values in LIST_CHOICES.items()]
    list_params += [
        {"name": "q", "in": "query", "required": False, "description":
         "Text searched in number, summary, device, location and reporter name.",
         "schema": {"type": "string", "maxLength": 100}},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT}}]
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        responses: dict[str, Any] = {str(e.ok): _json(answers[e.operation], "OK")}
        operation: dict[str, Any] = {"operationId": e.operation, "summary": e.summary,
                                     "tags": ["incidents"] if "incident" in e.path else ["meta"]}
        if e.roles is None:
            operation["security"] = []
        else:
            operation["description"] = "Roles: " + (", ".join(e.roles) if e.roles
                                                    else "any person") + "."
            responses["401"] = _json(_ref("Error"), "No, unknown or revoked token.")
            responses["403"] = _json(_ref("Error"), "The role (or division) does not allow it.")
        params = []
        if "{number}" in e.path:
            params.append(number)
            responses["404"] = _json(_ref("Error"), "No such incident.")
        if e.operation == "listIncidents":
            params += list_params
            responses["400"] = _json(_ref("Error"), "A parameter outside its allowed values.")
        if params:
            operation["parameters"] = params
        if e.operation in bodies:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _ref(bodies[e.operation])}}}
            responses["413"] = _json(_ref("Error"), "The body is larger than 64 KiB.")
            responses["422"] = _json(_ref("Error"), "The body is not valid for this endpoint.")
        if e.operation == "actOnIncident":
            responses["409"] = _json(_ref("Error"),
                                     "The SOP does not allow this action now (the message "
                                     "names the step and what it expects).")
        operation["responses"] = responses
        paths.setdefault(PREFIX + e.path, {})[e.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "monitord API", "version": __version__, "description":
                 "Incidents of monitord's SOP workflow for scripts and other tools. "
                 "Authenticate with a token from `monitord api-token create`."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "incidents"}, {"name": "meta"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "bearerFormat": "mdt_ token"}},
            "schemas": {
                "IncidentSummary": SUMMARY_SCHEMA, "IncidentDetail": DETAIL_SCHEMA,
                "ReportIn": _schema(ReportIn), "ActIn": _schema(ActIn),
                "ReportResult": REPORT_RESULT_SCHEMA, "ActResult": ACT_RESULT_SCHEMA,
                "Me": ME_SCHEMA, "Error": ERROR_SCHEMA, **_defs(ReportIn, ActIn)},
        },
    }
