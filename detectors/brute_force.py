"""`brute_force`: many connection attempts, or failed logins, from one source to one server's
login service (SSH 22, FTP 21, Telnet 23, RDP 3389 by default) within a window. A connection
attempt is a SYN from a new source port (retransmissions do not count); a failed login is an
FTP `530` reply. Encrypted services (SSH, RDP) can only be judged by connection counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from monitord.packet import ROUTE_FTP, ROUTE_SYN, ROUTE_SYN_RST, TCP_ACK, TCP_SYN, Packet
from monitord.detectors._traffic import BoundedTable, Clock, Emitter, traffic_finding
from monitord.i18n import _
from monitord.records import Finding, Level, Severity

DEFAULT_SERVICES = MappingProxyType({22: "ssh", 21: "ftp", 23: "telnet", 3389: "rdp"})


@dataclass(frozen=True, slots=True)
class BruteForceSettings:
    services: Mapping[int, str] = field(default_factory=lambda: DEFAULT_SERVICES)
    min_connections: int = 10  # connection attempts from one source to one server ...
    min_failures: int = 10  # ... or failed logins (FTP 530) ...
    window_s: float = 300.0  # ... within this window
    max_entries: int = 50_000
    repeat_s: float = 300.0
    allowlist: frozenset[str] = field(default_factory=frozenset)


class _Attempts:
    __slots__ = ("start", "first", "last", "sports", "connections", "failures")

    def __init__(self, ts: float) -> None:
        self.start = self.first = self.last = ts
        self.sports: set[int] = set()
        self.connections = 0
        self.failures = 0


class BruteForceDetector:
    name = "brute_force"
    #: connection attempts (SYN without ACK, RST or not) and FTP replies; nothing else counts.
    routes = frozenset({ROUTE_SYN, ROUTE_SYN_RST, ROUTE_FTP})

    def __init__(self, settings: BruteForceSettings | None = None) -> None:
        self.settings = s = settings or BruteForceSettings()
        self.clock = Clock()
        self.entries: BoundedTable[_Attempts] = BoundedTable(s.max_entries, s.window_s)
        self.emitter = Emitter(s.repeat_s)

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"entries": self.entries.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        if p.proto != 6:
            return []
        s = self.settings
        services = s.services
        if p.ftp_code == 530 and p.sport in services:  # the server says: login incorrect
            client, server, port = p.dst_ip, p.src_ip, p.sport
            failure = True
        elif p.dport in services and p.tcp_flags & TCP_SYN and not p.tcp_flags & TCP_ACK:
            client, server, port = p.src_ip, p.dst_ip, p.dport
            failure = False
        else:
            return []
        if s.allowlist and (client in s.allowlist or p.src_mac in s.allowlist):
            return []
        now = self.clock.advance(p.ts)
        ts = p.ts
        key = (client, server, port)
        e = self.entries.touch(key, now, lambda: _Attempts(ts))
        if now - e.start > s.window_s:
            self.entries.pop(key)
            e = self.entries.touch(key, now, lambda: _Attempts(ts))
        e.first, e.last = min(e.first, ts), max(e.last, ts)
        if failure:
            e.failures += 1
        elif p.sport not in e.sports:
            if len(e.sports) < 4096:
                e.sports.add(p.sport)
            e.connections += 1
        if e.connections < s.min_connections and e.failures < s.min_failures:
            return []
        dkey = f"brute_force:{client}:{server}"
        if not self.emitter.due(dkey, now):
            return []
        return [self._finding(client, server, port, e, dkey)]  # type: ignore[arg-type]

    def _finding(self, client: str, server: str, port: int, e: _Attempts, key: str) -> Finding:
        s = self.settings
        service = s.services.get(port, str(port))
        return traffic_finding(
            kind="brute_force", severity=Severity.HIGH if e.failures else Severity.MEDIUM,
            attacker=client, victim=server, key=key,
            summary=_("{service} brute force from {attacker} on {victim}: {conns} connections, "
                         "{fails} failed logins").format(service=service.upper(),
                                                         attacker=client, victim=server,
                                                         conns=e.connections, fails=e.failures),
            first_ts=e.first, last_ts=e.last, window_s=s.window_s,
            impact=Level.MEDIUM, urgency=Level.HIGH,
            evidence={"service": service, "port": port, "connections": e.connections,
                      "failed_logins": e.failures})

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        now = self.clock.advance(now_ts)
        out = []
        if final:
            s = self.settings
            for (client, server, port), e in self.entries.items():  # type: ignore[misc]
                if e.connections >= s.min_connections or e.failures >= s.min_failures:
                    out.append(self._finding(client, server, port, e,
                                             f"brute_force:{client}:{server}"))
        self.entries.expire(now)
        return out
