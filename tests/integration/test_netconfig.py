"""netmiko against a real OpenSSH server in a network namespace (tests/sshd_peer.py), device
type `linux`, whose "running configuration" is a file the test rewrites.

- a real `monitord run` (SQLite and PostgreSQL): the first fetch is a baseline; a change to the
  file opens a `config_changed` incident (network_security, no maintenance window) with the
  unified diff as evidence; a wrong password opens `netconfig_auth_failed`; the community and
  the SSH password never reach the log, the store or /metrics; config-backup and config-diff
  read the same store;
- in process: a change inside a maintenance window is a *network* finding; an unknown command
  and a refused port are findings with their reasons."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from monitord.collectors.netconfig.collector import NetconfigCollector
from monitord.collectors.netconfig.fetch import SshTarget, fetch
from monitord.config import Config, MaintenanceWindow, Storage
from monitord.detectors.netconfig import NetconfigDetector
from monitord.incidents.maintenance import MaintenanceCalendar
from monitord.incidents.store import open_store
from monitord.incidents.store.models import IncidentRow, NetconfigVersionRow
from monitord.records import Category
from monitord.secrets import Secret
from tests import sshd_peer
from tests.support import DaemonProcess, free_port, run_cli

pytestmark = pytest.mark.skipif(sshd_peer.available() is not None,
                                reason=str(sshd_peer.available()))

BASE_CONFIG = "hostname sw-lab\ninterface eth0\n ip address 10.0.0.1/24\n"


@pytest.fixture(scope="module")
def peer():
    running = sshd_peer.start_peer()
    yield running
    running.stop()


def wait_for(condition, what: str, daemon: DaemonProcess | None = None, timeout: float = 40):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            pytest.fail(f"daemon exited waiting for {what}:\n{daemon.log()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n"
                        f"{daemon.log()[-4000:] if daemon else ''}")
        time.sleep(0.3)


def store_text(store) -> str:
    """Every row of every table the store has, as text (the secret scan's haystack)."""
    from sqlalchemy import MetaData
    metadata = MetaData()
    metadata.reflect(store.engine)
    with store.engine.connect() as connection:
        return "\n".join(repr(row) for table in metadata.sorted_tables
                         for row in connection.execute(table.select()))


def test_config_change_and_wrong_password_open_incidents_without_leaking(
        peer, tmp_path: Path, db_url: str):
    tag = uuid.uuid4().hex[:8].upper()
    community = f"cy{uuid.uuid4().hex[:18]}"
    env = {f"MONITORD_TEST_SSH_{tag}": peer.password, f"MONITORD_TEST_BAD_{tag}": "not-it-9f3a"}
    peer.write_config(BASE_CONFIG + f"snmp-server community {community} RO\n")
    port = free_port()
    config = tmp_path / "monitord.yaml"
    config.write_text(f"""\
language: en
logging: {{level: debug}}
sites: [{{name: lab}}]
credentials:
  lab-ssh: {{type: ssh, username: {peer.username}, password: {{env: MONITORD_TEST_SSH_{tag}}}}}
  bad-ssh: {{type: ssh, username: {peer.username}, password: {{env: MONITORD_TEST_BAD_{tag}}}}}
devices:
  - {{name: sw-lab, address: {peer.address}, site: lab, kind: switch, ssh_credential: lab-ssh}}
  - {{name: sw-bad, address: {peer.address}, site: lab, kind: switch, ssh_credential: bad-ssh}}
storage: {{url: "{db_url}"}}
http: {{listen: "127.0.0.1:{port}"}}
collectors:
  host: {{enabled: false}}
netconfig:
  - {{device: sw-lab, device_type: linux, config_command: "cat {peer.running_conf}",
     commands: ["uname -s"], interval: 2s, timeout: 15s}}
  - {{device: sw-bad, device_type: linux, config_command: "cat {peer.running_conf}",
     interval: 2s, timeout: 15s}}
""")
    daemon = DaemonProcess(config, port, tmp_path / "monitord.log", env=env)
    store = open_store(Storage(url=db_url))
    try:
        daemon.start()

        def versions():
            with store.sessions() as session:
                return session.scalars(select(NetconfigVersionRow).where(
                    NetconfigVersionRow.device == "sw-lab",
                    NetconfigVersionRow.kind == "config")).all()

        def incidents(kind: str):
            with store.sessions() as session:
                return session.scalars(select(IncidentRow).where(IncidentRow.kind == kind)).all()

        baseline = wait_for(versions, "the baseline version", daemon)
        assert len(baseline) == 1 and f"community {community}" not in baseline[0].content
        assert "snmp-server community ***" in baseline[0].content
        bad = wait_for(lambda: incidents("netconfig_auth_failed"), "the auth failure", daemon)
        assert bad[0].device == "sw-bad" and bad[0].category == "network"
        assert "login refused" in bad[0].summary and bad[0].evidence["reason"] == "auth_failed"
        assert not incidents("config_changed")  # the first version is a baseline, not a change

        new_community = f"cy{uuid.uuid4().hex[:18]}"
        peer.write_config(BASE_CONFIG.replace("10.0.0.1/24", "10.0.0.9/24")
                          + f"snmp-server community {new_community} RO\n"
                          + "username admin password 0 hunter2-plain\n")
        changed = wait_for(lambda: incidents("config_changed"), "the config change", daemon)
        assert len(changed) == 1
        incident = changed[0]
        assert incident.device == "sw-lab" and incident.category == "network_security"
        assert incident.severity == "high" and incident.status == "open"
        # through the SOP: network security belongs to the IPL division's DKI ladder
        assert (incident.division, incident.workflow) == ("IPL", "dki-jakarta-2013")
        assert incident.step is not None
        diff = incident.evidence["diff"]
        assert "- ip address 10.0.0.1/24" in diff and "+ ip address 10.0.0.9/24" in diff
        assert "+username admin password ***" in diff
        assert incident.evidence["in_maintenance"] is False
        assert incident.evidence["added"] == 2 and incident.evidence["removed"] == 1
        assert len(versions()) == 2
        metrics = daemon.get("/metrics")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    log = daemon.log()
    secrets = {"ssh password": peer.password, "community": community,
               "new community": new_community, "plain password": "hunter2-plain",
               "wrong password": "not-it-9f3a"}
    everything = store_text(store)
    store.close()
    for name, value in secrets.items():
        for where, text in (("log", log), ("store", everything), ("/metrics", metrics)):
            assert value not in text, f"the {name} leaked into the {where}"
    assert "monitord_netconfig_up" in metrics  # a scan of something that is there

    # the CLI reads the same store: the diff of the last two versions, and an unchanged backup
    result = run_cli("config-diff", "sw-lab", "--config", str(config), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == 2 and "+ ip address 10.0.0.9/24" in report["diff"]
    assert report["to_version"] > report["from_version"]
    result = run_cli("config-diff", "sw-lab", "--command", "uname -s", "--config", str(config),
                     "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # one stored output so far: the diff from nothing
    assert report["command"] == "uname -s" and report["from_version"] is None
    assert report["diff"].endswith("+Linux")
    result = run_cli("config-backup", "sw-lab", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "unchanged since" in result.stdout and peer.password not in result.stdout
    result = run_cli("config-backup", "sw-bad", "--config", str(config), env=env)
    assert result.returncode == 1 and "auth_failed" in result.stdout, result.stdout
    result = run_cli("config-diff", "nosuch", "--config", str(config), env=env)
    assert result.returncode == 2 and "not listed under netconfig" in result.stderr


def _target(peer, password: str | None = None, command: str | None = None,
            commands: tuple[str, ...] = (), port: int = 22) -> SshTarget:
    return SshTarget("sw-lab", "linux", peer.address, port, peer.username,
                     Secret(password or peer.password), None,
                     command or f"cat {peer.running_conf}", commands, 10.0)


def test_change_inside_a_maintenance_window_is_a_network_finding(peer, sqlite_url: str):
    store = open_store(Storage(url=sqlite_url))
    store.migrate()
    now = datetime.now(timezone.utc)
    config = Config(maintenance=(MaintenanceWindow(device="sw-lab", start_at=now - timedelta(
        hours=1), end_at=now + timedelta(hours=1), reason="planned VLAN change"),))
    collector = NetconfigCollector(_target(peer), store, MaintenanceCalendar(config))
    detector = NetconfigDetector()
    try:
        peer.write_config(BASE_CONFIG)
        first = [f for r in collector.poll(now) for f in detector.observe(r)]
        assert first == []
        peer.write_config(BASE_CONFIG + "vlan 20\n")
        later = now + timedelta(minutes=1)
        found = [f for r in collector.poll(later) for f in detector.observe(r)]
        assert [f.kind for f in found] == ["config_changed"]
        assert found[0].category is Category.NETWORK
        assert found[0].evidence["maintenance_reason"] == "planned VLAN change"
        assert "+vlan 20" in found[0].evidence["diff"]
        # the same change with no window is a network security finding
        outside = NetconfigCollector(_target(peer), store, MaintenanceCalendar(Config()))
        peer.write_config(BASE_CONFIG + "vlan 30\n")
        found = [f for r in outside.poll(later + timedelta(minutes=1))
                 for f in detector.observe(r)]
        assert [(f.kind, f.category) for f in found] == [("config_changed",
                                                          Category.NETWORK_SECURITY)]
    finally:
        store.close()


def test_unknown_command_and_refused_port_are_clear_findings(peer, sqlite_url: str):
    result = fetch(_target(peer, command="definitely-not-a-command"))
    assert not result.ok and result.reason == "unknown_command"
    assert "command not found" in result.error
    result = fetch(_target(peer, commands=("uname -s", "no-such-show")))
    assert result.ok and result.outputs == {"uname -s": "Linux"}
    assert "no-such-show" in result.failed_commands
    store = open_store(Storage(url=sqlite_url))
    store.migrate()
    detector = NetconfigDetector()
    now = datetime.now(timezone.utc)
    try:
        refused = NetconfigCollector(_target(peer, port=2222), store)
        found = [f for r in refused.poll(now) for f in detector.observe(r)]
        assert [f.kind for f in found] == ["netconfig_unreachable"]
        assert "refused" in found[0].summary
        show = NetconfigCollector(_target(peer, commands=("no-such-show",)), store)
        found = [f for r in show.poll(now) for f in detector.observe(r)]
        kinds = sorted((f.kind, f.state.value, f.subject) for f in found)
        assert kinds == [("netconfig_unknown_command", "firing", "no-such-show"),
                         ("netconfig_unreachable", "cleared", "cat " + str(peer.running_conf))]
    finally:
        store.close()


def test_login_with_a_private_key_from_the_credential_store(peer, tmp_path: Path):
    """An ssh credential with `private_key` (the key text, as the credential store holds it):
    the user's authorized_keys has the public half; no password is given."""
    import pwd
    import subprocess

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    user = pwd.getpwnam(peer.username)
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, user.pw_uid, user.pw_gid)
    peer.write_config(BASE_CONFIG)
    target = SshTarget("sw-lab", "linux", peer.address, 22, peer.username, None,
                       Secret(key.read_text()), f"cat {peer.running_conf}", (), 10.0)
    result = fetch(target)
    assert result.ok, result
    assert result.config == BASE_CONFIG.rstrip("\n")
    wrong = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    refused = fetch(SshTarget("sw-lab", "linux", peer.address, 22, peer.username, None,
                              Secret(wrong.read_text()), f"cat {peer.running_conf}", (), 10.0))
    assert not refused.ok and refused.reason == "auth_failed"
    garbage = fetch(SshTarget("sw-lab", "linux", peer.address, 22, peer.username, None,
                              Secret("not a key at all"), f"cat {peer.running_conf}", (), 10.0))
    assert not garbage.ok and garbage.reason == "auth_failed" and "private key" in garbage.error


def test_a_port_that_never_speaks_ssh_is_a_timeout_finding():
    """A TCP listener that accepts (the kernel's backlog) but never sends an SSH banner: the
    login cannot finish within the timeout, which is `netconfig_timeout`, not a crash."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        target = SshTarget("sw-mute", "linux", "127.0.0.1", port, "noc", Secret("pw-mute-1234"),
                           None, "cat /etc/hostname", (), 2.0)
        started = time.monotonic()
        result = fetch(target)
        assert time.monotonic() - started < 15
    assert not result.ok and result.reason == "timeout", result
    # the failure never touches the store: the collector runs on the same result without one
    collector = NetconfigCollector(target, store=None, fetcher=lambda _target, _pinned: result)
    findings = [f for r in collector.poll(datetime.now(timezone.utc))
                for f in NetconfigDetector().observe(r)]
    assert [f.kind for f in findings] == ["netconfig_timeout"]
    assert "timed out" in findings[0].summary


def test_a_changed_host_key_stops_the_login_and_is_a_security_finding(sqlite_url: str):
    """Trust on first use, kept in the store: the first fetch pins the host key; after the
    device's key changes the collector does not log in (sshd sees no password attempt) and
    raises netconfig_host_key_changed (network security) until a person accepts the key."""
    peer = sshd_peer.start_peer()
    store = open_store(Storage(url=sqlite_url))
    store.migrate()
    detector = NetconfigDetector()
    now = datetime.now(timezone.utc)
    try:
        peer.write_config(BASE_CONFIG)
        collector = NetconfigCollector(_target(peer), store)
        assert collector.pinned_host_key() is None
        assert [f for r in collector.poll(now) for f in detector.observe(r)] == []
        pinned = collector.pinned_host_key()
        assert pinned and pinned.startswith("ssh-ed25519 SHA256:")

        peer.rotate_host_key()
        accepted_before = peer.log().count("Accepted password")
        [finding] = [f for r in collector.poll(now) for f in detector.observe(r)]
        assert finding.kind == "netconfig_host_key_changed"
        assert finding.category is Category.NETWORK_SECURITY and finding.severity.value == "high"
        assert finding.evidence["pinned_host_key"] == pinned
        assert finding.evidence["host_key"] != pinned
        time.sleep(0.5)  # sshd writes its log lines after the connection closes
        assert peer.log().count("Accepted password") == accepted_before
        assert "Failed password" not in peer.log()
        assert collector.pinned_host_key() == pinned  # a refused key is never pinned by itself

        backup = collector.backup(now, accept_host_key=True)  # a person checked the new key
        assert backup.result.ok and collector.pinned_host_key() == backup.result.host_key
        cleared = [f for r in collector.poll(now) for f in detector.observe(r)]
        assert [(f.kind, f.state.value) for f in cleared] == [
            ("netconfig_host_key_changed", "cleared")]
    finally:
        store.close()
        peer.stop()
