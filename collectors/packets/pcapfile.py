"""Read classic pcap and pcapng files without scapy.

`read_packets(path, stats)` yields `(timestamp, linktype, frame)` tuples:

* classic pcap in both byte orders, microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d)
  resolution;
* pcapng: Section Header (byte order per section), Interface Description (link type,
  `if_tsresol`, `if_tsoffset`), Enhanced Packet and Simple Packet blocks; every other block type
  is skipped and counted.

A malformed or truncated file is never an exception: the reader records what it found in
`ReadStats` (`malformed`, `truncated`, `error`) and stops cleanly, having yielded every packet
before the damage. Packets are read from large chunks, so the per-packet cost is two slices.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from os import PathLike
from typing import BinaryIO, Iterator, Union

__all__ = ["ReadStats", "read_packets", "MAX_FRAME", "LINKTYPE_ETHERNET"]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

#: A captured frame larger than this is taken as a corrupt length field (jumbo frames and
#: TSO/GRO super-packets fit well under it).
MAX_FRAME = 262_144
#: A pcapng block larger than this is taken as corrupt.
MAX_BLOCK = 16 * 1024 * 1024
_CHUNK = 1 << 20

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


@dataclass(slots=True)
class ReadStats:
    """What the reader saw. `malformed`/`truncated` count damage; the reader stops at it."""

    format: str = ""
    packets: int = 0
    bytes: int = 0
    skipped_blocks: int = 0
    malformed: int = 0
    truncated: int = 0
    error: str | None = None

    def fail(self, kind: str, message: str) -> None:
        if kind == "truncated":
            self.truncated += 1
        else:
            self.malformed += 1
        if self.error is None:
            self.error = message


class _Chunks:
    """A byte source read in large chunks; `take(n)` returns exactly n bytes or None at EOF."""

    __slots__ = ("f", "buf", "pos", "short")

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.buf = b""
        self.pos = 0
        self.short = 0  # bytes available when a take() failed (0: clean EOF)

    def take(self, n: int) -> bytes | None:
        pos = self.pos
        end = pos + n
        buf = self.buf
        if end <= len(buf):
            self.pos = end
            return buf[pos:end]
        rest = buf[pos:]
        more = self.f.read(max(n - len(rest), _CHUNK))
        buf = rest + more if rest else more
        self.buf = buf
        if len(buf) < n:
            self.pos = len(buf)
            self.short = len(buf)
            return None
        self.pos = n
        return buf[:n]


def read_packets(source: Union[str, PathLike, BinaryIO],
                 stats: ReadStats | None = None) -> Iterator[tuple[float, int, bytes]]:
    """Yield (timestamp seconds, linktype, frame bytes) from a pcap or pcapng file or stream."""
    stats = stats if stats is not None else ReadStats()
    if hasattr(source, "read"):
        yield from _read_stream(source, stats)  # type: ignore[arg-type]
        return
    try:
        f = open(source, "rb")  # noqa: SIM115 - closed below, also on generator close
    except OSError as exc:
        stats.error = f"cannot open: {exc.strerror or exc}"
        stats.malformed += 1
        return
    try:
        yield from _read_stream(f, stats)
    finally:
        f.close()


def _read_stream(f: BinaryIO, stats: ReadStats) -> Iterator[tuple[float, int, bytes]]:
    src = _Chunks(f)
    try:
        magic = src.take(4)
    except OSError as exc:
        stats.fail("malformed", f"read error: {exc}")
        return
    if magic is None:
        stats.fail("truncated", "file shorter than a pcap header")
        return
    try:
        if magic in _PCAP_MAGICS:
            stats.format = "pcap"
            yield from _read_pcap(src, magic, stats)
        elif magic == _PCAPNG_SHB:
            stats.format = "pcapng"
            yield from _read_pcapng(src, stats)
        else:
            stats.fail("malformed", f"not a pcap or pcapng file (magic {magic.hex()})")
    except OSError as exc:  # the disk, not the format
        stats.fail("malformed", f"read error: {exc}")
    except (struct.error, ValueError, IndexError, OverflowError) as exc:  # belt and braces
        stats.fail("malformed", f"malformed capture: {exc}")


def _read_pcap(src: _Chunks, magic: bytes, stats: ReadStats) -> Iterator[tuple[float, int, bytes]]:
    order, scale = _PCAP_MAGICS[magic]
    head = src.take(20)
    if head is None:
        stats.fail("truncated", "truncated pcap file header")
        return
    _vmaj, _vmin, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", head)
    linktype = network & 0x0FFFFFFF  # upper bits: FCS length flags
    rec = struct.Struct(order + "IIII").unpack
    take = src.take
    packets = nbytes = 0
    try:
        while True:
            hdr = take(16)
            if hdr is None:
                if src.short:
                    stats.fail("truncated", "truncated packet record header")
                return
            sec, frac, caplen, _origlen = rec(hdr)
            if caplen > MAX_FRAME:
                stats.fail("malformed", f"packet record length {caplen} is not plausible")
                return
            data = take(caplen)
            if data is None:
                stats.fail("truncated", "truncated packet data")
                return
            packets += 1
            nbytes += caplen
            yield sec + frac * scale, linktype, data
    finally:
        stats.packets += packets
        stats.bytes += nbytes


_BT_IDB = 1
_BT_PB_OBSOLETE = 2
_BT_SPB = 3
_BT_EPB = 6
_SHB = 0x0A0D0D0A


def _read_pcapng(src: _Chunks, stats: ReadStats) -> Iterator[tuple[float, int, bytes]]:
    # The first block type (the SHB magic) has been consumed; its order is palindromic.
    order = "<"
    interfaces: list[tuple[int, float, float]] = []  # (linktype, seconds per unit, offset)
    last_ts = 0.0
    packets = nbytes = 0
    first = True
    try:
        while True:
            if first:
                btype = _SHB
                first = False
            else:
                raw = src.take(4)
                if raw is None:
                    if src.short:
                        stats.fail("truncated", "truncated block header")
                    return
                btype = struct.unpack(order + "I", raw)[0]
            if btype == _SHB:
                head = src.take(8)
                if head is None:
                    stats.fail("truncated", "truncated section header")
                    return
                bom = head[4:8]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    stats.fail("malformed", "bad pcapng byte-order magic")
                    return
                blen = struct.unpack(order + "I", head[:4])[0]
                if blen < 28 or blen % 4 or blen > MAX_BLOCK:
                    stats.fail("malformed", f"bad section header length {blen}")
                    return
                if src.take(blen - 12) is None:
                    stats.fail("truncated", "truncated section header")
                    return
                interfaces = []
                continue
            raw = src.take(4)
            if raw is None:
                stats.fail("truncated", "truncated block length")
                return
            blen = struct.unpack(order + "I", raw)[0]
            if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                stats.fail("malformed", f"bad block length {blen}")
                return
            body = src.take(blen - 8)
            if body is None:
                stats.fail("truncated", "truncated block")
                return
            if body[-4:] != raw:
                stats.fail("malformed", "block trailing length does not match")
                return
            body = body[:-4]
            if btype == _BT_EPB:
                if len(body) < 20:
                    stats.fail("malformed", "short enhanced packet block")
                    return
                ifid, hi, lo, caplen, _orig = struct.unpack_from(order + "IIIII", body)
                if ifid >= len(interfaces):
                    stats.fail("malformed", f"packet on undeclared interface {ifid}")
                    return
                if caplen > len(body) - 20 or caplen > MAX_FRAME:
                    stats.fail("malformed", f"packet length {caplen} exceeds its block")
                    return
                linktype, unit, offset = interfaces[ifid]
                last_ts = ((hi << 32) | lo) * unit + offset
                packets += 1
                nbytes += caplen
                yield last_ts, linktype, body[20:20 + caplen]
            elif btype == _BT_SPB:
                if len(body) < 4 or not interfaces:
                    stats.fail("malformed", "simple packet block without an interface")
                    return
                orig = struct.unpack_from(order + "I", body)[0]
                caplen = min(orig, len(body) - 4, MAX_FRAME)
                packets += 1
                nbytes += caplen
                # SPBs carry no timestamp: the previous packet's time is the best we know.
                yield last_ts, interfaces[0][0], body[4:4 + caplen]
            elif btype == _BT_IDB:
                if len(body) < 8:
                    stats.fail("malformed", "short interface description block")
                    return
                linktype = struct.unpack_from(order + "H", body)[0]
                unit, offset = _idb_options(body[8:], order)
                interfaces.append((linktype, unit, offset))
            else:
                stats.skipped_blocks += 1
    finally:
        stats.packets += packets
        stats.bytes += nbytes


def _idb_options(opts: bytes, order: str) -> tuple[float, float]:
    """if_tsresol (9) and if_tsoffset (14) from an IDB's options; defaults µs and 0."""
    unit, offset = 1e-6, 0.0
    pos = 0
    while pos + 4 <= len(opts):
        code, length = struct.unpack_from(order + "HH", opts, pos)
        pos += 4
        if code == 0:
            break
        value = opts[pos:pos + length]
        pos += (length + 3) & ~3
        if code == 9 and length >= 1:
            res = value[0]
            exp = res & 0x7F
            if exp <= 30 if res & 0x80 else exp <= 12:
                unit = 2.0 ** -exp if res & 0x80 else 10.0 ** -exp
        elif code == 14 and length == 8:
            offset = float(struct.unpack(order + "q", value)[0])
    return unit, offset
