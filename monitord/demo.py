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


def write_demo_config(data_dir: Path, port: int) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    template = resources.files("monitord.bundled").joinpath("demo.yaml").read_text("utf-8")
    path = data_dir / "monitord.yaml"
    path.write_text(template.replace("@DATA_DIR@", str(data_dir.resolve()))
                    .replace("@PORT@", str(port)), encoding="utf-8")
    return path


def run_demo(data_dir: Path, duration: float | None) -> int:
    port = free_port()
    path = write_demo_config(data_dir, port)
    print(_("monitord demo: configuration written to {path}").format(path=path))
    print(_("  metrics:   http://127.0.0.1:{port}/metrics").format(port=port))
    print(_("  incidents: monitord incidents list --config {path}").format(path=path))
    print(_("  The disk threshold is 1%, so a disk_full incident opens within about 15 seconds."))
    if duration:
        print(_("  Stopping after {seconds:g} seconds.").format(seconds=duration))
    else:
        print(_("  Press Ctrl+C to stop."))
    return run_daemon(path, duration=duration)
