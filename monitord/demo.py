"""`monitord demo`: a working daemon on this host in one command, with SQLite under DATA_DIR."""

from __future__ import annotations

import socket
from importlib import resources
from pathlib import Path

from monitord.daemon import run_daemon
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


def write_demo_config(data_dir: Path, port: int, smtp_port: int) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    bundled = resources.files("monitord.bundled")
    (data_dir / "demo-fast-ladder.yaml").write_text(
        bundled.joinpath("demo-fast-ladder.yaml").read_text("utf-8"), encoding="utf-8")
    template = bundled.joinpath("demo.yaml").read_text("utf-8")
    path = data_dir / "monitord.yaml"
    path.write_text(template.replace("@DATA_DIR@", str(data_dir.resolve()))
                    .replace("@SMTP_PORT@", str(smtp_port))
                    .replace("@PORT@", str(port)), encoding="utf-8")
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


def run_demo(data_dir: Path, duration: float | None) -> int:
    port = free_port()
    with Mailbox(data_dir / "mailbox") as mailbox:
        path = write_demo_config(data_dir, port, mailbox.port)
        return _announce_and_run(path, port, mailbox.folder, duration)


def _announce_and_run(path: Path, port: int, mailbox: Path, duration: float | None) -> int:
    print(_("monitord demo: configuration written to {path}").format(path=path))
    print(_("  metrics:   http://127.0.0.1:{port}/metrics").format(port=port))
    print(_("  incidents: monitord incidents list --config {path}").format(path=path))
    print(_("  The disk threshold is 1%, so a disk_full incident opens within about 15 seconds."))
    print(_("  tickets:   {folder} (a local mailbox); the ticket escalates PO -> KD -> KS "
            "every 20 seconds").format(folder=mailbox))
    print(_("  workflow:  monitord incidents show NUMBER --config {path}").format(path=path))
    if duration:
        print(_("  Stopping after {seconds:g} seconds.").format(seconds=duration))
    else:
        print(_("  Press Ctrl+C to stop."))
    return run_daemon(path, duration=duration)
