"""A real OpenSSH server (Debian's /usr/sbin/sshd) in a network namespace of its own, for the
netmiko tests: `hostns-<id>` with a veth pair on a private /30, a dedicated local user with a
password (created with useradd, removed with userdel afterwards), and a "running
configuration" file the test rewrites. The device type is netmiko's `linux`; the device's
configuration command is `cat <file>`.

Everything it creates is named with the `hostns-` prefix (namespace) or `hn` (veth, user) and
is removed at the end, also when the test fails."""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def available() -> str | None:
    """Why the peer cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, useradd)"
    for tool in (SSHD, "/usr/sbin/useradd", "/usr/sbin/userdel", "/usr/sbin/chpasswd"):
        if not os.path.exists(tool):
            return f"{tool} is missing (scripts/test-setup.sh installs openssh-server)"
    if shutil.which("ip") is None or shutil.which("ssh-keygen") is None:
        return "ip or ssh-keygen is missing"
    return None


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(list(args), check=True, capture_output=True, text=True, input=stdin,
                   timeout=30)


def _free_slash30() -> tuple[str, str]:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for _attempt in range(50):
        base = ipaddress.ip_address(f"172.31.{random.randrange(256)}.0") + 4 * random.randrange(64)
        host, peer = str(base + 1), str(base + 2)
        if f" {host}/" not in used and f" {peer}/" not in used:
            return host, peer
    raise RuntimeError("no free /30 in 172.31.0.0/16")


@dataclass
class SshPeer:
    namespace: str
    host_ip: str
    address: str  # the sshd's address, inside the namespace
    username: str
    password: str
    directory: Path
    running_conf: Path
    port: int = 22
    proc: subprocess.Popen | None = None
    _cleanups: list = field(default_factory=list)
    _sshd_config: Path | None = None
    _sshd_log: object = None

    def write_config(self, text: str) -> None:
        self.running_conf.write_text(text)
        self.running_conf.chmod(0o644)

    def log(self) -> str:
        path = self.directory / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _start_sshd(self) -> None:
        self._sshd_log = open(self.directory / "sshd.log", "ab")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.namespace, SSHD, "-D", "-e",
                                      "-f", str(self._sshd_config)], stdout=self._sshd_log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection((self.address, 22), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not listen: {self.log()}") from None
                time.sleep(0.1)

    def _stop_sshd(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._sshd_log.close()
        self.proc = None

    def rotate_host_key(self) -> None:
        """Restart sshd with a new host key (what a replaced device, or a man in the middle,
        looks like to a client)."""
        self._stop_sshd()
        key = self.directory / "ssh_host_ed25519_key"
        for path in (key, key.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        self._start_sshd()

    def stop(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception:  # best effort: each cleanup runs whatever the others did
                pass
        self._cleanups.clear()


def start_peer(password: str | None = None) -> SshPeer:
    """Start the peer; `password` is the test user's (a canary, say), else a random one."""
    tag = uuid.uuid4().hex[:6]
    namespace, veth_host, veth_ns = f"hostns-{tag}", f"hn{tag}a", f"hn{tag}b"
    username = f"hnssh{tag}"
    password = password or f"pw-{uuid.uuid4().hex[:16]}"
    directory = Path(tempfile.mkdtemp(prefix="hostns-ssh-"))
    directory.chmod(0o755)
    host_ip, address = _free_slash30()
    peer = SshPeer(namespace, host_ip, address, username, password, directory,
                   directory / "running.conf")
    peer._cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
    try:
        _run("ip", "netns", "add", namespace)
        peer._cleanups.append(lambda: _run("ip", "netns", "del", namespace))
        _run("ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_ns)
        peer._cleanups.append(lambda: _run("ip", "link", "del", veth_host))
        _run("ip", "link", "set", veth_ns, "netns", namespace)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", veth_host)
        _run("ip", "link", "set", veth_host, "up")
        _run("ip", "netns", "exec", namespace, "ip", "addr", "add", f"{address}/30", "dev",
             veth_ns)
        _run("ip", "netns", "exec", namespace, "ip", "link", "set", veth_ns, "up")
        _run("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up")

        home = directory / "home"
        _run("useradd", "--home-dir", str(home), "--create-home", "--shell", "/bin/bash",
             "--comment", "monitord netmiko test (temporary)", username)
        peer._cleanups.append(lambda: _run("userdel", "--force", "--remove", username))
        _run("chpasswd", stdin=f"{username}:{password}\n")

        key = directory / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        config = directory / "sshd_config"
        config.write_text(
            f"ListenAddress {address}\nPort 22\nHostKey {key}\nPidFile {directory}/sshd.pid\n"
            f"PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"PermitRootLogin no\nAllowUsers {username}\nStrictModes no\nMaxAuthTries 3\n"
            f"LogLevel VERBOSE\nPrintMotd no\nBanner none\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        peer.write_config("hostname core-rtr\n")
        peer._sshd_config = config
        peer._cleanups.append(peer._stop_sshd)
        peer._start_sshd()
        return peer
    except BaseException:
        peer.stop()
        raise
