"""Configuration errors name the file, the line, the key, what was found and what is expected."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from monitord.config_loader import ConfigError, load_config, parse_config_text
from monitord.i18n import set_language
from tests.support import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def english():
    set_language("en")
    yield
    set_language("en")


def problems(text: str, file: str = "monitord.yaml") -> list:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(textwrap.dedent(text), file)
    return caught.value.problems


def test_shipped_example_and_demo_configs_are_valid():
    config = load_config(REPO / "config" / "example.yaml")
    assert {d.name for d in config.devices} == {"core-rtr", "dist-sw1", "ups-dc"}
    assert config.device("dist-sw1").parent == "core-rtr"
    demo = (REPO / "config" / "demo.yaml").read_text().replace("@DATA_DIR@", "/tmp/x") \
        .replace("@SMTP_PORT@", "2525").replace("@PORT@", "9877")
    assert parse_config_text(demo).detectors.host.disk_used_percent == 1


def test_yaml_syntax_error_names_the_line():
    [problem] = problems("sites:\n  - name: hq\ndevices: [\n  {name: a,\n")
    assert problem.file == "monitord.yaml"
    assert problem.line >= 3
    assert "invalid YAML" in problem.found


def test_unknown_key_suggests_the_right_one():
    [problem] = problems("""\
        storage:
          url: "sqlite:///x.db"
          sqlite_synchronus: full
        """)
    assert (problem.line, problem.path) == (3, "storage.sqlite_synchronus")
    assert "unknown key 'sqlite_synchronus'" in problem.found
    assert "did you mean 'sqlite_synchronous'?" in problem.expected
    assert str(problem).startswith("monitord.yaml:3: storage.sqlite_synchronus: found")


def test_unknown_top_level_section_and_key_inside_a_typed_channel():
    found = problems("""\
        notifcations: {}
        notifications:
          channels:
            - name: mail
              type: email
              smtp_host: mail.local
              sender: a@b
              to: [x@y]
              smtp_prot: 25
        """)
    by_path = {p.path: p for p in found}
    assert "did you mean 'notifications'?" in by_path["notifcations"].expected
    channel = by_path["notifications.channels[0].smtp_prot"]
    assert channel.line == 9
    assert "did you mean 'smtp_port'?" in channel.expected


def test_wrong_types_name_what_is_expected():
    found = problems("""\
        sites: [{name: hq}]
        devices:
          - name: r1
            address: 10.0.0.1
            site: hq
            kind: routr
            snmp_port: many
        incidents:
          resolve_hold: five minutes
          flap_threshold: 1
        """)
    by_path = {p.path: p for p in found}
    assert by_path["devices[0].kind"].line == 6
    assert "'router'" in by_path["devices[0].kind"].expected
    assert by_path["devices[0].snmp_port"].expected == "a whole number"
    assert by_path["devices[0].snmp_port"].found == "'many'"
    assert "duration" in by_path["incidents.resolve_hold"].expected
    assert by_path["incidents.flap_threshold"].line == 10
    assert "at least 2" in by_path["incidents.flap_threshold"].expected


def test_undefined_references_are_reported_with_the_known_names():
    found = problems("""\
        sites: [{name: hq}]
        credentials:
          core-snmp: {type: snmp_v2c, community: {env: COMMUNITY}}
          noc-ssh: {type: ssh, username: noc, password: {env: SSH_PASSWORD}}
        devices:
          - {name: r1, address: 10.0.0.1, site: hqq, kind: router, credential: core-snmpp}
          - {name: s1, address: 10.0.0.2, site: hq, kind: switch, parent: r2}
          - {name: s2, address: 10.0.0.3, site: hq, kind: switch, credential: noc-ssh}
        """)
    by_path = {p.path: p for p in found}
    assert "did you mean 'hq'?" in by_path["devices[0].site"].expected
    assert "core-snmp" in by_path["devices[0].credential"].expected
    assert by_path["devices[0].credential"].line == 6
    assert "r1" in by_path["devices[1].parent"].expected
    assert "SNMP credential" in by_path["devices[2].credential"].expected


def test_reference_and_type_errors_are_reported_together():
    found = problems("""\
        sites: [{name: hq}]
        devices:
          - {name: r1, address: 10.0.0.1, site: nowhere, kind: router, snmp_port: x}
        """)
    assert {p.path for p in found} == {"devices[0].site", "devices[0].snmp_port"}


def test_parent_loops_and_duplicate_names_and_keys():
    found = problems("""\
        sites: [{name: hq}, {name: hq}]
        devices:
          - {name: a, address: 10.0.0.1, site: hq, kind: router, parent: b}
          - {name: b, address: 10.0.0.2, site: hq, kind: router, parent: a}
        http:
          listen: "127.0.0.1:1"
          listen: "127.0.0.1:2"
        """)
    paths = [p.path for p in found]
    assert "sites[1].name" in paths
    assert "devices[0].parent" in paths and "devices[1].parent" in paths
    assert any(p.path == "http.listen" and p.line == 7 and "first on line 6" in p.found
               for p in found)


def test_inline_secret_is_refused_and_never_echoed():
    found = problems("""\
        credentials:
          core: {type: snmp_v2c, community: "Rahasia-Canary-4711"}
        """)
    [problem] = found
    assert problem.path == "credentials.core.community"
    assert "Rahasia-Canary-4711" not in str(problem)
    assert "inline" in problem.expected


def test_secret_reference_needs_exactly_one_source_and_url_without_password():
    found = problems("""\
        credentials:
          core: {type: snmp_v2c, community: {env: A, file: /b}}
        storage: {url: "postgresql://monitord:Canary99@db/monitord"}
        """)
    by_path = {p.path: p for p in found}
    assert "exactly one of env, file or credential" in by_path["credentials.core.community"].expected
    assert "storage.password" in by_path["storage.url"].expected
    assert "Canary99" not in str(by_path["storage.url"])
    assert "monitord:***@db" in by_path["storage.url"].found


def test_durations_and_defaults():
    config = parse_config_text("incidents: {resolve_hold: 90s, flap_window: 2h}\n")
    assert config.incidents.resolve_hold == timedelta(seconds=90)
    assert config.incidents.flap_window == timedelta(hours=2)
    assert config.http.listen == "127.0.0.1:9877"
    assert config.storage.url.startswith("sqlite:")


def test_check_config_cli_prints_every_problem_and_exits_2(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("sites: [{name: hq}]\ndevices:\n  - {name: r1, address: 10.0.0.1, "
                    "site: hq, kind: router, credential: nope}\nhttp: {listn: x}\n")
    result = run_cli("check-config", str(path), env={"LANG": "C.UTF-8", "LANGUAGE": ""})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{path}:3: devices[0].credential: found 'nope'") for line in lines)
    assert any(line.startswith(f"{path}:4: http.listn: found unknown key") and
               "did you mean 'listen'?" in line for line in lines)
    assert "2 problem(s) found" in lines[-1]


def test_check_config_cli_accepts_a_good_file_and_reports_a_missing_one(tmp_path: Path):
    good = run_cli("check-config", str(REPO / "config" / "example.yaml"),
                   env={"LANG": "C.UTF-8", "LANGUAGE": ""})
    assert good.returncode == 0, good.stderr
    missing = run_cli("check-config", str(tmp_path / "absent.yaml"),
                      env={"LANG": "C.UTF-8", "LANGUAGE": ""})
    assert missing.returncode == 2
    assert "absent.yaml" in missing.stderr
