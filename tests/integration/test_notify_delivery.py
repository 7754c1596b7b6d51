"""Ticket delivery against real peers: an SMTP server (aiosmtpd, plain, STARTTLS and implicit
TLS), an HTTP webhook receiver and a fake Telegram Bot API (both http.server in a thread), on
SQLite and PostgreSQL. Then the guarantee itself: a channel down then up loses nothing and
sends nothing twice; the worker process SIGKILLed 20 times while draining 500 tickets delivers
all of them, repeating only sends that were in flight at a kill, with the same idempotency key;
and a restart with nothing to do sends nothing."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from markupsafe import escape
from sqlalchemy import func, select

from monitord.incidents.notify.channels import message_id
from monitord.incidents.notify.worker import NotifyWorker
from monitord.incidents.store.models import OutboxRow
from tests.support import free_port
from tests.test_notify import (
    HOSTILE,
    enqueue,
    enqueue_many,
    incident_row,
    make_incident,
    open_env,
    outbox,
    ticket_payload,
)

WORKER = [sys.executable, "-m", "monitord.incidents.notify.worker"]
EVIL_SUMMARY = "Gi0/1 down " + HOSTILE["script"] + " " + HOSTILE["template"] + HOSTILE["crlf"]


# -- real peers --------------------------------------------------------------------------------


class SmtpServer:
    """aiosmtpd on a fixed port, stoppable and startable again (a mail relay going down)."""

    def __init__(self, port: int | None = None, **smtp_options) -> None:
        self.port = port or free_port()
        self.options = smtp_options
        self.envelopes: list = []
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK: queued"

    def start(self) -> "SmtpServer":
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(e.original_content, policy=email.policy.default)
                for e in self.envelopes]


@dataclass
class Received:
    at: float  # time.monotonic() in this process
    path: str
    headers: dict[str, str]
    body: bytes


class HttpPeer:
    """A real HTTP server in a thread that records every complete request and answers with
    `answer(request) -> (status, body, headers)` after `delay` seconds."""

    def __init__(self, answer: Callable[[Received], tuple[int, bytes, dict]] | None = None,
                 delay: float = 0.0) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.answer = answer or (lambda request: (200, b'{"ok":true}', {}))
        self.delay = delay
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the client died mid-request: nothing was delivered
                request = Received(time.monotonic(), self.path,
                                   {k.lower(): v for k, v in self.headers.items()}, body)
                with peer.lock:
                    peer.received.append(request)
                if peer.delay:
                    time.sleep(peer.delay)
                status, data, headers = peer.answer(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a killed client breaks the pipe; that is the point of the test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "HttpPeer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost, made with the openssl CLI."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate: {exc}")
    return cert, key


def pending_count(store) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).where(OutboxRow.status == "pending"))


# -- e-mail --------------------------------------------------------------------------------


def test_email_reaches_a_real_smtp_server(db_url):
    smtp = SmtpServer().start()
    store, config, clock = open_env(db_url, [
        {"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
         "security": "none", "sender": "monitord <noc@kominfo.example.go.id>",
         "to": ["noc-list@kominfo.example.go.id", "kabid@kominfo.example.go.id"],
         "timeout": "5s"}])
    try:
        number = make_incident(store, config, clock, summary=EVIL_SUMMARY)
        row = incident_row(store, number)
        keys = {"budi": f"{number}:1:ticket:budi:mail", "sari": f"{number}:1:ticket:sari:mail",
                "noc": f"{number}:1:ticket:noc:mail"}
        enqueue(store, number, "mail", keys["budi"], ticket_payload(
            row, address="budi@kominfo.example.go.id", note=HOSTILE["script"]))
        enqueue(store, number, "mail", keys["sari"], ticket_payload(
            row, name="sari", address="sari@kominfo.example.go.id", language="id"))
        enqueue(store, number, "mail", keys["noc"], ticket_payload(row, name=None, address=None))
        worker = NotifyWorker(store, config, clock)
        assert worker.run_once() == 3
        worker.close()
    finally:
        smtp.stop()
    assert [r.status for r in outbox(store)] == ["sent"] * 3
    envelopes = {e.rcpt_tos[0]: e for e in smtp.envelopes}
    assert envelopes["budi@kominfo.example.go.id"].rcpt_tos == ["budi@kominfo.example.go.id"]
    assert envelopes["noc-list@kominfo.example.go.id"].rcpt_tos == [
        "noc-list@kominfo.example.go.id", "kabid@kominfo.example.go.id"]  # the fixed `to`
    assert all(e.mail_from == "noc@kominfo.example.go.id" for e in smtp.envelopes)
    assert not any("evil@x" in addr for e in smtp.envelopes for addr in e.rcpt_tos)
    messages = {m["X-Monitord-Idempotency-Key"]: m for m in smtp.messages()}
    assert set(messages) == set(keys.values())
    budi = messages[keys["budi"]]
    assert budi["Subject"] == (f"[monitord] {number} P2 high: Gi0/1 down <script>alert(1)"
                               "</script> {{7*7}} Bcc: evil@x")
    assert budi["Message-ID"] == message_id(keys["budi"], "noc@kominfo.example.go.id")
    assert budi["From"] == "monitord <noc@kominfo.example.go.id>"
    assert [a.addr_spec for a in budi["To"].addresses] == ["budi@kominfo.example.go.id"]
    assert budi["Bcc"] is None and budi["Auto-Submitted"] == "auto-generated"
    assert budi.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in budi.iter_parts()] == ["text/plain", "text/html"]
    text = budi.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = budi.get_body(("html",)).get_content()
    assert "Gi0/1 down <script>alert(1)</script> {{7*7}}\nBcc: evil@x" in text
    assert "== What you must do ==" in text and "Due by: Mon 2026-03-02 10:00 WIB" in text
    assert str(escape(HOSTILE["script"])) in html and "<script>" not in html
    assert "49" not in text and "49" not in html
    sari = messages[keys["sari"]]
    assert "Yang harus Anda lakukan" in sari.get_body(("plain",)).get_content()
    assert 'lang="id"' in sari.get_body(("html",)).get_content()
    store.close()


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_starttls_and_implicit_tls_with_login(sqlite_url, tls_cert, monkeypatch,
                                                          security):
    cert, key = tls_cert
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret-pass")

    tls_options = {"tls_context": server_context, "require_starttls": True,
                   "auth_required": True} if security == "starttls" else \
        {"ssl_context": server_context, "auth_require_tls": False}  # the whole session is TLS
    smtp = SmtpServer(authenticator=authenticator, **tls_options).start()
    monkeypatch.setenv("MONITORD_TEST_SMTP_PASSWORD", "s3cret-pass")
    store, config, clock = open_env(sqlite_url, [
        {"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
         "security": security, "sender": "noc@kominfo.example.go.id", "username": "noc",
         "password": {"env": "MONITORD_TEST_SMTP_PASSWORD"}, "timeout": "5s"}])
    try:
        number = make_incident(store, config, clock)
        enqueue(store, number, "mail", "k-untrusted", ticket_payload(
            incident_row(store, number), address="budi@kominfo.example.go.id"))
        worker = NotifyWorker(store, config, clock)
        worker.run_once()  # the certificate is not trusted yet
        [row] = outbox(store)
        assert row.status == "failed" and "TLS certificate does not verify" in row.last_error
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now it is
        enqueue(store, number, "mail", "k-trusted", ticket_payload(
            incident_row(store, number), address="budi@kominfo.example.go.id"))
        assert worker.run_once() == 1
        worker.close()
    finally:
        smtp.stop()
    assert [r.status for r in outbox(store)] == ["failed", "sent"]
    assert logins == [("noc", "s3cret-pass")]
    [message] = smtp.messages()
    assert message["X-Monitord-Idempotency-Key"] == "k-trusted"
    store.close()


def test_a_channel_down_then_up_delays_tickets_and_loses_none(db_url):
    smtp = SmtpServer()  # not started: the relay is down
    store, config, clock = open_env(db_url, [
        {"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
         "security": "none", "sender": "noc@kominfo.example.go.id", "timeout": "3s"}],
        retry_initial="30s", retry_max="5m")
    number = make_incident(store, config, clock)
    keys = [f"{number}:1:ticket:p{i}:mail" for i in range(6)]
    enqueue_many(store, number, "mail", keys, lambda incident, key: ticket_payload(
        incident, name=key.split(":")[3], address=f"{key.split(':')[3]}@kominfo.example.go.id"))
    worker = NotifyWorker(store, config, clock)
    for _ in range(15):  # a quarter of an hour of passes while the relay is down; a pass
        worker.run_once()  # stops at the channel's first failure, so one ticket per pass
        clock.advance(60)
    rows = outbox(store)
    assert all(r.status == "pending" for r in rows)
    assert all(r.attempts >= 2 for r in rows), [r.attempts for r in rows]
    assert all(r.last_error == f"SMTP 127.0.0.1:{smtp.port}: connection refused" for r in rows)
    attempts_while_down = sum(r.attempts for r in rows)
    smtp.start()  # the relay is back
    try:
        clock.advance(300)  # every ticket's retry (at most retry_max away) is due
        assert worker.run_once() == 6
        clock.advance(3600)
        assert worker.run_once() == 0
        worker.close()
    finally:
        smtp.stop()
    rows = outbox(store)
    assert [r.status for r in rows] == ["sent"] * 6
    assert sum(r.attempts for r in rows) == attempts_while_down + 6
    delivered = [m["X-Monitord-Idempotency-Key"] for m in smtp.messages()]
    assert sorted(delivered) == sorted(keys)  # every ticket, exactly once
    store.close()


# -- webhook -------------------------------------------------------------------------------


def test_webhook_posts_signed_json(db_url, monkeypatch):
    secret = "webhook-hmac-secret"
    monkeypatch.setenv("MONITORD_TEST_HMAC", secret)

    def answer(request: Received):
        key = request.headers["idempotency-key"]
        if key.endswith(":busy:hook"):
            return 429, b"{}", {"Retry-After": "120"}
        if key.endswith(":broken:hook"):
            return 503, b"{}", {}
        if key.endswith(":gone:hook"):
            return 410, b"{}", {}
        return 200, b'{"ok":true}', {}

    with HttpPeer(answer) as peer:
        store, config, clock = open_env(db_url, [
            {"name": "hook", "type": "webhook", "url": peer.url("/tickets?src=monitord"),
             "hmac_secret": {"env": "MONITORD_TEST_HMAC"}, "timeout": "5s"}])
        number = make_incident(store, config, clock, summary=EVIL_SUMMARY)
        row = incident_row(store, number)
        for who in ("all", "busy", "broken", "gone"):
            enqueue(store, number, "hook", f"{number}:1:ticket:{who}:hook",
                    ticket_payload(row, name=None, note='"}{"injected": 1'))
        worker = NotifyWorker(store, config, clock, rand=lambda: 0.0)
        handled = 0
        for _ in range(4):  # a retry stops the channel's pass; the rest go next pass
            handled += worker.run_once()
        worker.close()
    assert handled == 4
    rows = {r.idempotency_key.split(":")[3]: r for r in outbox(store)}
    assert rows["all"].status == "sent"
    assert rows["busy"].status == "pending" and rows["busy"].last_error == \
        "webhook hook answered 429 (rate limited)"
    assert rows["busy"].next_attempt_at - clock.now() == timedelta(seconds=120)  # Retry-After
    assert rows["broken"].status == "pending" and "503" in rows["broken"].last_error
    assert rows["gone"].status == "failed" and rows["gone"].last_error == \
        "webhook hook answered 410"
    [ok] = [r for r in peer.received if r.headers["idempotency-key"].endswith(":all:hook")]
    assert ok.path == "/tickets?src=monitord"
    assert ok.headers["content-type"] == "application/json"
    expected = "sha256=" + hmac.new(secret.encode(), ok.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(ok.headers["x-monitord-signature"], expected)
    document = json.loads(ok.body)
    assert document["idempotency_key"] == f"{number}:1:ticket:all:hook"
    assert document["event"] == "ticket" and document["channel"] == "hook"
    assert document["ticket"]["incident"]["summary"] == EVIL_SUMMARY
    assert document["ticket"]["note"] == '"}{"injected": 1' and "injected" not in document
    assert "49" not in document["text"] and "{{7*7}}" in document["text"]
    store.close()


# -- Telegram ------------------------------------------------------------------------------


def test_telegram_against_a_local_fake_bot_api(db_url, monkeypatch, caplog):
    # api.telegram.org cannot be reached from here: a local HTTP server plays the Bot API
    # (same path, JSON body and answers), and `base_url` points the channel at it.
    token = "123456:CANARY-telegram-token"
    monkeypatch.setenv("MONITORD_TEST_BOT_TOKEN", token)

    def answer(request: Received):
        if request.path != f"/bot{token}/sendMessage":
            return 401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}', {}
        chat = json.loads(request.body)["chat_id"]
        if chat == "404":
            return 400, (b'{"ok":false,"error_code":400,'
                         b'"description":"Bad Request: chat not found"}'), {}
        if chat == "429":
            return 429, (b'{"ok":false,"error_code":429,"description":"Too Many Requests: '
                         b'retry after 30","parameters":{"retry_after":30}}'), {}
        return 200, json.dumps({"ok": True, "result": {"message_id": 1}}).encode(), {}

    with HttpPeer(answer) as peer:
        store, config, clock = open_env(db_url, [
            {"name": "tg", "type": "telegram", "bot_token": {"env": "MONITORD_TEST_BOT_TOKEN"},
             "chat_id": "-100777", "base_url": peer.url(""), "timeout": "5s"}])
        number = make_incident(store, config, clock, summary=EVIL_SUMMARY)
        row = incident_row(store, number)
        enqueue(store, number, "tg", "k-budi", ticket_payload(row, address="5550001",
                                                               note="*bold* _x_ <b>y</b>"))
        enqueue(store, number, "tg", "k-group", ticket_payload(row, name=None, address=None,
                                                                language="id"))
        enqueue(store, number, "tg", "k-lost", ticket_payload(row, address="404"))
        enqueue(store, number, "tg", "k-busy", ticket_payload(row, address="429"))
        worker = NotifyWorker(store, config, clock, rand=lambda: 0.0)
        for _ in range(3):
            worker.run_once()
        worker.close()
    rows = {r.idempotency_key: r for r in outbox(store)}
    assert rows["k-budi"].status == rows["k-group"].status == "sent"
    assert rows["k-lost"].status == "failed"
    assert rows["k-lost"].last_error == \
        "Telegram Bot API answered 400: Bad Request: chat not found"
    assert rows["k-busy"].status == "pending"
    assert rows["k-busy"].next_attempt_at - clock.now() == timedelta(seconds=30)
    sent = {json.loads(r.body)["chat_id"]: json.loads(r.body) for r in peer.received}
    assert set(sent) == {"5550001", "-100777", "404", "429"}
    budi = sent["5550001"]
    assert "parse_mode" not in budi  # plain text: nothing in a ticket is markup
    assert budi["text"].startswith(f"[monitord] {number} P2 high: Gi0/1 down <script>")
    assert "*bold* _x_ <b>y</b>" in budi["text"] and "{{7*7}}" in budi["text"]
    assert "Yang harus Anda lakukan" in sent["-100777"]["text"]
    assert all(token not in (r.last_error or "") for r in rows.values())
    assert token not in caplog.text
    store.close()


# -- several workers, crashes, restarts ------------------------------------------------------


def test_two_workers_never_take_the_same_ticket(db_url):
    with HttpPeer(delay=0.005) as peer:
        store, config, clock = open_env(db_url, [
            {"name": "hook", "type": "webhook", "url": peer.url(), "timeout": "5s"}])
        number = make_incident(store, config, clock)
        keys = [f"{number}:1:ticket:p{i:03d}:hook" for i in range(120)]
        enqueue_many(store, number, "hook", keys,
                     lambda incident, key: ticket_payload(incident, name=None))
        other_store, *_ = open_env(db_url, [])  # a second process's own connections
        workers = [NotifyWorker(store, config, clock), NotifyWorker(other_store, config, clock)]
        barrier = threading.Barrier(2)
        handled = [0, 0]

        def run(index: int) -> None:
            barrier.wait()
            handled[index] = workers[index].deliver_due(limit=1000)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for worker in workers:
            worker.close()
        other_store.close()
    received = [r.headers["idempotency-key"] for r in peer.received]
    assert sorted(received) == sorted(keys)  # each exactly once
    assert sum(handled) == 120 and min(handled) > 0, handled  # both really worked
    assert {r.status for r in outbox(store)} == {"sent"}
    store.close()


def _worker_config(directory: Path, db_url: str, hook_url: str) -> Path:
    path = directory / "notify.yaml"
    path.write_text(textwrap.dedent(f"""\
        language: en
        logging: {{level: info}}
        storage: {{url: "{db_url}"}}
        notifications:
          worker_interval: 0.2s
          retry_initial: 1s
          retry_max: 2s
          channels:
            - name: hook
              type: webhook
              url: "{hook_url}"
              timeout: 1s
              events: []
              hmac_secret: {{env: MONITORD_TEST_HMAC}}
        """))
    return path


def _start_worker(config: Path, log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MONITORD_TEST_HMAC": "sigkill-hmac"}
    with open(log, "ab") as out:
        return subprocess.Popen([*WORKER, "--config", str(config), *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env)


@pytest.mark.slow
def test_sigkill_20_times_while_draining_500_tickets(db_url, tmp_path):
    kills, total = 20, 500
    store, config, clock = open_env(db_url, [])
    numbers = [make_incident(store, config, clock, key=f"if:core-rtr:Gi0/{i}")
               for i in range(5)]
    keys = []
    for n, number in enumerate(numbers):
        batch = [f"{number}:1:ticket:p{i:03d}:hook" for i in range(n, total, len(numbers))]
        enqueue_many(store, number, "hook", batch,
                     lambda incident, key: ticket_payload(incident, name=key.split(":")[3],
                                                          summary=EVIL_SUMMARY))
        keys += batch
    log = tmp_path / "worker.log"
    rng = random.Random(20260302)
    with HttpPeer(delay=0.01) as peer:
        config_path = _worker_config(tmp_path, db_url, peer.url())
        starts: list[float] = []
        for _ in range(kills):
            before = peer.count()
            starts.append(time.monotonic())
            proc = _start_worker(config_path, log)
            deadline = time.monotonic() + 20
            while peer.count() == before and pending_count(store):  # wait until it is sending
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))  # then kill it at a random moment
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        starts.append(time.monotonic())
        proc = _start_worker(config_path, log)  # the last one is left to finish
        deadline = time.monotonic() + 60
        while pending_count(store):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"still pending: {pending_count(store)}"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
        settled = peer.count()
        # a restart with nothing changed sends nothing
        again = _start_worker(config_path, log, "--once")
        assert again.wait(30) == 0, log.read_text()
        assert peer.count() == settled
        received = list(peer.received)

    by_key: dict[str, list[Received]] = defaultdict(list)
    for request in received:
        by_key[request.headers["idempotency-key"]].append(request)
    assert set(by_key) == set(keys)  # all 500 delivered
    duplicates = len(received) - total
    assert 0 <= duplicates <= kills
    # Every copy but the last of a ticket was the last request a killed worker made (the
    # send in flight at its kill), and every copy is the same request, byte for byte.
    last_before_kill = set()
    for start, next_start in zip(starts[:-1], starts[1:]):
        inside = [r for r in received if start <= r.at < next_start]
        if inside:
            last_before_kill.add(id(max(inside, key=lambda r: r.at)))
    for key, copies in by_key.items():
        assert len({c.body for c in copies}) == 1, key
        assert len({c.headers["x-monitord-signature"] for c in copies}) == 1, key
        assert all(id(copy) in last_before_kill for copy in copies[:-1]), key
    sample = received[0]
    assert sample.headers["x-monitord-signature"] == "sha256=" + hmac.new(
        b"sigkill-hmac", sample.body, hashlib.sha256).hexdigest()
    rows = outbox(store)
    assert [r.status for r in rows] == ["sent"] * total
    assert all(r.attempts >= len(by_key[r.idempotency_key]) for r in rows)
    print(f"\n{kills} kills, {duplicates} in-flight sends repeated, "
          f"{sum(r.attempts for r in rows)} attempts for {total} tickets")
    store.close()


def test_a_restart_with_nothing_changed_sends_nothing(db_url, tmp_path):
    store, config, clock = open_env(db_url, [])
    number = make_incident(store, config, clock)
    keys = [f"{number}:1:ticket:p{i}:hook" for i in range(3)]
    enqueue_many(store, number, "hook", keys,
                 lambda incident, key: ticket_payload(incident, name=None))
    log = tmp_path / "worker.log"
    with HttpPeer() as peer:
        config_path = _worker_config(tmp_path, db_url, peer.url())
        assert _start_worker(config_path, log, "--once").wait(30) == 0, log.read_text()
        assert sorted(r.headers["idempotency-key"] for r in peer.received) == keys
        assert _start_worker(config_path, log, "--once").wait(30) == 0, log.read_text()
        running = _start_worker(config_path, log)  # the long-running form, for a while
        deadline = time.monotonic() + 30  # SIGTERM before its handler is installed would kill it
        while "notify worker started" not in log.read_text():
            assert running.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(1.0)
        running.send_signal(signal.SIGTERM)
        assert running.wait(15) == 0, log.read_text()
        assert _start_worker(config_path, log, "--drain", "2").wait(30) == 0, log.read_text()
        assert len(peer.received) == 3
    assert [r.status for r in outbox(store)] == ["sent"] * 3
    store.close()
