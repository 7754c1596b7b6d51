#!/usr/bin/env python3
"""Packets per second offline: pcap parsing + header decoding + every traffic detector, on a
generated capture of N mixed packets (default 1,000,000), against scapy's full dissection of a
sample of the same file, measured in the same run.

    /work/main/.venv/bin/python bench/packets.py              # 1M packets (about a minute)
    /work/main/.venv/bin/python bench/packets.py --packets 200000 --scapy-sample 20000

The mix: TCP web traffic with handshakes, DNS queries/answers, a vertical SYN scan, a spoofed
SYN flood, UDP to random ports, ICMP echo, ARP requests, and a little DHCP. The process is
pinned to one CPU and measures its CPU time. Then live (root): tcpreplay --pps at rising rates
into a veth in a namespace of its own (trafns-bench), captured by `monitord capture` (the
daemon's capture loop with every detector) and, as the peer, by `tcpdump -w /dev/null`, each
pinned to CPU 0 with tcpreplay on CPU 1; it reports the highest rate with under 0.1% loss. The
last line printed is the live ratio monitord/tcpdump (the offline ratio against scapy before it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitord.collectors.packets.analyze import build_detectors  # noqa: E402
from monitord.collectors.packets.decode import DecodeStats, decode  # noqa: E402
from monitord.collectors.packets.gctune import tune_gc  # noqa: E402
from monitord.collectors.packets.pcapfile import ReadStats, read_packets  # noqa: E402
from monitord.collectors.packets.route import route_table  # noqa: E402


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
    tune_gc()  # as the daemon's engine and analyze-pcap do
    rs, ds = ReadStats(), DecodeStats()
    t0 = time.process_time()
    n = 0
    for ts, lt, fr in read_packets(path, rs):
        decode(ts, fr, lt, ds)
        n += 1
    t_decode = time.process_time() - t0
    dets = build_detectors()
    routes = route_table(dets)  # as analyze-pcap and the daemon's engine: by packet class
    findings = 0
    t0 = time.process_time()
    last = 0.0
    for ts, lt, fr in read_packets(path):
        p = decode(ts, fr, lt)
        if p is None:
            continue
        last = p.ts
        for observe in routes[p.route]:
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


NS = "trafns-bench"
WRITE_END, CAPTURE_END = "trafbw0", "trafbc0"


def _sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check,
                          timeout=timeout)


def _in_ns(*argv: str) -> list[str]:
    return ["ip", "netns", "exec", NS, *argv]


def live_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a network namespace and raw sockets)"
    for tool in ("ip", "tcpreplay", "tcpdump", "taskset"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def setup_veth() -> None:
    """A veth pair inside our own namespace: tcpreplay writes one end, the capture reads the
    other; nothing leaves the namespace."""
    _sh("ip", "netns", "del", NS, check=False)
    _sh("ip", "netns", "add", NS)
    _sh(*_in_ns("ip", "link", "add", WRITE_END, "type", "veth", "peer", "name", CAPTURE_END))
    for dev in (WRITE_END, CAPTURE_END):
        _sh(*_in_ns("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"), check=False)
        _sh(*_in_ns("ip", "link", "set", dev, "up"))


def teardown_veth() -> None:
    _sh("ip", "netns", "del", NS, check=False)


def _replay(path: Path, rate: int, count: int) -> tuple[float, str]:
    """tcpreplay on CPU 1 at `rate` packets/s; returns the rate it achieved (its own report)."""
    done = _sh(*_in_ns("taskset", "-c", "1", "timeout", str(int(count / rate) + 30),
                       "tcpreplay", "--pps", str(rate), "--limit", str(count), "-i", WRITE_END,
                       str(path)), check=False, timeout=count / rate + 60)
    m = re.search(r"Rated: .*?([\d.]+) pps", done.stdout)
    return (float(m.group(1)) if m else 0.0), done.stdout + done.stderr


def live_monitord(path: Path, rate: int, count: int) -> tuple[int, int, float]:
    """`monitord capture` (the daemon's capture loop: TPACKET_V3 ring + decode + every
    detector) pinned to CPU 0. Returns (packets seen, kernel drops, tcpreplay's rate)."""
    cap = subprocess.Popen(_in_ns("taskset", "-c", "0", sys.executable, "-m", "monitord",
                                  "capture", "-i", CAPTURE_END, "--count", str(count),
                                  "--duration", str(count / rate + 10), "--json"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = cap.stderr.readline()
        if "capturing on" not in ready:
            raise RuntimeError(f"monitord capture did not start: {ready}{cap.stderr.read()}")
        achieved, _out = _replay(path, rate, count)
        out, err = cap.communicate(timeout=count / rate + 60)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    stats = json.loads(out)["stats"]
    return stats["packets"], stats["kernel_drops"], achieved


def live_tcpdump(path: Path, rate: int, count: int) -> tuple[int, int, float]:
    """The kernel's own capture path as the peer: tcpdump -w /dev/null on the same veth, same
    CPU, same 32 MB buffer."""
    limit = str(int(count / rate) + 10)
    cap = subprocess.Popen(_in_ns("taskset", "-c", "0", "timeout", "-s", "INT", limit,
                                  "tcpdump", "-i", CAPTURE_END, "-n", "-B", "32768", "-s", "2048",
                                  "-c", str(count), "-w", "/dev/null"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        ready = ""
        while "listening on" not in ready and time.monotonic() < deadline:
            ready = cap.stderr.readline()
        achieved, _out = _replay(path, rate, count)
        _out, err = cap.communicate(timeout=count / rate + 60)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    got = re.search(r"(\d+) packets? captured", err)
    dropped = re.search(r"(\d+) packets? dropped by kernel", err)
    return (int(got.group(1)) if got else 0), (int(dropped.group(1)) if dropped else 0), achieved


def run_live(path: Path, rates: list[int], seconds: float) -> tuple[int, int]:
    """Each rate for each side; returns the highest rate with < 0.1% loss for each."""
    best = {"monitord": 0, "tcpdump": 0}
    print(f"live: tcpreplay --pps R into a veth ({NS}), {seconds:g} s of packets per rate; "
          f"loss = packets not captured / packets sent")
    for rate in rates:
        count = max(20_000, int(rate * seconds))
        for name, fn in (("monitord", live_monitord), ("tcpdump", live_tcpdump)):
            got, drops, achieved = fn(path, rate, count)
            loss = max(0, count - got) / count
            ok = loss < 0.001
            if ok:
                best[name] = max(best[name], rate)
            print(f"  {name:<8} at {rate:>7,} pps (tcpreplay achieved {achieved:>9,.0f}): "
                  f"{got:>8,}/{count:,} captured, kernel drops {drops:,}, loss {loss:.3%} "
                  f"{'ok' if ok else 'LOSS'}")
    return best["monitord"], best["tcpdump"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--scapy-sample", type=int, default=50_000)
    ap.add_argument("--rates", default="25000,50000,100000,150000,200000",
                    help="live: packets per second to try, rising")
    ap.add_argument("--seconds", type=float, default=2.0, help="live: seconds of packets per rate")
    ap.add_argument("--no-live", action="store_true", help="offline figures only")
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
        why = "--no-live given" if args.no_live else live_unavailable()
        if why:
            print(f"live part skipped: {why}")
            return 0
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        rates = sorted(int(r) for r in args.rates.split(","))
        setup_veth()
        try:
            best_m, best_t = run_live(path, rates, args.seconds)
        finally:
            teardown_veth()
        print(f"highest rate under 0.1% loss: monitord {best_m:,} pps, tcpdump {best_t:,} pps "
              f"(target 100,000 pps for monitord)")
        ratio = best_m / best_t if best_t else float("nan")
        print(f"ratio live lossless rate monitord (capture+decode+all detectors) / "
              f"tcpdump -w /dev/null: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
