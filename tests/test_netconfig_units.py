"""Pure parts of netconfig: masking, unknown-command detection, the detector's states and the
value gauges' label bounds. The SSH parts run against a real sshd in
tests/integration/test_netconfig.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitord.collectors.netconfig.fetch import unknown_command
from monitord.collectors.netconfig.mask import mask_config
from monitord.detectors.netconfig import NetconfigDetector
from monitord.metrics_values import SERIES_CAP, ValueGauges
from monitord.records import Category, Event, FindingState, Sample

T0 = datetime(2026, 12, 6, 1, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("line, masked", [
    ("snmp-server community s3cret RO", "snmp-server community ***"),
    ("enable secret 5 $1$abc$def", "enable secret ***"),
    ("username admin privilege 15 password 0 cisco", "username admin privilege 15 password ***"),
    (" pre-shared-key ascii-text foo", " pre-shared-key ***"),
    ("crypto isakmp key PSK address 0.0.0.0", "crypto isakmp key ***"),
    ("ip ospf message-digest-key 1 md5 XYZ", "ip ospf message-digest-key ***"),
    ('set system login user x authentication encrypted-password "$6$x"',
     'set system login user x authentication encrypted-password "***'),
    ("/user add name=x password=y", "/user add name=x password=***"),
    ("snmp_community=abc", "snmp_community=***"),
    ("no service password-encryption", "no service password-encryption"),
    ("keepalive 10", "keepalive 10"),
    ("hostname core-rtr", "hostname core-rtr"),
])
def test_mask_lines(line: str, masked: str):
    assert mask_config(line) == masked


def test_mask_extra_keywords_and_known_secret_values():
    from monitord.secrets import Secret
    Secret("zq-resolved-value-77")  # resolved secrets are masked wherever they appear
    text = "tacacs-server host 10.0.0.5 k3y\ndescription zq-resolved-value-77 uplink"
    assert mask_config(text, ["tacacs-server"]) == "tacacs-server ***\ndescription *** uplink"


@pytest.mark.parametrize("output, unknown", [
    ("% Invalid input detected at '^' marker.", True),
    ("-bash: nosuch: command not found", True),
    ("bad command name expot (line 1 column 1)", True),
    ("cat: /x: No such file or directory", True),
    ("hostname r1\ninterface eth0\n ip address 10.0.0.1/24", False),
    # further down, the same words are a banner or a description, not an error
    ("hostname r1\n!\n!\n!\nbanner motd ^unknown command^", False),
])
def test_unknown_command_reads_only_the_first_lines(output: str, unknown: bool):
    assert (unknown_command(output) is not None) is unknown


def event(**fields) -> Event:
    base = {"ok": True, "changed": False, "failed_commands": {}, "command": "show run",
            "device_type": "cisco_ios"}
    return Event("rtr", "netconfig_result", fields.pop("at", T0), {**base, **fields})


def test_detector_change_category_follows_the_maintenance_window():
    detector = NetconfigDetector()
    assert detector.observe(event(version=1, baseline=True)) == []
    [outside] = detector.observe(event(changed=True, version=2, added=1, removed=0,
                                       diff="+x", in_maintenance=False))
    [inside] = detector.observe(event(changed=True, version=3, added=0, removed=1,
                                      diff="-x", in_maintenance=True))
    assert (outside.kind, outside.category) == ("config_changed", Category.NETWORK_SECURITY)
    assert (inside.kind, inside.category) == ("config_changed", Category.NETWORK)
    assert outside.dedup_key != inside.dedup_key and outside.evidence["diff"] == "+x"


def test_detector_failure_fires_changes_reason_and_clears_on_success():
    detector = NetconfigDetector()
    [first] = detector.observe(event(ok=False, reason="auth_failed", error="refused"))
    assert (first.kind, first.state) == ("netconfig_auth_failed", FindingState.FIRING)
    assert "login refused" in first.summary
    later = T0 + timedelta(minutes=5)
    cleared, timeout = detector.observe(event(ok=False, reason="timeout", error="slow",
                                              at=later))
    assert (cleared.kind, cleared.state) == ("netconfig_auth_failed", FindingState.CLEARED)
    assert (timeout.kind, timeout.state, timeout.first_seen) == (
        "netconfig_timeout", FindingState.FIRING, later)
    [ok] = detector.observe(event(version=1, at=later + timedelta(minutes=5)))
    assert (ok.kind, ok.state) == ("netconfig_timeout", FindingState.CLEARED)
    assert detector.observe(event(version=1)) == []


def test_value_gauges_keep_allowed_labels_only_and_cap_series():
    gauges = ValueGauges(clock=lambda: 0.0)
    gauges.observe([Sample("srv", "host_disk_used_percent", 42.0, T0,
                           {"mount": "/", "fstype": "ext4", "secret_label": "x"}),
                    Sample("srv", "service_latency_ms", 3.0, T0, {"check": "web", "kind": "http"}),
                    Sample("srv", "snmp_other", 1.0, T0)])
    families = {f.name: f for f in gauges.collect()}
    disk = families["monitord_host_disk_used_percent"].samples[0]
    assert disk.labels == {"device": "srv", "mount": "/", "fstype": "ext4"} and disk.value == 42
    assert families["monitord_service_check_latency_ms"].samples[0].labels["check"] == "web"
    assert not any("snmp" in name for name in families)
    gauges.observe(Sample("srv", "host_nic_errors_per_second", 0.0, T0, {"nic": f"n{i}"})
                   for i in range(SERIES_CAP + 10))
    assert gauges.dropped == 12  # two series existed before


def test_bad_netconfig_entries_name_file_line_key_and_expectation():
    from monitord.config_loader import ConfigError, parse_config_text
    text = """\
sites: [{name: hq}]
credentials:
  ssh1: {type: ssh, username: noc, password: {env: X}}
devices:
  - {name: r1, address: 10.0.0.1, site: hq, kind: router, ssh_credential: ssh1}
  - {name: r2, address: 10.0.0.2, site: hq, kind: router}
netconfig:
  - {device: r1, device_type: cisco_ios}
  - {device: r2, device_type: cisco_ios}
  - {device: r9, device_type: cisco_ios}
  - {device: r1, device_type: linux}
  - {device: r1, device_type: cisco_ios_telnet}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "nc.yaml")
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith("nc.yaml:9: netconfig[1].device") and "ssh_credential" in p
               for p in problems), problems
    assert any(p.startswith("nc.yaml:10: netconfig[2].device") and "r1, r2" in p
               for p in problems), problems
    assert any(p.startswith("nc.yaml:11: netconfig[3]") and "config_command" in p
               for p in problems), problems
    assert any(p.startswith("nc.yaml:12: netconfig[4].device_type") for p in problems), problems
    assert len(problems) == 4
    good = parse_config_text(text.split("  - {device: r2")[0], "nc.yaml")
    assert good.netconfig[0].command == "show running-config"
