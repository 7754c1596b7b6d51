"""Real SNMP agents for the tests, no namespaces needed:

- `snmpsim` (module-scoped): snmpsim-command-responder from `.snmpsim-venv/`
  (scripts/snmpsim.sh) serving the LibreNMS recordings in ../shared/snmprec on a free loopback
  UDP port; community = recording name.
- `snmpd_v3` (module-scoped): net-snmp's snmpd on a free loopback port with a test-only
  snmpd.conf: v2c community `public`, v3 users for authPriv (SHA-256/AES-128,
  SHA-512/AES-256) and authNoPriv (SHA).

Use: `from tests.snmp_support import snmpsim, snmpd_v3  # noqa: F401` in a test module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitord.demo_snmp import RESPONDER, free_udp_port, snmp_answers
from tests.support import shared_dir

ROOT = Path(__file__).resolve().parents[1]
SNMPSIM_PYTHON = ROOT / ".snmpsim-venv" / "bin" / "python"



@dataclass
class Agent:
    port: int
    process: subprocess.Popen
    log: Path
    data_dir: Path | None = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def recordings_dir() -> Path:
    return shared_dir() / "snmprec"


def start_snmpsim(workdir: Path, data: Path | None = None) -> Agent:
    if not SNMPSIM_PYTHON.exists():
        pytest.fail("snmpsim is not installed: run scripts/snmpsim.sh (scripts/test-setup.sh "
                    "does)")
    source = data or recordings_dir()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.snmprec"):
        shutil.copy(path, data_dir / path.name)
    port = free_udp_port()
    log = workdir / "snmpsim.log"
    process = subprocess.Popen(
        [str(SNMPSIM_PYTHON), "-c", RESPONDER, f"--data-dir={data_dir}",
         f"--agent-udpv4-endpoint=127.0.0.1:{port}", f"--cache-dir={workdir / 'cache'}",
         "--log-level=error"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=workdir)
    agent = Agent(port, process, log, data_dir)
    community = sorted(data_dir.glob("*.snmprec"))[0].stem.encode()
    deadline = time.monotonic() + 120  # the first start indexes every recording
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"snmpsim exited: {log.read_text()[-2000:]}")
        if snmp_answers(port, community):
            return agent
        time.sleep(0.3)
    agent.stop()
    pytest.fail(f"snmpsim did not answer within 120 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def snmpsim(tmp_path_factory):
    agent = start_snmpsim(tmp_path_factory.mktemp("snmpsim"))
    yield agent
    agent.stop()


SNMPD_CONF = """\
agentAddress udp:127.0.0.1:{port}
rocommunity public 127.0.0.1
createUser privsha256 SHA-256 "auth-key-256" AES "priv-key-aes128"
createUser privsha512 SHA-512 "auth-key-512" AES256 "priv-key-aes256"
createUser authsha SHA "auth-key-sha1"
rouser privsha256 priv
rouser privsha512 priv
rouser authsha auth
"""
V3_USERS = {
    "privsha256": ("sha256", "auth-key-256", "aes", "priv-key-aes128"),
    "privsha512": ("sha512", "auth-key-512", "aes256", "priv-key-aes256"),
    "authsha": ("sha", "auth-key-sha1", "none", None),
}


def start_snmpd(workdir: Path) -> Agent:
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not Path(snmpd).exists():
        pytest.fail("net-snmp snmpd is not installed (scripts/test-setup.sh installs it)")
    port = free_udp_port()
    conf = workdir / "snmpd.conf"
    conf.write_text(SNMPD_CONF.format(port=port))
    log = workdir / "snmpd.log"
    env = {"SNMP_PERSISTENT_DIR": str(workdir / "persist"), "PATH": "/usr/sbin:/usr/bin:/bin"}
    process = subprocess.Popen(
        [snmpd, "-f", "-Lf", str(log), "-C", "-c", str(conf), "-p", str(workdir / "pid"),
         "-M", "/dev/null", "-m", ""], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT)
    agent = Agent(port, process, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"snmpd exited: {log.read_text()[-2000:] if log.exists() else ''}")
        if snmp_answers(port, b"public"):
            return agent
        time.sleep(0.2)
    agent.stop()
    pytest.fail("snmpd did not answer within 20 s")


@pytest.fixture(scope="module")
def snmpd_v3(tmp_path_factory):
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd"))
    yield agent
    agent.stop()


__all__ = ["snmpsim", "snmpd_v3", "V3_USERS", "free_udp_port", "recordings_dir", "sys"]
