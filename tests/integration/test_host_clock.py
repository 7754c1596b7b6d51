"""Clock offset against a real SNTP exchange: a small NTP server (a UDP socket on 127.0.0.1
that answers RFC 4330 mode-4 replies from its own clock, set `skew` seconds away from ours)
runs in a thread; the host collector asks it like it would ask the office's NTP server.
Also a silent server, a malformed reply and a kiss-of-death reply: counted and skipped."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timezone

import pytest

from monitord.collectors.host import NTP_EPOCH, HostCollector, NtpError, sntp_offset
from monitord.config import HostThresholds
from monitord.detectors.host import HostThresholdDetector


def _ntp(seconds: float) -> bytes:
    value = seconds + NTP_EPOCH
    return int(value).to_bytes(4, "big") + int((value % 1) * 2**32).to_bytes(4, "big")


class NtpServer:
    def __init__(self, skew: float = 0.0, mode: str = "good") -> None:
        self.skew, self.mode = skew, mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answered = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                request, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            received = time.time() + self.skew
            if self.mode == "silent":
                continue
            if self.mode == "short":
                self.sock.sendto(b"\x24\x01junk", peer)
                continue
            stratum = 0 if self.mode == "kiss" else 2
            reply = (bytes([0x24, stratum, 6, 0xEC]) + bytes(8) + b"LOCL" + _ntp(received)
                     + request[40:48] + _ntp(received) + _ntp(time.time() + self.skew))
            self.sock.sendto(reply, peer)
            self.answered += 1

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def ntp_server(request):
    servers = []

    def start(skew: float = 0.0, mode: str = "good") -> NtpServer:
        server = NtpServer(skew, mode)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def test_offset_sign_and_size_against_a_real_exchange(ntp_server):
    behind = ntp_server(skew=+5.0)  # the server is 5 s ahead: we are 5 s behind
    assert sntp_offset("127.0.0.1", behind.port) == pytest.approx(-5.0, abs=0.2)
    ahead = ntp_server(skew=-3.0)
    assert sntp_offset("127.0.0.1", ahead.port) == pytest.approx(3.0, abs=0.2)
    same = ntp_server(skew=0.0)
    assert abs(sntp_offset("127.0.0.1", same.port)) < 0.2


def test_a_skewed_clock_fires_clock_offset_and_a_good_one_does_not(ntp_server):
    now = datetime.now(timezone.utc)
    skewed = ntp_server(skew=5.0)
    collector = HostCollector("ntp-host", ntp_server=f"127.0.0.1:{skewed.port}")
    samples = {s.metric: s for s in collector.poll(now)}
    assert samples["host_ntp_reachable"].value == 1.0
    assert samples["host_clock_offset_seconds"].value == pytest.approx(-5.0, abs=0.2)
    detector = HostThresholdDetector(HostThresholds(clock_offset_seconds=1.0), consecutive=1)
    [finding] = detector.observe(samples["host_clock_offset_seconds"])
    assert finding.kind == "clock_offset" and finding.state.value == "firing"
    assert "-5.0" in finding.summary and finding.category.value == "server"

    good = ntp_server(skew=0.0)
    collector = HostCollector("ntp-host", ntp_server=f"127.0.0.1:{good.port}")
    samples = {s.metric: s for s in collector.poll(now)}
    cleared = detector.observe(samples["host_clock_offset_seconds"])
    assert [(f.kind, f.state.value) for f in cleared] == [("clock_offset", "cleared")]


@pytest.mark.parametrize("mode", ["silent", "short", "kiss"])
def test_an_unusable_server_is_counted_not_a_crash(ntp_server, mode: str):
    server = ntp_server(mode=mode)
    if mode != "silent":
        with pytest.raises(NtpError):
            sntp_offset("127.0.0.1", server.port, timeout=0.5)
    collector = HostCollector("ntp-host", ntp_server=f"127.0.0.1:{server.port}", ntp_timeout=0.5)
    samples = {s.metric: s.value for s in collector.poll(datetime.now(timezone.utc))}
    assert samples["host_ntp_reachable"] == 0.0 and "host_clock_offset_seconds" not in samples
    assert "host_cpu_percent" in samples  # the rest of the poll went on
