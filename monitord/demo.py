"""`monitord demo`: a working daemon on this host in one command, with SQLite under DATA_DIR."""

from __future__ import annotations

import socket
from importlib import resources
from pathlib import Path

from monitord.daemon import run_daemon
from monitord.demo_snmp import SimulatedDevices
from monitord.i18n import _

DEFAULT_PORT = 9877


def free_port(preferred: int = DEFAULT_PORT) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def write_demo_config(data_dir: Path, port: int, smtp_port: int, extra: str = "") -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    bundled = resources.files("monitord.bundled")
    (data_dir / "demo-fast-ladder.yaml").write_text(
        bundled.joinpath("demo-fast-ladder.yaml").read_text("utf-8"), encoding="utf-8")
    (data_dir / "demo-portscan.pcap").write_bytes(
        bundled.joinpath("demo-portscan.pcap").read_bytes())
    template = bundled.joinpath("demo.yaml").read_text("utf-8")
    path = data_dir / "monitord.yaml"
    path.write_text(template.replace("@DATA_DIR@", str(data_dir.resolve()))
                    .replace("@SMTP_PORT@", str(smtp_port))
                    .replace("@PORT@", str(port)) + extra, encoding="utf-8")
    return path


class Mailbox:
    """A local SMTP server (aiosmtpd) that stores each message as DIR/NNNN.eml: the demo's
    stand-in for the office's mail server, so that tickets can be read on this machine."""

    def __init__(self, folder: Path) -> None:
        from aiosmtpd.controller import Controller

        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

        class Handler:
            async def handle_DATA(handler, server, session, envelope):  # noqa: N805
                count = len(list(folder.glob("*.eml")))
                (folder / f"{count + 1:04d}.eml").write_bytes(envelope.content)
                return "250 stored"

        self.port = free_port(2525)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "Mailbox":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def demo_password(name: str) -> str:
    """The demo people's desk passwords: printed in the banner and the README, never used
    outside the demo's own database."""
    return f"{name}-demo"


def set_demo_passwords(path: Path) -> list[tuple[str, str, str]]:
    """Give every person of the demo config a desk password; returns (name, roles, password)."""
    from datetime import datetime, timezone

    from monitord.config_loader import load_config
    from monitord.incidents.store import open_store
    from monitord.web.auth import set_password

    config = load_config(path)
    store = open_store(config.storage)
    try:
        store.migrate()
        with store.sessions() as session, session.begin():
            for person in config.people:
                set_password(session, person.name, demo_password(person.name),
                             datetime.now(timezone.utc))
    finally:
        store.close()
    return [(p.name, ",".join(p.roles) + (f" {p.division}" if p.division else ""),
             demo_password(p.name)) for p in config.people]


def run_demo(data_dir: Path, duration: float | None) -> int:
    port = free_port()
    with Mailbox(data_dir / "mailbox") as mailbox, SimulatedDevices(data_dir) as simulated:
        path = write_demo_config(data_dir, port, mailbox.port, simulated.config_block())
        people = set_demo_passwords(path)
        return _announce_and_run(path, port, mailbox.folder, duration, people,
                                 simulated=simulated)


def _announce_simulated(simulated: SimulatedDevices) -> None:
    if simulated.running:
        print(_("  simulated: switches sw-lantai1, sw-lantai2 and UPS ups-ruang-server (snmpsim "
                "on 127.0.0.1:{port}); the UPS is on battery and a sw-lantai2 port is down, so "
                "ups_on_battery and interface_down incidents open at the first poll").format(
                    port=simulated.port))
    else:
        print(_("  simulated: no SNMP devices: {reason}").format(reason=simulated.reason))


def _announce_and_run(path: Path, port: int, mailbox: Path, duration: float | None,
                      people: list[tuple[str, str, str]] = (),
                      simulated: SimulatedDevices | None = None) -> int:
    print(_("monitord demo: configuration written to {path}").format(path=path))
    print(_("  web desk:  http://127.0.0.1:{port}/login  (log in as one of these people)")
          .format(port=port))
    for name, roles, password in people:
        print(_("             {name:<6} {roles:<8} password {password}").format(
            name=name, roles=roles, password=password))
    print(_("  walk it:   as sari record a report (New report, category pc_client), Forward; "
            "as joko Accept; as rina Give direction; as joko Report the result; as rina "
            "Verify: not resolved; as agus see it escalated"))
    print(_("  metrics:   http://127.0.0.1:{port}/metrics").format(port=port))
    print(_("  incidents: monitord incidents list --config {path}").format(path=path))
    print(_("  The disk threshold is 1%, so a disk_full incident opens within about 15 seconds."))
    print(_("  host and service: monitord check host --config {path}; the demo-portal check "
            "watches http://127.0.0.1:{port}/healthz every 10 seconds "
            "(monitord_host_* and monitord_service_check_* on /metrics)").format(
                path=path, port=port))
    print(_("  security:  a port scan recorded in {pcap} is replayed into the traffic "
            "detectors at start, so a port_scan incident (network_security) opens at once; "
            "monitord analyze-pcap {pcap} shows the same finding").format(
                pcap=path.parent / "demo-portscan.pcap"))
    print(_("  tickets:   {folder} (a local mailbox); the ticket escalates PO -> KD -> KS "
            "every 20 seconds").format(folder=mailbox))
    print(_("  workflow:  monitord incidents show NUMBER --config {path}").format(path=path))
    if simulated is not None:
        _announce_simulated(simulated)
    if duration:
        print(_("  Stopping after {seconds:g} seconds.").format(seconds=duration))
    else:
        print(_("  Press Ctrl+C to stop."))
    return run_daemon(path, duration=duration)
