"""A real net-snmp `snmpd` inside a network namespace, for tests and benchmarks.

Why a namespace: the agent then has interfaces of its own that a test can take down for real
(`ip link set ... down`), its own addresses, and it can be stopped and restarted without
touching the host. Everything this module creates is named `snmpns-*` (namespaces) or
`snh<N>` (the veth end left in the root namespace) and lives in 10.177.<N>.0/24, a range only
this harness uses; nothing else ever receives traffic from it.

    from tests.snmpd_ns import SnmpdNamespace, snmpd_ns_skip_reason

    with SnmpdNamespace(interfaces=50, community="public") as agent:
        agent.address                      # "10.177.3.2", UDP 161 inside the namespace
        agent.walk("1.3.6.1.2.1.2.2.1.2")  # real snmpwalk from the root namespace
        agent.carrier_down("p3")           # p3: admin up, oper down (its veth peer goes down)
        agent.link_down("p4")              # p4: admin down
        agent.restart()                    # sysUpTime resets, engineBoots + 1 (v3)

Interfaces: this kernel has no `dummy` module, so the N interfaces inside are veth pairs
(`p1`/`q1`, `p2`/`q2`, ...), both ends inside the namespace, all up. `interfaces=N` makes N
interfaces (N/2 pairs; an odd N is rounded up to the next even number), plus `lo` and the
uplink `sna<N>`. Where the `dummy` link type exists, `dummy=True` makes N dummy interfaces
`d1..dN` instead.

SNMP: v2c community (read-only), an SNMPv3 authPriv user (SHA-256 + AES-128 by default,
`createUser` in the config, persistent state in the agent's own directory so engineBoots
grows across restarts), `agentAddress` on the namespace's address(es), optional trap sink
(`trap_sink="10.177.N.1:16200"`, a v2c trap2sink; `link_traps=True` adds DisMan monitors that
send linkDown/linkUp within `link_trap_interval` seconds of a change).

Teardown kills snmpd and deletes the namespace and veth even when the body raised; an atexit
hook does the same for anything left behind, and `cleanup_stale()` removes namespaces whose
creating process is gone (names carry the creator's pid).
"""

from __future__ import annotations

import atexit
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

SNMPD = "/usr/sbin/snmpd"
PREFIX = "snmpns-"
NET = "10.177"
LOCK_PATH = Path(tempfile.gettempdir()) / "snmpns.lock"
LINK_DOWN = ".1.3.6.1.6.3.1.1.5.3"
LINK_UP = ".1.3.6.1.6.3.1.1.5.4"
IF_INDEX = ".1.3.6.1.2.1.2.2.1.1"
IF_ADMIN = ".1.3.6.1.2.1.2.2.1.7"
IF_OPER = ".1.3.6.1.2.1.2.2.1.8"
_LIVE: dict[str, "SnmpdNamespace"] = {}


class HarnessError(RuntimeError):
    """The namespace or agent could not be set up; the message says which command failed."""


def snmpd_ns_skip_reason() -> str | None:
    """Why the harness cannot run here (for `pytest.skip`), or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", SNMPD, "snmpwalk"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/test-setup.sh installs it)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns does not work here: {probe.stderr.strip()}"
    return None


def _run(cmd: list[str], check: bool = True,
         input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _dummy_supported() -> bool:
    probe = _run(["ip", "link", "add", "snmpns-probe", "type", "dummy"], check=False)
    if probe.returncode == 0:
        _run(["ip", "link", "del", "snmpns-probe"], check=False)
        return True
    return False


def _used_indexes() -> set[int]:
    out = _run(["ip", "-o", "link", "show"], check=False).stdout
    used = {int(m) for m in re.findall(r"\bsnh(\d+)\b", out)}
    out = _run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
    used |= {int(m) for m in re.findall(rf"\b{re.escape(NET)}\.(\d+)\.", out)}
    return used


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete `snmpns-<pid>-*` namespaces (and their veth) whose creating process has exited."""
    removed = []
    for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{PREFIX}(\d+)-(\d+)", name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_ns_processes(name)
            _run(["ip", "netns", "del", name], check=False)
            _run(["ip", "link", "del", f"snh{m.group(2)}"], check=False)
            removed.append(name)
    return removed


def _kill_ns_processes(ns: str) -> None:
    pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@dataclass
class SnmpdNamespace:
    """One namespace with its uplink, N interfaces and one snmpd; a context manager.

    `extra_addresses=k` gives the agent k more addresses (10.177.N.3 ...) it also answers on;
    the benchmark uses them as k more "devices" served by the same snmpd.
    """

    interfaces: int = 8
    community: str = "public"
    v3_user: str = "monitor"
    auth_protocol: str = "SHA-256"
    auth_key: str = "authpass-0123456789"
    priv_protocol: str = "AES"
    priv_key: str = "privpass-0123456789"
    extra_addresses: int = 0
    trap_sink: str | None = None
    trap_community: str = "public"
    link_traps: bool = False
    link_trap_interval: int = 1
    sys_name: str | None = None
    dummy: bool = False
    port: int = 161
    workdir: Path | None = None
    index: int = field(default=-1, init=False)
    name: str = field(default="", init=False)
    proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)
    interface_names: list[str] = field(default_factory=list, init=False)

    # ---- addresses -------------------------------------------------------------------
    @property
    def host_address(self) -> str:
        """The root namespace's end of the uplink (where a trap receiver listens)."""
        return f"{NET}.{self.index}.1"

    @property
    def address(self) -> str:
        """The agent's first address (udp/161 by default)."""
        return f"{NET}.{self.index}.2"

    @property
    def addresses(self) -> list[str]:
        """Every address the agent answers on: `address` first, then the extra ones."""
        return [f"{NET}.{self.index}.{2 + i}" for i in range(1 + self.extra_addresses)]

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}" if self.port != 161 else self.address

    @property
    def uplink(self) -> str:
        return f"sna{self.index}"

    # ---- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> "SnmpdNamespace":
        self.create()
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def create(self) -> None:
        """Namespace, uplink veth with addresses, N interfaces inside, all up."""
        if self.extra_addresses > 250:
            raise HarnessError("at most 250 extra addresses per namespace")
        reason = snmpd_ns_skip_reason()
        if reason:
            raise HarnessError(reason)
        LOCK_PATH.touch(exist_ok=True)
        with open(LOCK_PATH) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _used_indexes()
            free = [i for i in range(1, 255) if i not in used]
            if not free:
                raise HarnessError(f"no free {NET}.N.0/24 subnet left")
            self.index = free[0]
            self.name = f"{PREFIX}{os.getpid()}-{self.index}"
            _LIVE[self.name] = self
            _run(["ip", "netns", "add", self.name])
            _run(["ip", "link", "add", f"snh{self.index}", "type", "veth", "peer", "name",
                  self.uplink])
        _run(["ip", "link", "set", self.uplink, "netns", self.name])
        _run(["ip", "addr", "add", f"{self.host_address}/24", "dev", f"snh{self.index}"])
        _run(["ip", "link", "set", f"snh{self.index}", "up"])
        batch = ["link set lo up"]
        batch += [f"addr add {a}/24 dev {self.uplink}" for a in self.addresses]
        batch.append(f"link set {self.uplink} up")
        if self.dummy:
            names = [f"d{i}" for i in range(1, self.interfaces + 1)]
            batch += [f"link add {n} type dummy" for n in names]
        else:
            pairs = (self.interfaces + 1) // 2
            names = []
            for i in range(1, pairs + 1):
                batch.append(f"link add p{i} type veth peer name q{i}")
                names += [f"p{i}", f"q{i}"]
        batch += [f"link set {n} up" for n in names]
        _run(["ip", "-n", self.name, "-batch", "-"], input="\n".join(batch) + "\n")
        self.interface_names = names
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
            self._own_workdir = True
        (self.workdir / "persist").mkdir(parents=True, exist_ok=True)

    def config_text(self) -> str:
        """The generated snmpd.conf (documented in the module docstring)."""
        agent = ",".join(f"udp:{a}:{self.port}" for a in self.addresses)
        lines = [
            f"agentAddress {agent}",
            "dontLogTCPWrappersConnects yes",
            f"rocommunity {self.community} default",
            f"rocommunity6 {self.community} default",
            f"createUser {self.v3_user} {self.auth_protocol} {self.auth_key} "
            f"{self.priv_protocol} {self.priv_key}",
            f"rouser {self.v3_user} authpriv",
            f"sysName {self.sys_name or self.name}",
            "sysLocation snmpd_ns test harness",
            "sysContact noc@example.invalid",
            "sysServices 72",
        ]
        if self.trap_sink:
            lines.append(f"trap2sink {self.trap_sink} {self.trap_community}")
        if self.link_traps:
            lines += [
                "createUser _internal SHA-256 internal-pass-0123",
                "iquerySecName _internal",
                "rouser _internal",
                # Numeric OIDs: Debian ships no MIB files. linkUp/linkDown with ifIndex,
                # ifAdminStatus, ifOperStatus; -S: nothing fires for the state at start-up.
                f"notificationEvent snmpnsLinkUp {LINK_UP} {IF_INDEX} {IF_ADMIN} {IF_OPER}",
                f"notificationEvent snmpnsLinkDown {LINK_DOWN} {IF_INDEX} {IF_ADMIN} {IF_OPER}",
                f"monitor -S -r {self.link_trap_interval} -e snmpnsLinkUp up {IF_OPER} != 2",
                f"monitor -S -r {self.link_trap_interval} -e snmpnsLinkDown down {IF_OPER} == 2",
            ]
        return "\n".join(line for line in lines if line) + "\n"

    def start(self, wait: float = 20.0) -> None:
        """Start snmpd (foreground, logging to the work dir) and wait until it answers."""
        if self.proc and self.proc.poll() is None:
            return
        assert self.workdir is not None
        conf = self.workdir / "snmpd.conf"
        conf.write_text(self.config_text())
        log = open(self.workdir / "snmpd.log", "ab")
        # No -C: with it snmpd also skips its persistent file, and engineBoots would stay 1.
        # SNMPCONFPATH keeps it away from /etc/snmp: it reads only our file + persistent state.
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(self.workdir / "persist"),
               "SNMPCONFPATH": f"{self.workdir}:{self.workdir / 'persist'}",
               "MIBS": "", "MIBDIRS": "/nonexistent"}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, SNMPD, "-f",
             "-Lf", str(self.workdir / "snmpd.log"), "-p", str(self.workdir / "snmpd.pid")],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"snmpd exited {self.proc.returncode}: {self.log()[-2000:]}")
            probe = _run(["snmpget", "-v2c", "-c", self.community, "-r", "0", "-t", "0.3",
                          "-On", self.target, "1.3.6.1.2.1.1.3.0"], check=False)
            if probe.returncode == 0 and "Timeticks" in probe.stdout:
                return
            time.sleep(0.1)
        raise HarnessError(f"snmpd did not answer within {wait}s: {self.log()[-2000:]}")

    def stop(self) -> None:
        """Stop snmpd (SIGTERM, then SIGKILL); it saves its persistent state on SIGTERM."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        """Stop and start: sysUpTime starts again from 0, counters of the kernel do not."""
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def destroy(self) -> None:
        """Kill snmpd, delete the namespace and the uplink; safe to call twice."""
        try:
            self.stop()
        finally:
            if self.name:
                _kill_ns_processes(self.name)
                _run(["ip", "netns", "del", self.name], check=False)
                _run(["ip", "link", "del", f"snh{self.index}"], check=False)
                _LIVE.pop(self.name, None)
            if self._own_workdir and self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def log(self) -> str:
        path = self.workdir / "snmpd.log" if self.workdir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    # ---- what tests do to the agent ---------------------------------------------------
    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command (argv, never a shell) inside the namespace."""
        return _run(["ip", "netns", "exec", self.name, *cmd], check=check)

    def link_down(self, ifname: str) -> None:
        """Administratively down: ifAdminStatus and ifOperStatus both become down(2)."""
        self.exec("ip", "link", "set", "dev", self._check_if(ifname), "down")

    def link_up(self, ifname: str) -> None:
        self.exec("ip", "link", "set", "dev", self._check_if(ifname), "up")

    def carrier_down(self, ifname: str) -> None:
        """Admin up, oper down: the other end of the veth pair goes down, so `ifname` loses
        carrier (the "cable pulled" case the interface_down detector looks for)."""
        self.exec("ip", "link", "set", "dev", self._peer(ifname), "down")

    def carrier_up(self, ifname: str) -> None:
        self.exec("ip", "link", "set", "dev", self._peer(ifname), "up")

    def ifindex(self, ifname: str) -> int:
        """The kernel ifIndex (what snmpd reports as ifIndex) of an interface inside."""
        out = self.exec("cat", f"/sys/class/net/{self._check_if(ifname)}/ifindex").stdout
        return int(out.strip())

    def _check_if(self, ifname: str) -> str:
        if ifname not in self.interface_names and ifname not in ("lo", self.uplink):
            raise HarnessError(f"{ifname!r} is not an interface of {self.name}")
        return ifname

    def _peer(self, ifname: str) -> str:
        m = re.fullmatch(r"([pq])(\d+)", self._check_if(ifname))
        if not m:
            raise HarnessError(f"{ifname!r} has no veth peer inside {self.name}")
        return ("q" if m.group(1) == "p" else "p") + m.group(2)

    # ---- net-snmp command-line clients (from the root namespace) -----------------------
    def walk(self, oid: str, v3: bool = False, address: str | None = None,
             bulk: bool = True, timeout: float = 2.0) -> list[tuple[str, str]]:
        """`snmpbulkwalk`/`snmpwalk -On -Oq` as (numeric oid, value) pairs."""
        tool = "snmpbulkwalk" if bulk else "snmpwalk"
        target = address or self.target
        out = _run([tool, *self.auth_args(v3), "-On", "-Oq", "-t", str(timeout), "-r", "1",
                    target, oid]).stdout
        pairs = []
        for line in out.splitlines():
            oid_s, _, value = line.partition(" ")
            pairs.append((oid_s.lstrip("."), value.strip().strip('"')))
        return pairs

    def auth_args(self, v3: bool = False) -> list[str]:
        """Command-line credentials for net-snmp tools (v2c community, or the v3 user)."""
        if not v3:
            return ["-v2c", "-c", self.community]
        return ["-v3", "-l", "authPriv", "-u", self.v3_user, "-a", self.auth_protocol,
                "-A", self.auth_key, "-x", self.priv_protocol, "-X", self.priv_key]


def _cleanup_live() -> None:
    for agent in list(_LIVE.values()):
        agent.destroy()


atexit.register(_cleanup_live)


def agents(count: int, **kwargs) -> "AgentGroup":
    """Several namespaces at once (a context manager); kwargs go to each SnmpdNamespace."""
    return AgentGroup([SnmpdNamespace(**kwargs) for _ in range(count)])


@dataclass
class AgentGroup:
    members: list[SnmpdNamespace]

    def __enter__(self) -> list[SnmpdNamespace]:
        try:
            for agent in self.members:
                agent.create()
                agent.start()
        except BaseException:
            self.__exit__()
            raise
        return self.members

    def __exit__(self, *exc) -> None:
        errors = []
        for agent in self.members:
            try:
                agent.destroy()
            except Exception as exc_:  # keep tearing the others down
                errors.append(exc_)
        if errors:
            raise errors[0]

    def __iter__(self) -> Iterator[SnmpdNamespace]:
        return iter(self.members)


# ---- pytest fixtures (import them into a test module or conftest) ------------------------
try:
    import pytest
except ImportError:  # the benchmark uses the harness without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture(scope="module")
    def snmpd_agent():
        """One agent with 8 interfaces, v2c `public` and the v3 user, for a whole module."""
        reason = snmpd_ns_skip_reason()
        if reason:
            pytest.skip(reason)
        cleanup_stale()
        with SnmpdNamespace(interfaces=8) as agent:
            yield agent

    @pytest.fixture
    def snmpd_factory():
        """Make agents with any options inside a test; all are torn down after it."""
        reason = snmpd_ns_skip_reason()
        if reason:
            pytest.skip(reason)
        made: list[SnmpdNamespace] = []

        def make(**kwargs) -> SnmpdNamespace:
            agent = SnmpdNamespace(**kwargs)
            made.append(agent)
            agent.__enter__()
            return agent

        yield make
        for agent in made:
            agent.destroy()
