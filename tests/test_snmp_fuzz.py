"""Malformed SNMP: a million mutated BER messages through the decoder and the poller's receive
path, structure-aware hypothesis cases, and a real poll that garbage cannot disturb.

Seeds are real datagrams captured from net-snmp snmpd/snmptrapd (tests/data/snmp-seeds/):
v1/v2c/v3 requests, responses, reports, traps and informs. Mutations: tests/snmp_fuzz_lib.py.

- `test_a_million_mutated_messages`: MONITORD_SNMP_FUZZ_MESSAGES (default 1,000,000) messages,
  split over up to 2 worker processes, each through `decode_message` (only `BerError` may come
  out), through `SnmpTransport._received` (what the poller's socket calls for every datagram)
  and through `TrapReceiver.handle_datagram` (the trap socket's whole path, pysnmp USM for v3):
  zero exceptions; `monitord_snmp_decode_errors_total` equals the number of messages the
  decoder rejected, exactly; every trap outcome is counted in `monitord_snmp_traps_total` and
  every malformed one in `monitord_snmp_trap_decode_errors_total`; no "error" outcome (the
  receiver's catch-all for bugs).
- hypothesis: well-formed messages built by an encoder written here (not the one under test)
  decode to exactly what was encoded; the same messages with one structural fault either decode
  or raise `BerError`.
- `test_garbage_on_the_poller_socket_does_not_disturb_polling`: the daemon's collector polls a
  real snmpd in a namespace while 20,000 mutated datagrams hit its socket; every poll returns
  the agent's full, unchanged interfaces, and every datagram is counted (decode error or
  unmatched). Its v3 twin does the same on a v3 device's pysnmp engine socket (5,000).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import multiprocessing
import os
import random
import socket
import time
import traceback

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitord.collectors.snmp import ber
from monitord.collectors.snmp.ber import BerError, decode_message
from monitord.collectors.snmp.transport import SnmpTransport
from tests.snmp_fuzz_lib import SEED_PCAP, Mutator, encode, read_seeds

MESSAGES = int(os.environ.get("MONITORD_SNMP_FUZZ_MESSAGES", "1000000"))
SEED = int(os.environ.get("MONITORD_SNMP_FUZZ_SEED", "20261206"))
WORKERS = max(1, min(2, os.cpu_count() or 1))


def test_seeds_are_real_v1_v2c_and_v3_traffic():
    seeds = read_seeds()
    kinds = collections.Counter((s.direction, s.version) for s in seeds)
    for direction in ("request", "response"):
        for version in (0, 1, 3):
            assert kinds[(direction, version)] > 0, (direction, version, kinds)
    for version in (0, 1, 3):
        assert kinds[("trap", version)] > 0, ("trap", version, kinds)
    for s in seeds:
        if s.version in (0, 1):
            assert decode_message(s.data).version == s.version
        else:
            with pytest.raises(BerError, match="SNMPv3"):
                decode_message(s.data)


# ---- the million -------------------------------------------------------------------------
# The trap receiver trusts the captured agent's address with the capture's credentials, so
# mutated v1/v2c traps reach the community check and mutated v3 ones reach pysnmp's USM
# (authentication, decryption) instead of stopping at "unknown source".
AGENT = "10.177.1.2"
TRAP_USERS = (("trapuser", "trapauth-0123456", "trappriv-0123456"),
              ("informuser", "trapauth-0123456", "trappriv-0123456"))


def _trap_receiver():
    from datetime import datetime, timezone

    from prometheus_client import CollectorRegistry

    from monitord.collectors.snmp.traps import TrapMetrics, TrapReceiver, TrapSource, V3User

    users = tuple(V3User(u, u, "sha256", a, "aes", p) for u, a, p in TRAP_USERS)
    sources = {AGENT: TrapSource("fuzz-agent", frozenset({b"public"}), users)}
    registry = CollectorRegistry()
    receiver = TrapReceiver(sources, TrapMetrics(registry),
                            lambda: datetime(2026, 12, 6, tzinfo=timezone.utc))
    return receiver, registry


def _samples(registry, name: str) -> dict[str, float]:
    """{label value: count} of one labelled counter (its *_total samples)."""
    out: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_total":
                out[next(iter(sample.labels.values()), "")] = sample.value
    return out


def fuzz_worker(index: int, count: int) -> dict:
    """One worker's share: its own deterministic stream through the decoder, the poller's
    receive path (with the real decode-error metric) and the trap receiver; counted outcomes,
    and the first failures (traceback, input hex) for the report."""
    import logging

    from prometheus_client import CollectorRegistry

    from monitord.collectors.snmp.collector import SnmpMetrics

    logging.getLogger("monitord").setLevel(logging.CRITICAL)  # 10^6 "trap dropped" lines
    mutator = Mutator(read_seeds(), random.Random(f"{SEED}-{index}"))
    poll_registry = CollectorRegistry()
    poll_metrics = SnmpMetrics(poll_registry)
    transport = SnmpTransport(on_decode_error=poll_metrics.decode_errors.inc)
    receiver, trap_registry = _trap_receiver()
    reasons: collections.Counter = collections.Counter()
    outcomes: collections.Counter = collections.Counter()
    failures: list[str] = []
    decoded = rejected = 0
    addr = (AGENT, 161)
    receive = transport._received
    handle = receiver.handle_datagram
    rng = random.Random(f"{SEED}-{index}-source")
    cpu_start = time.process_time()
    for _ in range(count):
        data = mutator.one()
        try:
            decode_message(data)
            decoded += 1
        except BerError as exc:
            rejected += 1
            reasons[str(exc).split(":")[0][:48]] += 1
        except Exception:  # noqa: BLE001 - the point of the test
            if len(failures) < 5:
                failures.append(f"decode_message({data.hex()}):\n{traceback.format_exc()}")
        try:
            receive(data, addr)
        except Exception:  # noqa: BLE001
            if len(failures) < 10:
                failures.append(f"_received({data.hex()}):\n{traceback.format_exc()}")
        source = (AGENT, 162) if rng.random() < 0.97 else ("10.177.1.66", 162)
        try:
            result = handle(data, source)
            outcomes[result.outcome] += 1
            if result.outcome == "error" and len(failures) < 15:
                try:  # the receiver swallowed it: get the traceback for the report
                    receiver._handle(data, source)
                    failures.append(f"handle_datagram({data.hex()}) -> error (not again)")
                except Exception:  # noqa: BLE001
                    failures.append(f"handle_datagram({data.hex()}) -> error:\n"
                                    f"{traceback.format_exc()}")
        except Exception:  # noqa: BLE001
            if len(failures) < 15:
                failures.append(f"handle_datagram({data.hex()}):\n{traceback.format_exc()}")
    return {"cpu_s": time.process_time() - cpu_start,
            "decoded": decoded, "rejected": rejected, "reasons": dict(reasons),
            "failures": failures, "transport_decode_errors": transport.decode_errors,
            "transport_unmatched": transport.unmatched,
            "decode_metric": poll_metrics.decode_errors._value.get(),
            "trap_outcomes": dict(outcomes),
            "trap_outcome_metric": _samples(trap_registry, "monitord_snmp_traps"),
            "trap_decode_metric": _samples(trap_registry, "monitord_snmp_trap_decode_errors")}


@pytest.mark.slow
def test_a_million_mutated_messages():
    started = time.monotonic()
    shares = [MESSAGES // WORKERS + (i < MESSAGES % WORKERS) for i in range(WORKERS)]
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx) as pool:
        results = list(pool.map(fuzz_worker, range(WORKERS), shares))
    elapsed = time.monotonic() - started
    failures = [f for r in results for f in r["failures"]]
    assert not failures, "\n\n".join(failures)
    decoded = sum(r["decoded"] for r in results)
    rejected = sum(r["rejected"] for r in results)
    assert decoded + rejected == MESSAGES
    # The poller's receive path counted every rejected datagram, and nothing else.
    assert sum(r["transport_decode_errors"] for r in results) == rejected
    assert sum(r["transport_unmatched"] for r in results) == decoded
    # ... and the metric the daemon exports for it says the same.
    assert sum(r["decode_metric"] for r in results) == rejected
    # The trap receiver answered every datagram with an outcome, counted each one in
    # monitord_snmp_traps_total{outcome}, and counted every malformed one in
    # monitord_snmp_trap_decode_errors_total. "error" is the receiver's catch-all for an
    # exception that is not a decode error (a bug): there must be none.
    outcomes: collections.Counter = collections.Counter()
    outcome_metric: collections.Counter = collections.Counter()
    decode_metric = 0.0
    for r in results:
        outcomes.update(r["trap_outcomes"])
        outcome_metric.update(r["trap_outcome_metric"])
        decode_metric += sum(r["trap_decode_metric"].values())
    assert sum(outcomes.values()) == MESSAGES
    assert {k: v for k, v in outcome_metric.items() if v} == dict(outcomes)
    assert outcomes["error"] == 0, outcomes
    assert decode_metric == outcomes["malformed"]
    # Mutants reach every stage of the receiver, v3 included.
    for stage in ("accepted", "malformed", "bad_community", "unknown_source", "unknown_user",
                  "v3_rejected"):
        assert outcomes[stage] > 0, (stage, outcomes)
    reasons: collections.Counter = collections.Counter()
    for r in results:
        reasons.update(r["reasons"])
    # The mutations reach deep: many distinct rejections, and some messages still decode.
    assert len(reasons) >= 20, reasons
    assert decoded >= MESSAGES // 100
    cpu = sum(r["cpu_s"] for r in results)
    print(f"\n{MESSAGES} messages in {elapsed:.1f}s ({cpu:.1f}s CPU) on {WORKERS} processes: "
          f"{decoded} decoded, {rejected} rejected, {len(reasons)} distinct reasons; "
          f"top: {reasons.most_common(5)}; trap receiver: {dict(outcomes)}")


# ---- structure-aware hypothesis cases ----------------------------------------------------
def _int(tag: int, value: int, signed: bool = True) -> tuple:
    n = max(1, (value.bit_length() + 8) // 8) if signed else max(1, (value.bit_length() + 7) // 8)
    if not signed and value >> (8 * n - 1):
        n += 1  # unsigned values keep a leading zero byte, as agents send them
    return (tag, value.to_bytes(n, "big", signed=signed))


def _oid(parts: list[int]) -> bytes:
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


oids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=30).map(
    lambda tail: [1, 3, *tail])
values = st.one_of(
    st.integers(-2**31, 2**31 - 1).map(lambda v: (_int(0x02, v), v)),
    st.binary(max_size=300).map(lambda b: ((0x04, b), b)),
    st.just(((0x05, b""), None)),
    oids.map(lambda o: ((0x06, _oid(o)), ".".join(map(str, o)))),
    st.binary(min_size=4, max_size=4).map(lambda b: ((0x40, b), "%d.%d.%d.%d" % tuple(b))),
    st.sampled_from([0x41, 0x42, 0x43]).flatmap(
        lambda t: st.integers(0, 2**32 - 1).map(lambda v: (_int(t, v, signed=False), v))),
    st.integers(0, 2**64 - 1).map(lambda v: (_int(0x46, v, signed=False), v)),
    st.sampled_from([0x80, 0x81, 0x82]).map(lambda t: ((t, b""), None)),
)
varbinds = st.lists(st.tuples(oids, values), max_size=40)
messages = st.tuples(
    st.sampled_from([0, 1]), st.binary(max_size=40),
    st.sampled_from([0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA6, 0xA7, 0xA8]),
    st.integers(-2**31, 2**31 - 1), st.integers(0, 18), st.integers(0, 2**16), varbinds)


def _build(version, community, pdu, rid, status, index, vbs) -> tuple:
    vb_nodes = [(0x30, [(0x06, _oid(o)), node]) for o, (node, _v) in vbs]
    return (0x30, [_int(0x02, version), (0x04, community),
                   (pdu, [_int(0x02, rid), _int(0x02, status), _int(0x02, index),
                          (0x30, vb_nodes)])])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_well_formed_messages_decode_to_what_was_encoded(msg):
    version, community, pdu, rid, status, index, vbs = msg
    decoded = decode_message(encode(_build(*msg)))
    assert (decoded.version, decoded.community, decoded.pdu_type) == (version, community, pdu)
    assert (decoded.request_id, decoded.error_status, decoded.error_index) == \
        (rid, status, index)
    assert [(ber.oid_str(o), v) for o, _t, v in decoded.varbinds] == \
        [(".".join(map(str, o)), v) for o, (_n, v) in vbs]


faults = st.sampled_from(["tag", "drop", "dup", "junk-leaf", "huge-int", "empty", "nest",
                          "bad-oid", "trailing"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, faults, st.integers(0, 10_000), st.integers(0, 255), st.binary(max_size=12))
def test_messages_with_one_structural_fault_decode_or_raise_bererror(msg, fault, where, tag,
                                                                     junk):
    tree = _build(*msg)
    nodes: list[tuple[list, int]] = []  # (parent children list, index) of every node

    def walk(node):
        if isinstance(node[1], list):
            for i, child in enumerate(node[1]):
                nodes.append((node[1], i))
                walk(child)
    walk(tree)
    children, i = nodes[where % len(nodes)]
    node = children[i]
    if fault == "tag":
        body = node[1] if isinstance(node[1], bytes) else b"".join(encode(c) for c in node[1])
        children[i] = (tag, body)
    elif fault == "drop":
        del children[i]
    elif fault == "dup":
        children.insert(i, node)
    elif fault == "junk-leaf":
        children[i] = (node[0] if isinstance(node[1], bytes) else 0x04, junk)
    elif fault == "huge-int":
        children[i] = (0x02, b"\x7f" + b"\xff" * (10 + len(junk)))
    elif fault == "empty":
        children[i] = (node[0], b"" if isinstance(node[1], bytes) else [])
    elif fault == "nest":
        children[i] = (0x30, [(0x30, [node])])
    elif fault == "bad-oid":
        children[i] = (0x06, b"\x2b" + b"\x81" * (1 + len(junk)))
    else:
        children.insert(i + 1, (0x05, b""))
    data = encode(tree) + (junk if fault == "trailing" else b"")
    try:
        decoded = decode_message(data)
    except BerError:
        return
    assert decoded.version in (0, 1)
    for oid, _t, _v in decoded.varbinds:
        assert isinstance(oid, bytes) and oid


def test_seed_file_exists_where_the_readme_says():
    assert SEED_PCAP.is_file() and (SEED_PCAP.parent / "README.md").is_file()


# ---- polling a real agent while garbage arrives ---------------------------------------------
GARBAGE = 20_000


@pytest.mark.slow
def test_garbage_on_the_poller_socket_does_not_disturb_polling():
    """The daemon's own collector polls a real snmpd while 20,000 mutated datagrams arrive on
    its shared socket: every poll is complete and identical, and every datagram is counted
    (monitord_snmp_decode_errors_total, or unmatched)."""
    from datetime import datetime, timedelta, timezone

    from prometheus_client import CollectorRegistry

    from monitord.collectors.snmp.collector import (POLL_EVENT, SnmpCollector, SnmpMetrics,
                                                    shared_transport, v2_factory)
    from tests.snmpd_ns import SnmpdNamespace, cleanup_stale, snmpd_ns_skip_reason

    reason = snmpd_ns_skip_reason()
    if reason:
        pytest.skip(reason)
    cleanup_stale()
    mutator = Mutator(read_seeds(), random.Random(SEED))
    garbage = [mutator.one() for _ in range(GARBAGE)]
    garbage = [g for g in garbage if 0 < len(g) <= 8000]
    expected_errors = 0
    for g in garbage:
        try:
            decode_message(g)
        except BerError:
            expected_errors += 1

    with SnmpdNamespace(interfaces=12, community="fuzz-public") as agent:
        metrics = SnmpMetrics(CollectorRegistry())
        # a generous time budget: the machine may be busy, and a slow poll is not the point
        collector = SnmpCollector("fuzz-agent", v2_factory(agent.address, 161, "fuzz-public",
                                                           ber.VERSION_2C, 5.0, 2, 200),
                                  ["system", "if-mib"], metrics=metrics)
        start = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)

        def view(records) -> tuple:
            event = next(r for r in records if getattr(r, "kind", None) == POLL_EVENT)
            result = event.fields["result"]
            assert result.ok, result.reason
            return tuple((i.if_index, i.if_name, i.admin_status, i.oper_status, i.speed_bps)
                         for i in result.interfaces)

        async def scenario() -> tuple[list, int, int, int]:
            polls = 0

            async def poll() -> tuple:
                nonlocal polls
                polls += 1
                return view(await collector.poll(start + timedelta(seconds=polls)))

            baseline = await poll()
            transport = shared_transport(metrics)
            sock = transport._transports[socket.AF_INET].get_extra_info("socket")
            port = sock.getsockname()[1]
            blaster = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            blaster.setblocking(False)
            sent = 0
            before = transport.decode_errors + transport.unmatched

            async def blast() -> None:
                # Batches of 50, each sent only when the previous one has been counted: the
                # kernel's receive buffer (rmem_max) never overflows, so the count is exact.
                nonlocal sent
                for k in range(0, len(garbage), 50):
                    for g in garbage[k:k + 50]:
                        blaster.sendto(g, ("127.0.0.1", port))
                        sent += 1
                    deadline = time.monotonic() + 30
                    while transport.decode_errors + transport.unmatched - before < sent:
                        assert time.monotonic() < deadline, "garbage datagrams were lost"
                        await asyncio.sleep(0.001)

            views = [baseline]
            task = asyncio.create_task(blast())
            while not task.done():
                views.append(await poll())
            await task
            views.append(await poll())
            blaster.close()
            return views, sent, transport.unmatched, polls

        views, sent, unmatched, polls = asyncio.run(scenario())
    baseline = views[0]
    assert len(baseline) == 12 + 2  # 12 interfaces + lo + uplink
    assert {i[1] for i in baseline} == {"lo", agent.uplink, *agent.interface_names}
    assert polls >= 3, "the blast finished before a poll could overlap it"
    for v in views[1:]:
        assert v == baseline
    assert sent == len(garbage)
    assert metrics.decode_errors._value.get() == expected_errors
    assert unmatched == len(garbage) - expected_errors


@pytest.mark.slow
def test_garbage_on_a_v3_session_socket_does_not_disturb_v3_polling():
    """The same for SNMPv3, which pysnmp receives on each v3 device's own engine socket:
    5,000 mutated datagrams (v1/v2c/v3, from loopback) arrive while the daemon's collector
    polls a real snmpd over authPriv SHA-256/AES; every poll is complete and identical. pysnmp
    drops what it cannot use without telling us, so nothing is counted here."""
    from datetime import datetime, timedelta, timezone

    from prometheus_client import CollectorRegistry
    from pysnmp.carrier.asyncio.dgram import udp

    from monitord.collectors.snmp.collector import (POLL_EVENT, SnmpCollector, SnmpMetrics,
                                                    v3_factory)
    from monitord.collectors.snmp.v3 import V3Target
    from tests.snmpd_ns import SnmpdNamespace, cleanup_stale, snmpd_ns_skip_reason

    reason = snmpd_ns_skip_reason()
    if reason:
        pytest.skip(reason)
    cleanup_stale()
    mutator = Mutator(read_seeds(), random.Random(SEED + 3))
    garbage = [g for g in (mutator.one() for _ in range(5000)) if 0 < len(g) <= 8000]

    with SnmpdNamespace(interfaces=6, v3_user="fuzzv3", auth_key="fuzz-auth-0123456",
                        priv_key="fuzz-priv-0123456") as agent:
        target = V3Target(agent.address, 161, "fuzzv3", "sha256", "fuzz-auth-0123456", "aes",
                          "fuzz-priv-0123456", timeout=5.0, retries=2)
        collector = SnmpCollector("fuzz-v3", v3_factory(target), ["system", "if-mib"],
                                  metrics=SnmpMetrics(CollectorRegistry()))
        start = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)

        def view(records) -> tuple:
            event = next(r for r in records if getattr(r, "kind", None) == POLL_EVENT)
            result = event.fields["result"]
            assert result.ok, result.reason
            return tuple((i.if_index, i.if_name, i.admin_status, i.oper_status)
                         for i in result.interfaces)

        async def scenario() -> tuple[list, int]:
            polls = 0

            async def poll() -> tuple:
                nonlocal polls
                polls += 1
                return view(await collector.poll(start + timedelta(seconds=polls)))

            views = [await poll()]
            engine = collector._client._engine
            sock = engine.transport_dispatcher.get_transport(udp.DOMAIN_NAME) \
                .transport.get_extra_info("socket")
            port = sock.getsockname()[1]
            blaster = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            blaster.setblocking(False)

            async def blast() -> None:
                for k, g in enumerate(garbage):
                    blaster.sendto(g, ("127.0.0.1", port))
                    if k % 20 == 19:
                        await asyncio.sleep(0.002)

            task = asyncio.create_task(blast())
            while not task.done():
                views.append(await poll())
            await task
            views.append(await poll())
            blaster.close()
            return views, polls

        views, polls = asyncio.run(scenario())
    assert len(views[0]) == 6 + 2
    assert polls >= 3, "the blast finished before a poll could overlap it"
    assert all(v == views[0] for v in views[1:])
