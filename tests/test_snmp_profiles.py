"""Profiles as data: the bundled ones load, selection follows sysObjectID/sysDescr, and bad
profile files or unknown profile names are refused with the file, line and key named."""

from __future__ import annotations

import pytest

from monitord.collectors.snmp.profiles import (ProfileError, load_profiles, parse_profile,
                                               select_profiles)
from tests.support import run_cli


def test_bundled_profiles():
    names = set(load_profiles())
    assert {"system", "if-mib", "host-resources", "ucd-snmp", "cisco", "mikrotik", "juniper",
            "ups-mib", "apc", "eaton-xups"} <= names


@pytest.mark.parametrize("oid,descr,want", [
    ("1.3.6.1.4.1.318.1.3.27", "APC Web/SNMP Management Card", "apc"),
    ("1.3.6.1.4.1.9.1.634", "Cisco IOS Software", "cisco"),
    ("1.3.6.1.4.1.2636.1.1.1.4.82.5", "Juniper Networks", "juniper"),
    ("1.3.6.1.4.1.14988.1", "RouterOS RB750Gr3", "mikrotik"),
    ("1.3.6.1.4.1.705.1", "Eaton 9PX", "ups-mib"),
    ("1.3.6.1.4.1.99999.1", "Linux web01 6.1.0", "host-resources"),
    ("1.3.6.1.4.1.99999.1", "Generex CS141 UPS adapter", "ups-mib"),
])
def test_selection(oid, descr, want):
    chosen = [p.name for p in select_profiles(load_profiles(), oid, descr)]
    assert chosen[:2] == ["if-mib", "system"] and want in chosen


def test_unknown_device_gets_only_the_base_profiles():
    chosen = [p.name for p in select_profiles(load_profiles(), "1.3.6.1.4.1.99999.7", "Box")]
    assert chosen == ["if-mib", "system"]


@pytest.mark.parametrize("data,needle", [
    ({"name": "x", "cpu": {"get": "1.3.6.1.2.1.25.3.3.1.2; rm -rf /"}}, "numeric OID"),
    ({"name": "x", "cpu": {"get": "1.3.6", "column": "1.3.6"}}, "exactly one of get or column"),
    ({"name": "x", "cpu": {"column": "1.3.6.1", "reduce": "median"}}, "reduce"),
    ({"name": "x", "ups": {"charge": "1.3.6.1.2.1.33.1.2.4.0"}}, "unknown field 'charge'"),
    ({"name": "x", "memory": {"method": "magic"}}, "memory.method"),
    ({"name": "X Y"}, "lower-case name"),
    ({"name": "x", "match": {"sysDescr": ["("]}}, "sysDescr"),
    ({"name": "x", "cpu": {"get": "1.3.6.1.2.1.1.3.0", "scale": "1/0"}}, "scale"),
])
def test_bad_profiles_are_refused(data, needle):
    with pytest.raises(ProfileError, match=None) as info:
        parse_profile(data, "profiles/x.yaml")
    assert needle in str(info.value) and "profiles/x.yaml" in str(info.value)


def test_check_config_names_unknown_profile(tmp_path):
    path = tmp_path / "monitord.yaml"
    path.write_text("language: en\nsnmp:\n  profiles:\n    ups-dc: [ups-mib, nonexistent]\n")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}:2: snmp" in result.stderr and "profiles.ups-dc: a known profile" in \
        result.stderr


def test_check_config_names_a_broken_profile_file(tmp_path):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "ours.yaml").write_text("name: ours\nups: {charge: 1.3.6.1.2.1.33.1.2.4.0}\n")
    path = tmp_path / "monitord.yaml"
    path.write_text(f"language: en\nsnmp:\n  profiles_dir: {folder}\n")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "ours.yaml: ups: unknown field 'charge'" in result.stderr


def test_office_profile_dir_adds_a_profile(tmp_path):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "ours.yaml").write_text(
        "name: ours\nmatch: {sysObjectID: [1.3.6.1.4.1.99999]}\n"
        "temperatures:\n  - {name: inlet, get: 1.3.6.1.4.1.99999.1.1.0, scale: 0.1}\n")
    profiles = load_profiles([folder])
    chosen = select_profiles(profiles, "1.3.6.1.4.1.99999.3", "")
    assert [p.name for p in chosen] == ["if-mib", "system", "ours"]
