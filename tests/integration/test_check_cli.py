"""`monitord check host|service --json`: the daemon's collector and detector code, run once."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

from tests.support import run_cli


def _cli(tmp_path: Path, *args: str):
    config = tmp_path / "monitord.yaml"
    config.write_text("language: en\ndetectors: {host: {disk_used_percent: 1}}\n")
    return run_cli("check", *args, "--config", str(config), env={"LANG": "C.UTF-8"})


def test_check_host_reports_the_machine_and_the_findings_it_would_raise(tmp_path: Path):
    result = _cli(tmp_path, "host", "--json")
    report = json.loads(result.stdout)
    for key in ("cpu", "memory", "swap", "disks", "load", "processes", "ports"):
        assert key in report, key
    root = next(d for d in report["disks"] if d["mount"] == "/")
    assert 0 < root["used_percent"] < 100 and "inodes_used_percent" in root
    assert any(f["kind"] == "disk_full" for f in report["findings"])  # threshold 1 %
    assert result.returncode == 1 and report["ok"] is False


def test_check_service_http_up_and_tcp_down(tmp_path: Path):
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html>Layanan SIMPEG aktif</html>"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        up = _cli(tmp_path, "service", url, "--match", "SIMPEG", "--json")
        report = json.loads(up.stdout)
        assert up.returncode == 0 and report["ok"] and report["status"] == 200
        assert report["latency_ms"] is not None and report["findings"] == []
    finally:
        server.shutdown()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = _cli(tmp_path, "service", f"127.0.0.1:{port}", "--kind", "tcp", "--json")
    report = json.loads(down.stdout)
    assert down.returncode == 1 and not report["ok"]
    assert [f["kind"] for f in report["findings"]] == ["service_down"]
