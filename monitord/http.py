"""The daemon's HTTP side on `http.listen`: /metrics, /healthz and the findings intake.

POST /api/v1/findings lets agents and scripts feed findings into the same pipeline as the
built-in detectors. The reply comes only after the findings are committed to the store: a 200
is an acknowledgement that survives a crash."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Sequence

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from monitord.incidents.manager import Outcome
from monitord.metrics import Metrics
from monitord.records import KIND_PATTERN, Category, Finding, FindingState, Level, Severity
from monitord.secrets import Secret

log = logging.getLogger("monitord.http")
MAX_FINDINGS_PER_REQUEST = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024


class FindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern=KIND_PATTERN.pattern)
    category: Category
    severity: Severity
    state: FindingState = FindingState.FIRING
    dedup_key: str = Field(min_length=1, max_length=400)
    summary: str = Field(min_length=1, max_length=2000)
    device: str | None = Field(None, max_length=64)
    subject: str | None = Field(None, max_length=200)
    impact: Level = Level.MEDIUM
    urgency: Level = Level.MEDIUM
    evidence: dict[str, Any] = {}
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    def to_finding(self, now: datetime) -> Finding:
        data = self.model_dump()
        first = _aware(self.first_seen) or now
        data.update(first_seen=first, last_seen=_aware(self.last_seen) or first)
        return Finding(**data)


class FindingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    findings: list[FindingIn] = Field(min_length=1, max_length=MAX_FINDINGS_PER_REQUEST)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


Submit = Callable[[Finding], Awaitable[Outcome | None]]


def build_app(metrics: Metrics, submit: Submit, now: Callable[[], datetime],
              ingest_token: Callable[[], Secret | None], health: Callable[[], dict],
              accepting: Callable[[], bool] = lambda: True,
              extra_routes: Sequence[BaseRoute] = (),
              middleware: Sequence[Middleware] = ()) -> Starlette:
    """/metrics, /healthz and the findings intake; `extra_routes` and `middleware` are the web
    desk's and the JSON API's (monitord.web.app.build_web)."""
    async def metrics_endpoint(request: Request) -> Response:
        body = await asyncio.to_thread(metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse(health())

    async def post_findings(request: Request) -> Response:
        if not accepting():  # stopping: what is queued is being committed; take no more
            return JSONResponse({"error": "stopping"}, status_code=503,
                                headers={"retry-after": "10"})
        token = ingest_token()
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.reveal().encode()):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            payload = json.loads(body)
            if isinstance(payload, dict) and "findings" not in payload:
                payload = {"findings": [payload]}
            batch = FindingsIn.model_validate(payload)
        except (ValueError, ValidationError) as exc:
            errors = exc.errors(include_url=False, include_input=False) \
                if isinstance(exc, ValidationError) else str(exc)
            return JSONResponse({"error": "invalid findings", "details": errors},
                                status_code=422)
        moment = now()
        outcomes = await asyncio.gather(*(submit(f.to_finding(moment)) for f in batch.findings))
        return JSONResponse({"results": [
            {"action": o.action, "number": o.number, **({"error": o.error} if o.error else {})}
            for o in outcomes if o is not None]})

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found", status_code=404)

    return Starlette(routes=[
        Route("/metrics", metrics_endpoint),
        Route("/healthz", healthz),
        Route("/api/v1/findings", post_findings, methods=["POST"]),
        *extra_routes,
    ], middleware=list(middleware), exception_handlers={404: not_found})


class _QuietServer(uvicorn.Server):
    """The daemon owns the signals; uvicorn must not install its own."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def make_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_config=None,
                            access_log=False, server_header=False, timeout_graceful_shutdown=3)
    return _QuietServer(config)
