"""The demo's configuration shows host health and one service check: a real daemon on it
exports this host's disk and CPU values and the demo-portal HTTP check (against the daemon's
own /healthz) on /metrics, and opens the disk_full incident the 1% threshold promises."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from monitord.demo import write_demo_config
from tests.support import DaemonProcess, free_port, run_cli


def test_demo_config_shows_host_health_and_a_service_check(tmp_path: Path):
    port = free_port()
    config = write_demo_config(tmp_path / "demo", port, free_port())
    daemon = DaemonProcess(config, port, tmp_path / "demo.log")
    try:
        daemon.start()
        deadline = time.monotonic() + 40
        while True:
            text = daemon.get("/metrics")
            up = re.search(r'^monitord_service_check_up\{check="demo-portal",device="127\.0\.0\.1",'
                           r'kind="http"\} (\S+)$', text, re.M)
            disk = re.search(r'^monitord_host_disk_used_percent\{device="[^"]+",fstype="[^"]+",'
                             r'mount="/"\} (\S+)$', text, re.M)
            listed = run_cli("incidents", "list", "--json", "--config", str(config))
            kinds = [i["kind"] for i in json.loads(listed.stdout or "[]")]
            if up and disk and "disk_full" in kinds:
                break
            assert time.monotonic() < deadline, (text[-3000:], kinds, daemon.log()[-3000:])
            time.sleep(1)
        assert float(up.group(1)) == 1.0
        assert 1.0 < float(disk.group(1)) <= 100.0
        assert re.search(r'^monitord_host_cpu_percent\{device="[^"]+"\} ', text, re.M)
        assert re.search(r'^monitord_service_check_latency_ms\{check="demo-portal"', text, re.M)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
