#!/usr/bin/env python3
"""Write config/demo-portscan.pcap: the capture `monitord demo` replays into the traffic
detectors so that a security incident (a vertical SYN port scan) opens next to the host and
SNMP ones. Made here, byte for byte reproducible, so the project ships no third-party capture.

    python3 scripts/make_demo_pcap.py [OUTPUT]     # default config/demo-portscan.pcap

What is in it (addresses from the documentation ranges, MACs locally administered): a client
(10.20.30.21) fetching a page from the office portal (10.20.30.5:443), then a scanner
(198.51.100.66) sending SYNs to ports 1-120 of the portal within about 2 seconds, the portal
answering RST/ACK on closed ports and SYN/ACK on 22, 80 and 443.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

PORTAL, CLIENT, SCANNER = "10.20.30.5", "10.20.30.21", "198.51.100.66"
MAC = {PORTAL: b"\x02\x00\x0a\x14\x1e\x05", CLIENT: b"\x02\x00\x0a\x14\x1e\x15",
       SCANNER: b"\x02\x00\xc6\x33\x64\x42"}
OPEN_PORTS = {22, 80, 443}
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z; the demo rebases times to "now"


def _ip(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_frame(src: str, dst: str, sport: int, dport: int, flags: int, seq: int, ack: int,
              payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload
    pseudo = _ip(src) + _ip(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, _ip(src),
                     _ip(dst))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return MAC[dst] + MAC[src] + b"\x08\x00" + ip + tcp


def frames() -> list[tuple[float, bytes]]:
    out: list[tuple[float, bytes]] = []
    t = START
    # a normal page fetch: handshake, request, response, close
    for src, dst, sp, dp, fl, pl in [
            (CLIENT, PORTAL, 51000, 443, 0x02, b""), (PORTAL, CLIENT, 443, 51000, 0x12, b""),
            (CLIENT, PORTAL, 51000, 443, 0x10, b""),
            (CLIENT, PORTAL, 51000, 443, 0x18, b"\x16\x03\x01" + b"\x00" * 200),
            (PORTAL, CLIENT, 443, 51000, 0x18, b"\x17\x03\x03" + b"\x00" * 900),
            (CLIENT, PORTAL, 51000, 443, 0x11, b""), (PORTAL, CLIENT, 443, 51000, 0x11, b"")]:
        t += 0.01
        out.append((t, tcp_frame(src, dst, sp, dp, fl, 1000, 1 if fl & 0x10 else 0, pl)))
    # the scan: one SYN per port, answered at once
    t += 1.0
    for port in range(1, 121):
        t += 0.015
        out.append((t, tcp_frame(SCANNER, PORTAL, 40001, port, 0x02, 7777, 0)))
        answer = 0x12 if port in OPEN_PORTS else 0x14
        out.append((t + 0.0003, tcp_frame(PORTAL, SCANNER, port, 40001, answer, 0, 7778)))
    return out


def write(path: Path) -> int:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        n = 0
        for ts, frame in frames():
            sec = int(ts)
            f.write(struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)
            n += 1
    return n


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else
                  Path(__file__).resolve().parents[1] / "config" / "demo-portscan.pcap")
    print(f"{target}: {write(target)} packets")
