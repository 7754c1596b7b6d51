"""`syn_flood`, `udp_flood`, `icmp_flood`: per victim, a sliding one-second packet rate (two
buckets) above a threshold. Spoofed and distributed floods are the normal case: when more than
`spoofed_min_sources` distinct sources take part the attacker is None; otherwise it is the top
source. A UDP flood whose packets come mostly from one service port (53, 123, 161, 500, 1900,
4500, 11211...) from many sources is reported as reflection/amplification.

A single source probing many ports is a scan (see `port_scan`), not a SYN flood. Per-victim
state is a bounded table; per-victim source and port sets are capped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitord.packet import (ROUTE_DHCP, ROUTE_DNS, ROUTE_ICMP, ROUTE_SYN, ROUTE_UDP, TCP_ACK,
                             TCP_RST, TCP_SYN, Packet)
from monitord.detectors._traffic import (MAX_TS, BoundedTable, Clock, Emitter, RateWindow, top,
                                         traffic_finding)
from monitord.i18n import N_, _
from monitord.records import Finding, Level, Severity

REFLECTION_PORTS = frozenset({19, 53, 111, 123, 137, 161, 389, 500, 1900, 3702, 4500, 5353,
                              11211})


@dataclass(frozen=True, slots=True)
class FloodSettings:
    syn_pps: float = 300.0  # SYNs per second to one victim
    udp_pps: float = 2000.0  # UDP datagrams per second to one victim
    icmp_pps: float = 300.0  # ICMP messages per second to one victim
    window_s: float = 1.0  # the rate's sliding window
    spoofed_min_sources: int = 20  # at least this many sources: attacker unknown (None)
    reflection_share: float = 0.8  # share of UDP from one service port to call it reflection
    max_victims: int = 10_000  # cap on tracked victims
    max_sources: int = 256  # cap on distinct sources counted per victim (saturates)
    idle_ttl_s: float = 120.0  # a victim quiet this long is forgotten
    repeat_s: float = 60.0  # a firing flood is re-reported at most this often
    allowlist: frozenset[str] = field(default_factory=frozenset)  # source IPs/MACs to ignore


class _Victim:
    __slots__ = ("rate", "first", "last", "packets", "bytes", "sources", "src_counts", "ports",
                 "sports", "peak", "firing_since")

    def __init__(self, ts: float) -> None:
        self.rate = RateWindow(ts)
        self.first = self.last = ts
        self.packets = 0
        self.bytes = 0
        self.sources: set[str] = set()
        self.src_counts: dict[str, int] = {}
        self.ports: dict[int, int] = {}
        self.sports: dict[int, int] = {}
        self.peak = 0.0
        self.firing_since: float | None = None


_ICMP_ERRORS = {1: frozenset({3, 4, 5, 11, 12}), 58: frozenset({1, 2, 3, 4})}
_KINDS = {6: "syn_flood", 17: "udp_flood", 1: "icmp_flood", 58: "icmp_flood"}


class FloodDetector:
    name = "flood"
    kinds = ("syn_flood", "udp_flood", "icmp_flood")
    #: SYNs (no ACK, no RST), UDP and ICMP; anything else returns before the clock moves.
    routes = frozenset({ROUTE_SYN, ROUTE_UDP, ROUTE_DNS, ROUTE_DHCP, ROUTE_ICMP})

    def __init__(self, settings: FloodSettings | None = None) -> None:
        self.settings = s = settings or FloodSettings()
        self.clock = Clock()
        self.victims: BoundedTable[_Victim] = BoundedTable(s.max_victims, s.idle_ttl_s)
        self.emitter = Emitter(s.repeat_s)
        self._limits = {"syn_flood": s.syn_pps * s.window_s, "udp_flood": s.udp_pps * s.window_s,
                        "icmp_flood": s.icmp_pps * s.window_s}

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"victims": self.victims.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        proto = p.proto
        if proto == 6:
            if not p.tcp_flags & TCP_SYN or p.tcp_flags & (TCP_ACK | TCP_RST):
                return []
        elif proto == 1 or proto == 58:
            if p.icmp_type in _ICMP_ERRORS[proto]:
                return []  # errors answer someone's traffic (a UDP scan's port-unreachables)
        elif proto != 17:
            return []
        dst = p.dst_ip
        if dst is None:
            return []
        s = self.settings
        allow = s.allowlist
        if allow and (p.src_ip in allow or p.src_mac in allow):
            return []
        ts = p.ts
        clock = self.clock  # Clock.advance, inlined
        if ts > clock.now and ts <= MAX_TS:
            clock.now = ts
        now = clock.now
        kind = _KINDS[proto]
        victims, vkey = self.victims, (kind, dst)
        last = victims.touched.get(vkey)  # touch(), spelt out (see BoundedTable.touched)
        if last is None:
            v = victims.insert(vkey, now, _Victim(ts))
        elif now - last < victims.grain:
            v = victims.entries[vkey]
        else:
            v = victims.refresh(vkey, now)
        rate = v.rate.add(now, s.window_s)
        v.packets += 1
        v.bytes += p.length
        if ts < v.first:
            v.first = ts
        if ts > v.last:
            v.last = ts
        src = p.src_ip
        if len(v.sources) < s.max_sources:
            v.sources.add(src)  # type: ignore[arg-type]
        counts = v.src_counts  # count_into, inlined (this runs for every SYN/UDP/ICMP packet)
        if src in counts:
            counts[src] += 1
        elif len(counts) < 64:
            counts[src] = 1
        counts, key = v.ports, p.dport
        if key in counts:
            counts[key] += 1
        elif len(counts) < 64:
            counts[key] = 1
        if proto == 17:
            counts, key = v.sports, p.sport
            if key in counts:
                counts[key] += 1
            elif len(counts) < 64:
                counts[key] = 1
        limit = self._limits[kind]
        if rate < limit:
            if rate < limit / 4:
                v.firing_since = None
                if len(v.ports) > 1:  # quiet again: an earlier scan's ports must not make a
                    v.ports.clear()   # later single-port flood look like a scan
            return []
        if kind == "syn_flood" and len(v.sources) < 3 and len(v.ports) >= 20:
            return []  # one host, many ports: a scan, reported by port_scan
        if rate > v.peak:
            v.peak = rate
        if v.firing_since is None:
            v.firing_since = ts
        attacker = self._attacker(v)
        key = f"{kind}:{attacker or '-'}:{dst}"
        if not self.emitter.due(key, now):
            return []
        return [self._finding(kind, dst, v, attacker, key)]

    def _attacker(self, v: _Victim) -> str | None:
        if len(v.sources) >= self.settings.spoofed_min_sources:
            return None
        return top(v.src_counts, 1)[0] if v.src_counts else None

    def _finding(self, kind: str, dst: str, v: _Victim, attacker: str | None, key: str) -> Finding:
        s = self.settings
        nsrc = len(v.sources)
        reflection = None
        if kind == "udp_flood" and v.sports and nsrc >= s.spoofed_min_sources:
            port, count = max(v.sports.items(), key=lambda kv: kv[1])
            if port in REFLECTION_PORTS and count >= s.reflection_share * sum(v.sports.values()):
                reflection = {"service_port": port, "share": round(count / sum(v.sports.values()), 3)}
        what = {"syn_flood": N_("SYN flood"), "udp_flood": N_("UDP flood"),
                "icmp_flood": N_("ICMP flood")}[kind]
        if reflection:
            what = N_("UDP reflection/amplification flood")
        summary = _("{what} on {victim}: peak {pps:.0f} packets/s from {sources} sources")\
            .format(what=_(what), victim=dst, pps=v.peak / s.window_s,
                    sources=f"{nsrc}+" if nsrc >= s.max_sources else nsrc)
        return traffic_finding(
            kind=kind, severity=Severity.HIGH, attacker=attacker, victim=dst, key=key,
            summary=summary, first_ts=v.first, last_ts=v.last, window_s=s.window_s,
            impact=Level.HIGH, urgency=Level.HIGH,
            evidence={"packets": v.packets, "bytes": v.bytes,
                      "peak_pps": round(v.peak / s.window_s, 1),
                      "sources": nsrc, "sources_saturated": nsrc >= s.max_sources,
                      "spoofed": attacker is None, "sample_sources": top(v.src_counts, 5),
                      "sample_ports": top(v.ports, 5), "reflection": reflection})

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        now = self.clock.advance(now_ts)
        out: list[Finding] = []
        if final:
            for (kind, dst), v in self.victims.items():  # type: ignore[misc]
                if v.peak:
                    attacker = self._attacker(v)
                    out.append(self._finding(kind, dst, v, attacker,
                                             f"{kind}:{attacker or '-'}:{dst}"))
        self.victims.expire(now)
        return out
