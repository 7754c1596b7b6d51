"""One packet source's analysis: decode each frame, feed every traffic detector, and keep the
counters the capture metrics need (packets and bytes by protocol, decode errors, top talkers).

The daemon's live capture and the tests of it use this; it holds no socket and does no I/O, so
it runs the same on a live interface as on a list of frames. Counters are plain ints and dicts
on the hot path and are handed over (and reset) once per stats interval by `take_counters`,
because a Prometheus `inc()` per packet (a lock each) would cost more than the decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitord.collectors.packets.analyze import TrafficSettings, build_detectors
from monitord.collectors.packets.decode import DecodeStats, decode
from monitord.collectors.packets.gctune import tune_gc
from monitord.collectors.packets.route import route_table
from monitord.records import Finding

#: IP protocol number -> the `protocol` label of the packet and byte counters.
PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "other_ip", "arp", "other", "malformed")


class _Observers(list):
    """The detectors' observe methods, in detector order. Replacing one (a test wraps one to
    make it fail) rebuilds the engine's routes, so the replacement is what gets called."""

    def __init__(self, items: list, on_change: Any) -> None:
        super().__init__(items)
        self._on_change = on_change

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self._on_change()


@dataclass(slots=True)
class Counters:
    """What happened since the last hand-over; everything bounded by construction."""

    packets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROTOCOLS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROTOCOLS, 0))
    decode: dict[str, int] = field(default_factory=dict)  # DecodeStats deltas
    top_talkers: list[tuple[str, int]] = field(default_factory=list)  # (source IP, bytes)
    findings: dict[str, int] = field(default_factory=dict)  # kind -> findings emitted


class TrafficEngine:
    """decode -> detectors for one source. `feed` is the hot path; `flush` runs the detectors'
    time-based checks (and, with `final`, reports what is still open at the end of a capture)."""

    def __init__(self, settings: TrafficSettings | None = None, linktype: int = 1,
                 top_n: int = 10, max_talkers: int = 10_000) -> None:
        tune_gc()
        self.settings = settings or TrafficSettings()
        self.detectors = build_detectors(self.settings)
        self._routes: tuple = ()
        self._observers = _Observers([d.observe for d in self.detectors], self._reroute)
        self._reroute()
        self.linktype = linktype
        self.top_n = top_n
        self.max_talkers = max_talkers
        self.stats = DecodeStats()
        self._last_stats = DecodeStats()
        self._packets = dict.fromkeys(PROTOCOLS, 0)
        self._bytes = dict.fromkeys(PROTOCOLS, 0)
        self._talkers: dict[str, int] = {}
        self._findings: dict[str, int] = {}
        self.last_ts = 0.0

    def feed(self, ts: float, frame: bytes, wirelen: int | None = None) -> list[Finding]:
        """One frame (as captured, maybe cut at the snap length; `wirelen` its real size)."""
        size = wirelen or len(frame)
        p = decode(ts, frame, self.linktype, self.stats)
        if ts > self.last_ts:
            self.last_ts = ts
        if p is None:
            self._packets["malformed"] += 1
            self._bytes["malformed"] += size
            return []
        src = p.src_ip
        if src is not None:
            proto = PROTOCOL_NAMES.get(p.proto, "other_ip")
            talkers = self._talkers
            if src in talkers:
                talkers[src] += size
            elif len(talkers) < self.max_talkers:
                talkers[src] = size
        else:
            proto = "arp" if p.arp is not None else "other"
        self._packets[proto] += 1
        self._bytes[proto] += size
        out: list[Finding] = []
        for observe in self._routes[p.route]:  # only the detectors that act on this packet
            found = observe(p)
            if found:
                out.extend(found)
        if out:
            self._count(out)
        return out

    def _reroute(self) -> None:
        self._routes = route_table(self.detectors, self._observers)

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        out: list[Finding] = []
        for d in self.detectors:
            out.extend(d.flush(now_ts, final=final))
        if out:
            self._count(out)
        return out

    def _count(self, findings: list[Finding]) -> None:
        for f in findings:
            self._findings[f.kind] = self._findings.get(f.kind, 0) + 1

    def take_counters(self) -> Counters:
        """Hand over (and reset) the counters of the interval; top talkers are the `top_n`
        sources by bytes in the interval, so the exported set never grows."""
        talkers = sorted(self._talkers.items(), key=lambda kv: (-kv[1], kv[0]))[:self.top_n]
        now, before = self.stats.as_dict(), self._last_stats.as_dict()
        delta = {k: now[k] - before[k] for k in now}
        self._last_stats = DecodeStats(**now)
        counters = Counters(self._packets, self._bytes, delta, talkers, self._findings)
        self._packets = dict.fromkeys(PROTOCOLS, 0)
        self._bytes = dict.fromkeys(PROTOCOLS, 0)
        self._talkers = {}
        self._findings = {}
        return counters

    def state_sizes(self) -> dict[str, Any]:
        return {d.name: d.state_sizes() for d in self.detectors}
