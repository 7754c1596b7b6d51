"""The snmpd namespace harness against the real agent it starts, checked with net-snmp's own
command-line clients (snmpwalk/snmpget), so the harness is known good before other tests
(trap scenarios, the benchmark, the fuzz) rely on it."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from tests.snmpd_ns import (HarnessError, SnmpdNamespace, _run, cleanup_stale,
                            snmpd_ns_skip_reason)

pytestmark = pytest.mark.skipif(snmpd_ns_skip_reason() is not None,
                                reason=snmpd_ns_skip_reason() or "")

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
ENGINE_BOOTS = "1.3.6.1.6.3.10.2.1.2.0"


def _ticks(agent: SnmpdNamespace) -> int:
    out = _run(["snmpget", *agent.auth_args(), "-On", "-Ot", "-Oq", agent.target,
                SYS_UPTIME]).stdout
    return int(out.split()[1])


def _namespaces() -> set[str]:
    return {line.split()[0] for line in _run(["ip", "netns", "list"]).stdout.splitlines()
            if line.strip()}


def _column(agent: SnmpdNamespace, oid: str) -> dict[int, str]:
    return {int(o.rsplit(".", 1)[1]): v for o, v in agent.walk(oid)}


def _wait_oper(agent: SnmpdNamespace, ifindex: int, want: str, timeout: float = 10.0) -> float:
    """snmpd caches interface data for a few seconds: poll until the value shows."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _column(agent, IF_OPER).get(ifindex) == want:
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"ifOperStatus.{ifindex} never became {want}")


@pytest.fixture(scope="module")
def agent():
    cleanup_stale()
    trap_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a = SnmpdNamespace(interfaces=10, link_traps=True, extra_addresses=2)
    a.create()
    try:
        trap_sock.bind((a.host_address, 0))
        a.trap_sink = f"{a.host_address}:{trap_sock.getsockname()[1]}"
        a.start()
        a.trap_socket = trap_sock  # type: ignore[attr-defined]
        yield a
    finally:
        a.destroy()
        trap_sock.close()


def test_walk_lists_every_interface_of_the_namespace(agent):
    names = set(_column(agent, IF_NAME).values())
    assert names == {"lo", agent.uplink, *agent.interface_names}
    assert len(agent.interface_names) == 10
    descr = _column(agent, IF_DESCR)
    for name in agent.interface_names:
        assert descr[agent.ifindex(name)] == name


def test_every_address_answers_v2c_and_v3(agent):
    for address in agent.addresses:
        assert agent.walk("1.3.6.1.2.1.1.5", address=address) == \
            [("1.3.6.1.2.1.1.5.0", agent.name)]
    assert agent.walk("1.3.6.1.2.1.1.5", v3=True) == [("1.3.6.1.2.1.1.5.0", agent.name)]


def test_wrong_community_gets_no_answer_and_wrong_v3_key_is_rejected(agent):
    wrong = _run(["snmpget", "-v2c", "-c", "not-the-community", "-t", "0.5", "-r", "0",
                  agent.target, SYS_UPTIME], check=False)
    assert wrong.returncode != 0 and "Timeout" in wrong.stderr
    args = agent.auth_args(v3=True)
    args[args.index("-A") + 1] = "a-wrong-auth-key-000"
    bad = _run(["snmpget", *args, "-t", "1", "-r", "0", agent.target, SYS_UPTIME], check=False)
    assert bad.returncode != 0
    assert "Authentication failure" in bad.stderr or "wrong digest" in bad.stderr.lower()


def test_carrier_down_is_admin_up_oper_down_and_link_down_is_admin_down(agent):
    p1, q2 = agent.ifindex("p1"), agent.ifindex("q2")
    agent.carrier_down("p1")
    agent.link_down("q2")
    try:
        _wait_oper(agent, p1, "2")
        _wait_oper(agent, q2, "2")
        admin = _column(agent, IF_ADMIN)
        assert admin[p1] == "1" and admin[q2] == "2"
    finally:
        agent.carrier_up("p1")
        agent.link_up("q2")
    _wait_oper(agent, p1, "1")
    _wait_oper(agent, q2, "1")


def test_link_change_sends_a_linkdown_trap_to_the_sink(agent):
    sock = agent.trap_socket
    sock.settimeout(0.3)
    try:  # drain coldStart and anything earlier tests caused
        while True:
            sock.recvfrom(65535)
    except socket.timeout:
        pass
    p5 = agent.ifindex("p5")
    agent.link_down("p5")
    try:
        sock.settimeout(10)
        deadline = time.monotonic() + 10
        link_down = bytes.fromhex("2b0601060301010503")  # 1.3.6.1.6.3.1.1.5.3
        index_vb = bytes.fromhex("2b06010201020201010%x" % p5) if p5 < 16 else b""
        while time.monotonic() < deadline:
            data, source = sock.recvfrom(65535)
            if link_down in data and (not index_vb or index_vb in data):
                assert source[0] == agent.address
                break
        else:
            pytest.fail("no linkDown trap for p5")
    finally:
        agent.link_up("p5")


def test_restart_resets_uptime_and_counts_engine_boots(agent):
    boots = lambda: int(agent.walk(ENGINE_BOOTS.rsplit(".", 1)[0], v3=True)[0][1])  # noqa: E731
    before_boots = boots()
    time.sleep(1.1)
    before = _ticks(agent)
    old_pid = agent.pid
    agent.restart()
    assert agent.pid != old_pid
    assert _ticks(agent) < before
    assert boots() == before_boots + 1


def test_teardown_removes_namespace_and_uplink_even_when_the_body_raises():
    with pytest.raises(ZeroDivisionError):
        with SnmpdNamespace(interfaces=2) as a:
            name, uplink, pid = a.name, f"snh{a.index}", a.pid
            assert name in _namespaces()
            1 / 0
    assert name not in _namespaces()
    assert _run(["ip", "link", "show", uplink], check=False).returncode != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_bad_config_fails_clearly_and_leaves_nothing_behind():
    before = _namespaces()
    with pytest.raises(HarnessError, match="snmpd"):
        with SnmpdNamespace(interfaces=2, port=70000):  # snmpd cannot open this endpoint
            pass
    assert _namespaces() == before


def test_cleanup_stale_removes_namespaces_of_dead_creators():
    proc = subprocess.Popen(["true"])
    proc.wait()
    name = f"snmpns-{proc.pid}-250"
    _run(["ip", "netns", "add", name])
    try:
        assert name in cleanup_stale()
        assert name not in _namespaces()
    finally:
        _run(["ip", "netns", "del", name], check=False)


def test_interface_names_are_checked(agent):
    with pytest.raises(HarnessError):
        agent.link_down("eth0; reboot")
