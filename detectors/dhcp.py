"""`rogue_dhcp`: a DHCP server (OFFER/ACK/NAK from port 67) that is not on the allowed list,
keyed on its server identifier (option 54) and its MAC, not the sender IP (relays and spoofers
make that meaningless). With no allowed list configured, the first server seen is trusted and
any other (server id, MAC) is reported (medium); with a list, anything off it is high.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitord.packet import ROUTE_DHCP, Packet
from monitord.detectors._traffic import BoundedTable, Clock, Emitter, traffic_finding
from monitord.i18n import _
from monitord.records import Finding, Level, Severity

_SERVER_MESSAGES = {2: "offer", 5: "ack", 6: "nak"}


@dataclass(frozen=True, slots=True)
class DhcpSettings:
    allowed_server_ids: frozenset[str] = field(default_factory=frozenset)  # option 54 values
    allowed_server_macs: frozenset[str] = field(default_factory=frozenset)  # lower-case MACs
    max_servers: int = 1024
    server_ttl_s: float = 7 * 86400.0
    repeat_s: float = 600.0


class RogueDhcpDetector:
    name = "rogue_dhcp"
    routes = frozenset({ROUTE_DHCP})  # packets with a decoded DHCP message only

    def __init__(self, settings: DhcpSettings | None = None) -> None:
        self.settings = s = settings or DhcpSettings()
        self.clock = Clock()
        self.servers: BoundedTable[list] = BoundedTable(s.max_servers, s.server_ttl_s)
        self.trusted: tuple[str | None, str | None] | None = None
        self.emitter = Emitter(s.repeat_s)

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"servers": self.servers.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        d = p.dhcp
        if d is None or p.sport != 67 or d.msg_type not in _SERVER_MESSAGES:
            return []
        s = self.settings
        now = self.clock.advance(p.ts)
        ts = p.ts
        sid, mac = d.server_id or p.src_ip, p.src_mac
        st = self.servers.touch((sid, mac), now, lambda: [ts, ts, 0, set()])
        st[0], st[1] = min(st[0], ts), max(st[1], ts)
        st[2] += 1
        if len(st[3]) < 16:
            st[3].add(d.client_mac)
        configured = bool(s.allowed_server_ids or s.allowed_server_macs)
        if configured:
            ok = ((not s.allowed_server_ids or sid in s.allowed_server_ids)
                  and (not s.allowed_server_macs or mac in s.allowed_server_macs))
            severity = Severity.HIGH
        else:
            if self.trusted is None:
                self.trusted = (sid, mac)
            ok = self.trusted == (sid, mac)
            severity = Severity.MEDIUM
        if ok:
            return []
        key = f"rogue_dhcp:{sid}:{mac}"
        if not self.emitter.due(key, now):
            return []
        return [traffic_finding(
            kind="rogue_dhcp", severity=severity, attacker=sid, victim=None, key=key,
            summary=_("Rogue DHCP server {server} ({mac}) answering clients").format(
                server=sid, mac=mac),
            first_ts=st[0], last_ts=st[1], window_s=s.server_ttl_s,
            impact=Level.HIGH, urgency=Level.HIGH,
            evidence={"server_id": sid, "server_mac": mac, "sender_ip": p.src_ip,
                      "messages": st[2], "last_message": _SERVER_MESSAGES[d.msg_type],
                      "sample_clients": sorted(st[3]),
                      "trusted_server": None if configured else list(self.trusted or ())})]

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        self.servers.expire(self.clock.advance(now_ts))
        return []
