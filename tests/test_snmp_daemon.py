"""The daemon polls configured SNMP devices (snmpsim serving real recordings) and opens the
incidents the network, UPS and host detectors decide, with metrics for the polled values;
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

from tests.snmp_support import free_udp_port, snmpsim  # noqa: F401
from tests.support import DaemonProcess, free_port, run_cli


def config_text(db_url: str, http_port: int, sim_port: int, dead_port: int) -> str:
    return f"""\
language: en
sites: [{{name: hq}}]
credentials:
  sim-linux: {{type: snmp_v2c, community: {{env: T_COMM_LINUX}}}}
  sim-apc: {{type: snmp_v2c, community: {{env: T_COMM_APC}}}}
  sim-none: {{type: snmp_v1, community: {{env: T_COMM_APC}}}}
devices:
  - {{name: srv-linux, address: 127.0.0.1, snmp_port: {sim_port}, site: hq, kind: server,
     credential: sim-linux}}
  - {{name: ups-apc, address: 127.0.0.1, snmp_port: {sim_port}, site: hq, kind: ups,
     credential: sim-apc}}
  - {{name: sw-gone, address: 127.0.0.1, snmp_port: {dead_port}, site: hq, kind: switch,
     credential: sim-none}}
storage: {{url: "{db_url}"}}
http: {{listen: "127.0.0.1:{http_port}"}}
collectors:
  host: {{enabled: false}}
snmp:
  interval: 2s
  jitter: 0s
  timeout: 0.5s
  retries: 0
  thresholds: {{unreachable_after: 2, ups_runtime_minutes: 300}}
notifications:
  channels: [{{name: noc-log, type: log}}]
"""


def test_daemon_polls_devices_and_opens_incidents(tmp_path, db_url, snmpsim):
    http_port = free_port()
    path = tmp_path / "monitord.yaml"
    path.write_text(config_text(db_url, http_port, snmpsim.port, free_udp_port()))
    env = {"T_COMM_LINUX": "linux_powermon", "T_COMM_APC": "apc_smx750"}
    daemon = DaemonProcess(path, http_port, tmp_path / "daemon.log", env).start()
    try:
        wanted = {("interface_down", "srv-linux"), ("disk_full", "srv-linux"),
                  ("ups_runtime_low", "ups-apc"), ("device_unreachable", "sw-gone")}
        seen: set = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not wanted <= seen:
            time.sleep(1)
            listing = run_cli("incidents", "list", "--json", "--config", str(path), env=env)
            assert listing.returncode == 0, listing.stderr
            seen = {(i["kind"], i["device"]) for i in json.loads(listing.stdout)}
        assert wanted <= seen, (seen, daemon.log()[-3000:])
        metrics = daemon.get("/metrics")
        assert 'monitord_snmp_ups_charge_percent{device="ups-apc"} 100.0' in metrics
        assert 'monitord_snmp_poll_errors_total{device="sw-gone",reason="timeout"}' in metrics
        assert 'monitord_snmp_if_oper_up{device="srv-linux",ifIndex="1",ifName="lo"} 1.0' \
            in metrics
        assert "monitord_snmp_poll_duration_seconds_count" in metrics
        assert "linux_powermon" not in metrics and "apc_smx750" not in metrics  # communities
        assert "linux_powermon" not in daemon.log()
    finally:
        daemon.stop()
