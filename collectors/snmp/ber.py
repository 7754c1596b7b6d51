"""A small, fast BER codec for SNMP v1/v2c messages (RFC 1157, RFC 3416).

Why not pysnmp here: its generic ASN.1 machinery spends 180-300 ms of CPU decoding one walk of
a 50-port switch; the poller's budget is ~12 ms for the whole poll. This module decodes a
response with plain byte indexing and `int.from_bytes`, and keeps OIDs as their BER-encoded
bytes (`oid_bytes`), which are prefix-preserving: "is this OID inside that table column" is a
`bytes.startswith`, and the row index is the undecoded tail.

The public entry point for the fuzz harness and the trap receiver is

    decode_message(data: bytes) -> SnmpMessage

which decodes any v1/v2c message (responses, requests, v1 Trap-PDU, v2 traps, informs, reports).
Every malformed input raises exactly one exception type, `BerError` (a `ValueError`), never
anything else: callers count it in `monitord_snmp_decode_errors_total` and skip the datagram.
SNMPv3 messages (version 3) are recognised and rejected with `BerError` here: they go through
pysnmp (see `v3.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = [
    "BerError", "SnmpMessage", "decode_message", "encode_get", "encode_getnext",
    "encode_getbulk", "encode_message", "oid_to_bytes", "bytes_to_oid", "oid_str",
    "format_value", "TAG_INTEGER", "TAG_OCTETS", "TAG_NULL", "TAG_OID", "TAG_IPADDRESS",
    "TAG_COUNTER32", "TAG_GAUGE32", "TAG_TIMETICKS", "TAG_OPAQUE", "TAG_COUNTER64",
    "TAG_NO_SUCH_OBJECT", "TAG_NO_SUCH_INSTANCE", "TAG_END_OF_MIB_VIEW",
    "PDU_GET", "PDU_GETNEXT", "PDU_RESPONSE", "PDU_SET", "PDU_TRAP_V1", "PDU_GETBULK",
    "PDU_INFORM", "PDU_TRAP_V2", "PDU_REPORT", "VERSION_1", "VERSION_2C", "VERSION_3",
]

TAG_INTEGER = 0x02
TAG_OCTETS = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_SEQUENCE = 0x30
TAG_IPADDRESS = 0x40
TAG_COUNTER32 = 0x41
TAG_GAUGE32 = 0x42
TAG_TIMETICKS = 0x43
TAG_OPAQUE = 0x44
TAG_NSAP = 0x45
TAG_COUNTER64 = 0x46
TAG_UINTEGER32 = 0x47
TAG_NO_SUCH_OBJECT = 0x80
TAG_NO_SUCH_INSTANCE = 0x81
TAG_END_OF_MIB_VIEW = 0x82

PDU_GET = 0xA0
PDU_GETNEXT = 0xA1
PDU_RESPONSE = 0xA2
PDU_SET = 0xA3
PDU_TRAP_V1 = 0xA4
PDU_GETBULK = 0xA5
PDU_INFORM = 0xA6
PDU_TRAP_V2 = 0xA7
PDU_REPORT = 0xA8
_PDU_TYPES = frozenset(range(PDU_GET, PDU_REPORT + 1))

VERSION_1 = 0
VERSION_2C = 1
VERSION_3 = 3

_UNSIGNED = frozenset((TAG_COUNTER32, TAG_GAUGE32, TAG_TIMETICKS, TAG_COUNTER64,
                       TAG_UINTEGER32))
_EXCEPTIONS = frozenset((TAG_NO_SUCH_OBJECT, TAG_NO_SUCH_INSTANCE, TAG_END_OF_MIB_VIEW))
_MAX_OID_LEN = 128  # RFC 2578: at most 128 sub-identifiers


class BerError(ValueError):
    """The datagram is not a well-formed SNMP v1/v2c message. The only exception the decoder
    raises."""


@dataclass(slots=True)
class SnmpMessage:
    """One decoded message. `varbinds` is a list of `(oid_bytes, tag, value)` where `oid_bytes`
    is the BER content of the OID (see `oid_str`), `tag` one of the TAG_* constants and `value`
    an int (INTEGER, counters, gauges, TimeTicks), bytes (OCTET STRING, Opaque), str (IpAddress
    dotted quad, OID value dotted), or None (NULL and the v2 exceptions noSuchObject,
    noSuchInstance, endOfMibView, told apart by `tag`)."""

    version: int
    community: bytes
    pdu_type: int
    request_id: int = 0
    error_status: int = 0
    error_index: int = 0
    varbinds: list[tuple[bytes, int, Any]] = field(default_factory=list)
    # v1 Trap-PDU only
    enterprise: str | None = None
    agent_addr: str | None = None
    generic_trap: int | None = None
    specific_trap: int | None = None
    timestamp: int | None = None


# --------------------------------------------------------------------------- OIDs


def oid_to_bytes(oid: str | Iterable[int]) -> bytes:
    """'1.3.6.1.2.1.1.1.0' (or a tuple of ints) -> BER content bytes of the OID."""
    if isinstance(oid, str):
        text = oid.strip().lstrip(".")
        try:
            parts = [int(p) for p in text.split(".")]
        except ValueError:
            raise BerError(f"not an OID: {oid!r}") from None
    else:
        parts = list(oid)
    if len(parts) < 2 or parts[0] > 2 or (parts[0] < 2 and parts[1] > 39) or \
            any(p < 0 for p in parts) or len(parts) > _MAX_OID_LEN:
        raise BerError(f"not an OID: {oid!r}")
    out = bytearray()
    for sub in [parts[0] * 40 + parts[1], *parts[2:]]:
        if sub < 0x80:
            out.append(sub)
            continue
        chunk = []
        while sub:
            chunk.append((sub & 0x7F) | 0x80)
            sub >>= 7
        chunk[0] &= 0x7F
        out.extend(reversed(chunk))
    return bytes(out)


def bytes_to_oid(data: bytes) -> tuple[int, ...]:
    """BER content bytes of an OID -> tuple of sub-identifiers."""
    if not data:
        raise BerError("empty OID")
    subs: list[int] = []
    value = 0
    pending = False
    for byte in data:
        if not pending and byte == 0x80:
            raise BerError("OID sub-identifier with a leading 0x80")
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            pending = True
            continue
        subs.append(value)
        value = 0
        pending = False
    if pending:
        raise BerError("OID ends inside a sub-identifier")
    first = subs[0]
    if first < 40:
        head = (0, first)
    elif first < 80:
        head = (1, first - 40)
    else:
        head = (2, first - 80)
    result = head + tuple(subs[1:])
    if len(result) > _MAX_OID_LEN:
        raise BerError("OID longer than 128 sub-identifiers")
    return result


def oid_str(data: bytes) -> str:
    """BER content bytes of an OID -> '1.3.6...'."""
    return ".".join(map(str, bytes_to_oid(data)))


_INDEX_CACHE: dict[bytes, tuple[int, ...]] = {}
_INDEX_CACHE_MAX = 200_000


def index_of(tail: bytes) -> tuple[int, ...]:
    """The row index below a column: the tail of the OID after the column's prefix. The same
    row indexes come back in every column and every poll, so decoded tails are memoised
    (bounded: the memo is dropped when it reaches _INDEX_CACHE_MAX entries)."""
    found = _INDEX_CACHE.get(tail)
    if found is not None:
        return found
    found = _index_of(tail)
    if len(_INDEX_CACHE) >= _INDEX_CACHE_MAX:
        _INDEX_CACHE.clear()
    _INDEX_CACHE[tail] = found
    return found


def _index_of(tail: bytes) -> tuple[int, ...]:
    if not tail:
        return ()
    if max(tail) < 0x80:  # every sub-identifier below 128
        return tuple(tail)
    subs: list[int] = []
    value = 0
    for byte in tail:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            subs.append(value)
            value = 0
    if tail[-1] & 0x80:
        raise BerError("OID ends inside a sub-identifier")
    return tuple(subs)


# --------------------------------------------------------------------------- encoding


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _len(len(content)) + content


def _int(value: int) -> bytes:
    return _tlv(TAG_INTEGER, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big",
                                            signed=True))


def encode_value(tag: int, value: Any) -> bytes:
    """Encode one value with its tag (requests carry NULL; traps and tests carry values)."""
    if tag == TAG_NULL or tag in _EXCEPTIONS:
        return bytes((tag, 0))
    if tag == TAG_INTEGER:
        return _int(int(value))
    if tag in (TAG_OCTETS, TAG_OPAQUE):
        return _tlv(tag, bytes(value))
    if tag == TAG_OID:
        return _tlv(tag, value if isinstance(value, bytes) else oid_to_bytes(value))
    if tag == TAG_IPADDRESS:
        return _tlv(tag, bytes(int(p) for p in str(value).split(".")))
    if tag in _UNSIGNED:
        value = int(value)
        return _tlv(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))
    raise BerError(f"cannot encode tag 0x{tag:02x}")


def encode_message(version: int, community: bytes, pdu_type: int, request_id: int,
                   varbinds: Iterable[tuple[bytes, int, Any]], error_status: int = 0,
                   error_index: int = 0) -> bytes:
    """A whole v1/v2c message. `varbinds`: (oid_bytes, tag, value)."""
    vbl = b"".join(_tlv(TAG_SEQUENCE, _tlv(TAG_OID, oid) + encode_value(tag, value))
                   for oid, tag, value in varbinds)
    pdu = _int(request_id) + _int(error_status) + _int(error_index) + _tlv(TAG_SEQUENCE, vbl)
    return _tlv(TAG_SEQUENCE, _int(version) + _tlv(TAG_OCTETS, community) + _tlv(pdu_type, pdu))


def _null_varbind(oid: bytes) -> bytes:
    """SEQUENCE { OID, NULL } in one step (requests: the hot part of encoding a walk)."""
    n = len(oid)
    if n < 124:
        return bytes((TAG_SEQUENCE, n + 4, TAG_OID, n)) + oid + b"\x05\x00"
    return _tlv(TAG_SEQUENCE, _tlv(TAG_OID, oid) + b"\x05\x00")


def _request(version: int, community: bytes, pdu_type: int, request_id: int,
             oids: Iterable[bytes], a: int = 0, b: int = 0) -> bytes:
    vbl = b"".join(map(_null_varbind, oids))
    pdu = _int(request_id) + _int(a) + _int(b) + _tlv(TAG_SEQUENCE, vbl)
    return _tlv(TAG_SEQUENCE, _int(version) + _tlv(TAG_OCTETS, community) + _tlv(pdu_type, pdu))


def encode_get(version: int, community: bytes, request_id: int, oids: Iterable[bytes]) -> bytes:
    return _request(version, community, PDU_GET, request_id, oids)


def encode_getnext(version: int, community: bytes, request_id: int,
                   oids: Iterable[bytes]) -> bytes:
    return _request(version, community, PDU_GETNEXT, request_id, oids)


def encode_getbulk(community: bytes, request_id: int, oids: Iterable[bytes],
                   max_repetitions: int, non_repeaters: int = 0) -> bytes:
    """GETBULK is v2c only; error-status/index carry non-repeaters/max-repetitions."""
    return _request(VERSION_2C, community, PDU_GETBULK, request_id, oids, non_repeaters,
                    max_repetitions)


# --------------------------------------------------------------------------- decoding


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at `pos`, bounded by `end`."""
    if pos + 2 > end:
        raise BerError("truncated TLV header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tags are not used by SNMP")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise BerError("indefinite or oversized length")
        if pos + count > end:
            raise BerError("truncated length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    stop = pos + length
    if stop > end:
        raise BerError("length runs past the end of its container")
    return tag, pos, stop


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _header(data, pos, end)
    if got != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{got:02x}")
    return start, stop


def _read_int(data: bytes, pos: int, end: int) -> tuple[int, int]:
    start, stop = _expect(data, pos, end, TAG_INTEGER)
    if start == stop or stop - start > 9:
        raise BerError("INTEGER of bad length")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def _decode_value(data: bytes, tag: int, start: int, stop: int) -> Any:
    if tag == TAG_INTEGER:
        if start == stop or stop - start > 9:
            raise BerError("INTEGER of bad length")
        return int.from_bytes(data[start:stop], "big", signed=True)
    if tag in _UNSIGNED:
        if start == stop or stop - start > 9:
            raise BerError("unsigned integer of bad length")
        return int.from_bytes(data[start:stop], "big") & 0xFFFFFFFFFFFFFFFF
    if tag == TAG_OCTETS or tag == TAG_OPAQUE or tag == TAG_NSAP:
        return data[start:stop]
    if tag == TAG_NULL or tag in _EXCEPTIONS:
        if start != stop:
            raise BerError("NULL with content")
        return None
    if tag == TAG_OID:
        return oid_str(data[start:stop])
    if tag == TAG_IPADDRESS:
        if stop - start != 4:
            raise BerError("IpAddress is not 4 bytes")
        return "%d.%d.%d.%d" % tuple(data[start:stop])
    raise BerError(f"unknown value tag 0x{tag:02x}")


def _decode_varbinds(data: bytes, pos: int, end: int) -> list[tuple[bytes, int, Any]]:
    out: list[tuple[bytes, int, Any]] = []
    append = out.append
    decode_value = _decode_value
    while pos < end:
        # Inlined headers for the hot path: SEQUENCE { OID, value }.
        if data[pos] != TAG_SEQUENCE:
            raise BerError("varbind is not a SEQUENCE")
        _tag, vstart, vend = _header(data, pos, end)
        pos = vend
        if vstart + 2 > vend or data[vstart] != TAG_OID:
            raise BerError("varbind without an OID")
        olen = data[vstart + 1]
        if olen & 0x80:
            _tag, ostart, ostop = _header(data, vstart, vend)
        else:
            ostart = vstart + 2
            ostop = ostart + olen
            if ostop > vend:
                raise BerError("OID runs past its varbind")
        if ostart == ostop:
            raise BerError("empty OID")
        if data[ostop - 1] & 0x80:
            raise BerError("OID ends inside a sub-identifier")
        oid = data[ostart:ostop]
        if ostop + 2 > vend:
            raise BerError("varbind without a value")
        tag = data[ostop]
        vlen = data[ostop + 1]
        if vlen & 0x80:
            tag, start, stop = _header(data, ostop, vend)
        else:
            start = ostop + 2
            stop = start + vlen
        if stop != vend:
            raise BerError("varbind value does not fill its SEQUENCE")
        if tag == TAG_COUNTER32 or tag == TAG_COUNTER64 or tag == TAG_GAUGE32 or \
                tag == TAG_TIMETICKS:
            if start == stop or stop - start > 9:
                raise BerError("unsigned integer of bad length")
            append((oid, tag, int.from_bytes(data[start:stop], "big") & 0xFFFFFFFFFFFFFFFF))
        else:
            append((oid, tag, decode_value(data, tag, start, stop)))
    return out


def decode_message(data: bytes) -> SnmpMessage:
    """Decode one SNMP v1/v2c datagram. Raises `BerError` (only) when it is malformed."""
    try:
        return _decode_message(bytes(data))
    except BerError:
        raise
    except (IndexError, ValueError, TypeError, OverflowError) as exc:  # belt and braces
        raise BerError(f"malformed message: {type(exc).__name__}") from None


def _decode_message(data: bytes) -> SnmpMessage:
    end = len(data)
    start, stop = _expect(data, 0, end, TAG_SEQUENCE)
    if stop != end:
        raise BerError("trailing bytes after the message")
    version, pos = _read_int(data, start, stop)
    if version == VERSION_3:
        raise BerError("SNMPv3 message (handled by the v3 engine)")
    if version not in (VERSION_1, VERSION_2C):
        raise BerError(f"unknown SNMP version {version}")
    cstart, cstop = _expect(data, pos, stop, TAG_OCTETS)
    community = data[cstart:cstop]
    pdu_type, pstart, pstop = _header(data, cstop, stop)
    if pstop != stop:
        raise BerError("trailing bytes after the PDU")
    if pdu_type not in _PDU_TYPES:
        raise BerError(f"unknown PDU type 0x{pdu_type:02x}")
    if pdu_type == PDU_TRAP_V1:
        if version != VERSION_1:
            raise BerError("v1 Trap-PDU in a v2c message")
        estart, estop = _expect(data, pstart, pstop, TAG_OID)
        enterprise = oid_str(data[estart:estop])
        atag, astart, astop = _header(data, estop, pstop)
        if atag != TAG_IPADDRESS or astop - astart != 4:
            raise BerError("v1 trap agent-addr is not an IpAddress")
        agent = "%d.%d.%d.%d" % tuple(data[astart:astop])
        generic, pos = _read_int(data, astop, pstop)
        specific, pos = _read_int(data, pos, pstop)
        ttag, tstart, tstop = _header(data, pos, pstop)
        if ttag != TAG_TIMETICKS or tstart == tstop or tstop - tstart > 5:
            raise BerError("v1 trap time-stamp is not TimeTicks")
        timestamp = int.from_bytes(data[tstart:tstop], "big")
        vstart, vstop = _expect(data, tstop, pstop, TAG_SEQUENCE)
        if vstop != pstop:
            raise BerError("trailing bytes after the varbind list")
        return SnmpMessage(version, community, pdu_type,
                           varbinds=_decode_varbinds(data, vstart, vstop),
                           enterprise=enterprise, agent_addr=agent, generic_trap=generic,
                           specific_trap=specific, timestamp=timestamp)
    request_id, pos = _read_int(data, pstart, pstop)
    error_status, pos = _read_int(data, pos, pstop)
    error_index, pos = _read_int(data, pos, pstop)
    vstart, vstop = _expect(data, pos, pstop, TAG_SEQUENCE)
    if vstop != pstop:
        raise BerError("trailing bytes after the varbind list")
    return SnmpMessage(version, community, pdu_type, request_id, error_status, error_index,
                       _decode_varbinds(data, vstart, vstop))


def format_value(tag: int, value: Any) -> Any:
    """A JSON-friendly rendering of a decoded value (bytes as text when printable, else hex)."""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex(":")
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return text
        return value.hex(":")
    return value
