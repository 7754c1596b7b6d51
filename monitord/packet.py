"""The `Packet` record: the header fields of one captured frame that the traffic detectors
need, decoded by collectors/packets/decode.py. A record at a stage boundary, so detectors import
it from here and never from a collector (ARCHITECTURE.md).

Why not `frozen=True` like the other records: a frozen dataclass sets each field through
`object.__setattr__`, which made building one Packet cost about 4 µs, ten times a plain slots
dataclass, on a path that runs hundreds of thousands of times a second. The records are still
treated as immutable: detectors read them and never assign to them (tests/test_packets.py
checks that no detector does)."""

from __future__ import annotations

from dataclasses import dataclass

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58

# What a packet is, for routing it only to the detectors that can act on it
# (collectors/packets/route.py). The decoder sets `Packet.route`; a Packet built by hand gets
# ROUTE_ALL and reaches every detector. Each detector lists the classes it acts on in its
# `routes` attribute; it must return [] for every other class WITHOUT changing its state (its
# clock included), so skipping it cannot change a result.
ROUTE_ALL = 0  # unknown: every detector
ROUTE_ARP = 1
ROUTE_SYN = 2  # TCP with SYN, without ACK and RST: a connection attempt or probe
ROUTE_SYN_RST = 3  # TCP SYN+RST without ACK (odd, but brute_force counts it as an attempt)
ROUTE_FTP = 4  # any other TCP segment carrying an FTP reply code (ftp_code set)
ROUTE_TCP = 5  # every other TCP segment (the bulk of benign traffic)
ROUTE_DNS = 6  # UDP with a decoded DNS question
ROUTE_DHCP = 7  # UDP with a decoded DHCP message
ROUTE_UDP = 8  # every other UDP datagram
ROUTE_ICMP = 9  # ICMP and ICMPv6
ROUTE_OTHER = 10  # other IP protocols, non-first fragments, non-IP/non-ARP frames
ROUTE_COUNT = 11
#: For detectors that act on every packet (their clock moves with every packet).
EVERY_ROUTE = frozenset(range(1, ROUTE_COUNT))



@dataclass(slots=True)
class ArpInfo:
    op: int  # 1 request, 2 reply
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


@dataclass(slots=True)
class DnsInfo:
    response: bool
    qname: str  # escaped text as sent (case kept), no trailing dot
    qtype: int
    rcode: int
    answers: int


@dataclass(slots=True)
class DhcpInfo:
    msg_type: int  # option 53: 1 discover, 2 offer, 3 request, 5 ack, 6 nak...
    server_id: str | None  # option 54
    client_mac: str  # chaddr


@dataclass(slots=True)
class Packet:
    """The header fields of one frame that the detectors look at; nothing else."""

    ts: float
    length: int  # captured frame bytes
    src_mac: str | None
    dst_mac: str | None
    vlan: int | None
    ethertype: int
    src_ip: str | None = None
    dst_ip: str | None = None
    proto: int = 0  # IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6), 0 for none
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    tcp_options: int = 0  # TCP option bytes (raw-socket scanners send few; OS stacks ~20)
    icmp_type: int = -1
    icmp_code: int = -1
    payload_len: int = 0  # L4 payload bytes (captured)
    arp: ArpInfo | None = None
    dns: DnsInfo | None = None
    dhcp: DhcpInfo | None = None
    ftp_code: int | None = None  # FTP reply code at the start of a TCP/21 server payload
    route: int = ROUTE_ALL  # ROUTE_* class set by the decoder (routing only, not evidence)
