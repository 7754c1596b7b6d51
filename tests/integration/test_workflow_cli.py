"""The workflow CLI as people and scripts use it, against a real store and a real SMTP server:
report, act, show --json, tick, people/workflows list, maintenance, the monthly recap, and
hostile reporter text arriving literally in every ticket."""

from __future__ import annotations

import csv
import email
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.support import free_port, run_cli

HOSTILE = "SIMPEG down <script>alert(1)</script> {{7*7}} {% raw %}\r\nBcc: evil@example.test"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
def cfg(db_url, tmp_path: Path, smtp):
    port, _inbox = smtp
    path = tmp_path / "monitord.yaml"
    path.write_text(textwrap.dedent(f"""\
        language: en
        storage: {{url: "{db_url}"}}
        notifications:
          channels:
            - {{name: mail, type: email, smtp_host: 127.0.0.1, smtp_port: {port},
                security: none, sender: monitord@kominfo.test}}
        people:
          - {{name: sari, roles: [HD], email: sari@kominfo.test}}
          - {{name: ani, roles: [PO], division: SIM, email: ani@kominfo.test}}
          - {{name: rina, roles: [KD], division: SIM, email: rina@kominfo.test}}
          - {{name: agus, roles: [KS], division: SIM, email: agus@kominfo.test}}
          - {{name: dewi, roles: [KB], division: SIM, email: dewi@kominfo.test, language: id}}
        """))
    return str(path)


def cli(cfg: str, *args: str, ok: bool = True):
    result = run_cli(*args, "--config", cfg, env={"LANG": "C.UTF-8", "LANGUAGE": ""})
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def show(cfg: str, number: str) -> dict:
    return json.loads(cli(cfg, "incidents", "show", number, "--json").stdout)


def report(cfg: str, description: str = HOSTILE) -> str:
    out = cli(cfg, "incidents", "report", "--category", "application", "--place",
              "Kelurahan Gambir", "--reporter-name", "Pak Slamet", "--agency", "Kel. Gambir",
              "--phone", "021-555", "--email", "slamet@gambir.test", "--description",
              description, "--impact", "high", "--urgency", "medium", "--as", "sari", "--json")
    return json.loads(out.stdout)["number"]


def test_report_to_closure_through_the_cli(cfg):
    number = report(cfg)
    detail = show(cfg, number)
    for key in ("number", "status", "workflow", "division", "step", "role", "priority",
                "due_at", "allowed_actions", "timeline", "sla_breaches", "hd01"):
        assert key in detail, key
    assert (detail["workflow"], detail["division"], detail["step"], detail["role"]) == \
        ("dki-jakarta-2013", "SIM", "hd_record", "HD")
    assert detail["priority"] == "P2"
    assert detail["hd01"]["reporter"] == {"name": "Pak Slamet", "agency": "Kel. Gambir",
                                          "phone": "021-555", "email": "slamet@gambir.test"}
    assert detail["hd01"]["classification"] == 1
    assert {"action": "forward", "roles": ["HD", "PO", "KD", "KS", "KB"], "outcomes": []} in \
        detail["allowed_actions"]
    for person, action, extra in (("sari", "forward", []), ("ani", "accept", []),
                                  ("rina", "direct", ["--note", "restart the app server"]),
                                  ("ani", "report", []),
                                  ("rina", "verify", ["--outcome", "resolved"]),
                                  ("sari", "inform", ["--note", "told Pak Slamet"])):
        cli(cfg, "incidents", "act", number, action, "--as", person, *extra)
        detail = show(cfg, number)
    assert detail["status"] == "closed" and detail["allowed_actions"][0]["action"] == "reopen"
    actions = [t["action"] for t in detail["timeline"]]
    assert actions[-1] == "inform" and "verify" in actions
    entry = detail["timeline"][-1]
    assert set(entry) >= {"at", "actor", "role", "action", "note"}
    assert (entry["actor"], entry["role"], entry["note"]) == ("sari", "HD", "told Pak Slamet")


def test_errors_are_one_clear_line_and_exit_2(cfg):
    number = report(cfg, "printer jammed")
    cli(cfg, "incidents", "act", number, "forward", "--as", "sari")
    wrong = cli(cfg, "incidents", "act", number, "accept", "--as", "sari", ok=False)
    assert wrong.returncode == 2
    assert wrong.stderr.count("\n") == 1
    assert "step po_receive" in wrong.stderr and "is for role PO" in wrong.stderr
    missing = cli(cfg, "incidents", "act", "2026-999999", "accept", "--as", "ani", ok=False)
    assert missing.returncode == 2 and "No incident numbered 2026-999999" in missing.stderr
    stranger = cli(cfg, "incidents", "act", number, "accept", "--as", "nobody", ok=False)
    assert stranger.returncode == 2 and "no person named nobody" in stranger.stderr
    bad_time = cli(cfg, "incidents", "tick", "--at", "friday", ok=False)
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr


def test_tick_at_a_moment_escalates_and_is_idempotent(cfg):
    number = report(cfg, "e-office slow")
    cli(cfg, "incidents", "act", number, "forward", "--as", "sari")
    due = show(cfg, number)["due_at"]
    later = (datetime.fromisoformat(due) + timedelta(minutes=1)).isoformat()
    first = json.loads(cli(cfg, "incidents", "tick", "--at", later, "--json").stdout)
    assert {h["number"] for h in first["handled"]} == {number}
    assert ("sla_breach", "po_receive") in [(h["event"], h["step"]) for h in first["handled"]]
    again = json.loads(cli(cfg, "incidents", "tick", "--at", later, "--json").stdout)
    assert again["handled"] == []
    detail = show(cfg, number)
    assert detail["step"] == "kd_direct"
    assert [(b["step"], b["breached_at"]) for b in detail["sla_breaches"]
            if b["target"] == "step"] == [("po_receive", datetime.fromisoformat(due).isoformat())]
    assert detail["sla_targets"]["respond_due_at"] and detail["sla_targets"]["resolve_due_at"]


def test_people_and_workflows_lists(cfg):
    people = json.loads(cli(cfg, "people", "list", "--json").stdout)
    assert {"name": "rina", "role": "KD", "division": "SIM"}.items() <= \
        next(p for p in people if p["name"] == "rina").items()
    workflows = json.loads(cli(cfg, "workflows", "list", "--json").stdout)
    dki = next(w for w in workflows if w["name"] == "dki-jakarta-2013")
    assert dki["steps"] == 11 and dki["title"]


def test_maintenance_windows_are_set_by_kd_ks_kb_only(cfg):
    refused = cli(cfg, "maintenance", "add", "--device", "core-rtr", "--duration", "2h",
                  "--as", "ani", ok=False)
    assert refused.returncode == 2 and "KD, KS or KB" in refused.stderr
    added = json.loads(cli(cfg, "maintenance", "add", "--category", "network", "--duration",
                           "2h", "--reason", "ganti switch", "--as", "rina", "--json").stdout)
    listed = json.loads(cli(cfg, "maintenance", "list", "--json").stdout)
    assert [w["id"] for w in listed] == [added["id"]]
    cli(cfg, "maintenance", "end", str(added["id"]), "--as", "agus")
    assert json.loads(cli(cfg, "maintenance", "list", "--json").stdout) == []


def test_tickets_carry_hostile_text_literally_over_real_smtp(cfg, smtp):
    _port, inbox = smtp
    number = report(cfg)
    cli(cfg, "incidents", "act", number, "forward", "--as", "sari", "--note", "<b>{{1+1}}</b>")
    drained = subprocess.run([sys.executable, "-m", "monitord.incidents.notify.worker",
                              "--config", cfg, "--drain", "20"], capture_output=True,
                             text=True, timeout=60)
    assert drained.returncode == 0, drained.stderr
    assert inbox.messages, "no ticket reached the SMTP server"
    to_po = [m for m in inbox.messages if "ani@kominfo.test" in m["To"]]
    assert to_po and all("Bcc" not in m for m in inbox.messages)
    for message in inbox.messages:
        assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        body = text.get_payload(decode=True).decode()
        # the reporter's words arrive as one literal run: nothing evaluated ({{7*7}} is not 49)
        assert "SIMPEG down <script>alert(1)</script> {{7*7}} {% raw %}" in body
        html = next(p for p in message.walk() if p.get_content_type() == "text/html")
        page = html.get_payload(decode=True).decode()
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    note = [m for m in to_po if "<b>{{1+1}}</b>" in
            next(p for p in m.walk() if p.get_content_type() == "text/plain")
            .get_payload(decode=True).decode()]
    assert note, "the actor's note did not arrive literally"


def test_monthly_recap_counts_what_the_test_created(cfg, tmp_path: Path):
    numbers = [report(cfg, f"report {i}") for i in range(3)]
    cli(cfg, "incidents", "act", numbers[0], "forward", "--as", "sari")
    cli(cfg, "incidents", "act", numbers[0], "accept", "--as", "ani")
    month = datetime.now(timezone(timedelta(hours=7))).strftime("%Y-%m")
    out = tmp_path / "recap"
    cli(cfg, "report", "monthly", month, "--output", str(out))
    rows = list(csv.reader((out / f"recap-{month}.csv").open()))
    values = {(section, key): value for section, key, value in rows[1:]}
    assert values[("total", "incidents")] == "3"
    assert values[("category", "application")] == "3"
    assert values[("division", "SIM")] == "3"
    assert values[("source", "report")] == "3"
    assert values[("priority", "P2")] == "3"
    assert values[("step_entered", "dki-jakarta-2013:hd_record")] == "3"
    assert values[("step_entered", "dki-jakarta-2013:kd_direct")] == "1"
    assert values[("time_to_acknowledge", "count")] == "1"
    page = (out / f"recap-{month}.html").read_text()
    assert "<svg" in page and "<script" not in page
    bad = cli(cfg, "report", "monthly", "2026-13", ok=False)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
