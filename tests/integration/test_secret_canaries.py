"""Secret canaries: unique fake secrets in every kind of secret reference must never show up
where people or other programs can read them.

A real `monitord run` (logging at debug, on SQLite and on PostgreSQL) gets a configuration
whose every secret is a fresh uuid-based canary, resolved from each kind of source:
{env: VAR}, {file: PATH} and {credential: NAME} ($CREDENTIALS_DIRECTORY). The daemon then
takes findings (ingest token as Bearer), refuses bad requests, fails one finding with a
traceback (whose log line would carry a canary if the redactor did not mask it), reloads on
SIGHUP (once successfully, three times rejected: inline secret, missing secret file, broken
YAML), reloads back and stops on SIGTERM. No canary may appear in

* the combined stdout/stderr log of the daemon,
* the /metrics text,
* /proc/<pid>/cmdline of the daemon (and any child) while it runs,
* the store: every row of every table, and on SQLite the bytes of the database, -wal and
  -shm files (while running and after the stop).

Each of these scanners is also shown to catch a canary planted in what it scans, so a
passing run means "not there", not "not looked at".

`monitord check-config` / `monitord run` on a file with inline secrets must exit 2 without
printing them, and `monitord run` refuses to start (naming the key path, never a value) when
a referenced secret cannot be resolved.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tests.support import DaemonProcess, finding, free_port, run_cli

pytestmark = pytest.mark.slow

# -- canaries -----------------------------------------------------------------------------------

SECRET_NAMES = ("snmp_community", "snmpv3_auth_key", "snmpv3_priv_key", "ssh_password",
                "email_password", "telegram_bot_token", "webhook_token", "ingest_token",
                "storage_password")


@dataclass
class Canaries:
    """name -> unique fake secret. Each value is `cy` + 18 random hex digits: short like a
    real community string or password, so that formatters which abbreviate long values (YAML
    error snippets, `...`-truncated reprs) still show all of it. A leak is reported when the
    value, its first 12 or its last 12 characters show up, in any letter case (some error
    messages lower-case what they quote)."""

    values: dict[str, str] = field(default_factory=dict)

    def new(self, name: str) -> str:
        value = f"cy{uuid.uuid4().hex[:18]}"
        self.values[name] = value
        return value

    def needles(self) -> dict[str, list[str]]:
        return {name: [value, value[:12], value[-12:]] for name, value in self.values.items()}

    def found_in(self, data: str | bytes) -> list[str]:
        """Names of the canaries present in `data` (text or raw bytes)."""
        haystack = data.lower()
        found = []
        for name, needles in self.needles().items():
            probes = [n.lower().encode() if isinstance(data, bytes) else n.lower()
                      for n in needles]
            if any(probe in haystack for probe in probes):  # type: ignore[operator]
                found.append(name)
        return found


def assert_clean(canaries: Canaries, where: str, data: str | bytes) -> None:
    leaked = canaries.found_in(data)
    if leaked:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        lines = [line for line in text.splitlines()
                 if any(n.lower() in line.lower() for name in leaked
                        for n in canaries.needles()[name])]
        raise AssertionError(f"secret canaries {leaked} leaked into {where}:\n"
                             + "\n".join(line[:500] for line in lines[:20]))


def assert_scanner_catches(canaries: Canaries, where: str, data_with_plant: str | bytes) -> None:
    """The proof that an assertion can fail: the same check on planted data must raise."""
    with pytest.raises(AssertionError, match="leaked into"):
        assert_clean(canaries, where, data_with_plant)


# -- configuration ------------------------------------------------------------------------------


@dataclass
class Setup:
    directory: Path
    config_path: Path
    port: int
    db_url: str
    canaries: Canaries
    env: dict[str, str]
    data: dict[str, Any]
    auth_key_file: Path

    def write(self, data: dict[str, Any] | None = None) -> None:
        self.config_path.write_text(yaml.safe_dump(data or self.data, sort_keys=False))


def make_setup(directory: Path, db_url: str) -> Setup:
    """The shape of tests.support.write_config, with credentials, devices that use them, every
    notification channel type and secrets from all three kinds of source."""
    canaries = Canaries()
    tag = uuid.uuid4().hex[:8].upper()
    secrets_dir = directory / "secrets"
    creds_dir = directory / "credentials"
    secrets_dir.mkdir()
    creds_dir.mkdir()
    env: dict[str, str] = {"CREDENTIALS_DIRECTORY": str(creds_dir)}

    def from_env(name: str) -> dict[str, str]:
        variable = f"MONITORD_TEST_{name.upper()}_{tag}"
        env[variable] = canaries.new(name)
        return {"env": variable}

    def from_file(name: str) -> dict[str, str]:
        path = secrets_dir / name
        path.write_text(canaries.new(name) + "\n")  # the trailing newline is not the secret
        path.chmod(0o600)
        return {"file": str(path)}

    def from_credential(name: str) -> dict[str, str]:
        path = creds_dir / name
        path.write_text(canaries.new(name) + "\n")
        path.chmod(0o600)
        return {"credential": name}

    port = free_port()
    storage: dict[str, Any] = {"url": db_url}
    if db_url.startswith("postgresql"):
        storage["password"] = from_env("storage_password")  # trust auth: any password works
    data: dict[str, Any] = {
        "language": "en",
        "logging": {"level": "debug"},
        "sites": [{"name": "hq", "description": "Kantor Dinas Kominfo"}],
        "credentials": {
            "rtr-snmp": {"type": "snmp_v2c", "community": from_env("snmp_community")},
            "ups-v3": {"type": "snmp_v3", "user": "monitord", "auth_protocol": "sha256",
                       "auth_key": from_file("snmpv3_auth_key"), "priv_protocol": "aes",
                       "priv_key": from_credential("snmpv3_priv_key")},
            "noc-ssh": {"type": "ssh", "username": "noc",
                        "password": from_env("ssh_password")},
        },
        "devices": [
            {"name": "core-rtr", "address": "127.0.0.1", "site": "hq", "kind": "router",
             "credential": "rtr-snmp", "ssh_credential": "noc-ssh"},
            {"name": "ups-dc", "address": "127.0.0.2", "site": "hq", "kind": "ups",
             "credential": "ups-v3", "parent": "core-rtr"},
        ],
        "storage": storage,
        "http": {"listen": f"127.0.0.1:{port}", "ingest_token": from_env("ingest_token")},
        "collectors": {"host": {"enabled": True, "interval": "1s", "jitter": "0s"}},
        "notifications": {"channels": [
            {"name": "noc-log", "type": "log"},
            {"name": "noc-mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": 2525,
             "sender": "monitord@example.invalid", "to": ["noc@example.invalid"],
             "username": "monitord", "password": from_credential("email_password")},
            {"name": "noc-telegram", "type": "telegram",
             "bot_token": from_file("telegram_bot_token"), "chat_id": "-1001234567890"},
            {"name": "noc-hook", "type": "webhook", "url": "http://127.0.0.1:9/hook",
             "hmac_secret": from_env("webhook_token")},
        ]},
    }
    setup = Setup(directory, directory / "monitord.yaml", port, db_url, canaries, env, data,
                  secrets_dir / "snmpv3_auth_key")
    setup.write()
    return setup


# -- what the checks read -----------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cmdlines(pid: int) -> dict[int, bytes]:
    result = {}
    for each in descendants(pid):
        try:
            result[each] = Path(f"/proc/{each}/cmdline").read_bytes()
        except OSError:
            pass
    return result


def sqlite_path(db_url: str) -> Path:
    return Path(db_url.removeprefix("sqlite:///"))


def sqlite_file_bytes(db: Path) -> dict[str, bytes]:
    """The database and its -wal/-shm/-journal companions, byte for byte."""
    return {path.name: path.read_bytes() for path in sorted(db.parent.glob(db.name + "*"))}


def sqlite_rows(db: Path) -> dict[str, list[tuple]]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: connection.execute(f'SELECT * FROM "{table}"').fetchall()
                for table in tables}
    finally:
        connection.close()


def pg_conninfo(db_url: str) -> str:
    return db_url.replace("postgresql+psycopg://", "postgresql://", 1)


def pg_rows(db_url: str) -> dict[str, list[str]]:
    """Every row of every table in every non-system schema, each as PostgreSQL's row text."""
    import psycopg

    with psycopg.connect(pg_conninfo(db_url), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()
        return {f"{schema}.{name}": [row for (row,) in conn.execute(
            f'SELECT t::text FROM "{schema}"."{name}" AS t').fetchall()]
            for schema, name in tables}


def rows_text(rows: dict[str, list]) -> str:
    return "\n".join(f"{table}: {row!r}" for table, table_rows in rows.items()
                     for row in table_rows)


# -- talking to the daemon ----------------------------------------------------------------------


def post_raw(daemon: DaemonProcess, body: bytes, token: str | None) -> tuple[int, str]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(daemon.url("/api/v1/findings"), data=body,
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until(condition: Callable[[], bool], what: str, daemon: DaemonProcess,
               timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon.proc is not None and daemon.proc.poll() is not None:
            pytest.fail(f"daemon exited {daemon.proc.returncode} waiting for {what}:\n"
                        f"{daemon.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{daemon.log()[-6000:]}")
        time.sleep(0.1)


def reloads(daemon: DaemonProcess, outcome: str) -> float:
    match = re.search(rf'^monitord_config_reloads_total\{{outcome="{outcome}"\}} (\S+)$',
                      daemon.get("/metrics"), re.M)
    return float(match.group(1)) if match else 0.0


def sighup_and_wait(daemon: DaemonProcess, outcome: str) -> None:
    before = reloads(daemon, outcome)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: reloads(daemon, outcome) >= before + 1,
               f"a reload counted as {outcome}", daemon)


# -- the daemon run -----------------------------------------------------------------------------


def test_no_secret_canary_leaks_from_a_running_daemon(tmp_path: Path, db_url: str):
    setup = make_setup(tmp_path, db_url)
    canaries = setup.canaries
    expected = set(SECRET_NAMES) - ({"storage_password"} if db_url.startswith("sqlite") else set())
    assert set(canaries.values) == expected
    token = canaries.values["ingest_token"]
    daemon = DaemonProcess(setup.config_path, setup.port, tmp_path / "monitord.log",
                           env=setup.env)
    seen_cmdlines: dict[str, bytes] = {}  # "pid@n" -> /proc/pid/cmdline
    metrics_texts: list[str] = []
    running_files: dict[str, bytes] = {}

    def snapshot() -> None:
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
        seen_cmdlines.update({f"{pid}@{len(seen_cmdlines)}": line
                              for pid, line in cmdlines(daemon.proc.pid).items()})
        metrics_texts.append(daemon.get("/metrics"))

    try:
        daemon.start()
        # Signal handlers are installed just before this line is logged; /healthz can answer
        # a moment earlier, and a SIGHUP before the handler exists would kill the daemon.
        wait_until(lambda: "monitord started" in daemon.log(), "the start message", daemon)
        snapshot()
        assert daemon.proc.pid in descendants(daemon.proc.pid)
        assert b"monitord" in cmdlines(daemon.proc.pid)[daemon.proc.pid]

        # findings with the token; without it and with a wrong one they are refused
        reply = daemon.post_findings([finding("canary-a"), finding("canary-b", device="ups-dc",
                                                                   severity="critical")],
                                     token=token)
        assert [r["action"] for r in reply["results"]] == ["opened", "opened"], reply
        body = json.dumps({"findings": [finding("canary-c")]}).encode()
        assert post_raw(daemon, body, None)[0] == 401
        assert post_raw(daemon, body, "not-the-token")[0] == 401
        # malformed bodies: not JSON, and JSON that is not a finding
        status, answer = post_raw(daemon, b'{"findings": [{"kind": ', token)
        assert status == 422, answer
        status, answer = post_raw(daemon, json.dumps({"findings": [{"kind": "X!"}]}).encode(),
                                  token)
        assert status == 422, answer
        # A finding that fails inside the store write logs a traceback. Its dedup_key is
        # (attacker-chosen text equal to) the SNMP community: the log line names the key, so
        # only the redactor stands between the secret and the log.
        bad = finding(canaries.values["snmp_community"],
                      first_seen="9999-12-31T23:59:59-14:00")
        reply = daemon.post_findings([bad], token=token)
        assert reply["results"][0]["action"] == "failed", reply
        wait_until(lambda: "Traceback (most recent call last)" in daemon.log(),
                   "the traceback of the failed finding", daemon)
        assert "finding could not be applied kind=interface_down key=***" in daemon.log()
        snapshot()

        # SIGHUP: one good reload
        sighup_and_wait(daemon, "ok")
        snapshot()
        # three rejected reloads; the running configuration stays
        inline_value = canaries.new("inline_community")  # never resolved, never registered
        broken = copy.deepcopy(setup.data)
        broken["credentials"]["rtr-snmp"]["community"] = inline_value
        setup.write(broken)
        sighup_and_wait(daemon, "rejected")
        assert "credentials.rtr-snmp.community" in daemon.log()

        setup.auth_key_file.rename(setup.auth_key_file.with_suffix(".moved"))
        setup.write()
        sighup_and_wait(daemon, "rejected")
        assert "credentials.ups-v3.auth_key" in daemon.log()
        setup.auth_key_file.with_suffix(".moved").rename(setup.auth_key_file)

        setup.config_path.write_text(setup.config_path.read_text() + "\ndevices: [\n  {name: x,\n")
        sighup_and_wait(daemon, "rejected")
        assert "invalid YAML" in daemon.log()

        setup.write()
        sighup_and_wait(daemon, "ok")
        # the token still works after the reloads, and the incident folds
        reply = daemon.post_findings([finding("canary-a")], token=token)
        assert reply["results"][0]["action"] == "updated", reply
        snapshot()
        if db_url.startswith("sqlite"):
            running_files = sqlite_file_bytes(sqlite_path(db_url))
            assert any(name.endswith("-wal") for name in running_files), running_files.keys()
        returncode = daemon.stop()
    finally:
        daemon.kill()
    log = daemon.log()
    assert returncode == 0, f"monitord exited {returncode} on SIGTERM:\n{log}"
    assert "monitord stopped" in log
    assert log.count("reload rejected") >= 3 and log.count("configuration reloaded") == 2, log

    # -- the checks, each shown able to fail ---------------------------------------------------
    plant = canaries.values["snmpv3_priv_key"]

    assert_clean(canaries, "the daemon log", log)
    assert_scanner_catches(canaries, "the daemon log", log + plant)

    for index, text in enumerate(metrics_texts):
        assert "monitord_build_info" in text
        assert_clean(canaries, f"/metrics (scrape {index})", text)
    assert_scanner_catches(canaries, "/metrics", metrics_texts[-1] + f'# HELP x {plant}\n')

    assert len(seen_cmdlines) >= 4
    for key, line in seen_cmdlines.items():
        assert_clean(canaries, f"/proc/{key}/cmdline", line)
    # a real process with a canary in its argv, read the same way
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", plant]) as probe:
        try:
            planted = cmdlines(probe.pid)
            assert_scanner_catches(canaries, "/proc/<pid>/cmdline", planted[probe.pid])
        finally:
            probe.kill()

    if db_url.startswith("sqlite"):
        db = sqlite_path(db_url)
        for name, data in running_files.items():
            assert_clean(canaries, f"{name} (while running)", data)
        stopped_files = sqlite_file_bytes(db)
        for name, data in stopped_files.items():
            assert_clean(canaries, f"{name} (after stop)", data)
        rows = sqlite_rows(db)
        assert rows["incidents"] and rows["devices"] and rows["notification_outbox"], rows
        assert_clean(canaries, "the SQLite store's rows", rows_text(rows))
        # plant into a scratch copy, in a table of its own (so "every table" is shown) and in
        # WAL mode without checkpoints (so the -wal bytes are shown)
        scratch = tmp_path / "scratch" / db.name
        scratch.parent.mkdir()
        scratch.write_bytes(db.read_bytes())
        connection = sqlite3.connect(scratch)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.execute("CREATE TABLE scratch_plant (note TEXT)")
            connection.execute("INSERT INTO scratch_plant VALUES (?)", (plant,))
            connection.commit()
            assert_scanner_catches(canaries, "scratch rows", rows_text(sqlite_rows(scratch)))
            wal = sqlite_file_bytes(scratch)[scratch.name + "-wal"]
            assert_scanner_catches(canaries, "scratch -wal", wal)
        finally:
            connection.close()
        assert_scanner_catches(canaries, "scratch db file", scratch.read_bytes())
    else:
        rows = pg_rows(db_url)
        assert rows["public.incidents"] and rows["public.devices"], rows
        assert rows["public.notification_outbox"], rows
        assert_clean(canaries, "the PostgreSQL store's rows", rows_text(rows))
        import psycopg

        with psycopg.connect(pg_conninfo(db_url), autocommit=True) as conn:
            conn.execute("CREATE TABLE scratch_plant (note text)")
            conn.execute("INSERT INTO scratch_plant VALUES (%s)", (plant,))
        assert_scanner_catches(canaries, "PostgreSQL rows", rows_text(pg_rows(db_url)))


# -- inline secrets and missing secrets ---------------------------------------------------------


def inline_config(tmp_path: Path) -> tuple[Path, Canaries, list[str]]:
    """Every secret field written inline, and a password inside the PostgreSQL URL."""
    canaries = Canaries()
    data = {
        "language": "en",
        "logging": {"level": "debug"},
        "sites": [{"name": "hq"}],
        "credentials": {
            "rtr-snmp": {"type": "snmp_v2c", "community": canaries.new("snmp_community")},
            "old-snmp": {"type": "snmp_v1", "community": canaries.new("snmp_v1_community")},
            "ups-v3": {"type": "snmp_v3", "user": "monitord",
                       "auth_key": canaries.new("snmpv3_auth_key"),
                       "priv_key": canaries.new("snmpv3_priv_key")},
            "noc-ssh": {"type": "ssh", "username": "noc", "password": canaries.new("ssh_password"),
                        "private_key": canaries.new("ssh_private_key")},
        },
        "devices": [{"name": "core-rtr", "address": "127.0.0.1", "site": "hq", "kind": "router",
                     "credential": "rtr-snmp", "ssh_credential": "noc-ssh"}],
        "storage": {"url": "postgresql+psycopg://monitord:"
                           f"{canaries.new('storage_url_password')}@127.0.0.1:5432/monitord",
                    "password": canaries.new("storage_password")},
        "http": {"listen": f"127.0.0.1:{free_port()}",
                 "ingest_token": canaries.new("ingest_token")},
        "notifications": {"channels": [
            {"name": "noc-mail", "type": "email", "smtp_host": "127.0.0.1", "sender": "a@b.c",
             "to": ["d@e.f"], "password": canaries.new("email_password")},
            {"name": "noc-telegram", "type": "telegram", "chat_id": "1",
             "bot_token": canaries.new("telegram_bot_token")},
            {"name": "noc-hook", "type": "webhook", "url": "https://example.invalid/hook",
             "hmac_secret": canaries.new("webhook_token")},
        ]},
    }
    paths = ["credentials.rtr-snmp.community", "credentials.old-snmp.community",
             "credentials.ups-v3.auth_key", "credentials.ups-v3.priv_key",
             "credentials.noc-ssh.password", "credentials.noc-ssh.private_key", "storage.url",
             "storage.password", "http.ingest_token", "notifications.channels[0].password",
             "notifications.channels[1].bot_token", "notifications.channels[2].hmac_secret"]
    path = tmp_path / "inline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, canaries, paths


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_inline_secrets_are_rejected_without_being_printed(tmp_path: Path, command: str):
    path, canaries, key_paths = inline_config(tmp_path)
    assert canaries.values["snmp_community"] in path.read_text()  # the file holds them
    result = run_cli(command, "--config", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    for key_path in key_paths:
        assert key_path in output, f"{key_path} not named:\n{output}"
    assert "inline" in output
    assert_clean(canaries, f"`monitord {command}` output", output)
    assert_scanner_catches(canaries, f"`monitord {command}` output",
                           output + canaries.values["webhook_token"])


@pytest.mark.parametrize("missing", ["env", "file", "credential"])
def test_daemon_refuses_to_start_when_a_secret_cannot_be_resolved(tmp_path: Path,
                                                                  sqlite_url: str, missing: str):
    setup = make_setup(tmp_path, sqlite_url)
    env = dict(setup.env)
    if missing == "env":
        variable = setup.data["credentials"]["rtr-snmp"]["community"]["env"]
        del env[variable]
        key_path, detail = "credentials.rtr-snmp.community", variable
    elif missing == "file":
        setup.auth_key_file.unlink()
        key_path, detail = "credentials.ups-v3.auth_key", str(setup.auth_key_file)
    else:
        del env["CREDENTIALS_DIRECTORY"]
        key_path, detail = "credentials.ups-v3.priv_key", "CREDENTIALS_DIRECTORY"
    # the variable must be absent even if the surrounding environment happens to set it
    base = {k: v for k, v in os.environ.items()
            if k != "CREDENTIALS_DIRECTORY" and not k.startswith("MONITORD_TEST_")}
    result = subprocess.run([sys.executable, "-m", "monitord", "run", "--config",
                             str(setup.config_path)], capture_output=True, text=True,
                            timeout=60, env={**base, **env})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "cannot start" in output and key_path in output and detail in output, output
    assert "monitord started" not in output
    with pytest.raises(OSError):  # it never listened
        urllib.request.urlopen(f"http://127.0.0.1:{setup.port}/healthz", timeout=1)
    assert_clean(setup.canaries, "the refused start's output", output)
    assert_scanner_catches(setup.canaries, "the refused start's output",
                           output + setup.canaries.values["ssh_password"])


# -- a YAML tag on an inline secret -------------------------------------------------------------
# `community: !secret VALUE`, `!!int VALUE` or `!!binary VALUE` must be refused like any inline
# secret: no traceback quoting the line, no decoded bytes, and a reload rejected and counted.
TAGGED_FORMS = ["!secret {value}", "!!int {value}", "!!float {value}", "!!binary {value}"]


def tagged_config(directory: Path, community: str, port: int | None = None) -> Path:
    """A small valid config except for `community:`, given as raw YAML."""
    path = directory / "tagged.yaml"
    path.write_text(f"language: en\nlogging: {{level: debug}}\nsites:\n  - name: hq\n"
                    f"credentials:\n  rtr-snmp:\n    type: snmp_v2c\n"
                    f"    community: {community}\n"
                    f"http: {{listen: \"127.0.0.1:{port or free_port()}\"}}\n"
                    f"storage: {{url: \"sqlite:///{directory}/monitord.db\"}}\n"
                    f"collectors:\n  host: {{enabled: false}}\n")
    return path


def binary_echo(value: str) -> str:
    import base64
    return repr(base64.decodebytes(re.sub(rb"[^A-Za-z0-9+/]", b"", value.encode())))[2:-1]


@pytest.mark.parametrize("form", TAGGED_FORMS)
def test_tagged_inline_secret_is_rejected_without_being_printed(tmp_path: Path, form: str):
    canaries = Canaries()
    value = canaries.new("tagged_community")
    path = tagged_config(tmp_path, form.format(value=value))
    result = run_cli("check-config", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert_clean(canaries, "`monitord check-config` output", output)
    assert binary_echo(value) not in output, output
    assert result.returncode == 2 and "Traceback" not in output, output


def test_reload_with_a_tagged_inline_secret_is_rejected_without_being_logged(tmp_path: Path):
    port = free_port()
    canaries = Canaries()
    value = canaries.new("tagged_community")
    variable = f"MONITORD_TEST_COMMUNITY_{uuid.uuid4().hex[:8].upper()}"
    path = tagged_config(tmp_path, f"{{env: {variable}}}", port)
    daemon = DaemonProcess(path, port, tmp_path / "monitord.log",
                           env={variable: canaries.new("snmp_community")})
    try:
        daemon.start()
        wait_until(lambda: "monitord started" in daemon.log(), "the start message", daemon)
        tagged_config(tmp_path, f"!secret {value}", port)
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while reloads(daemon, "rejected") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        rejected = reloads(daemon, "rejected")
        returncode = daemon.stop()
    finally:
        daemon.kill()
    assert_clean(canaries, "the daemon log", daemon.log())
    assert returncode == 0 and rejected == 1, daemon.log()


# -- netconfig: configuration backups over SSH (issue 7) ----------------------------------------


def test_no_secret_canary_leaks_from_netconfig_backups(tmp_path: Path, db_url: str):
    """The same scanners on a daemon that backs up a real device over SSH (sshd in a hostns-
    namespace, tests/sshd_peer.py) whose login password is the `ssh_password` canary and whose
    running configuration carries the SNMP community canary and a canary token on secret
    lines. The daemon logs at debug (where netmiko would print every byte the device sends);
    after a change has opened a config_changed incident with its diff, no canary may be in the
    log, /metrics or any row (or, on SQLite, any byte) of the store."""
    from monitord.incidents.store import open_store
    from monitord.config import Storage
    from tests import sshd_peer

    if sshd_peer.available() is not None:
        pytest.skip(str(sshd_peer.available()))
    setup = make_setup(tmp_path, db_url)
    canaries = setup.canaries
    token = canaries.new("config_token")  # only keyword masking stands between it and the store
    peer = sshd_peer.start_peer(password=canaries.values["ssh_password"])
    community = canaries.values["snmp_community"]
    config_text = (f"hostname lab-sw\nsnmp-server community {community} RO\n"
                   f"crypto isakmp key {token} address 0.0.0.0\n"
                   f"username noc secret {canaries.values['ssh_password']}\n")
    peer.write_config(config_text)
    setup.data["devices"].append({"name": "lab-sw", "address": peer.address, "site": "hq",
                                  "kind": "switch", "ssh_credential": "noc-ssh"})
    setup.data["credentials"]["noc-ssh"]["username"] = peer.username
    setup.data["netconfig"] = [{"device": "lab-sw", "device_type": "linux",
                                "config_command": f"cat {peer.running_conf}",
                                "commands": [f"cat {peer.running_conf}"],
                                "interval": "1s", "timeout": "15s"}]
    setup.write()
    daemon = DaemonProcess(setup.config_path, setup.port, tmp_path / "monitord.log",
                           env=setup.env)
    store = open_store(Storage(url=db_url))
    metrics_texts: list[str] = []

    def incident_kinds() -> set[str]:
        from sqlalchemy import select
        from monitord.incidents.store.models import IncidentRow
        try:
            with store.sessions() as session:
                return set(session.scalars(select(IncidentRow.kind)))
        except Exception:  # the daemon has not migrated yet
            return set()

    try:
        daemon.start()
        wait_until(lambda: "monitord_netconfig_up{device=\"lab-sw\"} 1.0"
                   in daemon.get("/metrics"), "a successful backup", daemon, timeout=40)
        peer.write_config(config_text + "interface eth1\n description uplink\n")
        wait_until(lambda: "config_changed" in incident_kinds(), "the config change", daemon,
                   timeout=40)
        metrics_texts.append(daemon.get("/metrics"))
        returncode = daemon.stop()
    finally:
        daemon.kill()
        store.close()
        peer.stop()
    log = daemon.log()
    assert returncode == 0, log
    assert "netconfig changed device=lab-sw" in log
    assert_clean(canaries, "the daemon log", log)
    assert_scanner_catches(canaries, "the daemon log", log + token)
    for text in metrics_texts:
        assert_clean(canaries, "/metrics", text)
    if db_url.startswith("sqlite"):
        db = sqlite_path(db_url)
        rows = sqlite_rows(db)
        for name, data in sqlite_file_bytes(db).items():
            assert_clean(canaries, f"{name} (after stop)", data)
    else:
        rows = pg_rows(db_url)
    text = rows_text(rows)
    assert "snmp-server community ***" in text and "crypto isakmp key ***" in text
    assert "+interface eth1" in text  # the diff is in the incident's evidence
    assert_clean(canaries, "the store's rows", text)
    assert_scanner_catches(canaries, "the store's rows", text + token)
