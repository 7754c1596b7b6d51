#!/usr/bin/env python3
"""Packets per second offline: pcap parsing + header decoding + every traffic detector, on a
generated capture of N mixed packets (default 1,000,000), against scapy's full dissection of a
sample of the same file, measured in the same run.

    /work/main/.venv/bin/python bench/packets.py              # 1M packets (about a minute)
    /work/main/.venv/bin/python bench/packets.py --packets 200000 --scapy-sample 20000

The mix: TCP web traffic with handshakes, DNS queries/answers, a vertical SYN scan, a spoofed
SYN flood, UDP to random ports, ICMP echo, ARP requests, and a little DHCP. The process is
pinned to one CPU. The last line printed is the ratio monitord/scapy (packets per second).
Live capture rates (tcpreplay into a veth) are not measured here.
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitord.collectors.packets.analyze import build_detectors  # noqa: E402
from monitord.collectors.packets.decode import DecodeStats, decode  # noqa: E402
from monitord.collectors.packets.pcapfile import ReadStats, read_packets  # noqa: E402


def _ip(n: int) -> bytes:
    return struct.pack("!I", n)


def _eth(src: int, dst: int, etype: int, payload: bytes) -> bytes:
    return struct.pack("!HI", 0x0200, dst) + struct.pack("!HI", 0x0200, src) + \
        struct.pack("!H", etype) + payload


def _ipv4(proto: int, src: bytes, dst: bytes, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                       src, dst) + payload


def _tcp(sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _dns(name: bytes, resp: bool) -> bytes:
    q = b"".join(bytes([len(x)]) + x for x in name.split(b".")) + b"\x00\x00\x01\x00\x01"
    return struct.pack("!HHHHHH", 1, 0x8180 if resp else 0x0100, 1, 1 if resp else 0, 0, 0) + q


def generate(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    lan = [0x0A000000 + i for i in range(2, 250)]
    servers = [0x5DB8D822 + i for i in range(40)]
    ts = 1_700_000_000.0
    names = [b"www.example.com", b"mail.example.org", b"api.service.net", b"cdn.static.io"]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            ts += rng.expovariate(50_000.0)
            r = rng.random()
            c, s = rng.choice(lan), rng.choice(servers)
            if r < 0.45:
                flags = rng.choice((0x02, 0x12, 0x10, 0x18, 0x18, 0x18, 0x11))
                body = b"x" * rng.choice((0, 0, 200, 1400))
                if rng.random() < 0.5:
                    fr = _eth(c, 1, 0x0800, _ipv4(6, _ip(c), _ip(s), _tcp(40000 + i % 20000, 443, flags, body)))
                else:
                    fr = _eth(1, c, 0x0800, _ipv4(6, _ip(s), _ip(c), _tcp(443, 40000 + i % 20000, flags, body)))
            elif r < 0.60:
                resp = rng.random() < 0.5
                d = _dns(rng.choice(names), resp)
                fr = _eth(c, 1, 0x0800, _ipv4(17, _ip(0x0A000001) if resp else _ip(c),
                                              _ip(c) if resp else _ip(0x0A000001),
                                              _udp(53, 5353, d) if resp else _udp(50000, 53, d)))
            elif r < 0.70:
                fr = _eth(c, 1, 0x0800, _ipv4(6, _ip(0x0A0000FE), _ip(0x0A000005),
                                              _tcp(33333, rng.randrange(1, 65535), 0x02)))
            elif r < 0.85:
                fr = _eth(7, 1, 0x0800, _ipv4(6, _ip(rng.getrandbits(32)), _ip(0x0A000006),
                                              _tcp(rng.randrange(1024, 65535), 80, 0x02)))
            elif r < 0.93:
                fr = _eth(c, 1, 0x0800, _ipv4(17, _ip(c), _ip(s), _udp(5000, rng.randrange(1, 65535), b"u" * 64)))
            elif r < 0.97:
                fr = _eth(c, 1, 0x0800, _ipv4(1, _ip(c), _ip(s), b"\x08\x00\x00\x00" + b"p" * 56))
            else:
                arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + struct.pack("!HI", 0x0200, c) + \
                    _ip(c) + b"\x00" * 6 + _ip(rng.choice(lan))
                fr = _eth(c, 0xFFFFFFFF, 0x0806, arp)
            sec = int(ts)
            f.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(fr), len(fr)) + fr)


def run_monitord(path: Path) -> tuple[int, float, float, int]:
    """(packets, CPU seconds for read+decode, CPU seconds for read+decode+detectors, findings).

    CPU time of this process (time.process_time), not wall time: on a shared machine the wall
    clock counts other processes' turns; "packets per second per core" is per CPU-second."""
    rs, ds = ReadStats(), DecodeStats()
    t0 = time.process_time()
    n = 0
    for ts, lt, fr in read_packets(path, rs):
        decode(ts, fr, lt, ds)
        n += 1
    t_decode = time.process_time() - t0
    dets = build_detectors()
    observers = [d.observe for d in dets]
    findings = 0
    t0 = time.process_time()
    last = 0.0
    for ts, lt, fr in read_packets(path):
        p = decode(ts, fr, lt)
        if p is None:
            continue
        last = p.ts
        for observe in observers:
            out = observe(p)
            if out:
                findings += len(out)
    for d in dets:
        findings += len(d.flush(last, final=True))
    return n, t_decode, time.process_time() - t0, findings


def run_scapy(path: Path, sample: int) -> tuple[int, float]:
    from scapy.all import PcapReader  # the peer: loads every layer, dissects each packet fully

    t0 = time.process_time()
    n = 0
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            pkt.summary()  # forces dissection of every layer, as any field access would
            n += 1
            if n >= sample:
                break
    return n, time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--scapy-sample", type=int, default=50_000)
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError):
        pass
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.pcap"
        t0 = time.perf_counter()
        generate(path, args.packets)
        print(f"generated {args.packets:,} mixed packets ({path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f}s")
        n, t_dec, t_all, findings = run_monitord(path)
        print(f"monitord read+decode:            {n / t_dec:>10,.0f} packets/s")
        print(f"monitord read+decode+detectors:  {n / t_all:>10,.0f} packets/s "
              f"({findings} findings)")
        try:
            sn, st = run_scapy(path, args.scapy_sample)
        except ImportError:
            print("scapy is not installed (pip install scapy): no peer figure")
            return 2
        print(f"scapy PcapReader full dissection: {sn / st:>10,.0f} packets/s "
              f"(sample of {sn:,})")
        print(f"ratio monitord (read+decode+all detectors) / scapy (dissection only): "
              f"{(n / t_all) / (sn / st):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
