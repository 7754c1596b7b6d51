"""The demo's simulated devices: snmpsim serving the project's own recordings
(config/snmpsim/*.snmprec: two access switches and a UPS running on battery, one switch port
with its cable pulled) so that a newcomer sees switches and a UPS polled and SNMP incidents open.

snmpsim lives in its own virtual environment (`scripts/snmpsim.sh` makes `.snmpsim-venv/`,
because it pins its own pysnmp). If it is not there the demo says so and runs without the
simulated devices: nothing else depends on them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from monitord.i18n import _

# snmpsim refuses to run as root unless it drops privileges to another user, who then could not
# read a checkout under /root; monitord (the demo, and the tests' agents) binds a high loopback
# port, so it stays the current user. The modules snmpsim imports lazily are imported first.
RESPONDER = """
import contextlib, dbm.dumb, encodings.latin_1, encodings.ascii, encodings.idna, sys
import snmpsim.daemon
class _Keep:
    def __init__(self, *a, **k): pass
    def __enter__(self): return self
    def __exit__(self, *a): return False
snmpsim.daemon.PrivilegesOf = _Keep
from snmpsim.commands.responder import main
sys.argv[0] = "snmpsim-command-responder"
sys.exit(main())
"""
# device name, kind, recording (= community), parent
DEVICES = (("sw-lantai1", "switch", "demo-sw-lantai1", None),
           ("sw-lantai2", "switch", "demo-sw-lantai2", "sw-lantai1"),
           ("ups-ruang-server", "ups", "demo-ups-ruang-server", "sw-lantai1"))


def snmpsim_python() -> Path | None:
    """`$MONITORD_SNMPSIM_PYTHON` when set (and only it), else `.snmpsim-venv/bin/python` in
    the checkout or the current directory, if it exists."""
    if "MONITORD_SNMPSIM_PYTHON" in os.environ:
        candidates = [os.environ["MONITORD_SNMPSIM_PYTHON"]]
    else:
        candidates = [Path(__file__).resolve().parents[1] / ".snmpsim-venv" / "bin" / "python",
                      Path.cwd() / ".snmpsim-venv" / "bin" / "python"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snmp_answers(port: int, community: bytes, oid: str = "1.3.6.1.2.1.1.5.0",
                 timeout: float = 0.5) -> bool:
    """Whether an agent on the loopback `port` answers one v2c GET: is it up yet?"""
    from monitord.collectors.snmp import ber

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(ber.encode_get(1, community, 4242, [ber.oid_to_bytes(oid)]),
                    ("127.0.0.1", port))
        try:
            sock.recv(65535)
            return True
        except OSError:
            return False


class SimulatedDevices:
    """A context manager: snmpsim on a free loopback port, or `reason` why not."""

    def __init__(self, data_dir: Path) -> None:
        # Absolute: snmpsim runs with this folder as its working directory, so a relative
        # --data-dir (make demo's `monitord-demo`) would point nowhere.
        self.data_dir = (data_dir / "snmpsim").resolve()
        self.port: int | None = None
        self.reason: str | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "SimulatedDevices":
        python = snmpsim_python()
        if python is None:
            self.reason = _("snmpsim is not installed (run scripts/snmpsim.sh)")
            return self
        recordings = self.data_dir / "data"
        recordings.mkdir(parents=True, exist_ok=True)
        bundled = resources.files("monitord.bundled").joinpath("snmpsim")
        for _name, _kind, recording, _parent in DEVICES:
            (recordings / f"{recording}.snmprec").write_text(
                bundled.joinpath(f"{recording}.snmprec").read_text("utf-8"), encoding="utf-8")
        self.port = free_udp_port()
        log = (self.data_dir / "snmpsim.log").open("w")
        self.process = subprocess.Popen(
            [str(python), "-c", RESPONDER, f"--data-dir={recordings}",
             f"--agent-udpv4-endpoint=127.0.0.1:{self.port}",
             f"--cache-dir={self.data_dir / 'cache'}", "--log-level=error"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if snmp_answers(self.port, DEVICES[0][2].encode()):
                return self
            time.sleep(0.3)
        self.close()
        self.reason = _("snmpsim did not start (see {log})").format(
            log=self.data_dir / "snmpsim.log")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config_block(self) -> str:
        """YAML for the demo configuration: one credential per recording (snmpsim's community
        is the recording's name, kept in a file like any secret) and the devices."""
        if not self.running or self.port is None:
            return ""
        secrets = self.data_dir / "secrets"
        secrets.mkdir(mode=0o700, exist_ok=True)
        credentials, devices = [], []
        for name, kind, recording, parent in DEVICES:
            path = secrets / name
            path.write_text(recording + "\n", encoding="utf-8")
            path.chmod(0o600)
            credentials.append(f"  snmp-{name}: {{type: snmp_v2c, community: "
                               f"{{file: \"{path}\"}}}}")
            devices.append(f"  - {{name: {name}, address: 127.0.0.1, snmp_port: {self.port}, "
                           f"site: demo-noc, kind: {kind}, credential: snmp-{name}"
                           + (f", parent: {parent}" if parent else "") + "}")
        return "\n".join(["credentials:", *credentials, "devices:", *devices]) + "\n"
