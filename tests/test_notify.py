"""The notify stage on its own: ticket rendering (English, Indonesian, hostile text), the
transports' message building, the retry schedule on a ManualClock, leases, unknown channels,
metrics, and secrets that must never reach `last_error` or a log line.

The helpers at the top (config, incidents, payloads per the outbox contract) are shared with
tests/integration/test_notify_delivery.py."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from monitord.clock import ManualClock
from monitord.config_loader import parse_config_text
from monitord.incidents.manager import IncidentManager
from monitord.incidents.notify.channels import (
    EmailTransport,
    Message,
    NotifyError,
    TelegramTransport,
    cap_utf16,
    message_id,
    signature,
    webhook_body,
)
from monitord.incidents.notify.render import SUBJECT_MAX, TicketRenderer
from monitord.incidents.notify.worker import NotifyWorker, retry_delay
from monitord.incidents.store import open_store
from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import OutboxRow
from monitord.records import Finding

JAKARTA = ZoneInfo("Asia/Jakarta")
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # 08:00 WIB, a Monday
HOSTILE = {
    "script": "<script>alert(1)</script>",
    "template": "{{7*7}}",
    "raw": "{% raw %}",
    "crlf": "\r\nBcc: evil@x",
    "long": "".join(f"{i % 10}" for i in range(10_000)),
}


# -- shared helpers ------------------------------------------------------------------------


def notify_config(db_url: str, channels: list[dict[str, Any]], **notifications: Any):
    """A config whose channels want no legacy manager notifications (`events: []`), so the
    outbox holds only the rows a test writes."""
    channels = [{"events": [], **channel} for channel in channels]
    settings = {"retry_initial": "30s", "retry_max": "5m", "worker_interval": "1s",
                **notifications, "channels": channels}
    return parse_config_text(f"""
language: en
timezone: Asia/Jakarta
sites: [{{name: hq, description: "Kantor Dinas Kominfo lt. 3"}}]
devices: [{{name: core-rtr, address: 10.0.0.1, site: hq, kind: router}}]
storage: {{url: "{db_url}"}}
notifications: {json.dumps(settings)}
""")


def open_env(db_url: str, channels: list[dict[str, Any]], **notifications: Any):
    config = notify_config(db_url, channels, **notifications)
    store = open_store(config.storage)
    store.migrate()
    return store, config, ManualClock(T0)


def make_incident(store, config, clock, key: str = "if:core-rtr:Gi0/1",
                  summary: str = "Gi0/1 down", **over: Any) -> str:
    data = dict(kind="interface_down", category="network", severity="high", state="firing",
                dedup_key=key, summary=summary, first_seen=clock.now(), last_seen=clock.now(),
                device="core-rtr", subject="Gi0/1", evidence={"ifIndex": 1})
    data.update(over)
    [outcome] = IncidentManager(store, config, clock).apply([Finding(**data)])
    assert outcome.action == "opened"
    return outcome.number


def ticket_payload(incident, *, event: str = "ticket", name: str | None = "budi",
                   address: str | None = None, language: str | None = "en",
                   role: str = "KD", note: str | None = None, actor: str = "rina",
                   at: datetime = T0, **incident_over: Any) -> dict[str, Any]:
    """The outbox payload contract, from an incident row (or a plain dict of overrides)."""
    def iso(moment):
        return moment.isoformat() if moment else None

    snapshot = {
        "number": incident.number, "summary": incident.summary,
        "severity": incident.severity, "priority": incident.priority or "P2",
        "category": incident.category, "division": incident.division or "IPL",
        "device": incident.device, "subject": incident.subject, "status": incident.status,
        "evidence": dict(incident.evidence or {}),
        "hd01": {"recorded_at": iso(incident.recorded_at),
                 "reported_at": iso(incident.reported_at), "location": incident.location,
                 "reporter": {"name": incident.reporter_name,
                              "agency": incident.reporter_agency,
                              "phone": incident.reporter_phone,
                              "email": incident.reporter_email},
                 "classification": incident.classification,
                 "helpdesk_officer": incident.helpdesk_officer},
    }
    snapshot.update(incident_over)
    return {
        "event": event,
        "recipient": {"name": name, "full_name": "Budi Santoso" if name else None,
                      "address": address, "language": language, "role": role},
        "incident": snapshot,
        "step": {"name": "kd_direct",
                 "title": {"en": "Give direction for the fix",
                           "id": "Memberikan arahan penyelesaian"},
                 "role": "KD", "due_at": (T0 + timedelta(hours=2)).isoformat(),
                 "action_needed": {"en": "Give the PO direction for the fix.",
                                   "id": "Berikan arahan penyelesaian kepada Pelaksana "
                                         "Operasional."}},
        "workflow": {"name": "dki-jakarta-2013",
                     "title": {"en": "DKI Jakarta 2013: handling IT operational and security "
                                     "disruptions",
                               "id": "DKI Jakarta 2013: Penanganan Gangguan Operasional/Sistem "
                                     "Keamanan TIK"}},
        "note": note, "actor": actor, "at": at.isoformat(),
    }


def enqueue(store, number: str, channel: str, key: str, payload: dict[str, Any],
            at: datetime = T0, event: str | None = None) -> None:
    with store.sessions() as session, session.begin():
        incident = repo.get_incident(session, number)
        repo.enqueue_notification(session, incident, channel, event or payload["event"], at,
                                  key, payload)


def enqueue_many(store, number: str, channel: str, keys: list[str],
                 payload_for, at: datetime = T0) -> None:
    with store.sessions() as session, session.begin():
        incident = repo.get_incident(session, number)
        for key in keys:
            payload = payload_for(incident, key)
            repo.enqueue_notification(session, incident, channel, payload["event"], at, key,
                                      payload)


def incident_row(store, number: str):
    with store.sessions() as session:
        return repo.get_incident(session, number)


def outbox(store) -> list[OutboxRow]:
    with store.sessions() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


class FakeTransport:
    """The transport seam faked: records messages, or raises what it is told to."""

    def __init__(self, name: str, error: NotifyError | None = None) -> None:
        self.name = name
        self.error = error
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(message)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connection refused


class _Row:  # an incident row stand-in for payloads built without a store
    number = "2026-000123"
    summary = "Gi0/1 on core-rtr is down"
    severity, priority, category, division = "high", "P2", "network", "IPL"
    device, subject, status = "core-rtr", "Gi0/1", "open"
    evidence = {"ifIndex": 1, "ifOperStatus": "down"}
    recorded_at = reported_at = T0
    location = "Kantor Dinas Kominfo lt. 3"
    reporter_name, reporter_agency, reporter_phone, reporter_email = \
        "monitord", "Diskominfo", "021-555", "noc@example.go.id"
    classification = 4
    helpdesk_officer = "monitord"


@pytest.fixture(scope="module")
def renderer() -> TicketRenderer:
    return TicketRenderer(JAKARTA)


# -- rendering -----------------------------------------------------------------------------


def test_ticket_in_english(renderer):
    ticket = renderer.render(ticket_payload(_Row(), note="Please check the fibre"), "en")
    assert ticket.subject == "[monitord] 2026-000123 P2 high: Gi0/1 on core-rtr is down"
    text = ticket.text
    for expected in ("New ticket: 2026-000123 P2 high", "To: Budi Santoso (KD)",
                     "== What you must do ==", "Give the PO direction for the fix.",
                     "Due by: Mon 2026-03-02 10:00 WIB",  # 03:00 UTC in the office's zone
                     "Step: Give direction for the fix [kd_direct], Role KD",
                     "Workflow (SOP): DKI Jakarta 2013: handling IT operational",
                     "Note (by rina):\nPlease check the fibre",
                     "Location: Kantor Dinas Kominfo lt. 3", "Device: core-rtr",
                     "Affected part: Gi0/1", "== Evidence ==", "ifOperStatus: down",
                     "== Form HD-01 ==", "Day/date and time recorded: Mon 2026-03-02 08:00 WIB",
                     "Reporter: monitord, Diskominfo, Phone 021-555, E-mail noc@example.go.id",
                     "Initial classification: 4 (data-communication network)",
                     "Help-desk officer: monitord", "(Asia/Jakarta)"):
        assert expected in text, expected
    html = ticket.html
    assert '<html lang="en">' in html and "What you must do" in html
    assert "<strong>Mon 2026-03-02 10:00 WIB</strong>" in html
    assert "data-communication network" in html


def test_ticket_in_indonesian(renderer):
    payload = ticket_payload(_Row(), language="id", event="sla_breach")
    ticket = renderer.render(payload)  # the recipient's language
    assert ticket.subject == "[monitord] 2026-000123 P2 high: Gi0/1 on core-rtr is down"
    text = ticket.text
    for expected in ("Standar waktu terlampaui (pelanggaran SLA): 2026-000123",
                     "Kepada: Budi Santoso (KD)", "== Yang harus Anda lakukan ==",
                     "Berikan arahan penyelesaian kepada Pelaksana Operasional.",
                     "Batas waktu: Senin 2026-03-02 10:00 WIB",
                     "Langkah: Memberikan arahan penyelesaian [kd_direct], Peran KD",
                     "Alur kerja (SOP): DKI Jakarta 2013: Penanganan Gangguan",
                     "Tempat/lokasi: Kantor Dinas Kominfo lt. 3", "Perangkat: core-rtr",
                     "== Bukti ==", "Hari/tanggal dan jam dicatat: Senin 2026-03-02 08:00 WIB",
                     "Klasifikasi awal: 4 (jaringan komunikasi data)",
                     "Petugas help desk: monitord"):
        assert expected in text, expected
    assert "What you must do" not in text
    assert '<html lang="id">' in ticket.html and "Yang harus Anda lakukan" in ticket.html


def test_due_at_is_shown_in_the_office_time_zone():
    ticket = TicketRenderer(ZoneInfo("Asia/Makassar")).render(ticket_payload(_Row()), "id")
    assert "Batas waktu: Senin 2026-03-02 11:00 WITA" in ticket.text


def test_a_ticket_without_a_step_is_for_information_and_old_flat_payloads_render(renderer):
    payload = ticket_payload(_Row(), event="incident_resolved")
    payload["step"] = None
    assert "For your information; no action is asked of you." in renderer.render(payload).text
    legacy = {"number": "2026-000007", "event": "incident_opened", "summary": "disk full",
              "severity": "critical", "category": "server", "device": "db1"}
    ticket = renderer.render(legacy, "id")
    assert ticket.subject == "[monitord] 2026-000007 critical: disk full"
    assert "Insiden dibuka: 2026-000007" in ticket.text and "Perangkat: db1" in ticket.text


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_text_arrives_literally_and_is_never_evaluated(renderer, name):
    value = HOSTILE[name]
    payload = ticket_payload(_Row(), note=value, summary=f"down {value}", device=value,
                             subject=value, evidence={value: value, "ifIndex": 1})
    payload["incident"]["hd01"]["location"] = value
    payload["incident"]["hd01"]["reporter"]["name"] = value
    for language in ("en", "id"):
        ticket = renderer.render(payload, language)
        # text: every occurrence literally (summary, note, device, subject, evidence key and
        # value, location twice, reporter)
        assert ticket.text.count(value) >= 9
        # HTML: escaped; the raw markup never appears
        assert str(escape(value)) in ticket.html
        if escape(value) != value:
            assert value not in ticket.html
        # subject: one capped line
        assert "\r" not in ticket.subject and "\n" not in ticket.subject
        assert len(ticket.subject) <= SUBJECT_MAX
        assert ticket.subject.startswith("[monitord] 2026-000123 P2 high: down")
        for output in (ticket.subject, ticket.text, ticket.html):
            assert "49" not in output  # {{7*7}} stays text
    if name == "long":
        assert ticket.subject.endswith("…")
    if name == "template":
        assert "{{7*7}}" in ticket.subject


def test_templates_are_sandboxed_and_strict(renderer):
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    assert isinstance(renderer.env, ImmutableSandboxedEnvironment)
    assert renderer.env.undefined is StrictUndefined
    assert renderer.env.autoescape("ticket.html") and not renderer.env.autoescape("ticket.txt")


def _message(payload: dict[str, Any], address: str | None = "budi@example.go.id",
             key: str = "2026-000123:1:ticket:budi:mail") -> Message:
    ticket = TicketRenderer(JAKARTA).render(payload)
    return Message(idempotency_key=key, channel="mail", event=payload["event"],
                   subject=ticket.subject, text=ticket.text, html=ticket.html, address=address,
                   recipient_name="Budi Santoso\r\nBcc: evil@x", payload=payload)


def test_an_email_cannot_gain_headers_from_ticket_text():
    config = notify_config("sqlite://", [{"name": "mail", "type": "email", "smtp_host": "h",
                                          "sender": "monitord <noc@example.go.id>"}])
    transport = EmailTransport(config.notifications.channels[0])
    payload = ticket_payload(_Row(), summary="down" + HOSTILE["crlf"] + HOSTILE["script"])
    mail = transport.build(_message(payload))
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["budi@example.go.id"]
    assert parsed["To"].addresses[0].display_name == "Budi Santoso Bcc: evil@x"  # one line
    assert parsed["Subject"] == ("[monitord] 2026-000123 P2 high: down Bcc: evil@x"
                                 "<script>alert(1)</script>")
    assert parsed["Message-ID"] == message_id("2026-000123:1:ticket:budi:mail",
                                              "noc@example.go.id")
    assert parsed["X-Monitord-Idempotency-Key"] == "2026-000123:1:ticket:budi:mail"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = parsed.get_body(("html",)).get_content()
    assert "down\nBcc: evil@x<script>alert(1)</script>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    with pytest.raises(NotifyError) as bad:
        transport.build(_message(payload, address="budi@x\r\nBcc: evil@x"))
    assert not bad.value.recoverable


def test_webhook_json_keeps_its_structure_and_signature_covers_the_body():
    payload = ticket_payload(_Row(), summary='"}, "evil": true, {"' + HOSTILE["template"],
                             note=HOSTILE["crlf"])
    body = webhook_body(_message(payload, address=None))
    document = json.loads(body)
    assert set(document) == {"idempotency_key", "channel", "event", "subject", "text", "ticket"}
    assert document["ticket"]["incident"]["summary"] == '"}, "evil": true, {"{{7*7}}'
    assert document["ticket"]["note"] == "\r\nBcc: evil@x"
    assert body == webhook_body(_message(payload, address=None))  # the same bytes every time
    assert signature(b"k", body) == signature(b"k", bytes(body))
    assert signature(b"k", body).startswith("sha256=") and len(signature(b"k", body)) == 71


def test_telegram_text_is_capped_the_way_the_bot_api_counts():
    assert cap_utf16("abc", 10) == "abc"
    capped = cap_utf16("😀" * 3000)  # 2 UTF-16 units each
    assert len(capped.encode("utf-16-le")) // 2 <= 4096 and capped.endswith("…")


# -- retries, leases, outcomes -------------------------------------------------------------


def test_retry_delay_doubles_up_to_the_maximum_with_jitter_below():
    initial, maximum = timedelta(seconds=30), timedelta(minutes=5)
    no_jitter = [retry_delay(n, initial, maximum, lambda: 0.0).total_seconds()
                 for n in range(1, 8)]
    assert no_jitter == [30, 60, 120, 240, 300, 300, 300]
    full_jitter = [retry_delay(n, initial, maximum, lambda: 1.0).total_seconds()
                   for n in range(1, 4)]
    assert full_jitter == pytest.approx([24, 48, 96])
    assert retry_delay(10_000, initial, maximum, lambda: 0.0) == maximum  # no overflow


@pytest.fixture
def env(sqlite_url):
    store, config, clock = open_env(sqlite_url, [
        {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x", "timeout": "5s"},
        {"name": "noc-log", "type": "log"}])
    number = make_incident(store, config, clock)
    yield store, config, clock, number
    store.close()


def test_backoff_schedule_on_a_manual_clock(env):
    store, config, clock, number = env
    down = FakeTransport("hook", NotifyError(True, "connection refused"))
    worker = NotifyWorker(store, config, clock, transports={"hook": down}, rand=lambda: 0.0)
    enqueue(store, number, "hook", "k1", ticket_payload(incident_row(store, number)))
    waits = []
    for attempt in range(1, 7):
        assert worker.run_once() == 1
        [row] = outbox(store)
        assert (row.status, row.attempts, row.last_error) == ("pending", attempt,
                                                              "connection refused")
        waits.append((row.next_attempt_at - clock.now()).total_seconds())
        clock.set(row.next_attempt_at - timedelta(seconds=1))
        assert worker.run_once() == 0  # not due yet: no attempt
        clock.advance(1)
    assert waits == [30, 60, 120, 240, 300, 300]
    down.error = None  # the peer is back
    assert worker.run_once() == 1
    [row] = outbox(store)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 7, clock.now())
    assert [m.idempotency_key for m in down.sent] == ["k1"]
    worker.close()


def test_jitter_spreads_retries_of_tickets_that_failed_together(env):
    store, config, clock, number = env
    down = FakeTransport("hook", NotifyError(True, "503"))
    values = iter([0.0, 0.5, 1.0])
    worker = NotifyWorker(store, config, clock, transports={"hook": down},
                          rand=lambda: next(values))
    for key in ("a", "b", "c"):
        enqueue(store, number, "hook", key, ticket_payload(incident_row(store, number)))
    for _ in range(3):  # a failed channel's pass stops: one ticket per pass
        assert worker.run_once() == 1
    waits = sorted((row.next_attempt_at - clock.now()).total_seconds() for row in outbox(store))
    assert waits == pytest.approx([24, 27, 30])
    worker.close()


def test_not_recoverable_failure_marks_the_ticket_failed(env):
    store, config, clock, number = env
    refused = FakeTransport("hook", NotifyError(False, "webhook hook answered 404"))
    worker = NotifyWorker(store, config, clock, transports={"hook": refused})
    enqueue(store, number, "hook", "k1", ticket_payload(incident_row(store, number)))
    assert worker.run_once() == 1
    [row] = outbox(store)
    assert (row.status, row.attempts, row.last_error, row.next_attempt_at) == \
        ("failed", 1, "webhook hook answered 404", None)
    clock.advance(3600)
    assert worker.run_once() == 0
    worker.close()


def test_a_ticket_for_a_removed_channel_fails_with_a_clear_reason(env):
    store, config, clock, number = env
    worker = NotifyWorker(store, config, clock, transports={"hook": FakeTransport("hook")})
    enqueue(store, number, "old-telegram", "k1", ticket_payload(incident_row(store, number)))
    enqueue(store, number, "hook", "k2", ticket_payload(incident_row(store, number)))
    assert worker.run_once() == 2
    rows = {row.idempotency_key: row for row in outbox(store)}
    assert rows["k1"].status == "failed"
    assert rows["k1"].last_error == ("channel 'old-telegram' is not in the configuration "
                                     "(removed or renamed?); not delivered")
    assert rows["k2"].status == "sent"
    worker.close()


def test_a_send_in_flight_at_a_crash_is_repeated_with_the_same_key_after_its_lease(env):
    store, config, clock, number = env
    fake = FakeTransport("hook")
    enqueue(store, number, "hook", "k1", ticket_payload(incident_row(store, number)))
    crashed = NotifyWorker(store, config, clock, transports={"hook": FakeTransport("hook")})
    claim = crashed._claim("hook")  # claimed, then the process died before recording
    assert claim is not None and claim.attempts == 1
    worker = NotifyWorker(store, config, clock, transports={"hook": fake})
    lease = worker.lease_for("hook")
    assert lease == timedelta(seconds=15)  # 2 x the channel's 5 s timeout + 5 s
    assert worker.run_once() == 0  # leased: nobody else takes it meanwhile
    clock.advance(lease.total_seconds() - 1)
    assert worker.run_once() == 0
    clock.advance(1)
    assert worker.run_once() == 1
    assert [m.idempotency_key for m in fake.sent] == ["k1"]
    [row] = outbox(store)
    assert (row.status, row.attempts) == ("sent", 2)
    crashed.close()
    worker.close()


def test_an_outcome_that_cannot_be_recorded_is_recorded_at_the_next_pass(env):
    store, config, clock, number = env
    fake = FakeTransport("hook")
    worker = NotifyWorker(store, config, clock, transports={"hook": fake})
    enqueue(store, number, "hook", "k1", ticket_payload(incident_row(store, number)))
    real_sessions = store.sessions

    class Broken:
        calls = 0

        def __call__(self):
            Broken.calls += 1
            if Broken.calls == 3:  # sweep, claim, then the record fails (database gone)
                raise OSError("database unavailable")
            return real_sessions()

    store.sessions = Broken()
    try:
        assert worker.run_once() == 1
        assert outbox(store)[0].status == "pending"
    finally:
        store.sessions = real_sessions
    assert worker.run_once() == 0  # the leftover is recorded; nothing is sent again
    [row] = outbox(store)
    assert row.status == "sent" and len(fake.sent) == 1
    worker.close()


def test_log_channel_logs_one_line_per_ticket(env, caplog):
    store, config, clock, number = env
    caplog.set_level(logging.INFO, logger="monitord.notify")
    worker = NotifyWorker(store, config, clock)
    enqueue(store, number, "noc-log", "k1", ticket_payload(
        incident_row(store, number), name=None, summary="down" + HOSTILE["crlf"]))
    assert worker.run_once() == 1
    [line] = [r.getMessage() for r in caplog.records if r.name == "monitord.notify.ticket"]
    assert "\n" not in line and "\r" not in line
    assert "channel=noc-log event=ticket key=k1" in line
    assert "2026-000001" in line and "Bcc: evil@x" in line
    assert outbox(store)[0].status == "sent"
    worker.close()


def test_metrics_count_outcomes_and_pending_is_read_from_the_store(env):
    store, config, clock, number = env
    registry = CollectorRegistry()
    hook = FakeTransport("hook", NotifyError(True, "connection refused"))
    worker = NotifyWorker(store, config, clock, registry=registry, transports={"hook": hook})
    for key in ("a", "b"):
        enqueue(store, number, "hook", key, ticket_payload(incident_row(store, number)))
    enqueue(store, number, "noc-log", "c", ticket_payload(incident_row(store, number)))
    clock.advance(90)
    worker.run_once()

    def value(name, **labels):
        return registry.get_sample_value(name, labels)

    assert value("monitord_outbox_deliveries_total", channel="hook", outcome="retry") == 1
    assert value("monitord_outbox_deliveries_total", channel="noc-log", outcome="sent") == 1
    assert value("monitord_outbox_pending", channel="hook") == 2
    assert value("monitord_outbox_pending", channel="noc-log") is None
    assert value("monitord_outbox_oldest_pending_seconds", channel="hook") == 90
    worker.close()


def test_run_delivers_at_once_when_kicked(env):
    store, config, clock, number = env
    fake = FakeTransport("hook")
    config = config.model_copy(update={"notifications": config.notifications.model_copy(
        update={"worker_interval": timedelta(seconds=60)})})
    worker = NotifyWorker(store, config, clock, transports={"hook": fake})

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.3)  # the first pass found nothing; the next is 60 s away
        await asyncio.to_thread(enqueue, store, number, "hook", "k1",
                                ticket_payload(incident_row(store, number)))
        worker.kick()
        for _ in range(100):
            if fake.sent:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert [m.idempotency_key for m in fake.sent] == ["k1"]
    worker.close()


# -- secrets -------------------------------------------------------------------------------


def _all_logged(caplog) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(str(record.exc_text or ""))
    return "\n".join(parts)


@pytest.mark.parametrize("token_shape", ["plain", "invalid-in-url"])
def test_the_bot_token_never_reaches_last_error_or_logs(sqlite_url, monkeypatch, caplog,
                                                         token_shape):
    canary = f"987654:CANARY{uuid.uuid4().hex}"
    if token_shape == "invalid-in-url":
        canary += " x\n"  # http.client quotes the URL path in its InvalidURL message
    monkeypatch.setenv("MONITORD_TEST_BOT_TOKEN", canary)
    caplog.set_level(logging.DEBUG)
    store, config, clock = open_env(sqlite_url, [
        {"name": "tg", "type": "telegram", "bot_token": {"env": "MONITORD_TEST_BOT_TOKEN"},
         "base_url": f"http://127.0.0.1:{closed_port()}", "timeout": "2s"}])
    number = make_incident(store, config, clock)
    enqueue(store, number, "tg", "k1", ticket_payload(incident_row(store, number),
                                                       address="12345"))
    worker = NotifyWorker(store, config, clock)
    assert worker.run_once() == 1
    [row] = outbox(store)
    assert row.last_error and canary.strip() not in row.last_error
    assert "CANARY" not in row.last_error and "/bot" not in row.last_error
    if token_shape == "plain":
        assert (row.status, row.last_error) == ("pending",
                                                "Telegram Bot API: connection refused")
    else:
        assert row.status == "failed"
    assert "CANARY" not in _all_logged(caplog)
    worker.close()
    store.close()


def test_the_smtp_password_never_reaches_last_error_or_logs(sqlite_url, monkeypatch, caplog):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.support import free_port

    canary = f"CANARY-smtp-{uuid.uuid4().hex}"
    monkeypatch.setenv("MONITORD_TEST_SMTP_PASSWORD", canary)
    caplog.set_level(logging.DEBUG)
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append(auth_data.password.decode())
        return AuthResult(success=False, handled=False)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        store, config, clock = open_env(sqlite_url, [
            {"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
             "security": "none", "sender": "noc@example.go.id", "username": "noc",
             "password": {"env": "MONITORD_TEST_SMTP_PASSWORD"}, "timeout": "5s"}])
        number = make_incident(store, config, clock)
        enqueue(store, number, "mail", "k1", ticket_payload(incident_row(store, number),
                                                             address="budi@example.go.id"))
        worker = NotifyWorker(store, config, clock)
        assert worker.run_once() == 1
        worker.close()
    finally:
        controller.stop()
    assert seen and set(seen) == {canary}  # it really reached the server, and was refused
    [row] = outbox(store)
    assert row.status == "failed"  # authentication refused: retrying cannot help
    assert row.last_error == ("SMTP 127.0.0.1:{}: authentication failed (535); check username "
                              "and password").format(port)
    assert canary not in row.last_error and canary not in _all_logged(caplog)
    store.close()


def test_webhook_hmac_secret_is_never_sent_or_logged(sqlite_url, monkeypatch, caplog):
    canary = f"CANARY-hmac-{uuid.uuid4().hex}"
    monkeypatch.setenv("MONITORD_TEST_HMAC", canary)
    caplog.set_level(logging.DEBUG)
    store, config, clock = open_env(sqlite_url, [
        {"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{closed_port()}/h",
         "hmac_secret": {"env": "MONITORD_TEST_HMAC"}, "timeout": "2s"}])
    number = make_incident(store, config, clock)
    enqueue(store, number, "hook", "k1", ticket_payload(incident_row(store, number)))
    worker = NotifyWorker(store, config, clock)
    worker.run_once()
    [row] = outbox(store)
    assert row.status == "pending" and row.last_error == "webhook hook: connection refused"
    assert canary not in _all_logged(caplog)
    worker.close()
    store.close()


def test_a_missing_secret_keeps_tickets_waiting(sqlite_url, monkeypatch):
    monkeypatch.delenv("MONITORD_TEST_ABSENT", raising=False)
    store, config, clock = open_env(sqlite_url, [
        {"name": "tg", "type": "telegram", "bot_token": {"env": "MONITORD_TEST_ABSENT"}}])
    number = make_incident(store, config, clock)
    enqueue(store, number, "tg", "k1", ticket_payload(incident_row(store, number),
                                                       address="1"))
    worker = NotifyWorker(store, config, clock)
    worker.run_once()
    [row] = outbox(store)
    assert row.status == "pending"
    assert row.last_error == ("channel secret unavailable: environment variable "
                              "MONITORD_TEST_ABSENT is not set")
    worker.close()
    store.close()


def test_transports_refuse_missing_targets():
    config = notify_config("sqlite://", [
        {"name": "tg", "type": "telegram", "bot_token": {"env": "X"}},
        {"name": "mail", "type": "email", "smtp_host": "h", "sender": "a@b"}])
    tg, mail = config.notifications.channels
    from monitord.secrets import Secret

    payload = ticket_payload(_Row())
    with pytest.raises(NotifyError) as no_chat:
        TelegramTransport(tg, Secret("t0ken")).send(_message(payload, address=None))
    with pytest.raises(NotifyError) as no_address:
        EmailTransport(mail).send(_message(payload, address=None))
    assert not no_chat.value.recoverable and not no_address.value.recoverable


def test_drain_delivers_everything_and_reports_what_is_left(env):
    store, config, clock, number = env
    fake = FakeTransport("hook")
    worker = NotifyWorker(store, config, clock, transports={"hook": fake})
    for key in ("a", "b", "c"):
        enqueue(store, number, "hook", key, ticket_payload(incident_row(store, number)))
    assert worker.drain(5) == 0 and len(fake.sent) == 3
    fake.error = NotifyError(True, "connection refused")
    enqueue(store, number, "hook", "d", ticket_payload(incident_row(store, number)))
    assert worker.drain(0.3) == 1  # still waiting for its retry when the time is up
    worker.close()


def test_a_store_outage_does_not_make_the_loop_spin(env, caplog):
    store, config, clock, number = env
    config = config.model_copy(update={"notifications": config.notifications.model_copy(
        update={"worker_interval": timedelta(seconds=0.2)})})
    worker = NotifyWorker(store, config, clock, transports={"hook": FakeTransport("hook")})
    worker._more_due = True  # as if the previous pass had hit its limit
    calls = []

    def down():
        calls.append(1)
        raise OSError("database unavailable")

    store.sessions, real = down, store.sessions

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(scenario())
    finally:
        store.sessions = real
    assert 2 <= len(calls) <= 8  # one attempt per interval, not a busy loop
    assert "notify pass failed error=OSError" in caplog.text
    worker.close()
