"""Trap text is data: a linkDown whose ifName, ifAlias and an extra varbind carry markup and a
template expression (sent by net-snmp's `snmptrap`, the real peer) is stored verbatim as
evidence and shown escaped on the web desk's incident page -- never markup, never evaluated."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from monitord.clock import ManualClock
from monitord.collectors.snmp.traps import TrapMetrics, TrapReceiver, trap_sources
from monitord.config_loader import parse_config_text
from monitord.detectors.traps import TrapDetector
from monitord.http import build_app
from monitord.incidents.manager import IncidentManager
from monitord.incidents.store import open_store
from monitord.incidents.store import repository as repo
from monitord.incidents.workflow.engine import load_engine
from monitord.metrics import Metrics
from monitord.web import auth
from monitord.web.app import WebContext, build_web

pytestmark = pytest.mark.skipif(shutil.which("snmptrap") is None,
                                reason="net-snmp's snmptrap is not installed")

NAME = "<script>alert('ifName')</script>"
ALIAS = "\"><img src=x onerror=alert(2)>"
TEMPLATE = "{{7*7}} {% raw %}"


def test_hostile_trap_text_is_stored_verbatim_and_shown_escaped(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPLAY_TRAP_COMMUNITY", "tr4p")
    config = parse_config_text(f"""
sites: [{{name: hq}}]
credentials:
  trap-v2: {{type: snmp_v2c, community: {{env: DISPLAY_TRAP_COMMUNITY}}}}
devices: [{{name: sw-lobi, address: 127.0.0.1, site: hq, kind: switch}}]
traps: {{enabled: true, listen: "127.0.0.1:0", credentials: [trap-v2]}}
storage: {{url: "sqlite:///{tmp_path}/monitord.db"}}
people: [{{name: dewi, roles: [KB]}}]
""")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        subprocess.run(["snmptrap", "-v2c", "-c", "tr4p",
                        f"127.0.0.1:{sock.getsockname()[1]}", "", "1.3.6.1.6.3.1.1.5.3",
                        "1.3.6.1.2.1.2.2.1.1.4", "i", "4", "1.3.6.1.2.1.31.1.1.1.1.4", "s", NAME,
                        "1.3.6.1.2.1.31.1.1.1.18.4", "s", ALIAS,
                        "1.3.6.1.4.1.9.9.999.1", "s", TEMPLATE],
                       check=True, timeout=10, capture_output=True)
        data, source = sock.recvfrom(65535)
    clock = ManualClock(datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc))
    receiver = TrapReceiver(trap_sources(config), TrapMetrics(CollectorRegistry()), clock.now)
    [event] = receiver.handle_datagram(data, source).events
    findings = TrapDetector().observe(event)

    store = open_store(config.storage)
    store.migrate()
    try:
        engine = load_engine(config)
        [outcome] = IncidentManager(store, config, clock, workflow=engine).apply(findings)
        with store.sessions() as session, session.begin():
            auth.set_password(session, "dewi", "correct horse 42", clock.now())
            [row] = repo.list_incidents(session)
            stored = row.evidence
            assert row.subject == NAME[:64]
        # stored verbatim, as data
        assert stored["interface"]["ifName"] == NAME and stored["interface"]["ifAlias"] == ALIAS
        assert {"oid": "1.3.6.1.4.1.9.9.999.1", "type": "octets", "value": TEMPLATE} \
            in stored["varbinds"]

        metrics = Metrics()
        web = build_web(WebContext(config=lambda: config, store=store, clock=clock,
                                   metrics=metrics, engine=lambda: engine))
        app = build_app(metrics, None, clock.now, lambda: None, lambda: {"status": "ok"},
                        extra_routes=web.routes, middleware=web.middleware)
        client = TestClient(app, follow_redirects=False, client=("192.0.2.10", 50000))
        page = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        client.post("/login", data={"name": "dewi", "password": "correct horse 42",
                                    "csrf": csrf, "next": "/incidents"})
        html = client.get(f"/incidents/{outcome.number}").text
        assert "sw-lobi" in html
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html and "&lt;img src=x" in html
        assert TEMPLATE in html  # shown as the text it is, not rendered as a template
    finally:
        store.close()
