"""The demo shows a security incident too: the capture the project makes itself
(scripts/make_demo_pcap.py -> config/demo-portscan.pcap) is replayed into the daemon's traffic
detectors at start and a port_scan incident in the network_security SOP opens, with the same
finding `analyze-pcap` gives for the file. No root needed: nothing is captured live."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from monitord.demo import write_demo_config
from tests.support import DaemonProcess, free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_demo_capture_is_what_the_script_makes(tmp_path: Path):
    out = tmp_path / "again.pcap"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_pcap.py"), str(out)],
                   check=True, capture_output=True, timeout=60)
    assert out.read_bytes() == (ROOT / "config" / "demo-portscan.pcap").read_bytes()


def test_demo_opens_a_port_scan_incident_from_its_own_capture(tmp_path: Path):
    port = free_port()
    config = write_demo_config(tmp_path / "demo", port, free_port())
    pcap = tmp_path / "demo" / "demo-portscan.pcap"
    offline = json.loads(run_cli("analyze-pcap", str(pcap), "--json").stdout)
    scans = [f for f in offline if f["kind"] == "port_scan"]
    assert [(f["attacker"], f["victim"]) for f in scans] == [("198.51.100.66", "10.20.30.5")]
    daemon = DaemonProcess(config, port, tmp_path / "demo.log")
    try:
        daemon.start()
        deadline = time.monotonic() + 30
        while True:
            listed = run_cli("incidents", "list", "--json", "--config", str(config))
            found = [i for i in json.loads(listed.stdout or "[]") if i["kind"] == "port_scan"]
            if found:
                break
            assert time.monotonic() < deadline, daemon.log()[-3000:]
            time.sleep(0.5)
        shown = json.loads(run_cli("incidents", "show", found[0]["number"], "--json",
                                   "--config", str(config)).stdout)
        assert shown["category"] == "network_security"
        assert shown["evidence"]["attacker"] == "198.51.100.66"
        assert shown["evidence"]["victim"] == "10.20.30.5"
        assert shown["evidence"]["scan_type"] == "SYN"
        deadline = time.monotonic() + 10  # the end-of-file report carries the full count
        while shown["evidence"].get("ports") != 120 and time.monotonic() < deadline:
            time.sleep(0.5)
            shown = json.loads(run_cli("incidents", "show", found[0]["number"], "--json",
                                       "--config", str(config)).stdout)
        assert shown["evidence"]["ports"] == 120, shown["evidence"]
        assert "capture replay: 247 packets" in daemon.log()
        assert daemon.stop() == 0
    finally:
        daemon.kill()
