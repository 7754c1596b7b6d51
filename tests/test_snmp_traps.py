"""The SNMP trap receiver against net-snmp's own `snmptrap` / `snmpinform` (the real peer):
v1, v2c and v3 traps, v2c and v3 informs answered, spoofed and wrong-credential traps counted
and dropped, unknown traps counted, malformed datagrams counted and never raised."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from monitord.collectors.snmp.trap_decode import TrapDecodeError, decode_notification
from monitord.collectors.snmp.traps import (
    TrapMetrics,
    TrapReceiver,
    start_listener,
    trap_sources,
)
from monitord.config import Config
from monitord.detectors.traps import TrapDetector
from monitord.records import Category, FindingState

pytestmark = pytest.mark.skipif(shutil.which("snmptrap") is None,
                                reason="net-snmp's snmptrap is not installed (scripts/test-setup.sh)")

NOW = datetime(2026, 12, 6, 7, 0, tzinfo=timezone.utc)
ENV = {"TRAP_COMMUNITY": "s3cret-trap", "POLL_COMMUNITY": "s3cret-poll",
       "TRAP_AUTH": "authpass-123", "TRAP_PRIV": "privpass-123"}
V3 = ["-u", "noc-trap", "-l", "authPriv", "-a", "SHA", "-A", ENV["TRAP_AUTH"], "-x", "AES",
      "-X", ENV["TRAP_PRIV"]]
LINK_DOWN = ["1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.3", "i", "3",
             "1.3.6.1.2.1.2.2.1.7.3", "i", "1", "1.3.6.1.2.1.2.2.1.8.3", "i", "2",
             "1.3.6.1.2.1.31.1.1.1.18.3", "s", "<script>alert(1)</script>; rm -rf /"]


@pytest.fixture(scope="module", autouse=True)
def _secrets():
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        yield


def make_config(sw_address: str = "127.0.0.1") -> Config:
    return Config.model_validate({
        "sites": [{"name": "hq"}],
        "credentials": {
            "poll-v2": {"type": "snmp_v2c", "community": {"env": "POLL_COMMUNITY"}},
            "trap-v2": {"type": "snmp_v2c", "community": {"env": "TRAP_COMMUNITY"}},
            "trap-v3": {"type": "snmp_v3", "user": "noc-trap", "auth_protocol": "sha",
                        "auth_key": {"env": "TRAP_AUTH"}, "priv_protocol": "aes",
                        "priv_key": {"env": "TRAP_PRIV"}},
        },
        "devices": [{"name": "sw-lantai1", "address": sw_address, "site": "hq",
                     "kind": "switch", "credential": "poll-v2"}],
        "traps": {"enabled": True, "listen": "127.0.0.1:0",
                  "credentials": ["trap-v2", "trap-v3"]},
    })


class Capture:
    """A plain UDP socket that keeps what snmptrap sent, to feed the receiver by hand."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]

    def send(self, *args: str) -> tuple[bytes, tuple[str, int]]:
        subprocess.run(["snmptrap", *args[:-1], f"127.0.0.1:{self.port}", *args[-1]],
                       check=True, timeout=10, capture_output=True)
        return self.sock.recvfrom(65535)


def trap(capture: Capture, version_args: list[str], payload: list[str]):
    return capture.send(*version_args, payload)


@pytest.fixture(scope="module")
def capture():
    cap = Capture()
    yield cap
    cap.sock.close()


def receiver(config: Config | None = None) -> tuple[TrapReceiver, TrapMetrics]:
    metrics = TrapMetrics(CollectorRegistry())
    return TrapReceiver(trap_sources(config or make_config()), metrics, lambda: NOW), metrics


def count(metrics: TrapMetrics, outcome: str) -> float:
    return metrics.received.labels(outcome)._value.get()


def test_v2c_link_down_becomes_an_interface_down_finding(capture):
    rx, metrics = receiver()
    data, addr = trap(capture, ["-v2c", "-c", ENV["TRAP_COMMUNITY"]], ["", *LINK_DOWN])
    result = rx.handle_datagram(data, addr)
    assert result.outcome == "accepted" and len(result.events) == 1
    event = result.events[0]
    assert event.device == "sw-lantai1" and event.fields["trap"] == "linkDown"
    [finding] = TrapDetector().observe(event)
    assert finding.kind == "interface_down" and finding.firing
    assert finding.dedup_key == "interface_down:sw-lantai1:3"
    # the hostile ifAlias is kept as data, verbatim, in the evidence -- not in the summary
    assert finding.evidence["interface"]["ifAlias"] == "<script>alert(1)</script>; rm -rf /"
    assert "<script>" not in finding.summary
    assert count(metrics, "accepted") == 1


def test_the_device_own_poll_community_is_accepted_too(capture):
    rx, _metrics = receiver()
    data, addr = trap(capture, ["-v2c", "-c", ENV["POLL_COMMUNITY"]],
                      ["", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.2.1.2.2.1.1.3", "i", "3"])
    result = rx.handle_datagram(data, addr)
    [finding] = TrapDetector().observe(result.events[0])
    assert finding.dedup_key == "interface_down:sw-lantai1:3"
    assert finding.state is FindingState.CLEARED  # linkUp clears


def test_wrong_community_is_counted_and_dropped(capture):
    rx, metrics = receiver()
    data, addr = trap(capture, ["-v2c", "-c", "public"], ["", *LINK_DOWN])
    result = rx.handle_datagram(data, addr)
    assert result.outcome == "bad_community" and result.events == ()
    assert count(metrics, "bad_community") == 1 and count(metrics, "accepted") == 0


def test_trap_from_an_address_that_is_no_device_is_dropped(capture):
    rx, metrics = receiver(make_config(sw_address="192.0.2.10"))
    data, addr = trap(capture, ["-v2c", "-c", ENV["TRAP_COMMUNITY"]], ["", *LINK_DOWN])
    result = rx.handle_datagram(data, addr)
    assert result.outcome == "unknown_source" and result.events == ()
    assert count(metrics, "unknown_source") == 1


def test_v1_apc_on_battery_and_power_restored(capture):
    rx, _metrics = receiver()
    detector = TrapDetector()
    on, addr = trap(capture, ["-v1", "-c", ENV["TRAP_COMMUNITY"]],
                    ["1.3.6.1.4.1.318", "127.0.0.1", "6", "5", "",
                     "1.3.6.1.4.1.318.2.3.3.0", "s", "UPS: On battery power"])
    [finding] = detector.observe(rx.handle_datagram(on, addr).events[0])
    assert (finding.kind, finding.dedup_key, finding.firing) == \
        ("ups_on_battery", "ups_on_battery:sw-lantai1", True)
    back, addr = trap(capture, ["-v1", "-c", ENV["TRAP_COMMUNITY"]],
                      ["1.3.6.1.4.1.318", "127.0.0.1", "6", "9", ""])
    states = {(f.kind, f.state) for f in detector.observe(rx.handle_datagram(back, addr).events[0])}
    assert ("ups_on_battery", FindingState.CLEARED) in states


def test_rfc1628_low_battery_alarm_entry(capture):
    rx, _metrics = receiver()
    data, addr = trap(capture, ["-v2c", "-c", ENV["TRAP_COMMUNITY"]],
                      ["", "1.3.6.1.2.1.33.2.3", "1.3.6.1.2.1.33.1.6.2.1.1.7", "i", "7",
                       "1.3.6.1.2.1.33.1.6.2.1.2.7", "o", "1.3.6.1.2.1.33.1.6.3.3"])
    [finding] = TrapDetector().observe(rx.handle_datagram(data, addr).events[0])
    assert finding.kind == "ups_battery_low" and finding.firing
    assert finding.dedup_key == "ups_battery_low:sw-lantai1"


def test_authentication_failure_is_a_security_finding_that_fires_and_clears(capture):
    rx, _metrics = receiver()
    data, addr = trap(capture, ["-v1", "-c", ENV["TRAP_COMMUNITY"]],
                      ["1.3.6.1.4.1.8072", "127.0.0.1", "4", "0", ""])
    fired, cleared = TrapDetector().observe(rx.handle_datagram(data, addr).events[0])
    assert fired.category is Category.NETWORK_SECURITY and fired.firing
    assert cleared.dedup_key == fired.dedup_key == "snmp_auth_failure:sw-lantai1"
    assert not cleared.firing


def test_unknown_trap_is_counted_and_makes_no_finding(capture):
    rx, metrics = receiver()
    data, addr = trap(capture, ["-v2c", "-c", ENV["TRAP_COMMUNITY"]],
                      ["", "1.3.6.1.4.1.99999.0.42", "1.3.6.1.4.1.99999.1", "s", "hello"])
    result = rx.handle_datagram(data, addr)
    assert result.outcome == "unknown_trap"
    assert TrapDetector().observe(result.events[0]) == []
    assert count(metrics, "unknown_trap") == 1
    assert metrics.by_trap.labels("unknown")._value.get() == 1


def test_v3_auth_priv_trap_accepted_and_wrong_key_rejected(capture):
    rx, metrics = receiver()
    engine = ["-e", "0x80001f8880aabbccdd"]
    data, addr = trap(capture, ["-v3", *V3, *engine], ["", *LINK_DOWN])
    result = rx.handle_datagram(data, addr)
    assert result.outcome == "accepted", result
    [finding] = TrapDetector().observe(result.events[0])
    assert finding.dedup_key == "interface_down:sw-lantai1:3"
    wrong = [*V3]
    wrong[wrong.index(ENV["TRAP_AUTH"])] = "not-the-key-1"
    data, addr = trap(capture, ["-v3", *wrong, *engine], ["", *LINK_DOWN])
    assert rx.handle_datagram(data, addr).outcome == "v3_rejected"
    other = ["-v3", "-u", "intruder", "-l", "authNoPriv", "-a", "SHA", "-A", "whatever-123",
             *engine]
    data, addr = trap(capture, other, ["", *LINK_DOWN])
    assert rx.handle_datagram(data, addr).outcome == "unknown_user"
    assert count(metrics, "v3_rejected") == 1 and count(metrics, "unknown_user") == 1


class LiveListener:
    """The receiver on a real socket in an event loop thread, as the daemon runs it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.events: list = []
        self.rx, self.metrics = receiver()
        thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        thread.start()

        async def emit(events):
            self.events.extend(events)

        self.listener = asyncio.run_coroutine_threadsafe(
            start_listener("127.0.0.1", 0, self.rx, emit), self.loop).result(5)
        self.port = self.listener.transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.listener.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def live():
    listener = LiveListener()
    yield listener
    listener.close()


@pytest.mark.parametrize("version", ["v2c", "v3"])
def test_informs_are_answered(live, version):
    auth = ["-v2c", "-c", ENV["TRAP_COMMUNITY"]] if version == "v2c" else ["-v3", *V3]
    before = len(live.events)
    done = subprocess.run(["snmpinform", *auth, "-r", "1", "-t", "2",
                           f"127.0.0.1:{live.port}", "", *LINK_DOWN],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr  # snmpinform exits 0 only when answered
    assert len(live.events) == before + 1
    assert live.events[-1].fields["pdu"] == "inform"


def test_wrong_community_inform_is_not_answered(live):
    done = subprocess.run(["snmpinform", "-v2c", "-c", "public", "-r", "0", "-t", "1",
                           f"127.0.0.1:{live.port}", "", *LINK_DOWN],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode != 0


def test_every_truncation_and_bit_flip_is_counted_never_raised(capture):
    rx, metrics = receiver()
    seeds = [trap(capture, ["-v2c", "-c", ENV["TRAP_COMMUNITY"]], ["", *LINK_DOWN])[0],
             trap(capture, ["-v1", "-c", ENV["TRAP_COMMUNITY"]],
                  ["1.3.6.1.4.1.318", "127.0.0.1", "6", "5", ""])[0],
             trap(capture, ["-v3", *V3, "-e", "0x80001f8880aabbccdd"], ["", *LINK_DOWN])[0]]
    total = 0
    for seed in seeds:
        for cut in range(len(seed)):
            rx.handle_datagram(seed[:cut], ("127.0.0.1", 9))
            total += 1
        for index in range(len(seed)):
            for bit in (0x01, 0x80):
                mutated = bytearray(seed)
                mutated[index] ^= bit
                rx.handle_datagram(bytes(mutated), ("127.0.0.1", 9))
                total += 1
    counted = sum(metrics.received.labels(o)._value.get()
                  for o in ("accepted", "unknown_trap", "malformed", "unknown_source",
                            "bad_community", "unknown_user", "v3_rejected", "v3_report",
                            "not_a_notification", "error"))
    assert counted == total
    assert metrics.received.labels("error")._value.get() == 0
    assert metrics.received.labels("malformed")._value.get() > len(seeds[0])


def test_decoder_refuses_a_get_request():
    # a GetRequest (not a notification) built by hand: SEQUENCE{1, "public", A0{...}}
    pdu = bytes.fromhex("a019020101020100020100300e300c06082b060102010101000500")
    message = bytes([0x30, 3 + 8 + len(pdu)]) + bytes.fromhex("020101") + \
        bytes([4, 6]) + b"public" + pdu
    with pytest.raises(TrapDecodeError) as info:
        decode_notification(message)
    assert info.value.reason == "not_a_notification"


def test_receiver_never_logs_the_community(capture, caplog):
    rx, _metrics = receiver()
    data, addr = trap(capture, ["-v2c", "-c", "wrong-" + ENV["TRAP_COMMUNITY"]],
                      ["", *LINK_DOWN])
    with caplog.at_level("DEBUG"):
        rx.handle_datagram(data, addr)
    assert ENV["TRAP_COMMUNITY"] not in caplog.text and "wrong-" not in caplog.text
    assert os.environ["TRAP_COMMUNITY"] == ENV["TRAP_COMMUNITY"]


def test_bad_trap_settings_name_file_line_key_and_expectation():
    from monitord.config_loader import ConfigError, parse_config_text

    text = """\
credentials:
  noc-ssh: {type: ssh, username: noc, password: {env: X}}
traps:
  enabled: true
  listen: "0.0.0.0:99999"
  credentials: [noc-ssh, nope]
"""
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "monitord.yaml")
    shown = [str(p) for p in info.value.problems]
    assert any(s.startswith("monitord.yaml:5: traps.listen") and "0.0.0.0:162" in s
               for s in shown), shown
    assert any(s.startswith("monitord.yaml:6: traps.credentials") and "'noc-ssh'" in s
               and "SNMP credential" in s for s in shown), shown
    assert any("'nope'" in s for s in shown), shown


def test_v3_engine_id_outside_5_to_32_bytes_is_malformed_not_an_error():
    """Found by snmp-bench's fuzz: a known user from a trusted address with a 4-byte engine ID
    made pysnmp raise inside the receiver (counted as "error")."""
    rx, metrics = receiver(make_config(sw_address="10.177.1.2"))  # a trusted source
    data = bytes.fromhex(
        "3081a90201033011020474ab4b73020300ffe3040107020103043e303c0404d0cd5ca902010102010204"
        "0a696e666f726d757365720418a7192fa8c928a63b9a6011f35294a86f19292cd784c3dac30408a78487"
        "c8ed339ead045116fecd26790732bed747d036009543056b31ff6edbfedd8a9eadee6f19f2cfec3b7776"
        "30a476368f6b168ccc9df5ac1ce8bd0b441cc9ac0a85b4cff8a313ab6317ddce35c185e8eac743480b83"
        "fa2f1f05")
    assert rx.handle_datagram(data, ("10.177.1.2", 162)).outcome == "malformed"
    assert metrics.decode_errors.labels("bad_engine_id")._value.get() == 1
    # the same header with our user name reaches learn() if the length check were missing
    mine = data.replace(b"\x04\x0ainformuser", b"\x04\x08noc-trap").replace(
        b"\x04\x3e\x30\x3c", b"\x04\x3c\x30\x3a").replace(b"\x30\x81\xa9", b"\x30\x81\xa7")
    assert rx.handle_datagram(mine, ("10.177.1.2", 162)).outcome == "malformed"
    assert metrics.received.labels("error")._value.get() == 0


def test_ipv4_device_seen_through_a_dual_stack_socket_is_still_that_device(capture):
    rx, _metrics = receiver()
    data, _addr = trap(capture, ["-v2c", "-c", ENV["TRAP_COMMUNITY"]], ["", *LINK_DOWN])
    result = rx.handle_datagram(data, ("::ffff:127.0.0.1", 40000))
    assert result.outcome == "accepted" and result.events[0].device == "sw-lantai1"
