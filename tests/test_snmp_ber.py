"""The v1/v2c BER codec: round trips, real net-snmp encodings, and malformed input always
raising BerError (never another exception)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitord.collectors.snmp import ber
from monitord.collectors.snmp.ber import BerError, decode_message

# A GET response from snmpsim 1.2.2 serving the LibreNMS recording apc_smx750 (captured from the
# socket): sysObjectID.0 and, since the recording lacks sysUpTime, noSuchInstance.
REAL_RESPONSE = bytes.fromhex(
    "3045020101040a6170635f736d78373530a2340204272f6a5f0201000201003026301606082b0601020101"
    "0200060a2b06010401823e01031b300c06082b060102010103008100"
)


def test_real_response_decodes():
    message = decode_message(REAL_RESPONSE)
    assert message.version == ber.VERSION_2C
    assert message.community == b"apc_smx750"
    assert message.pdu_type == ber.PDU_RESPONSE
    assert message.request_id == 0x272F6A5F
    assert message.varbinds == [
        (ber.oid_to_bytes("1.3.6.1.2.1.1.2.0"), ber.TAG_OID, "1.3.6.1.4.1.318.1.3.27"),
        (ber.oid_to_bytes("1.3.6.1.2.1.1.3.0"), ber.TAG_NO_SUCH_INSTANCE, None),
    ]


@pytest.mark.parametrize("oid", ["1.3.6.1.2.1.2.2.1.10.1", "1.3.6.1.4.1.318.1.1.1.2.2.1.0",
                                 "1.3.6.1.2.1.31.1.1.1.6.4294967295", "2.999.1", "0.0"])
def test_oid_round_trip(oid):
    assert ber.oid_str(ber.oid_to_bytes(oid)) == oid


def test_index_of_multibyte():
    column = ber.oid_to_bytes("1.3.6.1.2.1.2.2.1.2")
    full = ber.oid_to_bytes("1.3.6.1.2.1.2.2.1.2.10101.200.3")
    assert full.startswith(column)
    assert ber.index_of(full[len(column):]) == (10101, 200, 3)


values = st.one_of(
    st.tuples(st.just(ber.TAG_INTEGER), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just(ber.TAG_OCTETS), st.binary(max_size=300)),
    st.tuples(st.just(ber.TAG_COUNTER32), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(ber.TAG_GAUGE32), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(ber.TAG_TIMETICKS), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(ber.TAG_COUNTER64), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(ber.TAG_NULL), st.none()),
    st.tuples(st.just(ber.TAG_END_OF_MIB_VIEW), st.none()),
    st.tuples(st.just(ber.TAG_IPADDRESS),
              st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)),
)
oids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20).map(
    lambda tail: (1, 3) + tuple(tail))


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from([0, 1]), rid=st.integers(0, 2**31 - 1),
       community=st.binary(max_size=40),
       vbs=st.lists(st.tuples(oids, values), max_size=30))
def test_round_trip(version, rid, community, vbs):
    encoded = [(ber.oid_to_bytes(o), tag, value) for o, (tag, value) in vbs]
    data = ber.encode_message(version, community, ber.PDU_RESPONSE, rid, encoded)
    message = decode_message(data)
    assert (message.version, message.community, message.request_id) == (version, community, rid)
    assert message.varbinds == encoded
    assert [ber.bytes_to_oid(o) for o, _t, _v in message.varbinds] == [o for o, _ in vbs]


def test_v1_trap_decodes():
    link_down = ber.oid_to_bytes("1.3.6.1.2.1.2.2.1.1.3")
    body = (ber._tlv(ber.TAG_OID, ber.oid_to_bytes("1.3.6.1.4.1.8072.3.2.10"))
            + ber._tlv(ber.TAG_IPADDRESS, bytes([10, 0, 0, 1])) + ber._int(2) + ber._int(0)
            + ber._tlv(ber.TAG_TIMETICKS, (12345).to_bytes(2, "big"))
            + ber._tlv(ber.TAG_SEQUENCE, ber._tlv(
                ber.TAG_SEQUENCE, ber._tlv(ber.TAG_OID, link_down) + ber._int(3))))
    data = ber._tlv(ber.TAG_SEQUENCE, ber._int(0) + ber._tlv(ber.TAG_OCTETS, b"public")
                    + ber._tlv(ber.PDU_TRAP_V1, body))
    message = decode_message(data)
    assert message.generic_trap == 2 and message.agent_addr == "10.0.0.1"
    assert message.enterprise == "1.3.6.1.4.1.8072.3.2.10" and message.timestamp == 12345
    assert message.varbinds == [(link_down, ber.TAG_INTEGER, 3)]


def test_v3_is_refused_cleanly():
    data = ber._tlv(ber.TAG_SEQUENCE, ber._int(3) + ber._tlv(ber.TAG_SEQUENCE, b""))
    with pytest.raises(BerError):
        decode_message(data)


def test_mutations_only_raise_ber_error():
    """A fast loop (not hypothesis) over 20,000 mutations of a real response; the 1,000,000
    case run lives with the fuzz harness."""
    rng = random.Random(5)
    vbs = [(ber.oid_to_bytes(f"1.3.6.1.2.1.2.2.1.10.{i}"), ber.TAG_COUNTER32, i * 1000)
           for i in range(1, 20)]
    seed = ber.encode_message(1, b"public", ber.PDU_RESPONSE, 77, vbs)
    errors = 0
    for _ in range(20_000):
        data = bytearray(seed)
        for _m in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(data))
            if op < 0.6:
                data[pos] = rng.randrange(256)
            elif op < 0.8:
                del data[pos:pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            if not data:
                break
        try:
            decode_message(bytes(data))
        except BerError:
            errors += 1
    assert errors > 1000  # mutations do get rejected, and nothing else escaped


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", b"\x30\x80\x00\x00",
                                  b"\x30\x03\x02\x01\x01", b"\x04\x00", b"\x30\x05\x02\x01\x01\x04\x00"])
def test_truncated(data):
    with pytest.raises(BerError):
        decode_message(data)


def test_request_encoding_matches_the_generic_encoder():
    oids = [ber.oid_to_bytes(f"1.3.6.1.2.1.31.1.1.1.{c}.{i}") for c in (1, 6) for i in (1, 300)]
    nulls = [(o, ber.TAG_NULL, None) for o in oids]
    assert ber.encode_getbulk(b"c", 9, oids, 13) == ber.encode_message(
        1, b"c", ber.PDU_GETBULK, 9, nulls, 0, 13)
    assert ber.encode_get(0, b"c", 9, oids) == ber.encode_message(0, b"c", ber.PDU_GET, 9,
                                                                   nulls)
    long_oid = ber.oid_to_bytes("1.3." + ".".join(["200"] * 70))
    assert ber.encode_getnext(1, b"c", 1, [long_oid]) == ber.encode_message(
        1, b"c", ber.PDU_GETNEXT, 1, [(long_oid, ber.TAG_NULL, None)])
