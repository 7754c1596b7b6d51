"""Network and UPS detectors: pure functions of `snmp_poll` events with injected time. Each
kind fires and clears on the agreed dedup key (the trap receiver uses the same keys)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitord.collectors.snmp.collector import POLL_EVENT, PollResult, SnmpCollector
from monitord.collectors.snmp.poller import DeviceSnapshot, Interface
from monitord.collectors.snmp.rates import InterfaceRates
from monitord.config import SnmpThresholds
from monitord.detectors.host import HostThresholdDetector
from monitord.detectors.network import NetworkDetector
from monitord.detectors.ups import UpsDetector
from monitord.records import Event

T0 = datetime(2026, 12, 6, 1, 0, tzinfo=timezone.utc)


def poll(device, i, **kw) -> Event:
    result = PollResult(ok=kw.pop("ok", True), reason=kw.pop("reason", None), **kw)
    return Event(device, POLL_EVENT, T0 + timedelta(minutes=i), {"result": result})


def iface(oper="up", admin="up", **kw) -> InterfaceRates:
    return InterfaceRates(3, "Gi0/3", admin, oper, kw.pop("speed", 1_000_000_000), **kw)


def kinds(findings):
    return [(f.kind, f.state.value, f.dedup_key) for f in findings]


def test_unreachable_after_n_polls_then_clears():
    d = NetworkDetector(SnmpThresholds(unreachable_after=3))
    assert d.observe(poll("sw1", 0, ok=False, reason="timeout")) == []
    assert d.observe(poll("sw1", 1, ok=False, reason="timeout")) == []
    found = d.observe(poll("sw1", 2, ok=False, reason="timeout"))
    assert kinds(found) == [("device_unreachable", "firing", "device_unreachable:sw1")]
    assert found[0].evidence["reason"] == "timeout" and found[0].evidence["failed_polls"] == 3
    assert kinds(d.observe(poll("sw1", 3))) == [
        ("device_unreachable", "cleared", "device_unreachable:sw1")]


def test_wrong_credentials_are_not_unreachable():
    d = NetworkDetector(SnmpThresholds(unreachable_after=1))
    found = d.observe(poll("ups1", 0, ok=False, reason="auth"))
    assert kinds(found) == [("snmp_credentials_rejected", "firing",
                             "snmp_credentials_rejected:ups1")]
    assert kinds(d.observe(poll("ups1", 1))) == [
        ("snmp_credentials_rejected", "cleared", "snmp_credentials_rejected:ups1")]


def test_interface_down_only_when_admin_up():
    d = NetworkDetector()
    assert d.observe(poll("sw1", 0, interfaces=(iface(oper="down", admin="down"),))) == []
    found = d.observe(poll("sw1", 1, interfaces=(iface(oper="down"),)))
    assert kinds(found) == [("interface_down", "firing", "interface_down:sw1:3")]
    assert found[0].subject == "Gi0/3"
    assert ("interface_down", "cleared", "interface_down:sw1:3") in kinds(
        d.observe(poll("sw1", 2, interfaces=(iface(),))))


def test_flapping_within_window():
    d = NetworkDetector(SnmpThresholds(flap_changes=4, flap_window=timedelta(minutes=15)))
    seen = []
    for i, oper in enumerate(["up", "down", "up", "down", "up"]):
        seen += kinds(d.observe(poll("sw1", i, interfaces=(iface(oper=oper),))))
    assert ("interface_flapping", "firing", "interface_flapping:sw1:3") in seen
    quiet = []
    for i in range(5, 25):
        quiet += kinds(d.observe(poll("sw1", i, interfaces=(iface(),))))
    assert ("interface_flapping", "cleared", "interface_flapping:sw1:3") in quiet


def test_errors_and_discards_need_consecutive_polls_and_a_rate():
    d = NetworkDetector(SnmpThresholds(consecutive=2, interface_errors_per_second=1.0))
    assert d.observe(poll("r1", 0, interfaces=(iface(errors_per_s=5.0),))) == []
    # no rate (restart/first poll): judged neither way
    assert d.observe(poll("r1", 1, interfaces=(iface(errors_per_s=None),))) == []
    assert kinds(d.observe(poll("r1", 2, interfaces=(iface(errors_per_s=5.0),)))) == [
        ("interface_errors", "firing", "interface_errors:r1:3")]
    found = d.observe(poll("r1", 3, interfaces=(iface(errors_per_s=0.0,
                                                       discards_per_s=50.0),)))
    assert ("interface_errors", "cleared", "interface_errors:r1:3") in kinds(found)
    assert kinds(d.observe(poll("r1", 4, interfaces=(iface(discards_per_s=50.0),)))) == [
        ("interface_discards", "firing", "interface_discards:r1:3")]


def test_utilisation_must_be_sustained():
    d = NetworkDetector(SnmpThresholds(utilisation_percent=90,
                                       utilisation_sustained=timedelta(minutes=5)))
    hot = iface(in_bps=950e6, out_bps=10e6)
    found = []
    for i in range(5):
        assert d.observe(poll("r1", i, interfaces=(hot,))) == []  # 0..4 minutes
    found = d.observe(poll("r1", 5, interfaces=(hot,)))
    assert kinds(found) == [("interface_utilisation_high", "firing",
                             "interface_utilisation_high:r1:3")]
    assert found[0].first_seen == T0
    assert kinds(d.observe(poll("r1", 6, interfaces=(iface(in_bps=1e6, out_bps=1e6),)))) == [
        ("interface_utilisation_high", "cleared", "interface_utilisation_high:r1:3")]


def test_reboot_fires_once_and_clears():
    d = NetworkDetector()
    found = d.observe(poll("r1", 0, restarted=True, uptime_s=12.0))
    assert kinds(found) == [("device_rebooted", "firing", "device_rebooted:r1")]
    assert kinds(d.observe(poll("r1", 1, uptime_s=72.0))) == [
        ("device_rebooted", "cleared", "device_rebooted:r1")]


def test_temperature_high():
    d = NetworkDetector(SnmpThresholds(temperature_c=60, consecutive=1))
    found = d.observe(poll("r1", 0, temperatures={"Routing Engine 0": 71.0, "FPC": 40.0}))
    assert kinds(found) == [("temperature_high", "firing",
                             "temperature_high:r1:Routing Engine 0")]


UPS_OK = {"battery_status": "normal", "charge_percent": 100, "runtime_minutes": 40,
          "output_load_percent": 30, "input_voltage_v": 230, "output_voltage_v": 230,
          "on_battery": False, "battery_replace": False, "overload": None,
          "temperature_c": 25, "input_frequency_hz": 50}


@pytest.mark.parametrize("change,kind", [
    ({"on_battery": True}, "ups_on_battery"),
    ({"battery_status": "low"}, "ups_battery_low"),
    ({"charge_percent": 20}, "ups_battery_low"),
    ({"runtime_minutes": 4}, "ups_runtime_low"),
    ({"output_load_percent": 105}, "ups_overload"),
    ({"overload": True}, "ups_overload"),
    ({"battery_replace": True}, "ups_battery_replace"),
    ({"input_voltage_v": 150}, "ups_input_voltage_out_of_range"),
    ({"input_voltage_v": 280}, "ups_input_voltage_out_of_range"),
])
def test_ups_rules(change, kind):
    d = UpsDetector()
    assert d.observe(poll("ups1", 0, ups=UPS_OK)) == []
    found = d.observe(poll("ups1", 1, ups={**UPS_OK, **change}))
    assert kinds(found) == [(kind, "firing", f"{kind}:ups1")]
    assert kinds(d.observe(poll("ups1", 2, ups=UPS_OK))) == [(kind, "cleared", f"{kind}:ups1")]


def test_ups_missing_values_never_fire_or_clear():
    d = UpsDetector()
    d.observe(poll("ups1", 0, ups={**UPS_OK, "on_battery": True}))
    assert d.observe(poll("ups1", 1, ups={k: None for k in UPS_OK})) == []


def test_server_over_snmp_gets_the_host_kinds():
    """A polled server's CPU/memory/disk become host_* samples: the host detector gives the
    same kinds and keys as for the local host."""
    collector = SnmpCollector("srv1", lambda m: None)
    snap = DeviceSnapshot("srv1", cpu_percent=97.0, memory_percent=95.0, uptime_ticks=100,
                          storage=[{"descr": "/var", "size_bytes": 10, "used_bytes": 10,
                                    "used_percent": 100.0}],
                          interfaces=[Interface(1, "eth0", oper_status="up",
                                                admin_status="up")])
    records = collector.records(snap, T0)
    host = HostThresholdDetector(consecutive=1)
    found = [f for r in records for f in host.observe(r)]
    assert sorted(f.dedup_key for f in found) == ["cpu_high:srv1:", "disk_full:srv1:/var",
                                                  "memory_high:srv1:"]
    assert records[0].kind == POLL_EVENT and records[0].fields["result"].ok


def test_failed_poll_is_an_event_not_an_exception():
    collector = SnmpCollector("sw9", lambda m: None)
    records = collector.records(DeviceSnapshot("sw9", error="timeout"), T0)
    assert len(records) == 1 and records[0].fields["result"].reason == "timeout"


def test_reload_forgets_removed_devices_metrics(monkeypatch):
    from prometheus_client import CollectorRegistry, generate_latest

    from monitord.collectors.snmp.collector import SnmpMetrics, build_collectors
    from monitord.config import Config
    registry = CollectorRegistry()
    metrics = SnmpMetrics(registry)
    for name in ("sw-old", "sw-kept"):
        metrics.observe(DeviceSnapshot(name, cpu_percent=5.0), ())
    monkeypatch.setenv("T_SNMP_COMM", "public")
    config = Config.model_validate({
        "sites": [{"name": "hq"}],
        "credentials": {"c": {"type": "snmp_v2c", "community": {"env": "T_SNMP_COMM"}}},
        "devices": [{"name": "sw-kept", "address": "127.0.0.1", "site": "hq",
                     "kind": "switch", "credential": "c"}]})
    collectors = build_collectors(config, metrics)
    assert [c.device for c in collectors] == ["sw-kept"]
    text = generate_latest(registry).decode()
    assert 'monitord_snmp_cpu_percent{device="sw-kept"} 5.0' in text
    assert 'monitord_snmp_cpu_percent{device="sw-old"}' not in text
