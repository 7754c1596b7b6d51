"""A small switched LAN in network namespaces for the live traffic tests (prefix `trafns-`).

    trafns-a (attacker, 10.199.0.2) --+
    trafns-v (victim,   10.199.0.3) --+-- br0 in trafns-sw (ageing 0: a hub) -- trafmon0 (root ns)
    trafns-x (forger,   10.199.0.4) --+

The bridge forgets every MAC at once, so it floods every frame to every port: `trafmon0`, an
address-less, IPv6-less veth end in the root namespace, is a mirror port, and the daemon under
test captures there. Nothing leaves these namespaces; the root namespace has no address on the
segment, so it neither answers nor forwards what it sees.

`replay_pair()` makes a separate namespace (trafns-rp) with a veth pair for tcpreplay: frames
written into one end arrive on the other, both inside that namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess

PREFIX = "trafns-"
HOSTS = {"a": "10.199.0.2", "v": "10.199.0.3", "x": "10.199.0.4"}
MONITOR = "trafmon0"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=30)


def ns_exec(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", f"{PREFIX}{ns}", *argv]


def available() -> str | None:
    """Why the live tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, raw sockets)"
    for tool in ("ip", "nmap", "hping3", "tcpreplay", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/test-setup.sh)"
    return None


def mac_of(ns: str, dev: str) -> str:
    return _run(*ns_exec(ns, "cat", f"/sys/class/net/{dev}/address")).stdout.strip()


def teardown() -> None:
    for ns in ("a", "v", "x", "sw", "rp"):
        _run("ip", "netns", "del", f"{PREFIX}{ns}", check=False)
    _run("ip", "link", "del", MONITOR, check=False)


def setup_lan() -> None:
    teardown()
    try:
        _run("ip", "netns", "add", f"{PREFIX}sw")
        _run(*ns_exec("sw", "ip", "link", "add", "br0", "type", "bridge", "ageing_time", "0",
                      "stp_state", "0"))
        _run(*ns_exec("sw", "ip", "link", "set", "br0", "up"))
        for name, addr in HOSTS.items():
            ns = f"{PREFIX}{name}"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", f"trafh-{name}", "netns", ns, "type", "veth", "peer",
                 "name", f"trafp-{name}", "netns", f"{PREFIX}sw")
            _run(*ns_exec(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"))
            _run(*ns_exec(name, "ip", "addr", "add", f"{addr}/24", "dev", f"trafh-{name}"))
            _run(*ns_exec(name, "ip", "link", "set", f"trafh-{name}", "up"))
            _run(*ns_exec(name, "ip", "link", "set", "lo", "up"))
            _run(*ns_exec("sw", "ip", "link", "set", f"trafp-{name}", "master", "br0", "up"))
        _run("ip", "link", "add", MONITOR, "type", "veth", "peer", "name", "trafp-mon", "netns",
             f"{PREFIX}sw")
        _run("sysctl", "-qw", f"net.ipv6.conf.{MONITOR}.disable_ipv6=1")
        _run("ip", "link", "set", MONITOR, "up")
        _run(*ns_exec("sw", "ip", "link", "set", "trafp-mon", "master", "br0", "up"))
    except Exception:
        teardown()
        raise


def replay_pair() -> tuple[str, str]:
    """(write end, capture end) of a veth pair inside trafns-rp."""
    _run("ip", "netns", "del", f"{PREFIX}rp", check=False)
    _run("ip", "netns", "add", f"{PREFIX}rp")
    _run(*ns_exec("rp", "ip", "link", "add", "trafrp0", "type", "veth", "peer", "name",
                  "trafrp1"))
    for dev in ("trafrp0", "trafrp1"):
        _run(*ns_exec("rp", "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"),
             check=False)
        _run(*ns_exec("rp", "ip", "link", "set", dev, "mtu", "9000", "up"))
    return "trafrp1", "trafrp0"
