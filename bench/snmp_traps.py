#!/usr/bin/env python3
"""CPU per SNMP trap: monitord's trap receiver against net-snmp's snmptrapd, same run.

    .venv/bin/python bench/snmp_traps.py            # 20,000 traps each
    .venv/bin/python bench/snmp_traps.py --quick    # 3,000 traps each

The traps are real: `snmptrap` sends one v2c linkDown (ifIndex, ifAdminStatus, ifOperStatus,
ifName, ifAlias) to a socket here, and that datagram is replayed N times over loopback UDP to

  * monitord: a child process running the daemon's own receive path on a socket
    (TrapListener -> TrapReceiver.handle_datagram: decode, source and community checks,
    Event) plus the TrapDetector (Event -> interface_down Finding), and
  * snmptrapd (foreground, `authCommunity log` for the community, log to a file, no MIBs):
    it decodes, checks the community and writes its log line; the traps it handled are
    counted in that file.

Both are pinned to CPU 0 (one core); CPU is user+system time of the receiving process, read
from /proc/PID/stat before and after, divided by the traps each really handled (the sender
paces itself; kernel drops are read from /proc/net/snmp and printed). Last line: the ratio
monitord / snmptrapd of CPU microseconds per trap (below 1.0: monitord is cheaper).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMUNITY = "bench-trap"
TICKS = os.sysconf("SC_CLK_TCK")
LINK_DOWN = ["1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
             "1.3.6.1.2.1.2.2.1.7.7", "i", "1", "1.3.6.1.2.1.2.2.1.8.7", "i", "2",
             "1.3.6.1.2.1.31.1.1.1.1.7", "s", "Gi0/7", "1.3.6.1.2.1.31.1.1.1.18.7", "s",
             "uplink ke lantai 3"]

_SERVE = r"""
import asyncio, os, sys
from datetime import datetime, timezone
from prometheus_client import CollectorRegistry
from monitord.collectors.snmp.traps import (TrapMetrics, TrapReceiver, TrapSource,
                                             start_listener)
from monitord.detectors.traps import TrapDetector

expected = int(sys.argv[1])
receiver = TrapReceiver({"127.0.0.1": TrapSource("sw-bench", frozenset({sys.argv[2].encode()}))},
                        TrapMetrics(CollectorRegistry()), lambda: datetime.now(timezone.utc))
detector = TrapDetector()
seen = 0
findings = 0
done = asyncio.Event()
last = [0.0]

async def emit(events):
    global seen, findings
    for event in events:
        findings += len(detector.observe(event))
    seen += len(events)
    last[0] = asyncio.get_running_loop().time()
    if seen >= expected:
        done.set()

async def idle():  # a datagram the kernel dropped never comes: stop 2 s after the last one
    while not done.is_set():
        await asyncio.sleep(0.5)
        if last[0] and asyncio.get_running_loop().time() - last[0] > 2.0:
            done.set()

async def main():
    listener = await start_listener("127.0.0.1", 0, receiver, emit)
    listener.transport.get_extra_info("socket").setsockopt(
        __import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 8 << 20)
    print(listener.transport.get_extra_info("sockname")[1], flush=True)
    watcher = asyncio.ensure_future(idle())
    try:
        await asyncio.wait_for(done.wait(), 600)
    finally:
        watcher.cancel()
        print(seen, findings, flush=True)
        sys.stdin.read()  # the parent reads our CPU time before we exit

asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def udp_drops() -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


def capture_trap() -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        subprocess.run(["snmptrap", "-v2c", "-c", COMMUNITY,
                        f"127.0.0.1:{sock.getsockname()[1]}", "", *LINK_DOWN],
                       check=True, timeout=10, capture_output=True)
        return sock.recv(65535)


def blast(port: int, data: bytes, count: int, pace: int = 20) -> float:
    """Send `count` copies, pausing a millisecond every `pace` datagrams (about 10,000 traps
    a second at most, a storm well beyond any office's); returns seconds taken."""
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(count):
            sock.sendto(data, ("127.0.0.1", port))
            if i % pace == pace - 1:
                time.sleep(0.001)
    return time.monotonic() - start


def pin(pid: int) -> None:
    try:
        os.sched_setaffinity(pid, {0})
    except OSError:
        pass


def run_monitord(data: bytes, count: int) -> tuple[float, int, int]:
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(count), COMMUNITY],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pin(proc.pid)
        port = int(proc.stdout.readline())
        before, drops = cpu_seconds(proc.pid), udp_drops()
        blast(port, data, count)
        seen, findings = (int(x) for x in proc.stdout.readline().split())
        used = cpu_seconds(proc.pid) - before
        if findings != seen:
            raise SystemExit(f"monitord made {findings} findings from {seen} linkDown traps")
        return used, seen, udp_drops() - drops
    finally:
        proc.stdin.close()
        proc.wait(10)


def run_snmptrapd(data: bytes, count: int, workdir: Path) -> tuple[float, int, int]:
    port = free_udp_port()
    conf = workdir / "snmptrapd.conf"
    log = workdir / "snmptrapd.log"
    conf.write_text(f"authCommunity log {COMMUNITY}\ndoNotRetainNotificationLogs yes\n"
                    "dontLogTCPWrappersConnects yes\n")
    proc = subprocess.Popen(
        ["snmptrapd", "-f", "-C", "-c", str(conf), "-Lf", str(log), "-M", "/nonexistent",
         "-m", "", "-p", str(workdir / "snmptrapd.pid"), f"udp:127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        env={**os.environ, "SNMP_PERSISTENT_DIR": str(workdir)})
    try:
        pin(proc.pid)
        time.sleep(1.0)  # start-up
        if proc.poll() is not None:
            raise SystemExit("snmptrapd did not start")
        before, drops = cpu_seconds(proc.pid), udp_drops()
        blast(port, data, count)
        last, stable = cpu_seconds(proc.pid), 0
        while stable < 5:  # until its CPU time stops growing: the queue is drained
            time.sleep(0.1)
            now = cpu_seconds(proc.pid)
            stable = stable + 1 if now == last else 0
            last = now
        handled = log.read_text(errors="replace").count("UDP: [127.0.0.1]")
        return last - before, handled, udp_drops() - drops
    finally:
        proc.terminate()
        proc.wait(10)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 traps instead of 20,000")
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    for tool in ("snmptrap", "snmptrapd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (apt-get install snmp snmptrapd)")
    count = args.count or (3000 if args.quick else 20000)
    data = capture_trap()
    print(f"trap: v2c linkDown, {len(data)} bytes, {count} copies each; receivers pinned to "
          f"CPU 0")
    with tempfile.TemporaryDirectory(prefix="snmptraps-bench-") as tmp:
        trapd_cpu, trapd_seen, trapd_drops = run_snmptrapd(data, count, Path(tmp))
    ours_cpu, seen, ours_drops = run_monitord(data, count)
    ours = ours_cpu / seen * 1e6
    theirs = trapd_cpu / max(trapd_seen, 1) * 1e6
    print(f"snmptrapd 5.9: {trapd_cpu:.2f} s CPU for {trapd_seen} traps logged = "
          f"{theirs:.1f} us/trap (decode, community check, log line; UDP drops {trapd_drops})")
    print(f"monitord:      {ours_cpu:.2f} s CPU for {seen} traps = {ours:.1f} us/trap "
          f"(decode, checks, Event, TrapDetector -> Finding; UDP drops {ours_drops})")
    print(f"ratio monitord/snmptrapd CPU per trap: {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
