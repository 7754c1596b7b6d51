"""The transport and sessions against real agents: many devices over one socket, an
unreachable device costs only its own timeout, malformed answers are counted and dropped,
SNMPv3 authNoPriv/authPriv against net-snmp's snmpd with wrong credentials told apart from
silence, and `monitord snmp poll` (validators and output)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from monitord.collectors.snmp import ber
from monitord.collectors.snmp.poller import poll_device, poll_many
from monitord.collectors.snmp.transport import SnmpTimeout, SnmpTransport, Target, V2Session
from monitord.collectors.snmp.v3 import V3Session, V3Target
from monitord.cli_snmp import SnmpUsageError, parse_host
from tests.snmp_support import V3_USERS, free_udp_port, snmpd_v3, snmpsim  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(coro):
    return asyncio.run(coro)


def test_many_devices_concurrently_and_a_dead_one_does_not_delay_them(snmpsim):
    """Five devices polled at once, alone and then with a silent device among them: the live
    ones take as long as without it (snmpsim, a Python agent, sets that pace), and the dead
    one costs exactly its own budget (timeout x attempts)."""
    dead = free_udp_port()
    names = ["ios_c3560", "junos_qfx5100", "procurve_e2910", "asa", "linux_powermon"]

    async def go(with_dead: bool, dead_timeout: float = 0.0):
        transport = SnmpTransport()
        try:
            live = [(V2Session(transport, Target("127.0.0.1", snmpsim.port, n.encode(),
                                                 timeout=10)), n, None) for n in names]
            started = time.monotonic()
            dead_task = None
            if with_dead:
                silent = V2Session(transport, Target("127.0.0.1", dead, b"x",
                                                     timeout=dead_timeout, retries=1))
                dead_task = asyncio.ensure_future(poll_device(silent, "dead"))
            snaps = await poll_many(live)
            live_done = time.monotonic() - started
            dead_snap = await dead_task if dead_task else None
            return snaps, live_done, dead_snap, time.monotonic() - started
        finally:
            transport.close()

    _snaps, baseline, _d, _t = run(go(False))
    dead_timeout = max(2.0, 2 * baseline)
    snaps, live_done, dead_snap, total = run(go(True, dead_timeout))
    assert all(s.ok for s in snaps)
    assert {len(s.interfaces) for s in snaps if s.device == "ios_c3560"} == {58}
    assert dead_snap.error == "timeout"
    assert live_done < baseline * 1.5 + 0.5 < dead_timeout  # not delayed by the dead one
    assert 2 * dead_timeout - 0.1 <= total < 2 * dead_timeout + 1.0  # its budget, no more


def test_garbage_and_spoofed_answers_are_counted_and_dropped(snmpsim):
    """A fake agent answers first with garbage and with a wrong request id, then correctly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def fake():
        data, addr = sock.recvfrom(65535)
        request = ber.decode_message(data)
        sock.sendto(b"\x30\x03\x02\x01", addr)  # truncated BER
        sock.sendto(ber.encode_message(1, b"public", ber.PDU_RESPONSE, request.request_id + 1,
                                       []), addr)  # not our request
        sock.sendto(ber.encode_message(1, b"public", ber.PDU_RESPONSE, request.request_id,
                                       [(request.varbinds[0][0], ber.TAG_OCTETS, b"ok")]),
                    addr)

    async def go():
        transport = SnmpTransport()
        try:
            loop = asyncio.get_running_loop()
            helper = loop.run_in_executor(None, fake)
            session = V2Session(transport, Target("127.0.0.1", port, b"public", timeout=3))
            got = await session.get([ber.oid_to_bytes("1.3.6.1.2.1.1.5.0")])
            await helper
            return got, transport.decode_errors, transport.unmatched
        finally:
            transport.close()

    got, decode_errors, unmatched = run(go())
    sock.close()
    assert list(got.values()) == [(ber.TAG_OCTETS, b"ok")]
    assert decode_errors == 1 and unmatched == 1


@pytest.mark.parametrize("user", sorted(V3_USERS))
def test_v3_against_snmpd(snmpd_v3, user):
    auth, auth_key, priv, priv_key = V3_USERS[user]
    session = V3Session(V3Target("127.0.0.1", snmpd_v3.port, user, auth, auth_key, priv,
                                 priv_key, timeout=2, retries=0))
    snap = run(poll_device(session, "agent"))
    assert snap.ok, snap.error_detail
    assert snap.sys_object_id == "1.3.6.1.4.1.8072.3.2.10"
    assert snap.uptime_ticks is not None and snap.uptime_ticks > 0
    assert any(i.if_name == "lo" or i.if_descr == "lo" for i in snap.interfaces)
    assert "host-resources" in snap.profiles and snap.memory_percent is not None
    # UCD laLoad and hrProcessorTable: this machine's own load and CPU count
    assert snap.cpu_count == os.cpu_count()
    assert abs(snap.load1 - os.getloadavg()[0]) < max(2.0, os.getloadavg()[0] * 0.5)


def test_v3_wrong_credentials_are_not_a_timeout(snmpd_v3):
    auth, _key, priv, priv_key = V3_USERS["privsha256"]
    wrong_key = V3Session(V3Target("127.0.0.1", snmpd_v3.port, "privsha256", auth,
                                   "not-the-auth-key", priv, priv_key, timeout=2, retries=0))
    unknown_user = V3Session(V3Target("127.0.0.1", snmpd_v3.port, "nobody", auth,
                                      "auth-key-256", priv, priv_key, timeout=2, retries=0))
    for session in (wrong_key, unknown_user):
        started = time.monotonic()
        snap = run(poll_device(session, "agent"))
        assert snap.error == "auth", snap.error_detail
        assert time.monotonic() - started < 1.5  # told by the agent, not by waiting


def test_v2c_on_snmpd_reads_its_uptime(snmpd_v3):
    async def go():
        transport = SnmpTransport()
        try:
            return await poll_device(V2Session(transport, Target(
                "127.0.0.1", snmpd_v3.port, b"public")), "agent")
        finally:
            transport.close()
    snap = run(go())
    assert snap.ok and snap.uptime_ticks > 0 and snap.sys_name


@pytest.mark.parametrize("bad", ["127.0.0.1;id", "-h", "host\nname", "a b", "$(reboot)",
                                 "h\x00", "10.0.0.1:0", "10.0.0.1:99999", "10.0.0.1:16a",
                                 "`x`", "host|cat", ""])
def test_host_validator_refuses(bad):
    with pytest.raises(SnmpUsageError):
        parse_host(bad)


@pytest.mark.parametrize("good,want", [("10.0.0.1", ("10.0.0.1", 161)),
                                       ("sw1.kominfo.go.id:1161", ("sw1.kominfo.go.id", 1161)),
                                       ("[2001:db8::1]:162", ("2001:db8::1", 162)),
                                       ("2001:db8::1", ("2001:db8::1", 161))])
def test_host_validator_accepts(good, want):
    assert parse_host(good) == want


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "monitord", "snmp", "poll", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


@pytest.mark.parametrize("args", [
    ("--host", "127.0.0.1", "--community", "pub;lic"),
    ("--host", "127.0.0.1", "--community", "-public"),
    ("--host", "127.0.0.1", "--community", "pub\nlic"),
    ("--host", "127.0.0.1", "--v3-user", "u;x", "--auth-key-env", "AK"),
    ("--host", "127.0.0.1", "--v3-user", "u", "--auth-key-env", "A;K"),
    ("--host", "127.0.0.1", "--community", "public", "--profile", "../etc"),
])
def test_cli_refuses_hostile_arguments(args):
    result = cli(*args, "--json")
    assert result.returncode == 2, result.stderr
    assert "error" in result.stderr and result.stdout == ""


def test_cli_json_against_recording(snmpsim):
    result = cli("--host", f"127.0.0.1:{snmpsim.port}", "--community", "apc_smx750", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"system", "interfaces", "ups", "cpu_percent", "memory_percent",
                         "storage"}
    assert data["system"]["sysObjectID"] == "1.3.6.1.4.1.318.1.3.27"
    assert data["system"]["sysName"] is None  # not in the recording: null, never invented
    assert data["ups"]["charge_percent"] == 100 and data["ups"]["on_battery"] is False
    assert data["cpu_percent"] is None and data["storage"] is None
    assert data["interfaces"][0]["ifDescr"] == "LOOPBACK"


def test_cli_v3_and_wrong_key(snmpd_v3):
    auth, auth_key, priv, priv_key = V3_USERS["privsha512"]
    base = ("--host", f"127.0.0.1:{snmpd_v3.port}", "--v3-user", "privsha512",
            "--auth-key-env", "T_AK", "--priv-key-env", "T_PK", "--auth-protocol", auth,
            "--priv-protocol", priv, "--json")
    ok = cli(*base, env={"T_AK": auth_key, "T_PK": priv_key})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["system"]["sysObjectID"] == "1.3.6.1.4.1.8072.3.2.10"
    bad = cli(*base, env={"T_AK": "definitely-wrong", "T_PK": priv_key})
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["error"] == "auth"
    assert "definitely-wrong" not in bad.stdout + bad.stderr


def test_cli_timeout(snmpsim):
    result = cli("--host", f"127.0.0.1:{free_udp_port()}", "--community", "public",
                 "--timeout", "0.3", "--retries", "0", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "timeout"


def test_v3_same_user_name_with_different_keys_on_two_devices(snmpd_v3):
    """Offices use one v3 user name with per-device keys: a device with the wrong key must not
    spoil the right one's (pysnmp caches USM users per engine; each session has its own)."""
    auth, auth_key, priv, priv_key = V3_USERS["privsha256"]
    good = V3Session(V3Target("127.0.0.1", snmpd_v3.port, "privsha256", auth, auth_key, priv,
                              priv_key, timeout=2, retries=0))
    bad = V3Session(V3Target("127.0.0.1", snmpd_v3.port, "privsha256", auth, "other-key-256",
                             priv, priv_key, timeout=2, retries=0))

    async def go():
        results = []
        for _ in range(3):
            results += await asyncio.gather(poll_device(good, "good"), poll_device(bad, "bad"))
        return results

    results = run(go())
    assert [s.error for s in results] == [None, "auth"] * 3


def test_v3_wrong_privacy_key_looks_like_silence_as_for_net_snmp_itself(snmpd_v3):
    """snmpd cannot decrypt the scoped PDU and sends no report, so a wrong *privacy* key is
    indistinguishable from silence: net-snmp's own snmpget sees the same (checked here)."""
    auth, auth_key, priv, _priv_key = V3_USERS["privsha256"]
    snap = run(poll_device(V3Session(V3Target("127.0.0.1", snmpd_v3.port, "privsha256", auth,
                                              auth_key, priv, "wrong-priv-key", timeout=1,
                                              retries=0)), "agent"))
    assert snap.error == "timeout"
    result = subprocess.run(
        ["snmpget", "-v3", "-l", "authPriv", "-u", "privsha256", "-a", "SHA-256", "-A",
         auth_key, "-x", "AES", "-X", "wrong-priv-key", "-t", "1", "-r", "0",
         f"127.0.0.1:{snmpd_v3.port}", "1.3.6.1.2.1.1.5.0"],
        capture_output=True, text=True, timeout=20)
    assert result.returncode != 0 and "Timeout" in result.stdout + result.stderr
