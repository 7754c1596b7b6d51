"""`traffic_anomaly`: per host (bytes to it) and for the whole interface (`*`), bytes per
interval against an EWMA baseline (mean and variance), judged only after `warmup_intervals`.
An interval fires when it is above mean + k*sigma, above `min_ratio` times the mean and above
an absolute floor. Quiet intervals count as zeros (bounded catch-up); late packets (time going
backwards) count in the current interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from monitord.packet import EVERY_ROUTE, Packet
from monitord.detectors._traffic import MAX_TS, BoundedTable, Clock, Emitter, traffic_finding
from monitord.i18n import _
from monitord.records import Finding, Level, Severity


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    interval_s: float = 10.0
    alpha: float = 0.1  # EWMA weight of the newest interval
    warmup_intervals: int = 30  # intervals learnt before judging (5 minutes)
    k_sigma: float = 6.0
    min_ratio: float = 5.0
    min_bytes: int = 1_000_000  # an interval below this is never an anomaly
    max_hosts: int = 20_000
    host_ttl_s: float = 3600.0
    repeat_s: float = 300.0
    allowlist: frozenset[str] = field(default_factory=frozenset)


class _Baseline:
    __slots__ = ("start", "cur", "mean", "var", "n", "first")

    def __init__(self, start: float) -> None:
        self.start = start
        self.first = start
        self.cur = 0.0
        self.mean = 0.0
        self.var = 0.0
        self.n = 0


class TrafficAnomalyDetector:
    name = "traffic_anomaly"
    routes = EVERY_ROUTE  # every byte counts

    def __init__(self, settings: AnomalySettings | None = None) -> None:
        self.settings = s = settings or AnomalySettings()
        self.clock = Clock()
        self.hosts: BoundedTable[_Baseline] = BoundedTable(s.max_hosts, s.host_ttl_s)
        self._interface: _Baseline | None = None
        self.emitter = Emitter(s.repeat_s)

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"hosts": self.hosts.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        ts = p.ts
        clock = self.clock  # Clock.advance, inlined: this runs for every frame
        if ts > clock.now and ts <= MAX_TS:
            clock.now = ts
        now = clock.now
        interval = self.settings.interval_s
        out: list[Finding] = []
        b = self._interface  # the interface as a whole: one baseline, kept out of the table
        if b is None:
            b = self._interface = _Baseline(now)
        if now - b.start >= interval:
            out = self._close("*", b, now)
        b.cur += p.length
        host = p.dst_ip
        if host is None or host in self.settings.allowlist:
            return out
        hosts = self.hosts
        last = hosts.touched.get(host)  # touch(), spelt out (see BoundedTable.touched)
        if last is None:
            b = hosts.insert(host, now, _Baseline(now))
        elif now - last < hosts.grain:
            b = hosts.entries[host]
        else:
            b = hosts.refresh(host, now)
        if now - b.start >= interval:
            out = out + self._close(host, b, now)
        b.cur += p.length
        return out

    def _close(self, host: str, b: _Baseline, now: float) -> list[Finding]:
        s = self.settings
        out: list[Finding] = []
        value, b.cur = b.cur, 0.0
        out.extend(self._judge(host, b, value))
        self._learn(b, value)
        gaps = int((now - b.start) // s.interval_s) - 1
        for _i in range(min(max(gaps, 0), 3 * s.warmup_intervals)):
            self._learn(b, 0.0)
        b.start += (gaps + 1) * s.interval_s
        return out

    def _learn(self, b: _Baseline, value: float) -> None:
        a = self.settings.alpha
        if b.n == 0:
            b.mean = value
        else:
            diff = value - b.mean
            b.mean += a * diff
            b.var = (1 - a) * (b.var + a * diff * diff)
        b.n += 1

    def _judge(self, host: str, b: _Baseline, value: float) -> list[Finding]:
        s = self.settings
        if b.n < s.warmup_intervals or value < s.min_bytes:
            return []
        sigma = math.sqrt(b.var)
        if value <= b.mean + s.k_sigma * sigma or value < s.min_ratio * max(b.mean, 1.0):
            return []
        victim = None if host == "*" else host
        key = f"traffic_anomaly:-:{host}"
        if not self.emitter.due(key, b.start):
            return []
        return [traffic_finding(
            kind="traffic_anomaly", severity=Severity.MEDIUM, attacker=None, victim=victim,
            key=key,
            summary=_("Traffic to {host} at {value:.0f} bytes per {interval:g}s, baseline "
                         "{mean:.0f}").format(host=host, value=value, interval=s.interval_s,
                                               mean=b.mean),
            first_ts=b.start, last_ts=b.start + s.interval_s, window_s=s.interval_s,
            impact=Level.MEDIUM, urgency=Level.MEDIUM,
            evidence={"bytes": int(value), "baseline_bytes": round(b.mean, 1),
                      "baseline_sigma": round(sigma, 1), "intervals_learnt": b.n,
                      "scope": "interface" if host == "*" else "host"})]

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        self.hosts.expire(self.clock.advance(now_ts))
        return []
