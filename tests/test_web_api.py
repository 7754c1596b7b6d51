"""The JSON API (/api/v1/) over HTTP on a real store (SQLite and PostgreSQL): the role matrix
for every route × every role, anonymous, unknown, revoked and orphaned tokens; SQL-injection
strings in every filter, sort and search parameter; tokens never stored in clear; the same
JSON as the CLI's --json; the OpenAPI description validated with openapi-spec-validator.

The app is the daemon's own (monitord.http.build_app with the desk and the API mounted),
driven in-process by Starlette's TestClient; the last test runs a real `monitord run` and the
real `monitord api-token` commands."""

from __future__ import annotations

import json
import logging
import subprocess
import textwrap
import urllib.error
import urllib.request
import uuid
from urllib.parse import quote
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from starlette.routing import Route
from starlette.testclient import TestClient

from monitord.clock import ManualClock
from monitord.config_loader import parse_config_text
from monitord.http import build_app
from monitord.incidents.manager import IncidentManager
from monitord.incidents.store import open_store
from monitord.incidents.store.models import ApiTokenRow, IncidentRow, TimelineRow
from monitord.incidents.workflow.engine import load_engine
from monitord.metrics import Metrics
from monitord.records import Finding
from monitord.web import api, tokens
from monitord.web.app import WebContext, build_web
from tests.support import MONITORD, PG_ADMIN_URL, DaemonProcess, pg_available, write_config

CONFIG = """
sites: [{name: hq, description: "Gedung A lt. 3"}]
devices: [{name: core-rtr, address: 10.0.0.1, site: hq, kind: router}]
storage: {url: "%s"}
http: {listen: "127.0.0.1:9"}
notifications:
  channels:
    - {name: mail, type: email, smtp_host: localhost, sender: monitord@kominfo.test}
people:
  - {name: sari, full_name: Sari, roles: [HD], email: sari@kominfo.test}
  - {name: budi, roles: [PO], division: IPL}
  - {name: rina, roles: [KD], division: IPL}
  - {name: agus, roles: [KS], division: IPL}
  - {name: dewi, roles: [KB], language: id}
  - {name: joko, roles: [PO], division: IPK}
  - {name: glpi, full_name: GLPI Kominfo, roles: [HD]}
"""
PEOPLE = ("sari", "budi", "rina", "agus", "dewi", "joko", "glpi")
# Callers that are not a person with a working token.
NOBODY = ("anonymous", "garbage", "unknown", "revoked", "orphaned")
SQLI = ["' OR '1'='1", "1; DROP TABLE incidents; --", "number desc; DELETE FROM incidents",
        "\" OR 1=1 --", "%' UNION SELECT token_hash FROM api_tokens --", "due) --",
        "\\'; SELECT pg_sleep(5); --", "é%_\\", "\x00", "-1", "99999999999999999999"]
REPORT = {"category": "application", "place": "Gedung B lt. 2", "reporter_name": "Pak Andi",
          "agency": "Dinas Pendidikan", "phone": "0812-000", "email": "andi@example.test",
          "description": "SIMPEG tidak bisa dibuka"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request, tmp_path_factory):
    """One store, app, incident and set of tokens per backend, shared by this module."""
    folder = tmp_path_factory.mktemp("api")
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder}/monitord.db"
    else:
        if not pg_available():
            pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
        import psycopg
        database = f"monitord_api_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    config_text = CONFIG % url
    (folder / "monitord.yaml").write_text(config_text)
    config = parse_config_text(config_text)
    store = open_store(config.storage)
    store.migrate()
    clock = ManualClock(datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc))  # Monday 09:00 WIB
    engine = load_engine(config)
    manager = IncidentManager(store, config, clock, workflow=engine)
    manager.apply([Finding(
        kind="interface_down", category="network", severity="high", state="firing",
        dedup_key="if:core-rtr:Gi0/1", summary="Gi0/1 down", device="core-rtr",
        subject="Gi0/1", evidence={"ifAlias": "<script>alert(1)</script>"},
        first_seen=clock.now(), last_seen=clock.now())])
    secrets: dict[str, str] = {}
    with store.sessions() as session, session.begin():
        for name in PEOPLE:
            secrets[name] = tokens.create(session, f"{name}-token", name, clock.now())
        secrets["revoked"] = tokens.create(session, "old-laptop", "agus", clock.now())
        tokens.revoke(session, "old-laptop", clock.now())
        # a person removed from the directory since: the token must stop working
        secrets["orphaned"] = tokens.create(session, "left-office", "mantan", clock.now())
    secrets["garbage"] = "mdt_" + "A" * 43
    secrets["unknown"] = "not-even-a-token"
    metrics = Metrics()
    ctx = WebContext(config=lambda: config, store=store, clock=clock, metrics=metrics,
                     engine=lambda: engine)
    web = build_web(ctx)
    app = build_app(metrics, None, clock.now, lambda: None, lambda: {"status": "ok"},
                    extra_routes=web.routes, middleware=web.middleware)
    yield {"app": app, "store": store, "clock": clock, "config": config, "tokens": secrets,
           "number": "2026-000001", "folder": folder, "backend": request.param,
           "metrics": metrics, "web": web}
    store.close()
    if database:
        import psycopg
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def call(env, who: str, method: str, path: str, **kwargs):
    headers = kwargs.pop("headers", {})
    token = env["tokens"].get(who)
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    client = TestClient(env["app"], follow_redirects=False)
    return client.request(method, path, headers=headers, **kwargs)


def count(env, model, *where) -> int:
    with env["store"].sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


# -- the role matrix ----------------------------------------------------------------------

# route -> the callers that may use it (hand-written from the SOP and the desk's page table:
# everyone on the desk reads, only the help desk records reports, acting at the PO's step is
# for PO and higher tiers of the incident's division IPL; joko is a PO of IPK).
ALLOWED = {
    ("GET", "/api/v1/incidents"): {"sari", "budi", "rina", "agus", "dewi", "joko", "glpi"},
    ("GET", "/api/v1/incidents/{n}"): {"sari", "budi", "rina", "agus", "dewi", "glpi"},
    ("POST", "/api/v1/incidents"): {"sari", "glpi"},
    ("POST", "/api/v1/incidents/{n}/actions"): {"budi", "rina", "agus", "dewi"},
    ("GET", "/api/v1/me"): set(PEOPLE),
    ("GET", "/api/v1/openapi.json"): {*PEOPLE, *NOBODY},
}


def test_every_api_route_is_in_the_matrix_and_the_openapi_description(env):
    mounted = {(method, route.path.replace("{number}", "{n}"))
               for route in env["web"].routes if isinstance(route, Route)
               and route.path.startswith("/api/v1/") for method in route.methods - {"HEAD"}}
    assert mounted == set(ALLOWED)
    described = {(method.upper(), path.replace("{number}", "{n}"))
                 for path, operations in api.openapi_document()["paths"].items()
                 for method in operations}
    assert described == mounted


def test_every_api_route_by_every_role_and_bad_token(env):
    before = count(env, TimelineRow)
    failures = []
    for (method, path), allowed in ALLOWED.items():
        for who in (*PEOPLE, *NOBODY):
            body = None
            if method == "POST":
                body = REPORT if path == "/api/v1/incidents" else \
                    {"action": "note", "note": f"checked by {who}"}
            response = call(env, who, method, path.replace("{n}", env["number"]), json=body)
            ok = response.status_code in (200, 201)
            if ok != (who in allowed):
                failures.append(f"{method} {path} as {who}: {response.status_code} "
                                f"{response.text[:200]}")
            elif not ok:
                expected = 401 if who in NOBODY else 403
                if response.status_code != expected or "error" not in response.json():
                    failures.append(f"{method} {path} as {who}: expected {expected}, got "
                                    f"{response.status_code} {response.text[:200]}")
                if expected == 401 and "bearer" not in \
                        response.headers.get("www-authenticate", "").lower():
                    failures.append(f"{method} {path} as {who}: no WWW-Authenticate")
    assert not failures, "\n".join(failures)
    notes = len(ALLOWED[("POST", "/api/v1/incidents/{n}/actions")])
    reports = len(ALLOWED[("POST", "/api/v1/incidents")])
    # each allowed note is one timeline row; each report its "reported" row and more
    assert count(env, TimelineRow) >= before + notes + reports
    with env["store"].sessions() as session:
        actors = set(session.scalars(select(TimelineRow.actor).where(
            TimelineRow.action == "note")))
    assert actors == ALLOWED[("POST", "/api/v1/incidents/{n}/actions")]


def test_acting_follows_the_sop_step_and_refusals_change_nothing(env):
    # A fresh report (so the module's other tests do not move the incident we walk).
    reply = call(env, "glpi", "POST", "/api/v1/incidents", json={**REPORT, "category": "network"})
    assert reply.status_code == 201, reply.text
    number = reply.json()["number"]
    assert reply.headers["location"] == f"/api/v1/incidents/{number}"
    assert reply.json()["step"] == "hd_record"  # a person's report starts at the help desk
    forwarded = call(env, "glpi", "POST", f"/api/v1/incidents/{number}/actions",
                     json={"action": "forward"})
    assert forwarded.status_code == 200 and forwarded.json()["step"] == "po_receive", \
        forwarded.text
    shown = call(env, "budi", "GET", f"/api/v1/incidents/{number}").json()
    assert shown["step"] == "po_receive" and shown["role"] == "PO"
    timeline = len(shown["timeline"])

    wrong = [("sari", {"action": "accept"}, 403),         # HD is not a tier of this step
             ("joko", {"action": "accept"}, 403),         # PO of another division
             ("budi", {"action": "verify"}, 409),         # not an action of this step
             ("budi", {"action": "accept", "outcome": "resolved"}, 409),
             ("budi", {"action": "accept", "extra": 1}, 422),
             ("budi", {"action": "DROP TABLE"}, 422)]
    for who, body, status in wrong:
        response = call(env, who, "POST", f"/api/v1/incidents/{number}/actions", json=body)
        assert response.status_code == status, (who, body, response.text)
        assert response.json()["error"], response.text
    after = call(env, "budi", "GET", f"/api/v1/incidents/{number}").json()
    assert (after["step"], len(after["timeline"])) == ("po_receive", timeline)

    accepted = call(env, "budi", "POST", f"/api/v1/incidents/{number}/actions",
                    json={"action": "accept", "note": "on my way"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["step"] == "kd_direct" and accepted.json()["number"] == number
    # the KD's step now: the PO may no longer act on it, the KD may
    assert call(env, "budi", "POST", f"/api/v1/incidents/{number}/actions",
                json={"action": "direct"}).status_code == 403
    directed = call(env, "rina", "POST", f"/api/v1/incidents/{number}/actions",
                    json={"action": "direct", "note": "ganti kabel"})
    assert directed.status_code == 200 and directed.json()["step"] == "po_fix", directed.text


def test_a_refused_token_is_counted_and_a_revoked_one_stops_at_once(env):
    def refused(reason: str) -> float:
        return env["metrics"].registry.get_sample_value(
            "monitord_web_refused_total", {"reason": reason}) or 0.0
    before = refused("token")
    assert call(env, "revoked", "GET", "/api/v1/me").status_code == 401
    assert refused("token") == before + 1
    with env["store"].sessions() as session, session.begin():
        token = tokens.create(session, "rotating", "rina", env["clock"].now())
    env["tokens"]["rotating"] = token
    assert call(env, "rotating", "GET", "/api/v1/me").json()["name"] == "rina"
    with env["store"].sessions() as session, session.begin():
        assert tokens.revoke(session, "rotating", env["clock"].now()) == 1
    assert call(env, "rotating", "GET", "/api/v1/me").status_code == 401
    # a lower-case scheme works; a token in a query string or a cookie does not
    assert TestClient(env["app"]).get("/api/v1/me", headers={
        "authorization": f"bearer {env['tokens']['rina']}"}).status_code == 200
    assert TestClient(env["app"]).get(
        f"/api/v1/me?access_token={env['tokens']['rina']}").status_code == 401


# -- hostile parameters -------------------------------------------------------------------

LIST_PARAMS = ("status", "sort", "order", "category", "priority", "division", "scope", "limit")


def test_sql_injection_strings_in_filter_sort_and_search_give_a_normal_answer(env):
    incidents, tables = count(env, IncidentRow), _tables(env)
    baseline = call(env, "dewi", "GET", "/api/v1/incidents").json()
    assert baseline, "the office-wide list is not empty"
    for value in SQLI:
        for name in LIST_PARAMS:
            response = call(env, "dewi", "GET", "/api/v1/incidents", params={name: value})
            assert response.status_code == 400, (name, value, response.text)
            message = response.json()["error"]
            assert name in message, message
            assert "sql" not in message.lower() and "Traceback" not in message
        searched = call(env, "dewi", "GET", "/api/v1/incidents", params={"q": value})
        assert searched.status_code == 200, (value, searched.text)
        assert isinstance(searched.json(), list)
        quoted = quote(value, safe="")
        for path in (f"/api/v1/incidents/{quoted}", f"/api/v1/incidents/{quoted}/actions"):
            method = "POST" if path.endswith("actions") else "GET"
            response = call(env, "dewi", method, path, json={"action": "note"})
            assert response.status_code in (404, 405), (path, response.text)
        unknown = call(env, "dewi", "GET", "/api/v1/incidents", params={value or "x": "1"})
        assert unknown.status_code == 400, (value, unknown.text)
    # sorting and filtering by every allowed value works and the data is intact
    for sort in api.LIST_CHOICES["sort"]:
        for order in ("asc", "desc"):
            response = call(env, "dewi", "GET", "/api/v1/incidents",
                            params={"sort": sort, "order": order, "status": "open"})
            assert response.status_code == 200, (sort, order, response.text)
    assert count(env, IncidentRow) == incidents and _tables(env) == tables
    # errors speak the person's language: dewi reads Indonesian
    english = call(env, "agus", "GET", "/api/v1/incidents", params={"sort": "x"}).json()
    indonesian = call(env, "dewi", "GET", "/api/v1/incidents", params={"sort": "x"}).json()
    assert english["error"].startswith("Parameter sort: expected one of"), english
    assert indonesian["error"].startswith("Parameter sort: diharapkan salah satu dari"), \
        indonesian
    # search finds what is there, literally (LIKE wildcards are escaped)
    found = call(env, "dewi", "GET", "/api/v1/incidents", params={"q": "Gi0/1"}).json()
    assert [i["number"] for i in found] == [env["number"]]
    assert call(env, "dewi", "GET", "/api/v1/incidents", params={"q": "%"}).json() == []


def test_hostile_report_fields_are_stored_and_returned_literally(env):
    hostile = {**REPORT, "place": "'; DROP TABLE incidents; --", "reporter_name": "{{7*7}}",
               "description": "<script>alert(1)</script>\x00 end"}
    reply = call(env, "sari", "POST", "/api/v1/incidents", json=hostile)
    assert reply.status_code == 201, reply.text
    assert reply.json()["status_url"].startswith("http")
    shown = call(env, "sari", "GET", f"/api/v1/incidents/{reply.json()['number']}").json()
    assert shown["hd01"]["location"] == hostile["place"]
    assert shown["hd01"]["reporter"]["name"] == "{{7*7}}"
    assert shown["description"] == "<script>alert(1)</script> end"  # NUL dropped
    for body, status in (({**REPORT, "category": "printer"}, 422), ({"place": "x"}, 422),
                         ({**REPORT, "phone": "9" * 51}, 422), ("not json", 422),
                         ({**REPORT, "admin": True}, 422)):
        kwargs = {"content": body} if isinstance(body, str) else {"json": body}
        response = call(env, "sari", "POST", "/api/v1/incidents", **kwargs)
        assert response.status_code == status, (body, response.text)
    big = call(env, "sari", "POST", "/api/v1/incidents",
               json={**REPORT, "description": "x" * 70_000})
    assert big.status_code == 413, big.text


# -- secrets ------------------------------------------------------------------------------


def _tables(env) -> list[str]:
    with env["store"].engine.connect() as connection:
        return sorted(inspect(connection).get_table_names())


def _database_text(env) -> str:
    """Every value of every row of every table, as text."""
    parts = []
    with env["store"].engine.connect() as connection:
        for table in _tables(env):
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_tokens_are_never_stored_in_clear_nor_logged(env, caplog):
    caplog.set_level(logging.DEBUG)
    for who in PEOPLE:
        assert call(env, who, "GET", "/api/v1/me").status_code == 200
    dump = _database_text(env)
    assert count(env, ApiTokenRow) >= len(PEOPLE)
    for who, token in env["tokens"].items():
        if not token.startswith(tokens.PREFIX) or who == "garbage":
            continue
        assert token not in dump and token[len(tokens.PREFIX):] not in dump, who
        assert tokens.digest(token) in dump, who  # what is stored is the hash
        assert token not in caplog.text
    metrics_text = TestClient(env["app"]).get("/metrics").text
    assert not any(t in metrics_text for t in env["tokens"].values())


# -- the same JSON as the CLI -------------------------------------------------------------


def test_the_api_answers_with_the_clis_json(env):
    if env["backend"] != "sqlite":
        pytest.skip("the CLI comparison runs once, on SQLite")
    config = str(env["folder"] / "monitord.yaml")
    cli_show = json.loads(_cli("incidents", "show", env["number"], "--json", "--config", config))
    api_show = call(env, "dewi", "GET", f"/api/v1/incidents/{env['number']}").json()
    assert api_show == cli_show
    cli_report = json.loads(_cli(
        "incidents", "report", "--category", "server", "--place", "R. Server",
        "--reporter-name", "Bu Sri", "--description", "UPS bunyi", "--as", "sari", "--json",
        "--config", config))
    api_report = call(env, "sari", "POST", "/api/v1/incidents", json={
        "category": "server", "place": "R. Server", "reporter_name": "Bu Sri",
        "description": "UPS bunyi"}).json()
    assert set(api_report) == set(cli_report)  # both give the reporter's status_url
    assert api_report["status_url"] != cli_report["status_url"]
    cli_act = json.loads(_cli("incidents", "act", cli_report["number"], "note", "--as", "dewi",
                              "--note", "dicek", "--json", "--config", config))
    api_act = call(env, "dewi", "POST", f"/api/v1/incidents/{api_report['number']}/actions",
                   json={"action": "note", "note": "dicek"}).json()
    assert set(api_act) == set(cli_act) and api_act["step"] == cli_act["step"]
    cli_list = json.loads(_cli("incidents", "list", "--json", "--config", config))
    api_list = call(env, "dewi", "GET", "/api/v1/incidents").json()
    assert api_list == cli_list and len(api_list) >= 3


def _cli(*args: str) -> str:
    result = subprocess.run([*MONITORD, *args], capture_output=True, text=True, timeout=60,
                            env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- the description ----------------------------------------------------------------------


def test_the_openapi_description_is_valid_and_served(env):
    from openapi_spec_validator import validate
    served = call(env, "anonymous", "GET", "/api/v1/openapi.json")
    assert served.status_code == 200
    document = served.json()
    validate(document)
    assert document == json.loads(json.dumps(api.openapi_document()))
    listing = document["paths"]["/api/v1/incidents"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) == set(api.LIST_PARAMS)
    assert params["sort"]["schema"]["enum"] == list(api.LIST_CHOICES["sort"])
    assert document["components"]["schemas"]["ReportIn"]["required"] == [
        "category", "place", "reporter_name", "description"]

    # the answers match the schemas the description gives for them
    from jsonschema import Draft202012Validator

    def check(response, path: str, method: str) -> None:
        operation = document["paths"][path][method]
        status = str(response.status_code)
        assert status in operation["responses"], (path, method, status, response.text)
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        validator = Draft202012Validator({**schema, "components": document["components"]})
        errors = [e.message for e in validator.iter_errors(response.json())]
        assert not errors, (path, method, status, errors)

    report = call(env, "sari", "POST", "/api/v1/incidents", json=REPORT)
    check(report, "/api/v1/incidents", "post")
    number = report.json()["number"]
    check(call(env, "dewi", "GET", "/api/v1/incidents"), "/api/v1/incidents", "get")
    check(call(env, "dewi", "GET", f"/api/v1/incidents/{number}"), "/api/v1/incidents/{number}",
          "get")
    check(call(env, "sari", "POST", f"/api/v1/incidents/{number}/actions",
               json={"action": "forward"}), "/api/v1/incidents/{number}/actions", "post")
    check(call(env, "sari", "POST", f"/api/v1/incidents/{number}/actions",
               json={"action": "forward"}), "/api/v1/incidents/{number}/actions", "post")
    check(call(env, "dewi", "GET", "/api/v1/me"), "/api/v1/me", "get")
    check(call(env, "anonymous", "GET", "/api/v1/me"), "/api/v1/me", "get")
    check(call(env, "dewi", "GET", "/api/v1/incidents", params={"limit": "0"}),
          "/api/v1/incidents", "get")
    check(call(env, "dewi", "GET", "/api/v1/incidents/2026-999999"),
          "/api/v1/incidents/{number}", "get")
    check(call(env, "sari", "POST", "/api/v1/incidents", json={}), "/api/v1/incidents", "post")


# -- a real daemon and the real token commands ---------------------------------------------


@pytest.mark.slow
def test_tokens_from_the_cli_against_a_running_daemon(tmp_path: Path):
    extra = textwrap.dedent("""\
        people:
          - {name: sari, full_name: Sari, roles: [HD]}
          - {name: dewi, roles: [KB]}
        """)
    config, port = write_config(tmp_path, f"sqlite:///{tmp_path}/monitord.db", extra=extra)
    cfg = ["--config", str(config)]
    created = _run("api-token", "create", "chatbot", "--person", "sari", *cfg)
    token = created.stdout.strip()
    assert token.startswith("mdt_") and len(token) >= 40, created
    assert "shown only now" in created.stderr
    assert _run("api-token", "create", "chatbot", "--person", "sari", *cfg,
                ok=False).returncode == 2  # an active token of that name exists
    assert "nobody" in _run("api-token", "create", "x", "--person", "nobody", *cfg,
                            ok=False).stderr
    daemon = DaemonProcess(config, port, tmp_path / "monitord.log")
    try:
        daemon.start()
        status, body = _http(daemon, "POST", "/api/v1/incidents", token, REPORT)
        assert status == 201, body
        status, body = _http(daemon, "GET", f"/api/v1/incidents/{body['number']}", token)
        assert status == 200 and body["hd01"]["reporter"]["name"] == "Pak Andi", body
        listing = json.loads(_run("api-token", "list", "--json", *cfg).stdout)
        [entry] = listing
        assert entry["name"] == "chatbot" and entry["person"] == "sari" and entry["active"]
        assert entry["last_used_at"] is not None and "token" not in entry
        assert token not in _run("api-token", "list", *cfg).stdout
        _run("api-token", "revoke", "chatbot", *cfg)
        status, body = _http(daemon, "GET", "/api/v1/me", token)
        assert status == 401, body
        assert token not in daemon.log()
    finally:
        daemon.stop()
        daemon.kill()


def _run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*MONITORD, *args], capture_output=True, text=True, timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def _http(daemon: DaemonProcess, method: str, path: str, token: str, body=None):
    request = urllib.request.Request(
        daemon.url(path), method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
