"""Helpers for tests: write configs, start a real `monitord run` process, talk to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MONITORD = [sys.executable, "-m", "monitord"]


def pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(directory: Path, db_url: str, extra: str = "", port: int | None = None,
                 host_collector: bool = False) -> tuple[Path, int]:
    """A minimal valid config; `extra` is appended YAML (sections not already given)."""
    port = port or free_port()
    text = textwrap.dedent(f"""\
        language: en
        logging: {{level: debug}}
        sites:
          - name: hq
            description: Kantor Dinas Kominfo
        devices:
          - name: core-rtr
            address: 127.0.0.1
            site: hq
            kind: router
        storage: {{url: "{db_url}"}}
        http: {{listen: "127.0.0.1:{port}"}}
        collectors:
          host: {{enabled: {str(host_collector).lower()}, interval: 1s, jitter: 0s}}
        notifications:
          channels:
            - name: noc-log
              type: log
        """) + textwrap.dedent(extra)
    path = directory / "monitord.yaml"
    path.write_text(text)
    return path, port


def finding(key: str, state: str = "firing", **over: Any) -> dict[str, Any]:
    data = {"kind": "interface_down", "category": "network", "severity": "high",
            "state": state, "dedup_key": key, "summary": f"problem {key}", "device": "core-rtr"}
    data.update(over)
    return data


@dataclass
class DaemonProcess:
    config: Path
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self, wait: float = 30.0) -> "DaemonProcess":
        env = {**os.environ, **self.env}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*MONITORD, "run", "--config", str(self.config)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/healthz", timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daemon did not come up:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 5) -> str:
        with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
            return response.read().decode()

    def post_findings(self, findings: list[dict], timeout: float = 30,
                      token: str | None = None) -> dict:
        request = urllib.request.Request(
            self.url("/api/v1/findings"), data=json.dumps({"findings": findings}).encode(),
            headers={"content-type": "application/json",
                     **({"authorization": f"Bearer {token}"} if token else {})},
            method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess:
    return subprocess.run([*MONITORD, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def shared_dir() -> Path:
    """The team's shared data (pcaps, SNMP recordings): $MONITORD_SHARED, else ../shared beside
    the checkout, else /work/shared (where CI's clean clone may live elsewhere)."""
    candidates = [os.environ.get("MONITORD_SHARED"),
                  Path(__file__).resolve().parents[2] / "shared", "/work/shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "pcaps").is_dir():
            return Path(candidate)
    return Path(__file__).resolve().parents[2] / "shared"
