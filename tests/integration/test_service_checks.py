"""Service checks against real peers the test starts on 127.0.0.1: an HTTP server, HTTPS
servers with self-signed certificates made by the openssl CLI (10 and 400 days), a TCP port that
closes mid-test, a small DNS responder speaking real DNS over UDP, ICMP echo to 127.0.0.1, and
the PostgreSQL server on this machine when it runs."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitord.collectors.services import (
    ServiceCheckCollector,
    dns_check,
    encode_name,
    http_check,
    parse_certificate,
    ping,
    run_service_check,
    tcp_connect,
    tls_check,
)
from monitord.detectors.services import ServiceDetector, ServicePolicy
from monitord.records import Category, Event, FindingState, Severity
from tests.support import pg_available


# -- peers ------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        routes = {"/": (200, b"Selamat datang di layanan e-government"),
                  "/health": (200, b"OK monitord"),
                  "/fail": (500, b"internal error")}
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left > 1 else "/health")
            self.end_headers()
            return
        if self.path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.end_headers()
            return
        status, body = routes.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(server: http.server.HTTPServer):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def http_url():
    server = _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler))
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def make_cert(directory: Path, name: str, days: int) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", str(days), "-subj", f"/CN=localhost/O=Monitord Test {name}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def https_servers(tmp_path: Path):
    """name -> (port, cert path) for certificates valid 5, 10 and 400 days."""
    servers, result = [], {}
    for name, days in (("five", 5), ("short", 10), ("long", 400)):
        cert, key = make_cert(tmp_path, name, days)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(_serve(server))
        result[name] = (server.server_address[1], cert)
    yield result
    for server in servers:
        server.shutdown()
        server.server_close()


class DnsResponder:
    """A tiny authoritative DNS server on UDP 127.0.0.1: A records from `zone`, NXDOMAIN for
    the rest. It parses the query and builds the answer with struct (a real peer speaking DNS,
    independent of the client code under test)."""

    def __init__(self, zone: dict[str, list[str]]) -> None:
        self.zone = zone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            query_id, _flags, _qd = struct.unpack("!HHH", data[:6])
            pos, labels = 12, []
            while data[pos]:
                labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
                pos += 1 + data[pos]
            qtype, _qclass = struct.unpack("!HH", data[pos + 1:pos + 5])
            question = data[12:pos + 5]
            name = ".".join(labels).lower()
            self.queries.append(name)
            addresses = self.zone.get(name)
            rcode = 0 if addresses is not None else 3
            answers = [a for a in (addresses or []) if qtype == 1]
            reply = struct.pack("!HHHHHH", query_id, 0x8400 | 0x0100 | rcode, 1, len(answers),
                                0, 0) + question
            for address in answers:
                reply += struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(address)
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dns_server():
    server = DnsResponder({"portal.egov.test": ["10.20.30.40", "10.20.30.41"],
                           "mail.egov.test": ["10.20.30.50"]})
    yield server
    server.close()


def listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# -- HTTP -------------------------------------------------------------------------------------

def test_http_status_latency_content_match_and_redirects(http_url):
    ok = http_check(f"{http_url}/", match="e-government")
    assert ok.ok and ok.status == 200 and ok.latency_ms > 0 and ok.content_matched is True
    missing = http_check(f"{http_url}/", match="maintenance page")
    assert not missing.ok and missing.content_matched is False
    assert missing.error == "content did not match"
    regex = http_check(f"{http_url}/health", match=r"^OK\b", match_regex=True)
    assert regex.ok
    hops = http_check(f"{http_url}/hop/3")
    assert hops.ok and hops.redirects == 3 and hops.final_url == f"{http_url}/health"
    too_many = http_check(f"{http_url}/loop", max_redirects=4)
    assert not too_many.ok and too_many.redirects == 4 and "redirects" in too_many.error
    failing = http_check(f"{http_url}/fail")
    assert not failing.ok and failing.status == 500 and failing.error == "HTTP 500"
    assert http_check(f"{http_url}/fail", expect_status=[500, 503]).ok
    down = http_check(f"http://127.0.0.1:{closed_port()}/", timeout=2)
    assert not down.ok and down.error == "connection refused" and down.status is None


def test_check_service_json_for_an_http_url(http_url):
    report = run_service_check(f"{http_url}/fail")
    assert report["kind"] == "http" and report["status"] == 500 and report["ok"] is False
    assert [f["kind"] for f in report["findings"]] == ["service_down"]
    assert report["findings"][0]["category"] == "application"
    good = run_service_check(f"{http_url}/", options={"match": "e-government"})
    assert good["ok"] is True and good["findings"] == [] and good["latency_ms"] > 0


# -- TLS --------------------------------------------------------------------------------------

def test_certificate_expiring_in_10_days_fires_and_400_days_does_not(https_servers):
    short_port, short_cert = https_servers["short"]
    long_port, long_cert = https_servers["long"]
    short = tls_check("127.0.0.1", short_port, server_name="localhost", ca_file=str(short_cert))
    assert short.ok and short.chain_ok and short.hostname_ok
    assert 9 <= short.days_left <= 10
    assert "CN=localhost" in short.subject and "Monitord Test short" in short.issuer
    assert "localhost" in short.san and "127.0.0.1" in short.san

    report = run_service_check(f"127.0.0.1:{short_port}", "tls",
                               {"ca_file": str(short_cert), "server_name": "localhost"})
    assert report["days_left"] == short.days_left and report["subject"] == short.subject
    expiring = [f for f in report["findings"] if f["kind"] == "tls_cert_expiring"]
    assert len(expiring) == 1 and expiring[0]["severity"] == Severity.MEDIUM.value
    assert expiring[0]["evidence"]["days_left"] <= 10
    assert not any(f["kind"] in ("service_down", "tls_cert_invalid") for f in report["findings"])

    report = run_service_check(f"127.0.0.1:{long_port}", "tls",
                               {"ca_file": str(long_cert), "server_name": "localhost"})
    assert report["ok"] is True and report["days_left"] > 390 and report["findings"] == []


def test_chain_and_hostname_problems_are_separate_fields_and_raise_tls_cert_invalid(
        https_servers):
    port, cert = https_servers["long"]
    untrusted = tls_check("localhost", port)  # the system store does not know our CA
    assert untrusted.chain_ok is False and "self-signed" in untrusted.chain_error
    assert untrusted.hostname_ok is True and untrusted.hostname_error is None
    assert untrusted.up and not untrusted.ok and untrusted.days_left > 390

    wrong_name = tls_check("127.0.0.1", port, server_name="portal.egov.test",
                           ca_file=str(cert))
    assert wrong_name.chain_ok is True and wrong_name.hostname_ok is False
    assert "portal.egov.test" in wrong_name.hostname_error

    report = run_service_check(f"127.0.0.1:{port}", "tls")
    assert [f["kind"] for f in report["findings"]] == ["tls_cert_invalid"]
    assert report["findings"][0]["evidence"]["chain_error"]


def test_https_url_check_includes_the_certificate(https_servers):
    port, cert = https_servers["short"]
    report = run_service_check(f"https://localhost:{port}/health",
                               options={"ca_file": str(cert), "match": "OK"})
    assert report["ok"] is True and report["status"] == 200
    assert report["tls"]["days_left"] <= 10 and report["tls"]["issuer"]
    assert [f["kind"] for f in report["findings"]] == ["tls_cert_expiring"]
    refused = http_check(f"https://localhost:{port}/health")  # verification on by default
    assert not refused.ok and "certificate" in refused.error


def test_the_certificate_reader_agrees_with_openssl(https_servers):
    port, cert = https_servers["short"]
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    info = parse_certificate(der)
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(cert)],
                         capture_output=True, text=True, check=True).stdout
    expected = datetime.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    assert info.not_after == expected.replace(tzinfo=timezone.utc)
    assert info.dns_names == ("localhost",) and info.ip_addresses == ("127.0.0.1",)


# -- TCP and database ports -------------------------------------------------------------------

def test_tcp_open_and_closed():
    sock = listener()
    try:
        port = sock.getsockname()[1]
        up = tcp_connect("127.0.0.1", port)
        assert up.ok and up.latency_ms is not None
    finally:
        sock.close()
    down = tcp_connect("127.0.0.1", closed_port(), timeout=2)
    assert not down.ok and down.error == "connection refused"


def test_a_port_that_closes_mid_test_needs_n_misses_and_recovery_clears():
    sock = listener()
    port = sock.getsockname()[1]
    collector = ServiceCheckCollector("simpeg-db", f"127.0.0.1:{port}", "database",
                                      {"timeout": 2}, device="db-01")
    detector = ServiceDetector({"simpeg-db": ServicePolicy(failures=3)})
    start = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)

    def run(minute: int):
        records = collector.poll(start + timedelta(minutes=minute))
        return [f for r in records for f in detector.observe(r)]

    assert run(0) == []
    sock.close()  # the database goes away
    assert run(1) == [] and run(2) == []
    fired = run(3)
    assert len(fired) == 1
    finding = fired[0]
    assert finding.kind == "service_down" and finding.state is FindingState.FIRING
    assert finding.category is Category.DATABASE and finding.device == "db-01"
    assert finding.evidence["misses"] == 3 and finding.evidence["error"] == "connection refused"
    assert finding.dedup_key == "service_down:db-01:simpeg-db"
    again = run(4)
    assert again[0].dedup_key == finding.dedup_key and again[0].first_seen == finding.first_seen

    back = socket.socket()  # the database comes back on the same port
    back.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    back.bind(("127.0.0.1", port))
    back.listen()
    try:
        cleared = run(5)
    finally:
        back.close()
    assert [(f.kind, f.state) for f in cleared] == [("service_down", FindingState.CLEARED)]
    assert run(6) == []  # one miss after recovery is not an outage yet


def test_collector_records_samples_and_one_event():
    sock = listener()
    try:
        records = ServiceCheckCollector("portal", f"127.0.0.1:{sock.getsockname()[1]}").poll(
            datetime.now(timezone.utc))
    finally:
        sock.close()
    metrics = {r.metric for r in records if not isinstance(r, Event)}
    assert {"service_up", "service_latency_ms"} <= metrics
    events = [r for r in records if isinstance(r, Event)]
    assert len(events) == 1 and events[0].kind == "service_check"
    assert events[0].fields["ok"] is True and events[0].fields["check"] == "portal"


@pytest.mark.postgres
def test_the_postgresql_server_port_is_reachable():
    if not pg_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    report = run_service_check("127.0.0.1:5432", "database")
    assert report["ok"] is True and report["kind"] == "database" and report["findings"] == []


# -- DNS --------------------------------------------------------------------------------------

def test_dns_answers_from_a_real_responder(dns_server):
    server = f"127.0.0.1:{dns_server.port}"
    result = dns_check("portal.egov.test", server=server,
                       expected=["10.20.30.40", "10.20.30.41"])
    assert result.ok and result.rcode == "NOERROR"
    assert sorted(result.answers) == ["10.20.30.40", "10.20.30.41"]
    assert dns_server.queries[-1] == "portal.egov.test"

    hijacked = dns_check("portal.egov.test", server=server, expected=["10.20.30.40"])
    assert not hijacked.ok and hijacked.unexpected == ("10.20.30.41",)

    missing = dns_check("nope.egov.test", server=server)
    assert not missing.ok and missing.rcode == "NXDOMAIN" and missing.error == "NXDOMAIN"

    report = run_service_check("mail.egov.test", "dns",
                               {"server": server, "expected": ["10.20.30.99"]})
    assert report["answers"] == ["10.20.30.50"] and report["ok"] is False
    assert [f["kind"] for f in report["findings"]] == ["service_down"]


def test_dns_with_no_server_uses_the_system_resolver_and_etc_hosts():
    result = dns_check("localhost")
    assert result.ok and "127.0.0.1" in result.answers and result.server is None


def test_a_silent_dns_server_times_out():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        result = dns_check("portal.egov.test", server=f"127.0.0.1:{sock.getsockname()[1]}",
                           timeout=0.5)
    finally:
        sock.close()
    assert not result.ok and result.error == "timeout"


def test_query_encoding():
    assert encode_name("portal.egov.test") == b"\x06portal\x04egov\x04test\x00"
    with pytest.raises(ValueError):
        encode_name("a" * 64 + ".test")


# -- ICMP -------------------------------------------------------------------------------------

def test_ping_loopback():
    result = ping("127.0.0.1", count=3, timeout=1.0, interval=0.05)
    if result.method is None and result.error and "refused" in result.error:
        pytest.skip(f"ICMP not possible here: {result.error}")
    assert result.ok, result.error
    assert result.sent == 3 and result.received == 3 and result.loss_percent == 0.0
    assert 0 < result.rtt_min_ms <= result.rtt_avg_ms <= result.rtt_max_ms
    report = run_service_check("127.0.0.1", "icmp", {"count": 2, "interval": 0.05})
    assert report["ok"] is True and report["loss_percent"] == 0.0 and report["findings"] == []


# -- the detector on its own ------------------------------------------------------------------

def test_tls_severity_rises_as_expiry_nears_and_a_renewal_clears():
    detector = ServiceDetector(default=ServicePolicy(tls_warn_days=30, tls_critical_days=7))
    at = datetime(2026, 3, 2, tzinfo=timezone.utc)

    def seen(days_left: float, hour: int):
        event = Event("portal", "service_check", at + timedelta(hours=hour),
                      {"check": "portal-tls", "kind": "tls", "target": "portal:443", "ok": True,
                       "up": True, "days_left": days_left, "not_after": "2026-04-01"})
        return detector.observe(event)

    assert seen(45, 0) == []
    severities = [seen(days, i + 1)[0].severity for i, days in enumerate((25, 12, 5, -1))]
    assert severities == [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]
    renewed = seen(365, 9)
    assert [(f.kind, f.state) for f in renewed] == [("tls_cert_expiring",
                                                     FindingState.CLEARED)]


def test_category_is_configurable_per_check():
    detector = ServiceDetector(failures=1)
    detector.reconfigure(type("Config", (), {"checks": (
        type("Check", (), {"name": "sso", "category": "operating_system", "failures": 2})(),)})())
    event = Event("sso-host", "service_check", datetime(2026, 3, 2, tzinfo=timezone.utc),
                  {"check": "sso", "kind": "tcp", "target": "sso:22", "ok": False, "up": False,
                   "error": "timeout"})
    found = detector.observe(event)
    assert found and found[0].category is Category.OPERATING_SYSTEM


def test_a_certificate_expiring_in_5_days_is_a_high_finding_from_the_cli(https_servers):
    """The issue's peer: an HTTPS server whose certificate expires in 5 days, checked the way a
    technician would (`monitord check service URL --json`); under tls_critical_days (7) the
    finding is high. The CA file is the certificate itself, so only the expiry is wrong."""
    import json

    from tests.support import run_cli

    port, cert = https_servers["five"]
    result = run_cli("check", "service", f"https://localhost:{port}/", "--json",
                     env={"SSL_CERT_FILE": str(cert)})
    report = json.loads(result.stdout)
    assert report["status"] == 200 and report["tls"]["days_left"] <= 5
    assert report["tls"]["days_left"] > 4
    [expiring] = [f for f in report["findings"] if f["kind"] == "tls_cert_expiring"]
    assert expiring["severity"] == Severity.HIGH.value
    assert expiring["evidence"]["days_left"] <= 5


def test_a_name_added_to_etc_hosts_resolves_and_the_file_is_restored():
    """A DNS check with no server uses the system resolver, so a name an office puts in
    /etc/hosts is what it checks. The test adds one line and removes exactly that line."""
    import os
    import uuid

    hosts = Path("/etc/hosts")
    if not os.access(hosts, os.W_OK):
        pytest.skip("/etc/hosts is not writable here")
    name = f"portal-{uuid.uuid4().hex[:8]}.egov.test"
    line = f"127.0.0.42 {name}  # monitord test, removed at once\n"
    before = hosts.read_text()
    try:
        with hosts.open("a") as handle:
            handle.write(("" if before.endswith("\n") else "\n") + line)
        result = dns_check(name)
        assert result.ok and result.answers == ("127.0.0.42",), result
        report = run_service_check(name, "dns", {"expected": ["127.0.0.42"]})
        assert report["ok"] is True and report["findings"] == []
        wrong = run_service_check(name, "dns", {"expected": ["10.9.9.9"]})
        assert wrong["ok"] is False
        assert [f["kind"] for f in wrong["findings"]] == ["service_down"]
    finally:
        current = hosts.read_text()
        hosts.write_text(current.replace(line, "").replace("\n" + line.rstrip("\n"), ""))
    assert name not in hosts.read_text()
    assert not dns_check(name).ok
