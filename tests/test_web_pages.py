"""The web desk's pages over HTTP, on a real store (SQLite and PostgreSQL): the role matrix,
CSRF, SQL-injection strings in every query parameter, the login lockout, headers and cookies,
the reporter's status link, escaping of hostile text, and the language switch.

The app is the daemon's own (monitord.http.build_app with the desk mounted) driven in-process
by Starlette's TestClient; the browser tests (tests/test_web_browser.py) start a real daemon."""

from __future__ import annotations

import re
import subprocess
import uuid
from urllib.parse import quote
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from monitord.clock import ManualClock
from monitord.config_loader import parse_config_text
from monitord.http import build_app
from monitord.i18n import parse_po
from monitord.incidents.manager import IncidentManager
from monitord.incidents.store import open_store
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import IncidentRow, StatusTokenRow, TimelineRow
from monitord.incidents.workflow.engine import load_engine
from monitord.metrics import Metrics
from monitord.records import Finding
from monitord.web import auth
from monitord.web.app import WebContext, build_web
from tests.support import MONITORD, PG_ADMIN_URL, pg_available

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ("<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "{{7*7}}")
PASSWORD = "correct horse 42"
PEOPLE = {"sari": "HD", "budi": "PO", "rina": "KD", "agus": "KS", "dewi": "KB", "joko": "PO"}
CONFIG = """
sites: [{name: hq, description: "Gedung A lt. 3"}]
devices: [{name: core-rtr, address: 10.0.0.1, site: hq, kind: router}]
storage: {url: "%s"}
http: {listen: "127.0.0.1:9", trusted_proxies: ["10.0.0.254"]}
web: {login_max_failures: 3, login_window: 10m, lockout: 10m}
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
"""
SQLI = ["' OR '1'='1", "1; DROP TABLE incidents; --", "number desc; DELETE FROM incidents",
        "\" OR 1=1 --", "%' UNION SELECT password_hash FROM web_people --", "due) --",
        "\\'; SELECT pg_sleep(5); --", "é%_\\", "\x00"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def desk(request, tmp_path_factory):
    """One store, engine, app and incidents per backend, shared by this module's tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('desk')}/monitord.db"
        database = None
    else:
        if not pg_available():
            pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
        import psycopg
        database = f"monitord_desk_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    config = parse_config_text(CONFIG % url)
    store = open_store(config.storage)
    store.migrate()
    clock = ManualClock(datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc))  # Monday 09:00 WIB
    engine = load_engine(config)
    with store.sessions() as session, session.begin():
        for name in PEOPLE:
            auth.set_password(session, name, PASSWORD, clock.now())
    manager = IncidentManager(store, config, clock, workflow=engine)
    manager.apply([Finding(
        kind="interface_down", category="network", severity="high", state="firing",
        dedup_key="if:core-rtr:Gi0/1", summary="Gi0/1 down " + HOSTILE[0], device="core-rtr",
        subject=HOSTILE[1], evidence={"sysDescr": HOSTILE[0], "ifAlias": HOSTILE[1],
                                      "template": HOSTILE[2]},
        first_seen=clock.now(), last_seen=clock.now())])
    metrics = Metrics()
    ctx = WebContext(config=lambda: config, store=store, clock=clock, metrics=metrics,
                     engine=lambda: engine)
    web = build_web(ctx)
    app = build_app(metrics, None, clock.now, lambda: None, lambda: {"status": "ok"},
                    extra_routes=web.routes, middleware=web.middleware)
    yield {"app": app, "store": store, "clock": clock, "config": config, "metrics": metrics,
           "number": "2026-000001"}
    store.close()
    if database:
        import psycopg
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def client(desk, address: str = "192.0.2.10") -> TestClient:
    return TestClient(desk["app"], follow_redirects=False, client=(address, 50000))


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def login(desk, name: str, password: str = PASSWORD, address: str = "192.0.2.10"):
    c = client(desk, address)
    page = c.get("/login")
    response = c.post("/login", data={"name": name, "password": password,
                                      "csrf": csrf_of(page.text), "next": "/incidents"})
    return c, response


@pytest.fixture(scope="module")
def people(desk):
    clients = {}
    for name in PEOPLE:
        c, response = login(desk, name)
        assert response.status_code == 303 and response.headers["location"] == "/incidents"
        clients[name] = c
    clients[None] = client(desk)
    return clients


def count(desk, model) -> int:
    with desk["store"].sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def timeline_len(desk, number: str) -> int:
    with desk["store"].sessions() as session:
        return session.scalar(select(func.count()).select_from(TimelineRow).join(IncidentRow)
                              .where(IncidentRow.number == number))


def succeeded(response) -> bool:
    return response.status_code == 200 or (
        response.status_code == 303 and not response.headers["location"].startswith("/login"))


# -- the role matrix ----------------------------------------------------------------------


def test_every_page_route_by_every_role_and_anonymous(desk, people):
    number = desk["number"]
    everyone = {"sari", "budi", "rina", "agus", "dewi", "joko"}
    pages = {
        "/incidents": everyone,
        "/incidents?scope=office&status=all": everyone,
        f"/incidents/{number}": everyone - {"joko"},  # joko works in IPK; this one is IPL's
        "/report": {"sari"},
        "/recap/2026-01": {"rina", "agus", "dewi"},
        f"/status/{number}?t=not-the-token": set(),
    }
    for path, allowed in pages.items():
        for name, c in people.items():
            response = c.get(path)
            assert succeeded(response) == (name in allowed), (path, name, response.status_code)
            if name is None and not path.startswith("/status"):
                assert response.status_code == 303
                assert response.headers["location"].startswith("/login?next=")
            elif name not in allowed:
                assert response.status_code in (403, 404), (path, name)


def test_acting_is_allowed_to_the_steps_role_and_higher_tiers_only(desk, people):
    number = desk["number"]  # at po_receive (PO of IPL), higher tiers KD, KS, KB may act too
    outcomes = {}
    for name, c in people.items():
        before = timeline_len(desk, number)
        page = c.get(f"/incidents/{number}") if name else c.get("/login")
        token = csrf_of(page.text) if page.status_code == 200 else csrf_of(
            c.get("/incidents").text)
        response = c.post(f"/incidents/{number}/act",
                          data={"csrf": token, "action": "note", "note": f"note by {name}"})
        outcomes[name] = succeeded(response)
        assert (timeline_len(desk, number) == before + 1) == outcomes[name], name
    assert outcomes == {"sari": False, "budi": True, "rina": True, "agus": True, "dewi": True,
                        "joko": False, None: False}


def test_only_the_help_desk_records_a_report(desk, people):
    for name, c in people.items():
        before = count(desk, IncidentRow)
        token = csrf_of((c.get("/report") if name == "sari" else c.get("/login")
                         if name is None else c.get("/incidents")).text)
        response = c.post("/report", data={
            "csrf": token, "category": "application", "place": "Ruang server",
            "reporter_name": "Pak Anton", "description": "SIMPEG tidak bisa dibuka"})
        assert succeeded(response) == (name == "sari"), name
        assert count(desk, IncidentRow) == before + (name == "sari")


def test_the_queue_shows_my_steps_only_and_the_whole_office_to_ks_and_kb(desk, people):
    number = desk["number"]
    assert number in people["budi"].get("/incidents").text       # PO of IPL: its step
    assert number not in people["joko"].get("/incidents").text   # PO of IPK: not his division
    assert number not in people["rina"].get("/incidents").text   # KD: not her step yet
    assert number not in people["joko"].get("/incidents?scope=office").text  # not KS/KB
    assert number in people["agus"].get("/incidents?scope=office&status=all").text
    assert number in people["dewi"].get("/incidents?scope=office&status=all").text


# -- CSRF, injection, lockout -------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(desk, people):
    number = desk["number"]
    c = people["budi"]
    for token in (None, "", "forged-token-from-another-site", csrf_of(client(desk).get(
            "/login").text)):
        data = {"action": "note", "note": "forged"} | ({"csrf": token} if token is not None
                                                       else {})
        before = timeline_len(desk, number)
        response = c.post(f"/incidents/{number}/act", data=data)
        assert response.status_code == 403
        assert timeline_len(desk, number) == before
    sari = people["sari"]
    before = count(desk, IncidentRow)
    assert sari.post("/report", data={"category": "network", "place": "x",
                                      "reporter_name": "y", "description": "z"}
                     ).status_code == 403
    assert count(desk, IncidentRow) == before
    assert c.post("/logout", data={}).status_code == 403
    assert c.get("/incidents").status_code == 200  # still logged in
    assert c.post("/language", data={"language": "id"}).status_code == 403
    fresh = client(desk)
    fresh.get("/login")
    assert fresh.post("/login", data={"name": "budi", "password": PASSWORD}).status_code == 403


def test_sql_injection_strings_in_sort_filter_and_search_give_a_normal_page(desk, people):
    before = count(desk, IncidentRow)
    c = people["agus"]
    for payload in SQLI:
        for key in ("sort", "order", "status", "category", "priority", "division", "q",
                    "scope"):
            response = c.get("/incidents", params={key: payload, "scope": "office"}
                             if key != "scope" else {key: payload})
            assert response.status_code == 200, (key, payload)
            assert 'class="filters"' in response.text
        for path in (f"/incidents/{quote(payload, safe='')}", f"/recap/{quote(payload, safe='')}"):
            assert c.get(path).status_code == 404, path
        assert client(desk).get(f"/status/{desk['number']}", params={"t": payload}
                                ).status_code == 404
    for payload in SQLI:  # and in the login form's name
        assert login(desk, payload, address="192.0.2.99")[1].status_code in (401, 429)
    assert count(desk, IncidentRow) == before
    # the search still finds by a plain word (the parameters are bound, not pasted)
    assert desk["number"] in c.get("/incidents", params={"scope": "office", "status": "all",
                                                         "q": "Gi0/1"}).text
    assert desk["number"] not in c.get("/incidents", params={"scope": "office", "status": "all",
                                                             "q": "' OR '1'='1"}).text


def lockouts(desk) -> float:
    return sum(s.value for m in desk["metrics"].registry.collect()
               if m.name == "monitord_web_login_lockouts" for s in m.samples
               if s.name.endswith("_total"))


def test_the_login_lockout_holds_per_account_and_per_address(desk):
    clock = desk["clock"]
    start = lockouts(desk)
    for attempt in range(3):  # web.login_max_failures: 3
        _c, response = login(desk, "rina", "wrong", address=f"198.51.100.{attempt + 1}")
        assert response.status_code == 401
    assert lockouts(desk) == start + 1
    _c, response = login(desk, "rina", PASSWORD, address="198.51.100.50")
    assert response.status_code == 429  # the right password does not open a locked account
    assert "monitord_session" not in response.cookies
    # one address trying many accounts is locked too
    for name in ("nobody1", "nobody2", "nobody3"):
        assert login(desk, name, "x", address="203.0.113.7")[1].status_code == 401
    assert login(desk, "agus", PASSWORD, address="203.0.113.7")[1].status_code == 429
    assert login(desk, "agus", PASSWORD, address="203.0.113.8")[1].status_code == 303
    # X-Forwarded-For from a peer that is not a configured proxy is ignored...
    assert login_via(desk, "agus", "203.0.113.9", forwarded="203.0.113.7").status_code == 303
    # ...and believed from the configured proxy (10.0.0.254)
    assert login_via(desk, "agus", "10.0.0.254", forwarded="203.0.113.7").status_code == 429
    clock.advance(11 * 60)
    assert login(desk, "rina", PASSWORD, address="198.51.100.50")[1].status_code == 303
    assert login(desk, "agus", PASSWORD, address="203.0.113.7")[1].status_code == 303
    from monitord.incidents.store.models import WebLoginThrottleRow
    assert login(desk, "ghost", "x", address="198.51.100.200")[1].status_code == 401
    with desk["store"].sessions() as session:  # old counts went when this one was written
        keys = session.scalars(select(WebLoginThrottleRow.key)).all()
    assert "account:nobody1" not in keys and "account:ghost" in keys


def login_via(desk, name: str, peer: str, forwarded: str):
    c = client(desk, peer)
    token = csrf_of(c.get("/login").text)
    return c.post("/login", data={"name": name, "password": PASSWORD, "csrf": token},
                  headers={"x-forwarded-for": forwarded})


def test_client_address_believes_forwarded_for_only_from_a_trusted_proxy():
    proxies = ("10.0.0.0/24", "127.0.0.1")
    assert auth.client_address("192.0.2.1", "203.0.113.5", proxies) == "192.0.2.1"
    assert auth.client_address("10.0.0.3", "203.0.113.5", proxies) == "203.0.113.5"
    # the client wrote its own X-Forwarded-For; the proxy appended the real address
    assert auth.client_address("10.0.0.3", "1.2.3.4, 203.0.113.5", proxies) == "203.0.113.5"
    assert auth.client_address("10.0.0.3", "203.0.113.5, 127.0.0.1", proxies) == "203.0.113.5"
    assert auth.client_address("10.0.0.3", "not-an-ip", proxies) == "10.0.0.3"
    assert auth.client_address("10.0.0.3", "203.0.113.5", ()) == "10.0.0.3"


def test_logout_ends_the_session_on_the_server(desk):
    c, response = login(desk, "dewi")
    cookie = response.cookies["monitord_session"]
    token = csrf_of(c.get("/incidents").text)
    assert c.post("/logout", data={"csrf": token}).status_code == 303
    replay = client(desk)
    replay.cookies.set("monitord_session", cookie)
    assert replay.get("/incidents").status_code == 303  # the old cookie opens nothing


# -- headers, escaping, status page, language ---------------------------------------------


def test_headers_and_cookies(desk, people):
    c = client(desk)
    page = c.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    _c, response = login(desk, "budi")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "<script" not in people["budi"].get(f"/incidents/{desk['number']}").text
    assert desk["app"] and client(desk).get("/metrics").status_code == 200


def test_hostile_text_from_devices_and_reporters_is_shown_escaped(desk, people):
    sari = people["sari"]
    token = csrf_of(sari.get("/report").text)
    fields = {name: f"{HOSTILE[i % 3]} {name}" for i, name in enumerate(
        ("place", "reporter_name", "agency", "phone", "email", "description"))}
    fields["phone"] = HOSTILE[2][:50]
    receipt = sari.post("/report", data={"csrf": token, "category": "network", **fields})
    assert receipt.status_code == 200
    number = re.search(r'id="receipt-number">([^<]+)<', receipt.text).group(1)
    link = re.search(r'id="status-link">([^<]+)<', receipt.text).group(1)
    pages = [sari.get(f"/incidents/{number}").text, people["agus"].get(
        f"/incidents/{desk['number']}").text, people["agus"].get(
        "/incidents?scope=office&status=all").text,
        client(desk).get(link.replace("http://testserver", "").replace("&amp;", "&")).text]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "onerror=alert(2)>" not in html.replace("&gt;", "")  # no live attribute
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "{{7*7}}" in pages[0] and "{{7*7}}" in pages[1]  # shown literally, never evaluated


def test_the_status_link_shows_progress_but_no_internal_notes(desk, people):
    sari = people["sari"]
    receipt = sari.post("/report", data={
        "csrf": csrf_of(sari.get("/report").text), "category": "network",
        "place": "Aula", "reporter_name": "Bu Rina", "email": "rina@skpd.test",
        "description": "Wi-Fi aula mati"})
    number = re.search(r'id="receipt-number">([^<]+)<', receipt.text).group(1)
    token = re.search(r'id="token">([^<]+)<', receipt.text).group(1)
    with desk["store"].sessions() as session:  # only the hash is stored
        hashes = session.scalars(select(StatusTokenRow.token_hash)).all()
        assert token not in hashes and len(hashes) >= 1
        receipt_mail = [o for o in repo.outbox_for(session, repo.get_incident(
            session, number).id) if o.event == "reporter_receipt"]
        assert receipt_mail and receipt_mail[0].payload["recipient"]["address"] == \
            "rina@skpd.test" and token in receipt_mail[0].payload["note"]
    from monitord.incidents.notify.render import TicketRenderer
    mail = TicketRenderer(desk["config"].tz).render(receipt_mail[0].payload, "id")
    assert f"/status/{number}?t={token}" in mail.text and "Laporan Anda sudah dicatat" in mail.text
    budi = people["budi"]
    for step in ("forward", "accept"):
        page = (sari if step == "forward" else budi).get(f"/incidents/{number}")
        response = (sari if step == "forward" else budi).post(
            f"/incidents/{number}/act", data={"csrf": csrf_of(page.text), "action": step,
                                              "note": "INTERNAL-NOTE-" + step})
        assert response.status_code == 303, response.text[:300]
    status = client(desk).get(f"/status/{number}", params={"t": token})
    assert status.status_code == 200
    assert "INTERNAL-NOTE" not in status.text and "budi" not in status.text
    assert status.text.count("<li>") >= 3  # reported, forwarded, accepted
    assert client(desk).get(f"/status/{number}", params={"t": token[:-1] + "x"}
                            ).status_code == 404
    assert client(desk).get(f"/status/{desk['number']}", params={"t": token}
                            ).status_code == 404  # a token opens only its own incident


def test_the_language_switch_is_remembered_per_person(desk):
    c, _r = login(desk, "rina")
    assert "My queue" in c.get("/incidents").text
    token = csrf_of(c.get("/incidents").text)
    assert c.post("/language", data={"csrf": token, "language": "id",
                                     "next": "/incidents"}).status_code == 303
    assert "Antrean saya" in c.get("/incidents").text
    again, _r = login(desk, "rina")  # a new session (another browser) keeps the choice
    assert "Antrean saya" in again.get("/incidents").text
    token = csrf_of(again.get("/incidents").text)
    again.post("/language", data={"csrf": token, "language": "en"})
    assert "My queue" in again.get("/incidents").text


def test_every_template_string_has_an_indonesian_translation():
    catalog = parse_po((ROOT / "config" / "locale" / "id.po").read_text("utf-8"))
    missing = []
    for template in sorted((ROOT / "monitord" / "web" / "templates").glob("*.html")):
        for match in re.finditer(r"""_\(\s*(["'])(.*?)\1\s*\)""", template.read_text()):
            if not catalog.get(match.group(2)):
                missing.append(f"{template.name}: {match.group(2)}")
    assert missing == []


def test_no_template_marks_text_safe_or_has_inline_script():
    for template in (ROOT / "monitord" / "web" / "templates").glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", "") and "Markup(" not in text, template.name
        assert "<script" not in text and "style=" not in text, template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name  # no event handlers


def test_set_password_reads_stdin_and_stores_an_argon2_hash(tmp_path):
    config = tmp_path / "monitord.yaml"
    config.write_text(f'storage: {{url: "sqlite:///{tmp_path}/m.db"}}\n'
                      "people: [{name: sari, roles: [HD]}]\n")
    result = run_cli("people", "set-password", "sari", "--config", str(config),
                     input_text="s3cret-passphrase\n")
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    store = open_store(parse_config_text(config.read_text()).storage)
    try:
        with store.sessions() as session:
            assert auth.verify_password(session, "sari", "s3cret-passphrase")
            assert not auth.verify_password(session, "sari", "s3cret-passphrasE")
            from monitord.incidents.store.models import WebPersonRow
            assert session.get(WebPersonRow, "sari").password_hash.startswith("$argon2")
    finally:
        store.close()
    short = run_cli("people", "set-password", "sari", "--config", str(config),
                    input_text="short\n")
    assert short.returncode == 2
    unknown = run_cli("people", "set-password", "nobody", "--config", str(config),
                      input_text="long-enough-password\n")
    assert unknown.returncode == 2 and "nobody" in unknown.stderr



def run_cli(*args: str, input_text: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MONITORD, *args], input=input_text, capture_output=True, text=True,
                          timeout=60)


def test_sessions_expire_and_login_never_redirects_off_the_desk(desk):
    from sqlalchemy import update

    from monitord.incidents.store.models import WebSessionRow
    c, response = login(desk, "agus")
    assert c.get("/incidents").status_code == 200
    with desk["store"].sessions() as session, session.begin():  # this session only
        session.execute(update(WebSessionRow).where(
            WebSessionRow.id_hash == auth._digest(response.cookies["monitord_session"]))
            .values(expires_at=desk["clock"].now()))
    assert c.get("/incidents").status_code == 303  # expired on the server
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        fresh = client(desk)
        token = csrf_of(fresh.get("/login").text)
        answer = fresh.post("/login", data={"name": "agus", "password": PASSWORD,
                                            "csrf": token, "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/incidents"


def test_anonymous_language_choice_and_secure_cookies_behind_an_https_proxy(desk):
    c = client(desk)
    token = csrf_of(c.get("/login").text)
    assert c.post("/language", data={"csrf": token, "language": "id", "next": "/login"}
                  ).status_code == 303
    assert "Masuk ke desk" in c.get("/login").text
    proxied = client(desk, "10.0.0.254")  # http.trusted_proxies
    page = proxied.get("/login", headers={"x-forwarded-proto": "https"})
    assert "secure" in page.headers["set-cookie"].lower()
    direct = client(desk, "192.0.2.77")  # not a proxy: its header is not believed
    page = direct.get("/login", headers={"x-forwarded-proto": "https"})
    assert "secure" not in page.headers["set-cookie"].lower()


def test_a_report_from_the_cli_gets_a_working_status_link(desk):
    from monitord.cli_web import status_link
    from monitord.incidents.workflow.engine import Report, load_engine
    from monitord.records import Category
    engine = load_engine(desk["config"])
    with desk["store"].sessions() as session, session.begin():
        row = engine.open_report(session, Report(
            category=Category.NETWORK, place="Lobi", reporter_name="Bu Sri", agency="",
            phone="", email="", description="printer"), desk["clock"].now())
        link = status_link(session, desk["config"], row)
        number = row.number
    path = link.split("127.0.0.1:9", 1)[1]
    page = client(desk).get(path)
    assert page.status_code == 200 and number in page.text


def test_sorting_by_an_allow_listed_column_orders_the_rows(desk, people):
    c = people["dewi"]
    from monitord.incidents.workflow.engine import Report, load_engine
    from monitord.records import Category, Level
    engine = load_engine(desk["config"])
    with desk["store"].sessions() as session, session.begin():
        for level in (Level.HIGH, Level.LOW):
            engine.open_report(session, Report(
                category=Category.NETWORK, place="Lobi", reporter_name="Bu Sri", agency="",
                phone="", email="", description="sort me", impact=level, urgency=level),
                desk["clock"].now())

    def priorities(order: str) -> list[str]:
        html = c.get("/incidents", params={"scope": "office", "status": "all",
                                           "sort": "priority", "order": order}).text
        return re.findall(r"<td>(P[1-4])</td>", html)

    ascending, descending = priorities("asc"), priorities("desc")
    assert len(set(ascending)) >= 2, ascending
    assert ascending == sorted(ascending) and descending == sorted(descending, reverse=True)
    html = c.get("/incidents", params={"scope": "office", "sort": "priority"}).text
    assert 'href="/incidents?scope=office&amp;status=open&amp;sort=priority&amp;order=desc"' \
        in html  # the header link toggles the order and keeps the filters


def test_the_status_link_shows_the_outcome_once_closed(desk):
    from monitord.cli_web import status_link
    from monitord.incidents.workflow.engine import Report, load_engine
    from monitord.records import Category
    engine, clock = load_engine(desk["config"]), desk["clock"]
    with desk["store"].sessions() as session, session.begin():
        row = engine.open_report(session, Report(
            category=Category.NETWORK, place="Aula", reporter_name="Pak Budi", agency="",
            phone="", email="", description="LAN aula mati"), clock.now())
        link = status_link(session, desk["config"], row)
        for person, action, outcome in (("sari", "forward", None), ("budi", "accept", None),
                                        ("rina", "direct", None), ("budi", "report", None),
                                        ("rina", "verify", "resolved"),
                                        ("sari", "inform", None)):
            engine.act(session, row, person, action, clock.now(), outcome=outcome,
                       note=f"INTERNAL {person}")
    page = client(desk).get(link.split("127.0.0.1:9", 1)[1])
    assert page.status_code == 200
    status = re.search(r'id="status">([^<]+)<', page.text).group(1)
    assert status == "closed" and "Resolved" in page.text and "Closed" in page.text
    assert "(resolved)" in page.text and "INTERNAL" not in page.text


def test_sla_state_on_time_due_soon_breached():
    from monitord.web.pages import sla_state
    now = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)
    soon = timedelta(minutes=30)
    row = IncidentRow(step_due_at=now + timedelta(hours=2), step_breached_at=None)
    assert sla_state(row, now, soon) == "on_time"
    row.step_due_at = now + timedelta(minutes=10)
    assert sla_state(row, now, soon) == "due_soon"
    row.step_due_at = now - timedelta(seconds=1)
    assert sla_state(row, now, soon) == "breached"
    row.step_due_at, row.step_breached_at = now + timedelta(hours=2), now
    assert sla_state(row, now, soon) == "breached"  # a breach stays visible
    row.step_due_at, row.step_breached_at = None, None
    assert sla_state(row, now, soon) == "none"


def test_bad_web_settings_name_the_key_and_line():
    from monitord.config_loader import ConfigError
    text = ('storage: {url: "sqlite:///x.db"}\nhttp:\n  trusted_proxies: ["nginx"]\n'
            'web:\n  public_url: "javascript:alert(1)"\n  login_max_failures: 0\n')
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "monitord.yaml")
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith("monitord.yaml:3: http.trusted_proxies") for p in problems), problems
    assert any(p.startswith("monitord.yaml:5: web.public_url") for p in problems), problems
    assert any(p.startswith("monitord.yaml:6: web.login_max_failures") for p in problems)


def test_the_reporters_email_is_delivered_and_its_link_then_forgotten(tmp_path, db_url):
    """Real SMTP (aiosmtpd, the demo's mailbox): the reporter gets the link; afterwards the
    store holds no working token anywhere (the outbox row's link is blanked on delivery)."""
    from monitord.demo import Mailbox
    from monitord.incidents.notify.worker import NotifyWorker
    from monitord.incidents.store.models import OutboxRow
    from monitord.incidents.workflow.engine import Report, load_engine
    from monitord.records import Category
    from monitord.web import status
    with Mailbox(tmp_path / "mailbox") as mailbox:
        config = parse_config_text(f"""
storage: {{url: "{db_url}"}}
notifications:
  channels:
    - {{name: mail, type: email, smtp_host: 127.0.0.1, smtp_port: {mailbox.port},
       security: none, sender: desk@kominfo.test}}
people: [{{name: sari, roles: [HD]}}]
""")
        store = open_store(config.storage)
        store.migrate()
        clock = ManualClock(datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc))
        engine = load_engine(config)
        try:
            with store.sessions() as session, session.begin():
                row = engine.open_report(session, Report(
                    category=Category.NETWORK, place="Aula", reporter_name="Bu Ani",
                    agency="Dinas Pendidikan", phone="", email="ani@disdik.test",
                    description="Internet mati"), clock.now())
                session.flush()
                token = status.issue(session, config, row, clock.now(), "https://desk.test")
            worker = NotifyWorker(store, config, clock)
            assert worker.drain(20) == 0
            worker.close()
            mails = [p.read_text(errors="replace") for p in (tmp_path / "mailbox").glob("*.eml")]
            receipt = [m for m in mails if "ani@disdik.test" in m.split("\n\n")[0]]
            assert len(receipt) == 1 and token in receipt[0].replace("=\n", "")
            with store.sessions() as session:
                rows = session.scalars(select(OutboxRow).where(
                    OutboxRow.event == status.RECEIPT_EVENT)).all()
                assert [r.status for r in rows] == ["sent"]
                assert rows[0].payload["note"] == "" and token not in str(rows[0].payload)
                assert status.incident_for(session, row.number, token) is not None
        finally:
            store.close()
