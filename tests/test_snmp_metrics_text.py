"""The SNMP interface families rendered as text (`SnmpMetrics.render_text`, appended to /metrics
by `Metrics.exposition`): the same samples prometheus_client would have written, hostile
interface names escaped, the whole body accepted by Prometheus' own `promtool check metrics`
and parsed back by prometheus_client."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitord.collectors.snmp.collector import SnmpMetrics
from monitord.collectors.snmp.poller import DeviceSnapshot, Interface
from monitord.collectors.snmp.rates import InterfaceRates
from monitord.metrics import Metrics

HOSTILE = 'uplink "core"\\ back\nslash {x="1"} # HELP'


def _snapshot(device: str, names: list[str]) -> DeviceSnapshot:
    interfaces = [
        Interface(if_index=i + 1, if_name=name, if_descr=f"descr {i}", admin_status="up",
                  oper_status="up" if i % 2 == 0 else "down", speed_bps=1_000_000_000 * (i + 1),
                  in_octets=2**64 - 1 - i, out_octets=i * 1000, in_errors=i, out_errors=None,
                  in_discards=0, out_discards=7)
        for i, name in enumerate(names)]
    return DeviceSnapshot(device=device, uptime_ticks=12345, interfaces=interfaces)


def _rates(snapshot: DeviceSnapshot) -> tuple[InterfaceRates, ...]:
    return tuple(InterfaceRates(i.if_index, i.if_name or "", i.admin_status, i.oper_status,
                                i.speed_bps, in_bps=1234.5 * i.if_index,
                                out_bps=None if i.if_index == 2 else 0.25)
                 for i in snapshot.interfaces)


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics()
    snmp = SnmpMetrics(m.registry)
    m.text_sources.append(snmp.render_text)
    a = _snapshot("sw-a", ["Gi0/1", HOSTILE, "Gi0/3"])
    b = _snapshot('sw-"b"', ["eth0"])
    snmp.observe(a, _rates(a))
    snmp.observe(b, ())
    m.snmp = snmp  # type: ignore[attr-defined]
    return m


def test_interface_samples_are_exactly_the_polled_values(metrics):
    samples = _samples(metrics.snmp.render_text())
    a = _snapshot("sw-a", ["Gi0/1", HOSTILE, "Gi0/3"])
    for iface in a.interfaces:
        labels = tuple(sorted({"device": "sw-a", "ifIndex": str(iface.if_index),
                               "ifName": iface.if_name}.items()))
        assert samples[("monitord_snmp_if_oper_up", labels)] == \
            (1.0 if iface.oper_status == "up" else 0.0)
        assert samples[("monitord_snmp_if_admin_up", labels)] == 1.0
        assert samples[("monitord_snmp_if_speed_bps", labels)] == iface.speed_bps
        assert samples[("monitord_snmp_if_in_octets_total", labels)] == float(iface.in_octets)
        assert samples[("monitord_snmp_if_out_octets_total", labels)] == iface.out_octets
        assert samples[("monitord_snmp_if_in_errors_total", labels)] == iface.in_errors
        assert ("monitord_snmp_if_out_errors_total", labels) not in samples  # None: absent
        assert samples[("monitord_snmp_if_out_discards_total", labels)] == 7
        assert samples[("monitord_snmp_if_in_bps", labels)] == 1234.5 * iface.if_index
        if iface.if_index == 2:
            assert ("monitord_snmp_if_out_bps", labels) not in samples
    b_labels = tuple(sorted({"device": 'sw-"b"', "ifIndex": "1", "ifName": "eth0"}.items()))
    assert samples[("monitord_snmp_if_oper_up", b_labels)] == 1.0
    assert ("monitord_snmp_if_in_bps", b_labels) not in samples  # first poll: no rate yet
    # 3 + 1 interfaces: 3 gauges + 5 counters present each, 2 rates on 3 of them, minus one
    assert len(samples) == 4 * 8 + 3 + 2


def test_a_hostile_interface_name_stays_one_label_value(metrics):
    text = metrics.snmp.render_text()
    lines = [line for line in text.splitlines() if "ifIndex=\"2\"" in line and "sw-a" in line]
    assert lines and all(line.startswith("monitord_snmp_if_") for line in lines)
    assert not any(line.startswith("# HELP") and "x=" in line for line in text.splitlines())
    names = {s.labels["ifName"] for f in text_string_to_metric_families(text)
             for s in f.samples if s.labels.get("ifIndex") == "2" and s.labels["device"] == "sw-a"}
    assert names == {HOSTILE}


def test_exposition_is_registry_plus_interfaces_without_duplicate_families(metrics):
    body = metrics.exposition().decode()
    families = [f.name for f in text_string_to_metric_families(body)]
    assert len(families) == len(set(families))
    assert "monitord_snmp_uptime_seconds" in families  # still from the registry collector
    assert "monitord_snmp_if_oper_up" in families and "monitord_build_info" in families
    assert _samples(body)[("monitord_snmp_uptime_seconds", (("device", "sw-a"),))] == 123.45


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (package prometheus) missing")
def test_promtool_accepts_the_exposition(metrics):
    proc = subprocess.run(["promtool", "check", "metrics"], input=metrics.exposition(),
                          capture_output=True, timeout=30)
    # promtool exits 3 for lint warnings (naming advice) and 1 for a body it cannot parse
    assert proc.returncode in (0, 3), proc.stderr.decode() + proc.stdout.decode()
    assert b"error while linting" not in proc.stderr + proc.stdout


def test_label_cache_keeps_only_interfaces_that_exist(metrics):
    snmp = metrics.snmp
    snmp.render_text()
    assert len(snmp._labels) == 4
    smaller = _snapshot("sw-a", ["Gi0/1"])
    snmp.observe(smaller, ())
    snmp.forget(["sw-a"])
    text = snmp.render_text()
    assert len(snmp._labels) == 1
    assert "sw-\\\"b\\\"" not in text and HOSTILE.split()[0] + " " not in text
