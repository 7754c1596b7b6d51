"""Live capture from one interface with an AF_PACKET socket: kernel BPF filter, optional
promiscuous mode, a large receive buffer, and the kernel's drop counters (PACKET_STATISTICS).

Why a raw socket and not scapy's: scapy's sniffer dissects every packet (7k packets/s here);
this socket hands the bytes to `decode`, which slices only the fields the detectors read. It
needs CAP_NET_RAW and nothing else (the systemd unit grants exactly that).

The filter is compiled once at start by `tcpdump -dd` (an argument list, never a shell), so the
kernel drops unwanted packets before they are copied to us. The socket is created with
protocol 0 (it receives nothing), the filter attached, and only then bound to ETH_P_ALL on the
interface, so no unfiltered packet slips in between.

Frames come through a TPACKET_V3 ring (PACKET_RX_RING) mapped into our memory: the kernel
fills blocks of frames and one poll hands over a whole block, instead of one recv system call
(and one copy into a buffer) per packet. The ring replaces the socket buffer, so it gets the
configured buffer size. Where the ring cannot be set up, the socket is read with recv_into.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from monitord.i18n import _

log = logging.getLogger("monitord.capture")

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_USER = 1
RING_BLOCK_SIZE = 1 << 17  # one block = one hand-over of up to 128 KB of frames
RING_BLOCK_TIMEOUT_MS = 50  # a block not yet full is handed over after this long
#: struct tpacket_block_desc: status, number of packets, offset of the first (from byte 8).
_BLOCK = struct.Struct("=III")
#: struct tpacket3_hdr: next offset, sec, nsec, captured length, wire length, status, mac offset.
_FRAME = struct.Struct("=IIIIIIH")
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
MSG_TRUNC = socket.MSG_TRUNC
#: ARPHRD types whose AF_PACKET frames start with an Ethernet header.
_ETHERNET_ARPHRD = {1, 772}  # ARPHRD_ETHER, ARPHRD_LOOPBACK
_BPF_LINE = re.compile(r"^\{\s*(0x[0-9a-f]+),\s*(\d+),\s*(\d+),\s*(0x[0-9a-f]+)\s*\},?$")


class CaptureError(Exception):
    """The capture cannot start: the message names the setting and what to change."""


@dataclass(frozen=True, slots=True)
class KernelStats:
    """Cumulative PACKET_STATISTICS: packets that passed the filter, and those the kernel
    dropped because we did not read fast enough (the socket buffer was full)."""

    packets: int = 0
    drops: int = 0


def interface_linktype(interface: str) -> int:
    """The pcap link type of the frames AF_PACKET gives for this interface (1 Ethernet, 101
    raw IP for tunnels)."""
    try:
        arphrd = int(Path(f"/sys/class/net/{interface}/type").read_text().strip())
    except (OSError, ValueError):
        raise CaptureError(_("collectors.capture.interface: no network interface named "
                             "{name}").format(name=interface)) from None
    return 1 if arphrd in _ETHERNET_ARPHRD else 101


def compile_bpf(expression: str, snaplen: int, linktype: int = 1) -> list[tuple[int, int, int, int]]:
    """A tcpdump filter expression -> classic BPF instructions, by `tcpdump -dd` (no shell)."""
    tcpdump = shutil.which("tcpdump") or "/usr/bin/tcpdump"
    argv = [tcpdump, "-dd", "-y", "EN10MB" if linktype == 1 else "RAW", "-s", str(snaplen),
            "--", expression]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError:
        raise CaptureError(_("collectors.capture.bpf: tcpdump is needed to compile the filter "
                             "(apt-get install tcpdump)")) from None
    except subprocess.TimeoutExpired:
        raise CaptureError(_("collectors.capture.bpf: tcpdump did not compile the filter "
                             "within 10 seconds")) from None
    program = []
    for line in done.stdout.splitlines():
        m = _BPF_LINE.match(line.strip())
        if m:
            program.append((int(m[1], 16), int(m[2]), int(m[3]), int(m[4], 16)))
    if done.returncode != 0 or not program:
        reason = (done.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise CaptureError(_("collectors.capture.bpf: not a valid filter expression "
                             "({reason})").format(reason=reason))
    return program


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER with a struct sock_fprog {u16 len; struct sock_filter *filter}."""
    raw = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HP", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it


class LiveCapture:
    """An open AF_PACKET socket on one interface. `recv()` returns (time, frame, wire length)
    or None after `timeout` seconds without a packet; `recv_batch()` returns all the frames
    of one ring block (or one frame without a ring), [] after `timeout`. Times are the
    kernel's receive times with the ring, `time.time()` at read without."""

    def __init__(self, interface: str, bpf: str = "", promiscuous: bool = False,
                 snaplen: int = 2048, buffer_bytes: int = 32 << 20, timeout: float = 0.2) -> None:
        self.interface = interface
        self.snaplen = snaplen
        self.linktype = interface_linktype(interface)
        self.bpf = bpf
        program = compile_bpf(bpf, snaplen, self.linktype) if bpf.strip() else None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise CaptureError(_("collectors.capture: opening a packet socket needs "
                                 "CAP_NET_RAW (run as the monitord service, or as root)")) \
                from None
        try:
            if program:
                attach_filter(sock, program)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except PermissionError:  # without CAP_NET_ADMIN: up to net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            seconds = int(timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                            struct.pack("ll", seconds, int((timeout - seconds) * 1e6)))
            ring = _map_ring(sock, buffer_bytes)
            sock.bind((interface, ETH_P_ALL))
            if promiscuous:
                mreq = struct.pack("iHH8s", socket.if_nametoindex(interface), PACKET_MR_PROMISC,
                                   0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError as exc:
            sock.close()
            raise CaptureError(_("collectors.capture: cannot capture on {name} "
                                 "({reason})").format(name=interface,
                                                      reason=exc.strerror or exc)) from None
        self.sock = sock
        self._buf = bytearray(max(snaplen, 64))
        self._view = memoryview(self._buf)
        self._ring = ring
        self._blocks = len(ring) // RING_BLOCK_SIZE if ring is not None else 0
        self._block = 0  # the next block the kernel hands over (they go round in order)
        self._timeout_ms = max(1, int(timeout * 1000))
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)
        self._pending: list[tuple[float, bytes, int]] = []
        self.ring = ring is not None
        self._packets = 0
        self._drops = 0
        self.kernel_stats()  # start the counters at zero (reading resets them)
        self._packets = self._drops = 0

    def recv(self) -> tuple[float, bytes, int] | None:
        if self._ring is None:
            return self._recv_socket()
        if not self._pending:
            self._pending = self._next_block()
            self._pending.reverse()  # pop() from the end, in arrival order
            if not self._pending:
                return None
        return self._pending.pop()

    def recv_batch(self) -> list[tuple[float, bytes, int]]:
        if self._ring is None:
            got = self._recv_socket()
            return [got] if got is not None else []
        if self._pending:  # left over from recv()
            out, self._pending = self._pending[::-1], []
            return out
        return self._next_block()

    def _recv_socket(self) -> tuple[float, bytes, int] | None:
        try:
            n = self.sock.recv_into(self._buf, self.snaplen, MSG_TRUNC)
        except (BlockingIOError, TimeoutError, InterruptedError):
            return None
        return time.time(), bytes(self._view[:min(n, self.snaplen)]), n

    def _next_block(self) -> list[tuple[float, bytes, int]]:
        """The frames of the next ring block (copied out), then the block goes back to the
        kernel; [] if none is ready within the timeout."""
        ring = self._ring
        assert ring is not None
        base = self._block * RING_BLOCK_SIZE
        status, count, pos = _BLOCK.unpack_from(ring, base + 8)
        if not status & TP_STATUS_USER:
            try:
                self._poll.poll(self._timeout_ms)
            except InterruptedError:
                return []
            status, count, pos = _BLOCK.unpack_from(ring, base + 8)
            if not status & TP_STATUS_USER:
                return []
        snaplen = self.snaplen
        unpack = _FRAME.unpack_from
        out = []
        pos += base
        for _i in range(count):
            step, sec, nsec, caplen, wirelen, _st, mac = unpack(ring, pos)
            start = pos + mac
            out.append((sec + nsec * 1e-9, ring[start:start + min(caplen, snaplen)], wirelen))
            pos += step
        ring[base + 8:base + 12] = b"\0\0\0\0"  # TP_STATUS_KERNEL: the block is the kernel's
        self._block = (self._block + 1) % self._blocks
        return out

    def kernel_stats(self) -> KernelStats:
        """Cumulative since open (the kernel resets its counters on every read)."""
        packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET,
                                                                   PACKET_STATISTICS, 8))
        self._packets += packets
        self._drops += drops
        return KernelStats(self._packets, self._drops)

    def close(self) -> None:
        if self._ring is not None:
            self._pending = []
            self._ring.close()
            self._ring = None
        self.sock.close()

    def __enter__(self) -> "LiveCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _map_ring(sock: socket.socket, buffer_bytes: int) -> mmap.mmap | None:
    """A TPACKET_V3 receive ring of about `buffer_bytes` (at least 2 blocks), mapped; None
    (and the socket stays a plain one) if the kernel refuses it."""
    blocks = max(2, buffer_bytes // RING_BLOCK_SIZE)
    frame = 2048  # only checked by the kernel for V3: blocks hold frames of any size
    req = struct.pack("=7I", RING_BLOCK_SIZE, blocks, frame, RING_BLOCK_SIZE // frame * blocks,
                      RING_BLOCK_TIMEOUT_MS, 0, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        return mmap.mmap(sock.fileno(), RING_BLOCK_SIZE * blocks, mmap.MAP_SHARED,
                         mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as exc:
        try:  # a ring set up but not mapped would swallow every frame: take it down
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, bytes(28))
        except OSError:
            pass
        log.warning("capture: no TPACKET_V3 ring (%s); reading the socket frame by frame", exc)
        return None


class CaptureThread:
    """Reads a `LiveCapture` into a `TrafficEngine` in its own thread: findings go to
    `on_findings` as they come, and every `stats_interval` the detectors' time-based checks
    run and `on_interval(counters, kernel_stats, engine)` publishes the metrics."""

    def __init__(self, capture: LiveCapture, engine, on_findings: Callable[[list], None],
                 on_interval: Callable[..., None] | None = None,
                 stats_interval: float = 5.0) -> None:
        self.capture = capture
        self.engine = engine
        self.on_findings = on_findings
        self.on_interval = on_interval
        self.stats_interval = stats_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{capture.interface}",
                                        daemon=True)
        self.error: BaseException | None = None
        self.failed = 0  # packets a detector raised on (logged, skipped)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.capture.close()

    def _run(self) -> None:
        recv, feed = self.capture.recv, self.engine.feed
        # a whole ring block per call where the capture has one (stand-ins may not)
        batch = getattr(self.capture, "recv_batch", None) or (
            lambda: [got] if (got := recv()) is not None else [])
        stop = self._stop
        next_tick = time.monotonic() + self.stats_interval
        try:
            while not stop.is_set():
                for got in batch():
                    try:
                        found = feed(got[0], got[1], got[2])
                    except Exception:  # a detector bug costs one packet, not the capture
                        self.failed += 1
                        if self.failed == 1 or self.failed % 10_000 == 0:
                            log.exception("traffic detectors failed on a packet failures=%d",
                                          self.failed)
                        found = None
                    if found:
                        self.on_findings(found)
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self.stats_interval
                    self._interval()
        except Exception as exc:  # reported by the daemon's log; the process stays up
            self.error = exc
            log.exception("capture stopped interface=%s", self.capture.interface)

    def _interval(self) -> None:
        found = self.engine.flush(time.time())
        if found:
            self.on_findings(found)
        if self.on_interval is not None:
            self.on_interval(self.engine.take_counters(), self.capture.kernel_stats(),
                             self.engine)
