"""A real Prometheus scrapes a real `monitord run`, and promtool accepts the /metrics text.

* Prometheus (Debian's /usr/bin/prometheus) scrapes 127.0.0.1:PORT/metrics every second; its
  query API must then return monitord_build_info{version=monitord.__version__}, the incident
  opened by a posted finding in monitord_incidents_open, and up{job="monitord"} == 1.
* `promtool check metrics` reads the /metrics text from stdin: a parse error (exit 1, "error
  while linting") fails the test; lint findings (exit 3) are printed and reported as warnings.

The tests are skipped only when the Prometheus binaries are not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import pytest

import monitord
from tests.support import DaemonProcess, finding, free_port, write_config

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
JOB = "monitord"
QUERY_TIMEOUT_S = 30.0

# The finding's category/severity pair is one the host detector never produces, so the series
# checked below can only come from the finding this test posts.
CATEGORY, SEVERITY = "network_security", "critical"

pytestmark = pytest.mark.slow


def _needs(binary: str, package: str):
    return pytest.mark.skipif(not os.access(binary, os.X_OK),
                              reason=f"{binary} is not installed (Debian package '{package}')")


@pytest.fixture
def daemon(tmp_path: Path, sqlite_url: str):
    """`monitord run` on SQLite, with the host collector on so that every metric family
    (histogram included) has samples; one incident opened through the findings API."""
    config, port = write_config(tmp_path, sqlite_url, host_collector=True)
    proc = DaemonProcess(config, port, tmp_path / "monitord.log")
    try:
        proc.start()
        reply = proc.post_findings([finding("prometheus-it", category=CATEGORY,
                                            severity=SEVERITY)])
        assert [r["action"] for r in reply["results"]] == ["opened"], reply
        yield proc
        returncode = proc.stop()
    finally:
        proc.kill()  # no-op after a clean stop
    assert returncode == 0, f"monitord exited {returncode} on SIGTERM:\n{proc.log()}"


class Prometheus:
    def __init__(self, base: str, proc: subprocess.Popen, log_path: Path) -> None:
        self.base = base
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, expr: str) -> list[dict]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.loads(response.read())
        assert data["status"] == "success", data
        assert data["data"]["resultType"] == "vector", data
        return data["data"]["result"]

    def wait_for(self, expr: str, accept, what: str) -> list[dict]:
        """Poll the query API until `accept(result)` holds (QUERY_TIMEOUT_S at most)."""
        deadline = time.monotonic() + QUERY_TIMEOUT_S
        result: list[dict] | str = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
            try:
                result = self.query(expr)
                if accept(result):
                    return result
            except (OSError, ValueError) as exc:
                result = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        targets = self._targets()
        pytest.fail(f"{what}: {expr!r} did not match within {QUERY_TIMEOUT_S:.0f}s; last "
                    f"answer {result!r}\ntargets: {targets}\nprometheus log:\n{self.log()[-4000:]}")

    def _targets(self) -> str:
        try:
            with urllib.request.urlopen(f"{self.base}/api/v1/targets", timeout=5) as response:
                return response.read().decode()
        except OSError as exc:
            return f"unavailable ({exc})"


@pytest.fixture
def prometheus(tmp_path: Path, daemon: DaemonProcess):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip(f"{PROMETHEUS} is not installed (Debian package 'prometheus')")
    web_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""\
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: {JOB}
            metrics_path: /metrics
            static_configs:
              - targets: ["127.0.0.1:{daemon.port}"]
        """))
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{web_port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Prometheus(f"http://127.0.0.1:{web_port}", proc, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited {proc.returncode}:\n{server.log()}")
            try:
                with urllib.request.urlopen(f"{server.base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus did not become ready:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_prometheus_scrapes_build_info_open_incidents_and_up(prometheus: Prometheus,
                                                             daemon: DaemonProcess):
    version = monitord.__version__
    [build] = prometheus.wait_for(
        "monitord_build_info",
        lambda result: any(s["metric"].get("version") == version for s in result),
        f"monitord_build_info with version={version}")
    assert build["metric"]["version"] == version
    assert build["metric"]["job"] == JOB
    assert build["metric"]["instance"] == f"127.0.0.1:{daemon.port}"
    assert float(build["value"][1]) == 1.0

    selector = f'monitord_incidents_open{{category="{CATEGORY}",severity="{SEVERITY}"}}'
    [incidents] = prometheus.wait_for(
        selector, lambda result: len(result) == 1 and float(result[0]["value"][1]) == 1.0,
        "the opened incident")
    assert incidents["metric"]["job"] == JOB

    [up] = prometheus.wait_for(
        f'up{{job="{JOB}"}}',
        lambda result: len(result) == 1 and float(result[0]["value"][1]) == 1.0,
        "the scrape target being up")
    assert up["metric"]["instance"] == f"127.0.0.1:{daemon.port}"


@_needs(PROMTOOL, "prometheus")
def test_metrics_text_passes_promtool_check_metrics(daemon: DaemonProcess):
    deadline = time.monotonic() + 15  # let the host collector run so histograms have samples
    text = daemon.get("/metrics")
    while "monitord_collector_run_duration_seconds_count" not in text:
        assert time.monotonic() < deadline, f"no collector run in /metrics:\n{text}"
        time.sleep(0.3)
        text = daemon.get("/metrics")
    assert f'monitord_incidents_open{{category="{CATEGORY}",severity="{SEVERITY}"}} 1.0' in text

    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
    output = (check.stdout + check.stderr).strip()
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    # promtool: 0 = clean, 3 = lint problems only, anything else (1) = the text did not parse.
    assert not errors and check.returncode in (0, 3), \
        f"promtool check metrics failed (exit {check.returncode}):\n{output}\n--- text:\n{text}"
    if check.returncode == 3 or lines:
        report = "promtool check metrics lint warnings:\n" + "\n".join(lines)
        print(report)
        warnings.warn(report, stacklevel=1)
