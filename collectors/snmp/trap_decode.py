"""A small, strict BER reader for the notifications a trap receiver sees.

Why not pyasn1: the receiver is on the path of every datagram anyone can send to UDP 162, so a
flood of garbage must cost microseconds, not the ~150 us pyasn1 spends building objects. This
reader only walks the few shapes a notification can have (SNMPv1 Trap-PDU, SNMPv2-Trap,
InformRequest, and the outer header of an SNMPv3 message, whose security processing is left to
pysnmp), refuses everything else with `TrapDecodeError`, and never recurses without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

# Universal and SNMP application tags (RFC 2578, RFC 3416).
INTEGER, OCTET_STRING, NULL, OID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
# PDU tags
GET_RESPONSE, TRAP_V1, INFORM, TRAP_V2 = 0xA2, 0xA4, 0xA6, 0xA7

SYS_UPTIME_0 = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID_0 = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAPS = "1.3.6.1.6.3.1.1.5"  # coldStart .1 ... authenticationFailure .5, egpNeighborLoss .6

MAX_VARBINDS = 256
MAX_OID_ARCS = 128
_TYPE_NAMES = {INTEGER: "integer", OCTET_STRING: "octets", NULL: "null", OID: "oid",
               IP_ADDRESS: "ipaddress", COUNTER32: "counter32", GAUGE32: "gauge32",
               TIMETICKS: "timeticks", OPAQUE: "opaque", COUNTER64: "counter64",
               NO_SUCH_OBJECT: "noSuchObject", NO_SUCH_INSTANCE: "noSuchInstance",
               END_OF_MIB_VIEW: "endOfMibView"}

Value = Union[int, str, bytes, None]


class TrapDecodeError(ValueError):
    """The datagram is not a well-formed SNMP notification; `reason` is a short fixed word
    (safe as a metric label and in a log line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Varbind:
    oid: str
    type: str
    value: Value


@dataclass(frozen=True, slots=True)
class Notification:
    """A v1/v2c notification in SNMPv2 form (v1 traps translated as RFC 3584 says)."""

    version: str  # "1" | "2c"
    community: bytes
    pdu: str  # "trap" | "inform"
    request_id: int | None
    trap_oid: str
    uptime_ticks: int | None
    varbinds: tuple[Varbind, ...]  # without sysUpTime.0 and snmpTrapOID.0
    agent_address: str | None = None  # the v1 agent-addr field (informational only)


@dataclass(frozen=True, slots=True)
class V3Header:
    """What the receiver needs from an SNMPv3 message before handing it to USM."""

    engine_id: bytes
    user: bytes
    flags: int


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the element at `pos`, inside [pos, end)."""
    if pos + 2 > end:
        raise TrapDecodeError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise TrapDecodeError("bad_tag")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise TrapDecodeError("bad_length")
        length = int.from_bytes(buf[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise TrapDecodeError("truncated")
    return tag, pos, pos + length


def _expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _tlv(buf, pos, end)
    if got != tag:
        raise TrapDecodeError("unexpected_tag")
    return start, stop


def _integer(buf: bytes, start: int, stop: int) -> int:
    if stop == start or stop - start > 9:
        raise TrapDecodeError("bad_integer")
    return int.from_bytes(buf[start:stop], "big", signed=True)


def _unsigned(buf: bytes, start: int, stop: int, limit_bytes: int) -> int:
    if stop == start or stop - start > limit_bytes + 1:
        raise TrapDecodeError("bad_integer")
    value = int.from_bytes(buf[start:stop], "big", signed=True)
    if value < 0 or value >= 1 << (8 * limit_bytes):
        raise TrapDecodeError("bad_integer")
    return value


_OID_CACHE: dict[bytes, str] = {}
_OID_CACHE_MAX = 8192


def _oid(buf: bytes, start: int, stop: int) -> str:
    """Dotted text of an OID. The same few hundred OIDs arrive again and again (trap OIDs,
    ifIndex columns), so their text is cached; the cache is bounded (emptied when full), so a
    flood of random OIDs costs memory it gives back."""
    raw = bytes(buf[start:stop])
    text = _OID_CACHE.get(raw)
    if text is None:
        text = _decode_oid(raw)
        if len(_OID_CACHE) >= _OID_CACHE_MAX:
            _OID_CACHE.clear()
        _OID_CACHE[raw] = text
    return text


def _decode_oid(buf: bytes) -> str:
    start, stop = 0, len(buf)
    if stop == start:
        raise TrapDecodeError("bad_oid")
    arcs: list[int] = []
    value = 0
    for index in range(start, stop):
        byte = buf[index]
        if value == 0 and byte == 0x80:
            raise TrapDecodeError("bad_oid")  # non-minimal sub-identifier
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
            if len(arcs) > MAX_OID_ARCS:
                raise TrapDecodeError("bad_oid")
        elif value >= 1 << 32:
            raise TrapDecodeError("bad_oid")
    if buf[stop - 1] & 0x80:
        raise TrapDecodeError("bad_oid")
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def _value(buf: bytes, tag: int, start: int, stop: int) -> Value:
    if tag == INTEGER:
        return _integer(buf, start, stop)
    if tag in (OCTET_STRING, OPAQUE):
        return bytes(buf[start:stop])
    if tag == OID:
        return _oid(buf, start, stop)
    if tag in (COUNTER32, GAUGE32, TIMETICKS):
        return _unsigned(buf, start, stop, 4)
    if tag == COUNTER64:
        return _unsigned(buf, start, stop, 8)
    if tag == IP_ADDRESS:
        if stop - start != 4:
            raise TrapDecodeError("bad_ipaddress")
        return ".".join(str(b) for b in buf[start:stop])
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        if stop != start:
            raise TrapDecodeError("bad_null")
        return None
    raise TrapDecodeError("bad_value_type")


def _varbinds(buf: bytes, start: int, stop: int) -> list[Varbind]:
    out: list[Varbind] = []
    pos = start
    while pos < stop:
        vb_start, vb_stop = _expect(buf, pos, stop, SEQUENCE)
        o_start, o_stop = _expect(buf, vb_start, vb_stop, OID)
        tag, v_start, v_stop = _tlv(buf, o_stop, vb_stop)
        if v_stop != vb_stop:
            raise TrapDecodeError("trailing_data")
        out.append(Varbind(_oid(buf, o_start, o_stop), _TYPE_NAMES.get(tag, "?"),
                           _value(buf, tag, v_start, v_stop)))
        if len(out) > MAX_VARBINDS:
            raise TrapDecodeError("too_many_varbinds")
        pos = vb_stop
    return out


def message_version(data: bytes) -> int:
    """The msgVersion field (0 = v1, 1 = v2c, 3 = v3) of a datagram."""
    m_start, m_stop = _expect(data, 0, len(data), SEQUENCE)
    if m_stop != len(data):
        raise TrapDecodeError("trailing_data")
    v_start, v_stop = _expect(data, m_start, m_stop, INTEGER)
    version = _integer(data, v_start, v_stop)
    if version not in (0, 1, 3):
        raise TrapDecodeError("bad_version")
    return version


def decode_notification(data: bytes) -> Notification:
    """Decode a v1 or v2c notification; anything else raises `TrapDecodeError`."""
    end = len(data)
    m_start, m_stop = _expect(data, 0, end, SEQUENCE)
    if m_stop != end:
        raise TrapDecodeError("trailing_data")
    v_start, v_stop = _expect(data, m_start, m_stop, INTEGER)
    version = _integer(data, v_start, v_stop)
    if version not in (0, 1):
        raise TrapDecodeError("bad_version")
    c_start, c_stop = _expect(data, v_stop, m_stop, OCTET_STRING)
    community = bytes(data[c_start:c_stop])
    tag, p_start, p_stop = _tlv(data, c_stop, m_stop)
    if p_stop != m_stop:
        raise TrapDecodeError("trailing_data")
    if version == 0:
        if tag != TRAP_V1:
            raise TrapDecodeError("not_a_notification")
        return _v1_trap(data, p_start, p_stop, community)
    if tag not in (TRAP_V2, INFORM):
        raise TrapDecodeError("not_a_notification")
    r_start, r_stop = _expect(data, p_start, p_stop, INTEGER)
    request_id = _integer(data, r_start, r_stop)
    e_start, e_stop = _expect(data, r_stop, p_stop, INTEGER)
    i_start, i_stop = _expect(data, e_stop, p_stop, INTEGER)
    l_start, l_stop = _expect(data, i_stop, p_stop, SEQUENCE)
    if l_stop != p_stop:
        raise TrapDecodeError("trailing_data")
    _integer(data, e_start, e_stop), _integer(data, i_start, i_stop)
    varbinds = _varbinds(data, l_start, l_stop)
    return _v2_form("2c", community, "inform" if tag == INFORM else "trap", request_id,
                    varbinds)


def _v2_form(version: str, community: bytes, pdu: str, request_id: int | None,
             varbinds: list[Varbind]) -> Notification:
    """SNMPv2 notifications start with sysUpTime.0 and snmpTrapOID.0 (RFC 3416 4.2.6)."""
    if len(varbinds) < 2 or varbinds[0].oid != SYS_UPTIME_0 \
            or varbinds[1].oid != SNMP_TRAP_OID_0 or varbinds[1].type != "oid":
        raise TrapDecodeError("no_trap_oid")
    uptime = varbinds[0].value if varbinds[0].type == "timeticks" else None
    return Notification(version, community, pdu, request_id, str(varbinds[1].value),
                        uptime if isinstance(uptime, int) else None, tuple(varbinds[2:]))


def _v1_trap(data: bytes, start: int, stop: int, community: bytes) -> Notification:
    e_start, e_stop = _expect(data, start, stop, OID)
    enterprise = _oid(data, e_start, e_stop)
    a_start, a_stop = _expect(data, e_stop, stop, IP_ADDRESS)
    agent = _value(data, IP_ADDRESS, a_start, a_stop)
    g_start, g_stop = _expect(data, a_stop, stop, INTEGER)
    generic = _integer(data, g_start, g_stop)
    s_start, s_stop = _expect(data, g_stop, stop, INTEGER)
    specific = _integer(data, s_start, s_stop)
    t_start, t_stop = _expect(data, s_stop, stop, TIMETICKS)
    ticks = _unsigned(data, t_start, t_stop, 4)
    l_start, l_stop = _expect(data, t_stop, stop, SEQUENCE)
    if l_stop != stop:
        raise TrapDecodeError("trailing_data")
    if not 0 <= generic <= 6 or specific < 0:
        raise TrapDecodeError("bad_generic_trap")
    # RFC 3584 3.1: generic traps map to snmpTraps.(generic+1); enterprise-specific ones to
    # enterprise.0.specific.
    trap_oid = f"{SNMP_TRAPS}.{generic + 1}" if generic < 6 else f"{enterprise}.0.{specific}"
    return Notification("1", community, "trap", None, trap_oid, ticks,
                        tuple(_varbinds(data, l_start, l_stop)),
                        agent_address=str(agent))


def inform_response(data: bytes) -> bytes:
    """The Response-PDU to a v2c InformRequest: the same message with the PDU tag changed
    (RFC 3416 4.2.7: same request-id and variable bindings, error-status 0)."""
    m_start, m_stop = _expect(data, 0, len(data), SEQUENCE)
    _v_start, v_stop = _expect(data, m_start, m_stop, INTEGER)
    _c_start, c_stop = _expect(data, v_stop, m_stop, OCTET_STRING)
    if data[c_stop] != INFORM:
        raise TrapDecodeError("not_an_inform")
    return data[:c_stop] + bytes([GET_RESPONSE]) + data[c_stop + 1:]


def decode_v3_header(data: bytes) -> V3Header:
    """The authoritative engine ID, user name and flags of an SNMPv3 message (RFC 3412 6,
    RFC 3414 2.4), read without decrypting or authenticating anything."""
    end = len(data)
    m_start, m_stop = _expect(data, 0, end, SEQUENCE)
    if m_stop != end:
        raise TrapDecodeError("trailing_data")
    v_start, v_stop = _expect(data, m_start, m_stop, INTEGER)
    if _integer(data, v_start, v_stop) != 3:
        raise TrapDecodeError("bad_version")
    g_start, g_stop = _expect(data, v_stop, m_stop, SEQUENCE)
    pos = g_stop
    i_start, i_stop = _expect(data, g_start, g_stop, INTEGER)
    s_start, s_stop = _expect(data, i_stop, g_stop, INTEGER)
    f_start, f_stop = _expect(data, s_stop, g_stop, OCTET_STRING)
    sm_start, sm_stop = _expect(data, f_stop, g_stop, INTEGER)
    if f_stop - f_start != 1 or sm_stop != g_stop:
        raise TrapDecodeError("bad_v3_header")
    if _integer(data, sm_start, sm_stop) != 3:  # only the user-based security model
        raise TrapDecodeError("bad_security_model")
    _integer(data, i_start, i_stop), _integer(data, s_start, s_stop)
    p_start, p_stop = _expect(data, pos, m_stop, OCTET_STRING)
    u_start, u_stop = _expect(data, p_start, p_stop, SEQUENCE)
    e_start, e_stop = _expect(data, u_start, u_stop, OCTET_STRING)
    b_start, b_stop = _expect(data, e_stop, u_stop, INTEGER)
    t_start, t_stop = _expect(data, b_stop, u_stop, INTEGER)
    n_start, n_stop = _expect(data, t_stop, u_stop, OCTET_STRING)
    if 0 < e_stop - e_start < 5 or e_stop - e_start > 32:  # RFC 3411 SnmpEngineID; empty
        raise TrapDecodeError("bad_engine_id")              # only in discovery
    if n_stop - n_start > 32:
        raise TrapDecodeError("bad_v3_header")
    _integer(data, b_start, b_stop), _integer(data, t_start, t_stop)
    return V3Header(bytes(data[e_start:e_stop]), bytes(data[n_start:n_stop]),
                    data[f_start])
