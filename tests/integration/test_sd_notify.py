"""The daemon speaks sd_notify to a real AF_UNIX datagram socket, as systemd's would be."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from tests.support import DaemonProcess, write_config


def test_ready_watchdog_reloading_and_stopping(sqlite_url, tmp_path: Path):
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(0.2)
    config, port = write_config(tmp_path, sqlite_url)
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log",
                           env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
    messages: list[str] = []

    def collect(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                pass

    daemon.start()
    try:
        collect(1.6)
        daemon.signal(signal.SIGHUP)
        collect(1.0)
    finally:
        assert daemon.stop() == 0
        collect(0.5)
        sock.close()
    ready = [m for m in messages if m.startswith("READY=1")]
    assert ready and "STATUS=monitoring" in ready[0]
    assert messages.count("WATCHDOG=1") >= 2  # every half of WATCHDOG_USEC
    assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in messages)
    assert any("STATUS=reloaded" in m for m in messages)
    assert messages[-1] == "STOPPING=1" or "STOPPING=1" in messages
