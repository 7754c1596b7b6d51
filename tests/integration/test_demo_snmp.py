"""The demo's simulated devices: snmpsim serving the project's own recordings
(config/snmpsim/) to a real daemon on the demo configuration -- the switches and the UPS are
polled, and the UPS on battery and the pulled cable on sw-lantai2 port 5 open incidents. Without
snmpsim the demo configuration is still valid and simply has no SNMP devices."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from monitord.config_loader import load_config
from monitord.demo import write_demo_config
from monitord.demo_snmp import DEVICES, SimulatedDevices, snmpsim_python
from tests.support import DaemonProcess, free_port, run_cli


def test_without_snmpsim_the_demo_says_why_and_has_no_snmp_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("MONITORD_SNMPSIM_PYTHON", str(tmp_path / "no-such-python"))
    with SimulatedDevices(tmp_path) as simulated:
        assert not simulated.running and "scripts/snmpsim.sh" in simulated.reason
        assert simulated.config_block() == ""
        config = load_config(write_demo_config(tmp_path / "demo", free_port(), free_port(),
                                               simulated.config_block()))
    assert config.devices == ()


def test_recordings_are_sorted_and_well_formed():
    root = Path(__file__).resolve().parents[2] / "config" / "snmpsim"
    for _name, _kind, recording, _parent in DEVICES:
        lines = (root / f"{recording}.snmprec").read_text().splitlines()
        oids = [tuple(int(x) for x in line.split("|", 2)[0].split(".")) for line in lines]
        assert oids == sorted(oids) and len(set(oids)) == len(oids), recording
        assert all(re.fullmatch(r"[\d.]+\|(2|4|4x|6|64|65|66|67|70)\|.*", line)
                   for line in lines), recording


@pytest.mark.slow
@pytest.mark.skipif(snmpsim_python() is None, reason="snmpsim is not installed "
                    "(scripts/snmpsim.sh; scripts/test-setup.sh runs it)")
def test_demo_polls_the_simulated_switches_and_ups_and_opens_snmp_incidents(tmp_path):
    port = free_port()
    with SimulatedDevices(tmp_path) as simulated:
        assert simulated.running, simulated.reason
        config = write_demo_config(tmp_path / "demo", port, free_port(),
                                   simulated.config_block())
        daemon = DaemonProcess(config, port, tmp_path / "demo.log")
        try:
            daemon.start()
            deadline = time.monotonic() + 60
            wanted = {("ups_on_battery", "ups-ruang-server"), ("interface_down", "sw-lantai2")}
            while True:
                listed = run_cli("incidents", "list", "--json", "--config", str(config))
                incidents = json.loads(listed.stdout or "[]")
                found = [(i["kind"], i["device"]) for i in incidents]
                text = daemon.get("/metrics")
                if wanted <= set(found) and \
                        'monitord_snmp_ups_on_battery{device="ups-ruang-server"} 1.0' in text:
                    break
                assert time.monotonic() < deadline, (found, listed.stderr[-2000:],
                                                     daemon.log()[-3000:])
                time.sleep(1)
            for device in ("sw-lantai1", "sw-lantai2", "ups-ruang-server"):
                assert f'monitord_snmp_uptime_seconds{{device="{device}"}}' in text, device
            # one port down (the pulled cable on port 5, not the administratively shut port 7)
            [port] = [i for i in incidents if i["kind"] == "interface_down"]
            assert port["device"] == "sw-lantai2" and port["subject"] in ("Gi0/5", "5"), port
            assert not any(kind == "device_unreachable" for kind, _device in found), found
            assert daemon.stop() == 0
        finally:
            daemon.kill()


@pytest.mark.skipif(snmpsim_python() is None, reason="snmpsim is not installed "
                    "(scripts/snmpsim.sh; scripts/test-setup.sh runs it)")
def test_a_relative_data_dir_like_make_demo_still_serves_the_devices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `make demo` passes --data-dir monitord-demo
    with SimulatedDevices(Path("monitord-demo")) as simulated:
        assert simulated.running, simulated.reason
        assert f"snmp_port: {simulated.port}" in simulated.config_block()

