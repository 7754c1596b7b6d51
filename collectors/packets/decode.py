"""Slice the header fields the traffic detectors need, with `struct`, into a `Packet`.

`decode(ts, frame, linktype=1) -> Packet | None`. A frame too short or inconsistent for the
layer that matters returns None (counted in `DecodeStats`), never raises. Deeper layers that do
not parse (a DNS question cut short, a DHCP option overrunning the packet) leave their fields
None and are counted, while the IP/TCP/UDP fields already sliced are kept: a detector that
counts SYNs should still see a SYN whose payload is garbage.

Text taken from packets (DNS names) is evidence data: `escape_text` keeps printable ASCII and
writes every other byte, and the backslash itself, as `\\xNN`; it is never interpreted.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from monitord.packet import (PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, ROUTE_ARP,
                             ROUTE_DHCP, ROUTE_DNS, ROUTE_FTP, ROUTE_ICMP, ROUTE_OTHER, ROUTE_SYN,
                             ROUTE_SYN_RST, ROUTE_TCP, ROUTE_UDP, TCP_ACK, TCP_FIN, TCP_PSH,
                             TCP_RST, TCP_SYN, TCP_URG, ArpInfo, DhcpInfo, DnsInfo, Packet)

__all__ = ["Packet", "ArpInfo", "DnsInfo", "DhcpInfo", "DecodeStats", "decode", "escape_text",
           "TCP_FIN", "TCP_SYN", "TCP_RST", "TCP_PSH", "TCP_ACK", "TCP_URG",
           "PROTO_ICMP", "PROTO_TCP", "PROTO_UDP", "PROTO_ICMPV6"]

ETH_IPV4, ETH_ARP, ETH_VLAN, ETH_QINQ, ETH_IPV6 = 0x0800, 0x0806, 0x8100, 0x88A8, 0x86DD


@dataclass(slots=True)
class DecodeStats:
    """Counts per outcome; `malformed` frames returned None, `app_errors` kept their L3/L4."""

    frames: int = 0
    decoded: int = 0
    malformed: int = 0
    unsupported: int = 0  # a link or network type we do not decode (returned as L2-only)
    app_errors: int = 0
    arp: int = 0
    ipv4: int = 0
    ipv6: int = 0
    tcp: int = 0
    udp: int = 0
    icmp: int = 0
    other: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


_u16 = struct.Struct("!H").unpack_from
# Whole headers in one unpack each (fewer calls and slices per packet than field by field):
_ETH = struct.Struct("!6s6sH").unpack_from  # dst MAC, src MAC, EtherType
_IP4 = struct.Struct("!BxHxxHxB2x4s4s").unpack_from  # ver/IHL, total, flags/frag, proto, src, dst
_TCP = struct.Struct("!HH8xBB").unpack_from  # sport, dport, data offset byte, flags
_u16x2 = struct.Struct("!HH").unpack_from
_ARP = struct.Struct("!HHBBH6s4s6s4s").unpack_from
_DNS = struct.Struct("!HHHHHH").unpack_from
_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop
_AF6 = socket.AF_INET6

#: The route of a packet whose L4 header is not decoded (a non-first fragment, another
#: protocol): by IP protocol, so that e.g. UDP fragments still reach the UDP flood count.
_PROTO_ROUTE = {6: ROUTE_TCP, 17: ROUTE_UDP, 1: ROUTE_ICMP, 58: ROUTE_ICMP}

_PRINTABLE = bytes(range(0x20, 0x7F))
_ESCAPE = [chr(b) if 0x21 <= b <= 0x7E and b != 0x5C else f"\\x{b:02x}" for b in range(256)]


def escape_text(raw: bytes) -> str:
    """Printable ASCII as is; any other byte (space, backslash, control, 8-bit) as \\xNN."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return "".join([_ESCAPE[b] for b in raw])
    if text.isprintable() and " " not in text and "\\" not in text:
        return text
    return "".join([_ESCAPE[b] for b in raw])


def _mac(b: bytes) -> str:
    return b.hex(":")


def decode(ts: float, frame: bytes, linktype: int = 1, stats: DecodeStats | None = None
           ) -> Packet | None:
    """Decode one frame. Returns None (and counts it) when the frame is malformed."""
    if stats is not None:
        stats.frames += 1
    try:
        pkt = _decode(ts, frame, linktype, stats)
    except (struct.error, IndexError, ValueError, OSError):
        pkt = None
    if stats is not None:
        if pkt is None:
            stats.malformed += 1
        else:
            stats.decoded += 1
    return pkt


def _decode(ts: float, frame: bytes, linktype: int, stats: DecodeStats | None) -> Packet | None:
    n = len(frame)
    src_mac = dst_mac = None
    vlan = None
    if linktype == 1:
        if n < 14:
            return None
        dst, src, etype = _ETH(frame, 0)
        dst_mac = dst.hex(":")
        src_mac = src.hex(":")
        off = 14
        while etype == ETH_VLAN or etype == ETH_QINQ:
            if n < off + 4:
                return None
            if vlan is None:
                vlan = _u16(frame, off)[0] & 0x0FFF
            etype = _u16(frame, off + 2)[0]
            off += 4
    elif linktype == 113:  # Linux cooked (SLL)
        if n < 16:
            return None
        etype = _u16(frame, 14)[0]
        off = 16
    elif linktype in (101, 12, 14, 228, 229):  # raw IP
        if n < 1:
            return None
        etype = ETH_IPV6 if frame[0] >> 4 == 6 else ETH_IPV4
        off = 0
    elif linktype == 0:  # BSD loopback: host-order family
        if n < 4:
            return None
        etype = ETH_IPV6 if frame[0] >> 4 == 6 or frame[4] >> 4 == 6 else ETH_IPV4
        off = 4
    else:
        if stats is not None:
            stats.unsupported += 1
        return Packet(ts, n, None, None, None, 0, route=ROUTE_OTHER)

    if etype == ETH_IPV4:
        if n < off + 20:
            return None
        b0, total, frag, proto, src4, dst4 = _IP4(frame, off)
        ihl = (b0 & 0x0F) * 4
        if b0 >> 4 != 4 or ihl < 20 or n < off + ihl:
            return None
        src_ip = _ntoa(src4)
        dst_ip = _ntoa(dst4)
        end = off + total if ihl <= total and off + total <= n else n  # ignore Ethernet padding
        fragoff = frag & 0x1FFF
        l4 = off + ihl
        if stats is not None:
            stats.ipv4 += 1
        if fragoff:  # a non-first fragment carries no L4 header
            return Packet(ts, n, src_mac, dst_mac, vlan, etype, src_ip, dst_ip, proto,
                          payload_len=end - l4, route=_PROTO_ROUTE.get(proto, ROUTE_OTHER))
    elif etype == ETH_IPV6:
        if n < off + 40 or frame[off] >> 4 != 6:
            return None
        plen = _u16(frame, off + 4)[0]
        proto = frame[off + 6]
        src_ip = _ntop(_AF6, frame[off + 8:off + 24])
        dst_ip = _ntop(_AF6, frame[off + 24:off + 40])
        l4 = off + 40
        end = l4 + plen if l4 + plen <= n else n
        hops = 0
        while proto in (0, 43, 60) and hops < 4:  # hop-by-hop, routing, destination options
            if end < l4 + 8:
                return None
            proto, hlen = frame[l4], (frame[l4 + 1] + 1) * 8
            l4 += hlen
            hops += 1
        if l4 > end:
            return None
        if stats is not None:
            stats.ipv6 += 1
    elif etype == ETH_ARP:
        if n < off + 28:
            return None
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP(frame, off)
        if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
            return None
        if stats is not None:
            stats.arp += 1
        return Packet(ts, n, src_mac, dst_mac, vlan, etype,
                      arp=ArpInfo(op, sha.hex(":"), _ntoa(spa), tha.hex(":"), _ntoa(tpa)),
                      route=ROUTE_ARP)
    else:
        if stats is not None:
            stats.other += 1
        return Packet(ts, n, src_mac, dst_mac, vlan, etype, route=ROUTE_OTHER)

    if proto == 6:
        if end < l4 + 20:
            return None
        sport, dport, doff, flags = _TCP(frame, l4)
        doff = (doff >> 4) * 4
        if doff < 20 or l4 + doff > end:
            return None
        pay = l4 + doff
        ftp = None
        if sport == 21 and end - pay >= 4:
            ftp = _ftp_code(frame, pay)
        if flags & 0x02 and not flags & 0x10:  # SYN without ACK
            route = ROUTE_SYN_RST if flags & 0x04 else ROUTE_SYN
        else:
            route = ROUTE_TCP if ftp is None else ROUTE_FTP
        if stats is not None:
            stats.tcp += 1
        return Packet(ts, n, src_mac, dst_mac, vlan, etype, src_ip, dst_ip, 6, sport, dport,
                      flags, doff - 20, -1, -1, end - pay, None, None, None, ftp, route)
    if proto == 17:
        if end < l4 + 8:
            return None
        sport, dport = _u16x2(frame, l4)
        pay = l4 + 8
        dns = dhcp = None
        route = ROUTE_UDP
        if sport == 53 or dport == 53:
            dns = _dns(frame, pay, end)
            if dns is not None:
                route = ROUTE_DNS
            elif stats is not None:
                stats.app_errors += 1
        elif (sport == 67 or sport == 68) and (dport == 67 or dport == 68):
            dhcp = _dhcp(frame, pay, end)
            if dhcp is not None:
                route = ROUTE_DHCP
            elif stats is not None:
                stats.app_errors += 1
        if stats is not None:
            stats.udp += 1
        return Packet(ts, n, src_mac, dst_mac, vlan, etype, src_ip, dst_ip, 17, sport, dport,
                      0, 0, -1, -1, end - pay, None, dns, dhcp, None, route)
    if proto == 1 or proto == 58:
        if end < l4 + 4:
            return None
        if stats is not None:
            stats.icmp += 1
        return Packet(ts, n, src_mac, dst_mac, vlan, etype, src_ip, dst_ip, proto, 0, 0, 0, 0,
                      frame[l4], frame[l4 + 1], end - l4 - 4, None, None, None, None, ROUTE_ICMP)
    if stats is not None:
        stats.other += 1
    return Packet(ts, n, src_mac, dst_mac, vlan, etype, src_ip, dst_ip, proto,
                  payload_len=end - l4, route=ROUTE_OTHER)


def _ftp_code(frame: bytes, pay: int) -> int | None:
    head = frame[pay:pay + 4]
    if head[:3].isdigit() and head[3:4] in (b" ", b"-"):
        return int(head[:3])
    return None


def _dns(frame: bytes, pay: int, end: int) -> DnsInfo | None:
    if end - pay < 12:
        return None
    _id, flags, qd, an, _ns, _ar = _DNS(frame, pay)
    if qd == 0:
        return None
    pos = pay + 12
    labels = []
    total = 0
    while True:
        if pos >= end:
            return None
        ln = frame[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0:  # compression in the first question is not legal; refuse it
            return None
        label = frame[pos + 1:pos + 1 + ln]
        if len(label) < ln:
            return None
        total += ln + 1
        if total > 255:
            return None
        labels.append(label)
        pos += 1 + ln
    if pos + 4 > end:
        return None
    qtype = _u16(frame, pos)[0]
    qname = escape_text(b".".join(labels))
    return DnsInfo(bool(flags & 0x8000), qname, qtype, flags & 0x0F, an)


def _dhcp(frame: bytes, pay: int, end: int) -> DhcpInfo | None:
    if end - pay < 240 or frame[pay + 236:pay + 240] != b"\x63\x82\x53\x63":
        return None
    hlen = frame[pay + 2]
    chaddr = frame[pay + 28:pay + 28 + min(hlen, 16) if hlen else pay + 34].hex(":")
    pos = pay + 240
    msg_type = 0
    server_id = None
    while pos < end:
        code = frame[pos]
        if code == 255:
            break
        if code == 0:
            pos += 1
            continue
        if pos + 2 > end:
            return None
        ln = frame[pos + 1]
        if pos + 2 + ln > end:
            return None
        if code == 53 and ln >= 1:
            msg_type = frame[pos + 2]
        elif code == 54 and ln == 4:
            server_id = _ntoa(frame[pos + 2:pos + 6])
        pos += 2 + ln
    if not msg_type:
        return None
    return DhcpInfo(msg_type, server_id, chaddr)
