"""A real `monitord run` with the trap receiver on, a real `snmptrap` (net-snmp) as the device:
a linkDown trap opens an incident in under one second, linkUp starts its clearing, and a trap
with the wrong community opens nothing -- on SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import sqlalchemy as sa

from monitord.demo_snmp import free_udp_port
from tests.support import DaemonProcess, write_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("snmptrap") is None,
                                 reason="net-snmp's snmptrap is not installed")]

COMMUNITY = "tr4p-c0mmunity"
EXTRA = """\
credentials:
  trap-v2: {type: snmp_v2c, community: {env: MONITORD_TEST_TRAP_COMMUNITY}}
traps:
  enabled: true
  listen: "127.0.0.1:%d"
  credentials: [trap-v2]
incidents: {resolve_hold: 1s}
"""
LINK = ["1.3.6.1.2.1.2.2.1.1.7", "i", "7", "1.3.6.1.2.1.2.2.1.7.7", "i", "1",
        "1.3.6.1.2.1.2.2.1.8.7", "i", "2", "1.3.6.1.2.1.31.1.1.1.1.7", "s", "ge-0/0/7"]


def _snmptrap(port: int, community: str, trap_oid: str) -> None:
    subprocess.run(["snmptrap", "-v2c", "-c", community, f"127.0.0.1:{port}", "", trap_oid,
                    *LINK], check=True, timeout=10, capture_output=True)


def _incident(engine: sa.Engine, key: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT number, status, clearing_since, evidence "
                                   "FROM incidents WHERE dedup_key = :key"),
                           {"key": key}).mappings().first()
    return dict(row) if row else None


def _wait_for(check, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def test_link_down_trap_opens_an_incident_within_a_second(tmp_path, db_url):
    port = free_udp_port()
    config, http_port = write_config(tmp_path, db_url, extra=EXTRA % port)
    daemon = DaemonProcess(config, http_port, tmp_path / "daemon.log",
                           env={"MONITORD_TEST_TRAP_COMMUNITY": COMMUNITY}).start()
    engine = sa.create_engine(db_url.replace("sqlite:///", "sqlite:///", 1))
    key = "interface_down:core-rtr:7"
    try:
        _snmptrap(port, "public", "1.3.6.1.6.3.1.1.5.3")  # wrong community: nothing
        sent = time.monotonic()
        _snmptrap(port, COMMUNITY, "1.3.6.1.6.3.1.1.5.3")
        took = _wait_for(lambda: _incident(engine, key) is not None, 5.0)
        assert took is not None, daemon.log()
        latency = time.monotonic() - sent
        assert latency < 1.0, f"trap to incident took {latency:.3f}s"
        incident = _incident(engine, key)
        assert incident["status"] == "open"
        _snmptrap(port, COMMUNITY, "1.3.6.1.6.3.1.1.5.4")  # linkUp
        assert _wait_for(lambda: _incident(engine, key)["clearing_since"] is not None
                         or _incident(engine, key)["status"] == "resolved", 5.0) is not None
        metrics = daemon.get("/metrics")
        assert 'monitord_snmp_traps_total{outcome="bad_community"} 1.0' in metrics
        assert 'monitord_snmp_traps_total{outcome="accepted"} 2.0' in metrics
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM incidents")).scalar() == 1
        assert COMMUNITY not in daemon.log()
    finally:
        engine.dispose()
        assert daemon.stop() == 0


def test_sighup_takes_new_devices_for_the_trap_receiver(tmp_path, sqlite_url):
    """After a reload that moves the device to another address, a trap from the old address is
    a spoof (unknown_source); moving it back makes the same trap count again."""
    import signal

    port = free_udp_port()
    config, http_port = write_config(tmp_path, sqlite_url, extra=EXTRA % port)
    daemon = DaemonProcess(config, http_port, tmp_path / "daemon.log",
                           env={"MONITORD_TEST_TRAP_COMMUNITY": COMMUNITY}).start()
    original = config.read_text()

    def reload(text: str, count: int) -> None:
        config.write_text(text)
        daemon.signal(signal.SIGHUP)
        assert _wait_for(lambda: f'monitord_config_reloads_total{{outcome="ok"}} {count}.0'
                         in daemon.get("/metrics"), 10) is not None, daemon.log()

    def outcome(name: str) -> float:
        for line in daemon.get("/metrics").splitlines():
            if line.startswith(f'monitord_snmp_traps_total{{outcome="{name}"}}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    try:
        reload(original.replace("address: 127.0.0.1", "address: 192.0.2.77"), 1)
        _snmptrap(port, COMMUNITY, "1.3.6.1.6.3.1.1.5.3")
        assert _wait_for(lambda: outcome("unknown_source") == 1.0, 5) is not None
        reload(original, 2)
        _snmptrap(port, COMMUNITY, "1.3.6.1.6.3.1.1.5.3")
        assert _wait_for(lambda: outcome("accepted") == 1.0, 5) is not None
    finally:
        assert daemon.stop() == 0
