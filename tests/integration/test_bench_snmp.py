"""bench/snmp_poll.py still runs end to end (a tiny run: 6 devices, 1 round), so an API change
in the poller, the collector or the metrics cannot silently break the benchmark. Nothing here
is timed: the figures are the benchmark's business (bench/README.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.snmpd_ns import snmpd_ns_skip_reason

ROOT = Path(__file__).resolve().parents[2]
EXPORTER = "/usr/bin/prometheus-snmp-exporter"


@pytest.mark.slow
@pytest.mark.skipif(snmpd_ns_skip_reason() is not None, reason=snmpd_ns_skip_reason() or "")
@pytest.mark.skipif(not os.path.exists(EXPORTER), reason="prometheus-snmp-exporter missing")
def test_snmp_poll_benchmark_runs_and_prints_its_ratio_last():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "snmp_poll.py"), "--devices", "6",
         "--namespaces", "2", "--interfaces", "4", "--rounds", "1", "--concurrency", "3"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    # both pollers saw every interface of every device (4 veth + lo + uplink)
    assert any(re.search(r"round 1 exporter: .* 6 interfaces/device", x) for x in lines), lines
    assert any(re.search(r"round 1 monitord: .* 6 interfaces/device", x) for x in lines), lines
    assert re.fullmatch(r"ratio monitord/exporter CPU per device: \d+\.\d\dx", lines[-1]), lines
