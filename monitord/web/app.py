"""The web desk's Starlette routes, served by the daemon on `http.listen` beside /metrics.

`build_web(ctx)` returns the routes and middleware that `monitord.http.build_app` mounts next
to /metrics, /healthz and POST /api/v1/findings. Pages are rendered on the server with Jinja2
(autoescape on; device and reporter text is never marked safe and never used as a template)
and need no JavaScript at all.

The JSON API (issue 8, item 2) plugs in here: if a module `monitord.web.api` exists, its
`routes(ctx: WebContext) -> list[BaseRoute]` are mounted too, and it authenticates with
`ctx.identify(request)` / `monitord.web.auth.check_roles` like the pages do
(see /work/notes/desk-to-api.md)."""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from prometheus_client import Counter
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from monitord.clock import Clock
from monitord.config import Config
from monitord.i18n import N_, _, language_for, normalise_language
from monitord.metrics import Metrics
from monitord.web import auth
from monitord.web.auth import Forbidden, NotAuthenticated, Principal

log = logging.getLogger("monitord.web")
HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024
# No inline script or style anywhere; the pages need no script at all.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # status links carry the reporter's token in the query: never leak it in a Referer
    (b"referrer-policy", b"no-referrer"),
]


class WebMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.logins = Counter("monitord_web_logins_total", "Desk login attempts by outcome.",
                              ["outcome"], registry=r)
        self.lockouts = Counter("monitord_web_login_lockouts_total",
                                "Accounts or client addresses locked after repeated failed "
                                "logins.", ["scope"], registry=r)
        self.refused = Counter("monitord_web_refused_total",
                               "Desk and API requests refused, by reason.", ["reason"],
                               registry=r)


@dataclass
class WebContext:
    """What the desk (and the API) needs from the daemon. `config` and `engine` are callables
    because SIGHUP replaces them; `kick` wakes the notify worker after a change."""

    config: Callable[[], Config]
    store: Any  # monitord.incidents.store.Store
    clock: Clock
    metrics: Metrics
    engine: Callable[[], Any]  # monitord.incidents.workflow.engine.WorkflowEngine
    kick: Callable[[], None] = lambda: None
    web_metrics: WebMetrics | None = None

    def __post_init__(self) -> None:
        if self.web_metrics is None:
            self.web_metrics = WebMetrics(self.metrics)

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(session, *args)` in one transaction in a worker thread (the store is
        synchronous); the request's language follows it (contextvars are copied)."""
        def run() -> Any:
            with self.store.sessions() as session, session.begin():
                return fn(session, *args)
        return await asyncio.to_thread(run)

    def address(self, request: Request) -> str:
        return auth.client_address(request.client.host if request.client else None,
                                   request.headers.get("x-forwarded-for"),
                                   self.config().http.trusted_proxies)

    def secure(self, request: Request) -> bool:
        """HTTPS to the browser: directly, or at a configured proxy that says so."""
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else ""
        return request.headers.get("x-forwarded-proto", "").lower() == "https" and \
            auth.is_trusted_proxy(peer, self.config().http.trusted_proxies)

    async def identify(self, request: Request) -> "Visit":
        """Who is asking (from the session cookie), in which language, with which CSRF
        token. Cached on the request; the API helper may call it for cookie sessions."""
        cached = getattr(request.state, "visit", None)
        if cached is not None:
            return cached
        config, now = self.config(), self.clock.now()
        cookie = request.cookies.get(auth.SESSION_COOKIE)

        def lookup(session):
            row = auth.load_session(session, cookie, now)
            if row is None:
                return None, None, None
            return row.person, row.csrf, auth.language_of(session, row.person)

        name, csrf, chosen = await self.db(lookup) if cookie else (None, None, None)
        principal = auth.principal_for(config, name) if name else None
        prelogin = request.cookies.get(auth.PRELOGIN_COOKIE)
        new_prelogin = None
        if principal is None:
            csrf = prelogin if prelogin and 20 <= len(prelogin) <= 100 else None
            if csrf is None:
                csrf = new_prelogin = auth.new_token()
        language = normalise_language(
            chosen or (principal.language if principal else None)
            or request.cookies.get(auth.LANGUAGE_COOKIE) or config.language or "en")
        visit = Visit(principal, csrf, language, new_prelogin, cookie if principal else None)
        request.state.visit = visit
        return visit


@dataclass
class Visit:
    """One request's identity: the person (None when anonymous), the CSRF token its forms
    must carry (the session's, or the pre-login cookie's), and the language to speak."""

    principal: Principal | None
    csrf: str
    language: str
    set_prelogin: str | None = None
    session_cookie: str | None = None
    extra_cookies: list[tuple[str, str, int]] = field(default_factory=list)


# -- rendering ----------------------------------------------------------------------------


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["_"] = lambda message: _(message)
    return env


ENV = _environment()


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    visit: Visit = request.state.visit
    body = ENV.get_template(template).render(
        visit=visit, me=visit.principal, csrf=visit.csrf, language=visit.language,
        path=request.url.path, quote=quote, **values)
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def _finish(request: Request, response: Response, ctx: WebContext) -> Response:
    visit: Visit | None = getattr(request.state, "visit", None)
    if visit is None:
        return response
    secure = ctx.secure(request)
    if visit.set_prelogin:
        response.set_cookie(auth.PRELOGIN_COOKIE, visit.set_prelogin, httponly=True,
                            samesite="strict", secure=secure, path="/")
    for name, value, max_age in visit.extra_cookies:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                            secure=secure, path="/")
    return response


# -- the page decorator: every page checks the role on the server -------------------------

Handler = Callable[[Request, Visit], Awaitable[Response]]


def page(ctx: WebContext, *roles: str, public: bool = False) -> Callable[[Handler], Any]:
    """Wrap a page: identify the visitor, speak their language, refuse anonymous visitors
    (redirect to /login) and people without one of `roles` (403), and refuse any POST whose
    form lacks the CSRF token. `public` pages (login, status) skip the role check only."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            visit = await ctx.identify(request)
            with language_for(visit.language):
                try:
                    if not public:
                        auth.check_roles(visit.principal, roles)
                    if request.method == "POST":
                        form = await read_form(request)
                        if not auth.csrf_ok(visit.csrf, form.get("csrf")):
                            ctx.web_metrics.refused.labels("csrf").inc()
                            return _finish(request, render(
                                request, "error.html", status=403,
                                message=_("The form has expired or did not come from this "
                                          "desk. Go back, reload the page and try again.")),
                                ctx)
                    response = await handler(request, visit)
                except NotAuthenticated:
                    ctx.web_metrics.refused.labels("anonymous").inc()
                    target = request.url.path + (f"?{request.url.query}"
                                                 if request.url.query else "")
                    response = RedirectResponse(f"/login?next={quote(target, safe='')}",
                                                status_code=303)
                except Forbidden:
                    ctx.web_metrics.refused.labels("role").inc()
                    response = render(request, "error.html", status=403, message=_(
                        "Your role does not give access to this page."))
                except FormTooLarge:
                    response = render(request, "error.html", status=413,
                                      message=_("The form is too large."))
                return _finish(request, response, ctx)
        return endpoint
    return wrap


class FormTooLarge(Exception):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """The posted form as plain strings (cached on the request), refusing huge bodies."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise FormTooLarge()
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge()
    async with request.form(max_files=0, max_fields=100) as form:
        # NUL never belongs in text (and PostgreSQL refuses it): dropped, not an error page
        values = {k: v.replace("\x00", "") for k, v in form.items() if isinstance(v, str)}
    request.state.form = values
    return values


def safe_next(value: str | None) -> str:
    """Only a path on this desk: never an absolute URL or //host (open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/incidents"
    return value


# -- login, logout, language --------------------------------------------------------------


def _auth_routes(ctx: WebContext) -> list[BaseRoute]:
    @page(ctx, public=True)
    async def login(request: Request, visit: Visit) -> Response:
        if request.method == "GET":
            if visit.principal is not None:
                return RedirectResponse(safe_next(request.query_params.get("next")), 303)
            return render(request, "login.html", next=safe_next(request.query_params.get("next")),
                          error=None)
        form = await read_form(request)
        name, password = form.get("name", "").strip(), form.get("password", "")
        target = safe_next(form.get("next"))
        config, now = ctx.config(), ctx.clock.now()
        keys = auth.throttle_keys(name, ctx.address(request))
        known = auth.principal_for(config, name) is not None

        def attempt(session):
            if auth.locked(session, keys, now):
                return "locked", None, 0
            if known and auth.verify_password(session, name, password):
                auth.record_success(session, keys[0])
                return "ok", auth.start_session(session, name, now, config.web.session_ttl), 0
            if not known:
                auth.verify_password(session, "", password)  # same time as a real check
            return "failed", None, auth.record_failure(session, keys, now, config.web)

        outcome, cookie, newly_locked = await ctx.db(attempt)
        ctx.web_metrics.logins.labels(outcome).inc()
        if newly_locked:
            ctx.web_metrics.lockouts.labels("login").inc(newly_locked)
            log.warning("web login locked after repeated failures address=%s",
                        ctx.address(request))
        if outcome == "locked":
            return render(request, "login.html", status=429, next=target, error=_(
                "Too many failed logins. Try again later or ask an administrator."))
        if outcome == "failed":
            return render(request, "login.html", status=401, next=target,
                          error=_("Wrong name or password."))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True, samesite="lax",
                            secure=ctx.secure(request), path="/",
                            max_age=int(config.web.session_ttl.total_seconds()))
        response.delete_cookie(auth.PRELOGIN_COOKIE, path="/")
        request.state.visit.set_prelogin = None
        log.info("web login person=%s", name)
        return response

    @page(ctx, public=True)
    async def logout(request: Request, visit: Visit) -> Response:
        cookie = request.cookies.get(auth.SESSION_COOKIE)
        await ctx.db(lambda session: auth.end_session(session, cookie))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response

    @page(ctx, public=True)
    async def language(request: Request, visit: Visit) -> Response:
        form = await read_form(request)
        chosen = normalise_language(form.get("language"))
        if visit.principal is not None:
            name = visit.principal.name
            await ctx.db(lambda s: auth.set_language_of(s, name, chosen, ctx.clock.now()))
        else:
            visit.extra_cookies.append((auth.LANGUAGE_COOKIE, chosen, 365 * 86400))
        return RedirectResponse(safe_next(form.get("next")), status_code=303)

    async def home(request: Request) -> Response:
        return RedirectResponse("/incidents", status_code=303)

    return [Route("/", home), Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/language", language, methods=["POST"])]


# -- assembling ---------------------------------------------------------------------------


class SecurityHeaders:
    """CSP, nosniff, frame and referrer policy on every response of the daemon's HTTP side."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _v in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in names]
            await send(message)
        await self.app(scope, receive, with_headers)


@dataclass
class WebParts:
    routes: list[BaseRoute]
    middleware: list[Middleware]


def api_routes(ctx: WebContext) -> list[BaseRoute]:
    """The JSON API's routes if `monitord.web.api` exists (the API helper's module)."""
    if importlib.util.find_spec("monitord.web.api") is None:
        return []
    api = importlib.import_module("monitord.web.api")
    return list(api.routes(ctx))


def build_web(ctx: WebContext) -> WebParts:
    from monitord.web import pages
    routes: list[BaseRoute] = [
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        *_auth_routes(ctx),
        *pages.routes(ctx),
        *api_routes(ctx),
    ]
    return WebParts(routes, [Middleware(SecurityHeaders)])


STATUS_WORDS = {"open": N_("open"), "resolved": N_("resolved"), "closed": N_("closed"),
                "maintenance": N_("maintenance")}


def iso_local(moment: datetime | None, tz: Any) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else "-"


__all__ = ["WebContext", "Visit", "build_web", "page", "render", "read_form", "api_routes",
           "WebParts"]
