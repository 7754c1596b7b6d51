"""`dns_tunnel` (category malware): per client and registered domain, within a window, count
queries whose names look like carried data:
* a long label (`long_label` chars or more) or a long subdomain part;
* a high-entropy subdomain (Shannon bits/char at or above `entropy_bits`, long enough to judge);
* bytes outside printable ASCII (escaped as \\xNN by the decoder);
* the NULL record type (iodine's favourite).
A short session is enough: `min_suspicious` such queries. Volume tunnels with short names are
caught by many unique subdomains under one domain, and TXT/NULL/CNAME/MX-heavy traffic with
unique names. Reverse lookups (in-addr.arpa, ip6.arpa) and `domain_allowlist` are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitord.packet import ROUTE_DNS, Packet
from monitord.detectors._traffic import (BoundedTable, Clock, Emitter, bounded_add, count_into,
                                         shannon_entropy, top, traffic_finding)
from monitord.i18n import _
from monitord.records import Category, Finding, Level, Severity

QTYPE_NAMES = {1: "A", 5: "CNAME", 10: "NULL", 15: "MX", 16: "TXT", 28: "AAAA", 12: "PTR",
               33: "SRV", 255: "ANY"}
TUNNEL_QTYPES = frozenset({5, 10, 15, 16})
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "or", "go", "ne"})


@dataclass(frozen=True, slots=True)
class DnsTunnelSettings:
    window_s: float = 600.0
    long_label: int = 24  # a label this long carries data (hex/base32 chunks)
    long_subdomain: int = 48  # the part before the registered domain
    entropy_bits: float = 3.8  # bits per char, judged on subdomains of 16+ chars
    min_suspicious: int = 5  # suspicious queries per (client, domain) in the window
    min_unique_subdomains: int = 60  # or this many distinct names under one domain
    min_tunnel_qtype_unique: int = 20  # or this many distinct TXT/NULL/CNAME/MX names
    max_entries: int = 50_000
    max_names: int = 512
    repeat_s: float = 600.0
    allowlist: frozenset[str] = field(default_factory=frozenset)  # client IPs
    domain_allowlist: frozenset[str] = field(default_factory=frozenset)  # e.g. DNSBL zones


def registered_domain(labels: list[str]) -> str:
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


class _Entry:
    __slots__ = ("start", "first", "last", "queries", "suspicious", "names", "tunnel_names",
                 "qtypes", "resolvers", "samples", "max_len", "reasons")

    def __init__(self, ts: float) -> None:
        self.start = self.first = self.last = ts
        self.queries = self.suspicious = self.max_len = 0
        self.names: set[str] = set()
        self.tunnel_names: set[str] = set()
        self.qtypes: dict[str, int] = {}
        self.resolvers: dict[str, int] = {}
        self.samples: list[str] = []
        self.reasons: dict[str, int] = {}


class DnsTunnelDetector:
    name = "dns_tunnel"
    routes = frozenset({ROUTE_DNS})  # packets with a decoded DNS question only

    def __init__(self, settings: DnsTunnelSettings | None = None) -> None:
        self.settings = s = settings or DnsTunnelSettings()
        self.clock = Clock()
        self.entries: BoundedTable[_Entry] = BoundedTable(s.max_entries, s.window_s)
        self.emitter = Emitter(s.repeat_s)

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"entries": self.entries.stats()}

    def suspicion(self, sub: str, qtype: int) -> list[str]:
        s = self.settings
        reasons = []
        if qtype == 10:
            reasons.append("null_type")
        if "\\x" in sub:
            reasons.append("non_printable")
        if max((len(x) for x in sub.split(".")), default=0) >= s.long_label:
            reasons.append("long_label")
        elif len(sub) >= s.long_subdomain:
            reasons.append("long_name")
        compact = sub.replace(".", "")
        if len(compact) >= 16 and shannon_entropy(compact) >= s.entropy_bits:
            reasons.append("high_entropy")
        return reasons

    def observe(self, p: Packet) -> list[Finding]:
        d = p.dns
        if d is None or d.response or p.dport != 53 or not d.qname:
            return []
        s = self.settings
        client = p.src_ip
        if client is None or (s.allowlist and client in s.allowlist):
            return []
        labels = d.qname.lower().split(".")
        if len(labels) < 3 or labels[-1] == "arpa":
            return []
        domain = registered_domain(labels)
        if domain in s.domain_allowlist:
            return []
        sub = d.qname[: len(d.qname) - len(domain) - 1]
        now = self.clock.advance(p.ts)
        ts = p.ts
        e = self.entries.touch((client, domain), now, lambda: _Entry(ts))
        if now - e.start > s.window_s:
            self.entries.pop((client, domain))
            e = self.entries.touch((client, domain), now, lambda: _Entry(ts))
        e.queries += 1
        e.first, e.last = min(e.first, ts), max(e.last, ts)
        e.max_len = max(e.max_len, len(d.qname))
        count_into(e.qtypes, QTYPE_NAMES.get(d.qtype, str(d.qtype)), 16)
        count_into(e.resolvers, p.dst_ip, 8)
        new = bounded_add(e.names, sub.lower(), s.max_names)
        if d.qtype in TUNNEL_QTYPES:
            bounded_add(e.tunnel_names, sub.lower(), s.max_names)
        reasons = self.suspicion(sub, d.qtype)
        if reasons:
            e.suspicious += 1
            for r in reasons:
                count_into(e.reasons, r, 8)
            if new and len(e.samples) < 5:
                e.samples.append(d.qname[:120])
        if not (e.suspicious >= s.min_suspicious or len(e.names) >= s.min_unique_subdomains
                or len(e.tunnel_names) >= s.min_tunnel_qtype_unique):
            return []
        resolver = top(e.resolvers, 1)[0]
        key = f"dns_tunnel:{client}:{resolver}"
        if not self.emitter.due(key, now):
            return []
        return [self._finding(client, domain, resolver, e, key)]

    def _finding(self, client: str, domain: str, resolver: str, e: _Entry, key: str) -> Finding:
        s = self.settings
        return traffic_finding(
            kind="dns_tunnel", category=Category.MALWARE, severity=Severity.HIGH,
            attacker=client, victim=resolver, key=key,
            summary=_("Possible DNS tunnel from {client} via {domain}: {n} suspicious of "
                         "{q} queries").format(client=client, domain=domain, n=e.suspicious,
                                                q=e.queries),
            first_ts=e.first, last_ts=e.last, window_s=s.window_s,
            impact=Level.HIGH, urgency=Level.HIGH,
            evidence={"domain": domain, "queries": e.queries, "suspicious": e.suspicious,
                      "unique_subdomains": len(e.names), "qtypes": dict(e.qtypes),
                      "reasons": dict(e.reasons), "max_qname_len": e.max_len,
                      "sample_names": list(e.samples), "resolvers": top(e.resolvers, 4)})

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        now = self.clock.advance(now_ts)
        out = []
        if final:
            s = self.settings
            for (client, domain), e in self.entries.items():  # type: ignore[misc]
                if (e.suspicious >= s.min_suspicious or len(e.names) >= s.min_unique_subdomains
                        or len(e.tunnel_names) >= s.min_tunnel_qtype_unique):
                    resolver = top(e.resolvers, 1)[0]
                    out.append(self._finding(client, domain, resolver, e,
                                             f"dns_tunnel:{client}:{resolver}"))
        self.entries.expire(now)
        return out
