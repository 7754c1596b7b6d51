"""The traffic detectors against the shared, labelled real captures (../shared/pcaps), plus
unit cases: bounded memory under a million spoofed sources, backwards time, allowlists."""

from __future__ import annotations

import json
import random
import struct

import pytest


from monitord.collectors.packets.analyze import analyze_pcap, finding_to_json
from monitord.collectors.packets.decode import TCP_ACK, TCP_SYN, Packet
from monitord.detectors.brute_force import BruteForceDetector
from monitord.detectors.dhcp import DhcpSettings, RogueDhcpDetector
from monitord.detectors.flood import FloodDetector, FloodSettings
from monitord.detectors.scan import PortScanDetector, ScanSettings
from monitord.records import Severity
from tests.support import shared_dir

PCAPS = shared_dir() / "pcaps"
MANIFEST = PCAPS / "MANIFEST.json"

#: manifest label kind -> detector kind; None: not required (informational labels).
LABEL_KIND = {
    "port_scan_vertical_syn": "port_scan", "port_scan_vertical_fin": "port_scan",
    "port_scan_vertical_xmas": "port_scan", "port_scan_vertical_null": "port_scan",
    "port_scan_vertical_udp": "port_scan", "port_scan_vertical_connect": "port_scan",
    "port_scan_horizontal_syn": "port_scan", "host_discovery_arp_sweep": "port_scan",
    "syn_flood": "syn_flood", "udp_flood": "udp_flood", "arp_spoofing": "arp_spoof",
    "mac_flooding": "mac_flood", "dns_tunnel": "dns_tunnel", "ssh_bruteforce": "brute_force",
    "ftp_bruteforce": "brute_force",
    "traffic_volume_spike": None,  # needs a benign baseline first (manifest note)
}
SCAN_TYPE = {"port_scan_vertical_syn": "SYN", "port_scan_vertical_fin": "FIN",
             "port_scan_vertical_xmas": "Xmas", "port_scan_vertical_null": "NULL",
             "port_scan_vertical_udp": "UDP", "port_scan_vertical_connect": "connect",
             "host_discovery_arp_sweep": "ARP"}
DETECTOR_KINDS = ("port_scan", "syn_flood", "udp_flood", "icmp_flood", "arp_spoof", "mac_flood",
                  "rogue_dhcp", "dns_tunnel", "brute_force", "traffic_anomaly")


def _manifest() -> list[dict]:
    if not MANIFEST.is_file():
        pytest.skip(f"shared captures not found at {PCAPS} (expected ../shared/pcaps beside the "
                    "repository, with MANIFEST.json)")
    return json.loads(MANIFEST.read_text())


def _entries():
    if not MANIFEST.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no shared captures at {PCAPS}"))]
    return [pytest.param(e, id=e["file"].split("__")[0]) for e in json.loads(MANIFEST.read_text())]


_RESULTS: dict[str, list[dict]] = {}


def _analyze(entry: dict) -> list[dict]:
    name = entry["file"]
    if name not in _RESULTS:
        result = analyze_pcap(PCAPS / name)
        assert result.stats["read"]["error"] is None, result.stats["read"]
        _RESULTS[name] = [finding_to_json(f) for f in result.findings]
    return _RESULTS[name]


def _attackers(label_attacker: str | None) -> set[str | None]:
    """'00:25:b3:bf:91:ee (172.16.0.105)' -> {'00:25:b3:bf:91:ee', '172.16.0.105'}."""
    if label_attacker is None:
        return {None}
    return {part.strip(" ()") for part in label_attacker.split(" (")}


def _alerts(findings: list[dict]) -> list[dict]:
    return [f for f in findings if Severity(f["severity"]).rank > Severity.INFO.rank]


@pytest.mark.parametrize("entry", _entries())
def test_capture_labels(entry):
    findings = _analyze(entry)
    alerts = _alerts(findings)
    if entry["benign"] or all(lab["kind"] == "dos_backscatter" for lab in entry["labels"]):
        assert alerts == [], f"{entry['file']}: expected no finding above info, got {alerts}"
        return
    for label in entry["labels"]:
        kind = LABEL_KIND[label["kind"]]
        if kind is None:
            continue
        wanted = _attackers(label["attacker"])
        hits = [f for f in alerts if f["kind"] == kind and f["attacker"] in wanted]
        assert hits, f"{entry['file']}: {label['kind']} by {label['attacker']} not found in {alerts}"
        if label["kind"] in SCAN_TYPE:
            assert SCAN_TYPE[label["kind"]] in {f["evidence"]["scan_type"] for f in hits}
    for f in alerts:  # and nothing else: every alert is explained by a label
        assert any(LABEL_KIND.get(lab["kind"]) == f["kind"] and f["attacker"] in
                   _attackers(lab["attacker"]) for lab in entry["labels"]), f


def test_findings_shape_and_evidence():
    entry = next(e for e in _manifest() if e["file"].startswith("dos_synflood"))
    f = next(x for x in _analyze(entry) if x["kind"] == "syn_flood")
    assert set(f) >= {"kind", "severity", "attacker", "victim", "first_seen", "last_seen",
                      "count", "evidence"}
    assert f["attacker"] is None and f["victim"] == "10.10.10.10" and f["severity"] == "high"
    ev = f["evidence"]
    assert ev["spoofed"] and ev["packets"] == 37841 and ev["sources_saturated"]
    assert ev["first_packet"] <= ev["last_packet"] and f["first_seen"] <= f["last_seen"]
    json.dumps(f)


def test_precision_and_recall_per_detector(capsys):
    entries = _manifest()
    tp = {k: 0 for k in DETECTOR_KINDS}
    fp = dict(tp)
    fn = dict(tp)
    for entry in entries:
        alerts = _alerts(_analyze(entry))
        labels = [(LABEL_KIND.get(lab["kind"]), _attackers(lab["attacker"]))
                  for lab in entry["labels"]]
        for kind, wanted in labels:
            if kind is None:
                continue
            if any(f["kind"] == kind and f["attacker"] in wanted for f in alerts):
                tp[kind] += 1
            else:
                fn[kind] += 1
        for f in alerts:
            if not any(kind == f["kind"] and f["attacker"] in wanted for kind, wanted in labels):
                fp[f["kind"]] += 1
    lines = [f"{'detector':<16} {'TP':>3} {'FP':>3} {'FN':>3} {'precision':>9} {'recall':>7}"]
    for k in DETECTOR_KINDS:
        prec = tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else 1.0
        rec = tp[k] / (tp[k] + fn[k]) if tp[k] + fn[k] else 1.0
        lines.append(f"{k:<16} {tp[k]:>3} {fp[k]:>3} {fn[k]:>3} {prec:>9.2f} {rec:>7.2f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert sum(fp.values()) == 0 and sum(fn.values()) == 0, "\n".join(lines)


# -- unit cases on generated packets ---------------------------------------------------------

def _syn(ts: float, src: str, dst: str, dport: int, sport: int = 40000, flags: int = TCP_SYN,
         mac: str = "02:00:00:00:00:01") -> Packet:
    return Packet(ts, 60, mac, "02:00:00:00:00:02", None, 0x0800, src, dst, 6, sport, dport, flags)


def test_spoofed_syn_flood_from_a_million_sources_stays_bounded():
    rng = random.Random(6)
    scan = PortScanDetector(ScanSettings(max_sources=10_000))
    flood = FloodDetector(FloodSettings(max_sources=256))
    fired = []
    t0 = 1_700_000_000.0
    for i in range(1_000_000):
        src = ".".join(str(b) for b in struct.pack("!I", rng.getrandbits(32)))
        p = _syn(t0 + i / 50_000, src, "10.10.10.10", 25565, sport=rng.randrange(1024, 65535))
        fired.extend(flood.observe(p))
        scan.observe(p)
    sizes = scan.state_sizes()
    assert sizes["vertical"]["size"] <= 10_000 and sizes["horizontal"]["size"] <= 10_000
    assert sizes["vertical"]["evictions"] + sizes["vertical"]["expired"] >= 980_000  # counted
    v = flood.victims.get(("syn_flood", "10.10.10.10"))
    assert len(v.sources) == 256 and len(v.src_counts) <= 64 and len(v.ports) <= 64
    assert fired and all(f.evidence["attacker"] is None for f in fired)
    assert len(fired) <= 20 / 60 + 2  # one report per repeat_s (20 s of traffic)


def test_backwards_time_keeps_windows_working():
    det = PortScanDetector()
    out = []
    for i in range(40):  # every other packet 100 s in the past
        ts = 1000.0 + i * 0.01 - (100.0 if i % 2 else 0.0)
        out += det.observe(_syn(ts, "10.0.0.9", "10.0.0.1", 1000 + i))
    assert out and out[0].evidence["ports"] == 25
    assert out[0].first_seen <= out[0].last_seen


def test_allowlist_silences_the_noc_scanner():
    det = PortScanDetector(ScanSettings(allowlist=frozenset({"10.0.0.9"})))
    assert not [f for i in range(200) for f in det.observe(_syn(1.0 + i, "10.0.0.9", "10.0.0.1", i))]


def test_backscatter_is_not_a_scan():
    det = PortScanDetector()
    out = []
    for i in range(5000):
        out += det.observe(_syn(i * 0.01, "202.229.120.98", f"192.150.{186 + i % 2}.{i % 250}",
                                40000 + i, sport=80, flags=TCP_SYN | TCP_ACK))
    assert out == []


def test_brute_force_counts_connections_not_retransmissions():
    det = BruteForceDetector()
    out = []
    for i in range(30):  # one connection retransmitted 30 times
        out += det.observe(_syn(i, "10.0.0.9", "10.0.0.1", 22, sport=50000))
    assert out == []
    for i in range(10):
        out += det.observe(_syn(100 + i, "10.0.0.9", "10.0.0.1", 22, sport=50001 + i))
    assert out and out[0].evidence["connections"] == 10


def test_rogue_dhcp_with_and_without_allowed_list():
    from monitord.collectors.packets.decode import DhcpInfo

    def offer(sid, mac):
        return Packet(1.0, 300, mac, "ff:ff:ff:ff:ff:ff", None, 0x0800, "192.168.1.5",
                      "255.255.255.255", 17, 67, 68, dhcp=DhcpInfo(2, sid, "02:aa:00:00:00:01"))
    learn = RogueDhcpDetector()
    assert learn.observe(offer("192.168.1.5", "00:0c:29:c0:60:a4")) == []
    rogue = learn.observe(offer("192.168.1.66", "00:0c:29:00:00:66"))
    assert rogue and rogue[0].evidence["server_id"] == "192.168.1.66"
    strict = RogueDhcpDetector(DhcpSettings(allowed_server_ids=frozenset({"192.168.1.5"}),
                                            allowed_server_macs=frozenset({"00:0c:29:c0:60:a4"})))
    assert strict.observe(offer("192.168.1.5", "00:0c:29:c0:60:a4")) == []
    spoofed_id = strict.observe(offer("192.168.1.5", "00:0c:29:00:00:66"))  # same id, other MAC
    assert spoofed_id and spoofed_id[0].severity is Severity.HIGH
