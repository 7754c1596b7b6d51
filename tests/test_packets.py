"""pcap/pcapng reading and header decoding, on hand-built files and frames."""

from __future__ import annotations

import io
import struct

import pytest

from monitord.collectors.packets.decode import (TCP_ACK, TCP_SYN, DecodeStats, decode,
                                                escape_text)
from monitord.collectors.packets.pcapfile import ReadStats, read_packets

ETH_SRC = bytes.fromhex("020000000001")
ETH_DST = bytes.fromhex("020000000002")


def ipv4(proto: int, payload: bytes, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02") -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst)
    return hdr + payload


def eth(payload: bytes, etype: int = 0x0800, vlan: int | None = None) -> bytes:
    if vlan is not None:
        return ETH_DST + ETH_SRC + struct.pack("!HHH", 0x8100, vlan, etype) + payload
    return ETH_DST + ETH_SRC + struct.pack("!H", etype) + payload


def tcp(sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_query(name: bytes, qtype: int = 1, response: bool = False) -> bytes:
    q = b"".join(bytes([len(x)]) + x for x in name.split(b".")) + b"\x00"
    return struct.pack("!HHHHHH", 7, 0x8180 if response else 0x0100, 1, 0, 0, 0) + q + \
        struct.pack("!HH", qtype, 1)


def pcap_bytes(frames, order="<", nano=False, linktype=1) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for ts, f in frames:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        out += struct.pack(order + "IIII", sec, frac, len(f), len(f)) + f
    return out


def pcapng_bytes(frames, order="<", tsresol: int | None = None) -> bytes:
    def block(btype, body):
        body += b"\x00" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)
    out = block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts = struct.pack(order + "HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3 + b"\x00" * 4
    out += block(1, struct.pack(order + "HHI", 1, 0, 65535) + opts)
    out += block(0x0BAD, b"custom block to skip")
    unit = 1e-9 if tsresol == 9 else 1e-6
    for ts, f in frames:
        t = round(ts / unit)
        out += block(6, struct.pack(order + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(f), len(f)) + f)
    out += block(3, struct.pack(order + "I", len(frames[0][1])) + frames[0][1])
    return out


FRAMES = [(1700000000.25, eth(ipv4(6, tcp(40000, 22, TCP_SYN)))),
          (1700000001.5, eth(ipv4(17, udp(5353, 53, dns_query(b"example.com"))), vlan=12))]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_pcap_both_orders_and_resolutions(order, nano):
    stats = ReadStats()
    got = list(read_packets(io.BytesIO(pcap_bytes(FRAMES, order, nano)), stats))
    assert [(round(t, 6), lt, f) for t, lt, f in got] == [(round(t, 6), 1, f) for t, f in FRAMES]
    assert stats.packets == 2 and stats.error is None and stats.format == "pcap"


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("tsresol", [None, 9])
def test_pcapng_sections_blocks_and_resolution(order, tsresol):
    stats = ReadStats()
    got = list(read_packets(io.BytesIO(pcapng_bytes(FRAMES, order, tsresol)), stats))
    assert [f for _t, _lt, f in got] == [FRAMES[0][1], FRAMES[1][1], FRAMES[0][1]]  # EPB, EPB, SPB
    assert abs(got[1][0] - FRAMES[1][0]) < 1e-6
    assert stats.skipped_blocks == 1 and stats.error is None


@pytest.mark.parametrize("build", [pcap_bytes, pcapng_bytes])
def test_truncated_files_stop_cleanly(build):
    data = build(FRAMES)
    full = list(read_packets(io.BytesIO(data)))
    for cut in range(len(data)):
        stats = ReadStats()
        got = list(read_packets(io.BytesIO(data[:cut]), stats))  # never raises
        assert got == full[:len(got)]  # every packet before the damage, nothing invented
    stats = ReadStats()
    list(read_packets(io.BytesIO(data[:-3]), stats))
    assert stats.truncated + stats.malformed == 1 and stats.error


def test_lying_length_field_is_malformed_not_an_exception():
    data = bytearray(pcap_bytes(FRAMES))
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)  # first record's caplen
    stats = ReadStats()
    assert list(read_packets(io.BytesIO(bytes(data)), stats)) == []
    assert stats.malformed == 1 and "plausible" in stats.error


def test_missing_file_and_garbage():
    stats = ReadStats()
    assert list(read_packets("/nonexistent/file.pcap", stats)) == [] and stats.error
    stats = ReadStats()
    assert list(read_packets(io.BytesIO(b"hello world, not a capture"), stats)) == []
    assert stats.malformed == 1


def test_decode_tcp_udp_dns_vlan():
    st = DecodeStats()
    p = decode(1.0, FRAMES[0][1], 1, st)
    assert (p.src_ip, p.dst_ip, p.proto, p.sport, p.dport, p.tcp_flags) == \
        ("10.0.0.1", "10.0.0.2", 6, 40000, 22, TCP_SYN)
    assert p.src_mac == "02:00:00:00:00:01" and p.vlan is None
    q = decode(2.0, FRAMES[1][1], 1, st)
    assert q.vlan == 12 and q.dns.qname == "example.com" and q.dns.qtype == 1
    assert not q.dns.response
    assert st.decoded == 2 and st.malformed == 0


def test_decode_ftp_reply_and_escaped_dns_names():
    p = decode(1.0, eth(ipv4(6, tcp(21, 5000, TCP_ACK, b"530 Login incorrect.\r\n"))))
    assert p.ftp_code == 530 and p.payload_len == 22
    raw = b"J\xe4ger\\x41 \x07.evil.com"
    q = decode(1.0, eth(ipv4(17, udp(1000, 53, dns_query(raw, 10)))))
    assert q.dns.qname == "J\\xe4ger\\x5cx41\\x20\\x07.evil.com" and q.dns.qtype == 10
    assert escape_text(b"plain.example") == "plain.example"


def test_decode_arp_and_dhcp():
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, ETH_SRC, b"\xc0\xa8\x01\x01",
                      ETH_DST, b"\xc0\xa8\x01\x02")
    p = decode(1.0, eth(arp, 0x0806))
    assert p.arp.op == 2 and p.arp.sender_ip == "192.168.1.1" and p.arp.sender_mac == "02:00:00:00:00:01"
    boot = bytearray(240)
    boot[0], boot[1], boot[2] = 2, 1, 6
    boot[28:34] = ETH_DST
    boot[236:240] = b"\x63\x82\x53\x63"
    opts = bytes([53, 1, 2, 54, 4, 192, 168, 1, 5, 255])
    d = decode(1.0, eth(ipv4(17, udp(67, 68, bytes(boot) + opts)))).dhcp
    assert (d.msg_type, d.server_id, d.client_mac) == (2, "192.168.1.5", "02:00:00:00:00:02")


def test_decode_malformed_returns_none_and_counts():
    st = DecodeStats()
    assert decode(1.0, b"\x00" * 5, 1, st) is None
    assert decode(1.0, eth(b"\x45\x00"), 1, st) is None  # short IPv4
    assert decode(1.0, eth(ipv4(6, b"\x00" * 10)), 1, st) is None  # short TCP
    bad_dns = eth(ipv4(17, udp(1000, 53, b"\x00" * 12 + b"\x3f")))
    kept = decode(1.0, bad_dns, 1, st)  # UDP header fine, DNS broken: L4 kept, dns None
    assert kept is not None and kept.dns is None and kept.dport == 53
    assert st.malformed == 3 and st.app_errors >= 1


def test_detectors_never_change_a_packet():
    """Packet is a plain (not frozen) slots dataclass for speed; detectors must only read it."""
    import dataclasses

    from monitord.collectors.packets.analyze import build_detectors
    from monitord.collectors.packets.decode import decode as _decode
    from monitord.collectors.packets.pcapfile import read_packets as _read
    from tests.support import shared_dir

    files = sorted((shared_dir() / "pcaps").glob("*.pcap*"))
    if not files:
        pytest.skip("shared captures not found")
    observers = [d.observe for d in build_detectors()]
    checked = 0
    for f in files:
        for ts, lt, frame in list(_read(f))[:400]:
            p = _decode(ts, frame, lt)
            if p is None:
                continue
            before = dataclasses.astuple(p)
            for observe in observers:
                observe(p)
            assert dataclasses.astuple(p) == before, f"a detector changed a packet of {f.name}"
            checked += 1
    assert checked > 2000
