"""Capture plumbing without namespaces: the config sections and their errors, the config reaching
`analyze-pcap` (same settings as the daemon), the BPF compiler (real tcpdump, no shell), the
engine's counters and their bounds, and the capture metrics' bounded label sets. The live
socket itself is exercised in tests/integration/test_traffic_live.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitord.collectors.packets.analyze import settings_from_config
from monitord.collectors.packets.engine import PROTOCOLS, TrafficEngine
from monitord.collectors.packets.live import CaptureError, LiveCapture, compile_bpf
from monitord.collectors.packets.pcapfile import read_packets
from monitord.collectors.packets.service import CaptureMetrics
from monitord.config import Config
from tests.support import run_cli, shared_dir

PCAPS = shared_dir() / "pcaps"
SYNSCAN = PCAPS / "scan_vertical_syn__chrissanders_synscan.pcapng"


def _frames(name: str) -> list[tuple[float, int, bytes]]:
    path = PCAPS / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return list(read_packets(path))


def test_bad_capture_and_traffic_settings_name_line_key_and_expectation(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"""\
storage: {{url: "sqlite:///{tmp_path}/db.sqlite"}}
collectors:
  capture:
    enabled: true
detectors:
  traffic:
    port_scan:
      vertical_min_ports: -3
      bogus: 1
    arp_spoof:
      gateways: [1, 2]
""")
    done = run_cli("check-config", str(bad), env={"LANG": "C"})
    assert done.returncode == 2
    err = done.stdout + done.stderr
    assert f"{bad}:3: collectors.capture:" in err and "interface name" in err
    assert f"{bad}:8: detectors.traffic.port_scan.vertical_min_ports: found -3" in err
    assert f"{bad}:9: detectors.traffic.port_scan.bogus: found unknown key 'bogus'" in err
    assert f"{bad}:11: detectors.traffic.arp_spoof.gateways: found a list" in err
    bad.write_text(f"""\
storage: {{url: "sqlite:///{tmp_path}/db.sqlite"}}
collectors:
  capture: {{enabled: true, interface: eth0, snaplen: 10, stats_interval: 1ms}}
""")
    done = run_cli("check-config", str(bad), env={"LANG": "C"})
    err = done.stdout + done.stderr
    assert done.returncode == 2
    assert f"{bad}:3: collectors.capture.snaplen: found 10" in err


def test_traffic_settings_come_from_the_config_and_the_allowlist_joins_every_detector():
    config = Config.model_validate({"detectors": {"traffic": {
        "allowlist": ["10.0.0.9", "AA:BB:CC:DD:EE:01"],
        "port_scan": {"vertical_min_ports": 40, "allowlist": ["10.0.0.7"]},
        "arp_spoof": {"gateways": {"10.0.0.1": "AA:BB:CC:DD:EE:FF"}},
        "rogue_dhcp": {"allowed_server_ids": ["10.0.0.1"]}}}})
    s = settings_from_config(config.detectors.traffic)
    assert s.scan.vertical_min_ports == 40
    assert s.scan.allowlist == {"10.0.0.7", "10.0.0.9", "aa:bb:cc:dd:ee:01"}
    assert s.flood.allowlist == {"10.0.0.9", "aa:bb:cc:dd:ee:01"}
    assert s.arp.gateways == {"10.0.0.1": "aa:bb:cc:dd:ee:ff"}
    assert s.dhcp.allowed_server_ids == {"10.0.0.1"}
    default = settings_from_config(Config().detectors.traffic)
    assert default.scan.vertical_min_ports == 25 and default.brute_force.services[22] == "ssh"


def test_analyze_pcap_uses_the_config_like_the_daemon(tmp_path: Path):
    if not SYNSCAN.exists():
        pytest.skip(f"{SYNSCAN} not found")
    plain = run_cli("analyze-pcap", str(SYNSCAN), "--json")
    assert plain.returncode == 0, plain.stderr
    assert any(f["kind"] == "port_scan" and f["attacker"] == "172.16.0.8"
               for f in json.loads(plain.stdout))
    cfg = tmp_path / "monitord.yaml"
    cfg.write_text(f"""\
storage: {{url: "sqlite:///{tmp_path}/db.sqlite"}}
detectors:
  traffic:
    allowlist: [172.16.0.8]     # the NOC's own scanner
""")
    allowed = run_cli("analyze-pcap", str(SYNSCAN), "--config", str(cfg), "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert not any(f["kind"] == "port_scan" for f in json.loads(allowed.stdout))


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_bpf_is_compiled_by_tcpdump_without_a_shell(tmp_path: Path):
    program = compile_bpf("tcp port 22", 2048)
    assert len(program) > 4 and all(len(ins) == 4 for ins in program)
    assert program[-1][0] == 0x06  # BPF_RET
    with pytest.raises(CaptureError, match="not a valid filter expression"):
        compile_bpf("tcp port nonsense-port-name", 2048)
    canary = tmp_path / "canary"
    with pytest.raises(CaptureError):  # shell syntax is just a bad filter; nothing runs
        compile_bpf(f"tcp; touch {canary}", 2048)
    assert not canary.exists()


def test_capture_on_a_missing_interface_is_a_clear_error():
    with pytest.raises(CaptureError, match="no network interface named nosuchif0"):
        LiveCapture("nosuchif0")


def test_capture_without_cap_net_raw_says_so():
    """As root, the capability is taken away from the bounding set (setpriv), not faked."""
    argv = ["capture", "-i", "lo", "--duration", "1"]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is not installed")
        import subprocess
        import sys
        done = subprocess.run(["setpriv", "--bounding-set=-net_raw", sys.executable, "-m",
                               "monitord", *argv], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "LANG": "C"})
    else:
        done = run_cli(*argv, env={"LANG": "C"})
    assert done.returncode == 2
    assert "needs CAP_NET_RAW" in done.stderr and "Traceback" not in done.stderr


def test_engine_counts_every_frame_by_protocol_and_keeps_top_talkers_bounded():
    frames = _frames("benign_lan_mixed__zeek_wikipedia.pcap") + \
        _frames("arp_spoof__chrissanders_arppoison.pcapng")
    engine = TrafficEngine(top_n=3, max_talkers=5)
    garbage = [b"", b"\x00" * 13, b"\xff" * 12 + b"\x08\x00\x45" + b"\x00" * 5]  # malformed frames
    for ts, _lt, frame in frames:
        engine.feed(ts, frame)
    for g in garbage:
        engine.feed(frames[-1][0], g)
    c = engine.take_counters()
    assert sum(c.packets.values()) == len(frames) + len(garbage)
    assert set(c.packets) == set(PROTOCOLS)
    assert c.packets["malformed"] == len(garbage) == c.decode["malformed"]
    assert c.packets["arp"] > 0 and c.packets["tcp"] > 0 and c.packets["udp"] > 0
    assert sum(c.bytes.values()) == sum(len(f) for _t, _l, f in frames) + sum(map(len, garbage))
    assert len(c.top_talkers) == 3
    sizes = [size for _addr, size in c.top_talkers]
    assert sizes == sorted(sizes, reverse=True)
    assert len(engine._talkers) == 0  # handed over and reset
    again = engine.take_counters()
    assert sum(again.packets.values()) == 0 and again.top_talkers == []


def test_engine_findings_equal_the_offline_analysis():
    from monitord.collectors.packets.analyze import analyze_pcap, fold_findings
    if not SYNSCAN.exists():
        pytest.skip(f"{SYNSCAN} not found")
    engine = TrafficEngine()
    folded: dict = {}
    for ts, _lt, frame in read_packets(SYNSCAN):
        fold_findings(folded, engine.feed(ts, frame))
    fold_findings(folded, engine.flush(engine.last_ts, final=True), final=True)
    live = {(f.finding.kind, f.finding.dedup_key, f.count) for f in folded.values()}
    offline = {(f.finding.kind, f.finding.dedup_key, f.count)
               for f in analyze_pcap(SYNSCAN).findings}
    assert live == offline and any(k == "port_scan" for k, _d, _c in live)
    assert engine.take_counters().findings.get("port_scan", 0) >= 1


def test_capture_metrics_keep_a_bounded_label_set():
    registry = CollectorRegistry()
    metrics = CaptureMetrics(registry)
    engine = TrafficEngine(top_n=4)
    from monitord.collectors.packets.live import KernelStats
    for round_ in range(20):  # 20 intervals, each with different talkers
        for i in range(50):
            frame = (b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + bytes([0x45, 0, 0, 40]) +
                     b"\x00" * 5 + b"\x06\x00\x00" + bytes([10, round_, i, 1]) +
                     bytes([10, 0, 0, 1]) + b"\x04\x00\x00\x50" + b"\x00" * 8 +
                     b"\x50\x02\x10\x00" + b"\x00" * 4)
            engine.feed(1000.0 + round_, frame)
        metrics.publish("eth9", engine.take_counters(), KernelStats(100 * (round_ + 1), round_),
                        engine)
    text = generate_latest(registry).decode()
    talker_series = [line for line in text.splitlines()
                     if line.startswith("monitord_capture_top_talker_bytes{")]
    assert len(talker_series) == 4
    assert 'monitord_capture_packets_total{interface="eth9",protocol="tcp"} 1000.0' in text
    assert 'monitord_capture_kernel_packets_total{interface="eth9"} 2000.0' in text
    assert 'monitord_capture_kernel_drops_total{interface="eth9"} 19.0' in text


def test_a_detector_bug_costs_one_packet_not_the_capture():
    """CaptureThread over a stand-in socket (a real one needs a namespace; see the live test):
    a detector that raises on one packet is logged and skipped, the next packets still count."""
    import threading
    import time as _time

    from monitord.collectors.packets.live import CaptureThread

    frames = _frames("scan_vertical_syn__chrissanders_synscan.pcapng")

    class Source:  # stands in for LiveCapture: the same recv()/kernel_stats()/close()
        interface = "test0"

        def __init__(self):
            self.items = [(ts, fr, len(fr)) for ts, _lt, fr in frames]
            self.done = threading.Event()

        def recv(self):
            if self.items:
                return self.items.pop(0)
            self.done.set()
            _time.sleep(0.01)
            return None

        def kernel_stats(self):
            from monitord.collectors.packets.live import KernelStats
            return KernelStats(len(frames), 0)

        def close(self):
            pass

    engine = TrafficEngine()
    real = engine._observers[0]
    calls = {"n": 0}

    def flaky(p):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("detector bug")
        return real(p)

    engine._observers[0] = flaky
    found: list = []
    source = Source()
    thread = CaptureThread(source, engine, found.extend, stats_interval=0.05)
    thread.start()
    assert source.done.wait(30)
    thread.stop()
    assert thread.failed == 1 and thread.error is None
    assert calls["n"] == len(frames)
    assert any(f.kind == "port_scan" for f in found)


def test_the_daemon_refuses_to_start_on_a_capture_it_cannot_open(tmp_path: Path):
    import subprocess
    import sys

    from tests.support import write_config
    path, _port = write_config(tmp_path, f"sqlite:///{tmp_path}/db.sqlite")
    text = path.read_text().replace(
        "collectors:\n  host: {enabled: false, interval: 1s, jitter: 0s}\n",
        "collectors:\n  host: {enabled: false}\n  capture: {enabled: true, interface: nosuchif0}\n")
    assert "nosuchif0" in text
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "monitord", "run", "--config", str(path),
                           "--duration", "5"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LANG": "C"})
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "cannot start" in out and "no network interface named nosuchif0" in out
    assert "Traceback" not in out
