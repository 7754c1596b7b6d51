"""Offline analysis: a pcap/pcapng file through the decoder and every traffic detector, the
findings folded by dedup_key. The same detectors the daemon runs; `monitord analyze-pcap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from os import PathLike
from typing import Any, Iterable, Union

from monitord.collectors.packets.decode import DecodeStats, Packet, decode
from monitord.collectors.packets.gctune import tune_gc
from monitord.collectors.packets.pcapfile import ReadStats, read_packets
from monitord.collectors.packets.route import route_table
from monitord.detectors.anomaly import AnomalySettings, TrafficAnomalyDetector
from monitord.detectors.arp import (ArpSettings, ArpSpoofDetector, MacFloodDetector,
                                    MacFloodSettings, NewDeviceDetector, NewDeviceSettings)
from monitord.detectors.brute_force import BruteForceDetector, BruteForceSettings
from monitord.detectors.dhcp import DhcpSettings, RogueDhcpDetector
from monitord.detectors.dns_tunnel import DnsTunnelDetector, DnsTunnelSettings
from monitord.detectors.flood import FloodDetector, FloodSettings
from monitord.detectors.scan import PortScanDetector, ScanSettings
from monitord.records import Finding

__all__ = ["TrafficSettings", "AnalysisResult", "FoldedFinding", "build_detectors",
           "settings_from_config", "fold_findings",
           "analyze_pcap", "analyze_packets", "finding_to_json"]


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    """Every traffic detector's settings (the suggested `detectors.traffic` config section)."""

    scan: ScanSettings = field(default_factory=ScanSettings)
    flood: FloodSettings = field(default_factory=FloodSettings)
    arp: ArpSettings = field(default_factory=ArpSettings)
    mac_flood: MacFloodSettings = field(default_factory=MacFloodSettings)
    new_device: NewDeviceSettings = field(default_factory=NewDeviceSettings)
    dhcp: DhcpSettings = field(default_factory=DhcpSettings)
    dns_tunnel: DnsTunnelSettings = field(default_factory=DnsTunnelSettings)
    brute_force: BruteForceSettings = field(default_factory=BruteForceSettings)
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)


def settings_from_config(traffic: Any) -> TrafficSettings:
    """`detectors.traffic` of the configuration -> the detectors' settings. The section-wide
    `allowlist` (the NOC's own scanners and monitoring hosts) joins every detector's own."""
    from dataclasses import fields as dc_fields
    from types import MappingProxyType

    from monitord.config import TRAFFIC_DETECTOR_MODELS

    common = frozenset(a.lower() for a in traffic.allowlist)
    built: dict[str, Any] = {}
    attr = {"port_scan": "scan", "flood": "flood", "arp_spoof": "arp", "mac_flood": "mac_flood",
            "new_device": "new_device", "rogue_dhcp": "dhcp", "dns_tunnel": "dns_tunnel",
            "brute_force": "brute_force", "traffic_anomaly": "anomaly"}
    for key, (cls, _model) in TRAFFIC_DETECTOR_MODELS.items():
        section = getattr(traffic, key)
        values: dict[str, Any] = {}
        for f in dc_fields(cls):
            value = getattr(section, f.name)
            if isinstance(value, tuple):
                value = frozenset(v.lower() for v in value)
                if f.name == "allowlist":
                    value = value | common
            elif isinstance(value, dict):
                lower = f.name == "gateways"  # ip -> MAC; MACs compare lower-case
                value = MappingProxyType({k: v.lower() if lower else v
                                          for k, v in value.items()})
            values[f.name] = value
        built[attr[key]] = cls(**values)
    return TrafficSettings(**built)


def build_detectors(settings: TrafficSettings | None = None) -> list[Any]:
    s = settings or TrafficSettings()
    return [PortScanDetector(s.scan), FloodDetector(s.flood), ArpSpoofDetector(s.arp),
            MacFloodDetector(s.mac_flood), NewDeviceDetector(s.new_device),
            RogueDhcpDetector(s.dhcp), DnsTunnelDetector(s.dns_tunnel),
            BruteForceDetector(s.brute_force), TrafficAnomalyDetector(s.anomaly)]


@dataclass(slots=True)
class FoldedFinding:
    """The latest finding of a dedup_key, how many times it was emitted, first/last seen."""

    finding: Finding
    count: int
    first_seen: datetime
    last_seen: datetime


@dataclass(slots=True)
class AnalysisResult:
    findings: list[FoldedFinding]
    stats: dict[str, Any]


def fold_findings(folded: dict[str, FoldedFinding], findings: Iterable[Finding],
                  final: bool = False) -> None:
    """Fold findings into `folded` by dedup_key, as `analyze-pcap` reports them."""
    _fold(folded, findings, final)


def _fold(folded: dict[str, FoldedFinding], findings: Iterable[Finding],
          final: bool = False) -> None:
    """Fold by dedup_key; a final (end-of-input) report refreshes evidence, not the count."""
    for f in findings:
        cur = folded.get(f.dedup_key)
        if cur is None:
            folded[f.dedup_key] = FoldedFinding(f, 1, f.first_seen, f.last_seen)
        else:
            cur.finding = f
            cur.count += 0 if final else 1
            cur.first_seen = min(cur.first_seen, f.first_seen)
            cur.last_seen = max(cur.last_seen, f.last_seen)


def analyze_packets(packets: Iterable[Packet], settings: TrafficSettings | None = None,
                    detectors: list[Any] | None = None) -> tuple[list[FoldedFinding], dict]:
    dets = detectors if detectors is not None else build_detectors(settings)
    routes = route_table(dets)  # each packet only to the detectors that act on its class
    folded: dict[str, FoldedFinding] = {}
    last = 0.0
    for p in packets:
        if p.ts > last:
            last = p.ts
        for observe in routes[p.route]:
            out = observe(p)
            if out:
                _fold(folded, out)
    for d in dets:
        _fold(folded, d.flush(last, final=True), final=True)
    state = {d.name: d.state_sizes() for d in dets}
    return list(folded.values()), state


def analyze_pcap(path: Union[str, PathLike], settings: TrafficSettings | None = None
                 ) -> AnalysisResult:
    """Read, decode and detect over one file; findings folded by dedup_key, oldest first."""
    tune_gc()
    rstats, dstats = ReadStats(), DecodeStats()

    def packets() -> Iterable[Packet]:
        for ts, linktype, frame in read_packets(path, rstats):
            p = decode(ts, frame, linktype, dstats)
            if p is not None:
                yield p

    findings, state = analyze_packets(packets(), settings)
    findings.sort(key=lambda ff: (ff.first_seen, ff.finding.kind, ff.finding.dedup_key))
    return AnalysisResult(findings, {"read": {k: getattr(rstats, k) for k in rstats.__slots__},
                                     "decode": dstats.as_dict(), "state": state})


def finding_to_json(ff: FoldedFinding | Finding) -> dict[str, Any]:
    """{kind, severity, attacker, victim, first_seen, last_seen, count, evidence} (JSON-safe)."""
    if isinstance(ff, Finding):
        ff = FoldedFinding(ff, 1, ff.first_seen, ff.last_seen)
    f = ff.finding
    ev = dict(f.evidence)
    return {"kind": f.kind, "severity": f.severity.value, "attacker": ev.get("attacker"),
            "victim": ev.get("victim"), "first_seen": _iso(ff.first_seen),
            "last_seen": _iso(ff.last_seen), "count": ff.count, "summary": f.summary,
            "evidence": _jsonable(ev)}


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
