"""Layer-2 detectors: `arp_spoof`, `mac_flood`, `new_device`.

`arp_spoof` keeps the IP -> MAC bindings that ARP senders announce and fires when
* an IP's binding changes to another MAC while the old one is still fresh;
* a MAC claims a configured gateway IP that is not its own (`gateways`: ip -> mac);
* a MAC sends an unsolicited ARP reply (nobody asked it) and also claims a second IP: the
  poisoner's signature (announcing the gateway's IP while keeping its own).
Attacker and victim are MACs/IPs as layer 2 sees them: attacker = the claiming MAC, victim =
the host the forged reply was sent to (or the impersonated IP).

`mac_flood` counts never-seen source MACs per second (CAM-table overflow, macof). `new_device`
reports a first-seen station (info), rate-limited so that a flood does not become a flood of
findings (suppressed ones are counted in the next).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from monitord.packet import EVERY_ROUTE, ROUTE_ARP, Packet
from monitord.detectors._traffic import (MAX_TS, BoundedTable, Clock, Emitter, RateWindow,
                                         traffic_finding)
from monitord.i18n import _
from monitord.records import Finding, Level, Severity

_ZERO_IP = "0.0.0.0"


def _unicast(mac: str | None) -> bool:
    return bool(mac) and not int(mac[:2], 16) & 1 and mac != "00:00:00:00:00:00"  # type: ignore[index]


@dataclass(frozen=True, slots=True)
class ArpSettings:
    gateways: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # ip->mac
    binding_ttl_s: float = 3600.0  # a binding older than this may change without alarm
    request_ttl_s: float = 5.0  # a reply within this of a matching request is solicited
    max_bindings: int = 50_000
    max_claims_per_mac: int = 16
    repeat_s: float = 300.0
    allowlist: frozenset[str] = field(default_factory=frozenset)  # MACs/IPs (e.g. VRRP, proxy ARP)


class _Claims:
    __slots__ = ("ips", "unsolicited", "first", "last", "victims")

    def __init__(self, ts: float) -> None:
        self.ips: dict[str, float] = {}
        self.unsolicited: set[str] = set()  # IPs claimed in unsolicited replies
        self.first = self.last = ts
        self.victims: set[str] = set()  # targets of its unsolicited replies


class ArpSpoofDetector:
    name = "arp_spoof"
    routes = frozenset({ROUTE_ARP})

    def __init__(self, settings: ArpSettings | None = None) -> None:
        self.settings = s = settings or ArpSettings()
        self.clock = Clock()
        self.bindings: BoundedTable[list] = BoundedTable(s.max_bindings, s.binding_ttl_s)
        self.claims: BoundedTable[_Claims] = BoundedTable(s.max_bindings, s.binding_ttl_s)
        self.requests: BoundedTable[list] = BoundedTable(s.max_bindings, s.request_ttl_s)
        self.emitter = Emitter(s.repeat_s)

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"bindings": self.bindings.stats(), "claims": self.claims.stats(),
                "requests": self.requests.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        arp = p.arp
        if arp is None:
            return []
        s = self.settings
        now = self.clock.advance(p.ts)
        ts = p.ts
        mac, ip = arp.sender_mac, arp.sender_ip
        if arp.op == 1:  # remember who asked for whom (to judge replies)
            self.requests.touch((arp.sender_ip, arp.target_ip), now, lambda: [ts])[0] = ts
        if ip == _ZERO_IP or not _unicast(mac):
            return []
        if s.allowlist and (mac in s.allowlist or ip in s.allowlist):
            return []
        out: list[Finding] = []
        c = self.claims.touch(mac, now, lambda: _Claims(ts))
        c.last = max(c.last, ts)
        if ip not in c.ips and len(c.ips) < s.max_claims_per_mac:
            c.ips[ip] = ts
        reasons: list[str] = []
        if arp.op == 2 and arp.target_ip != ip:  # a reply (not a gratuitous announcement)
            asked = self.requests.get((arp.target_ip, ip))
            if asked is None or now - asked[0] > s.request_ttl_s:
                c.unsolicited.add(ip)
                if len(c.victims) < 16:
                    c.victims.add(arp.target_ip)
        gw_mac = s.gateways.get(ip)
        if gw_mac is not None and gw_mac.lower() != mac:
            reasons.append("gateway_claimed")
        old = self.bindings.get(ip)
        if old is not None and old[0] != mac and now - old[1] <= s.binding_ttl_s:
            reasons.append("binding_changed")
        previous_mac = old[0] if old is not None else gw_mac
        self.bindings.touch(ip, now, lambda: [mac, ts])[:] = [mac, ts]
        if c.unsolicited and len(c.ips) >= 2:
            reasons.append("unsolicited_reply_and_multiple_ips")
        if not reasons:
            return out
        victim = sorted(c.victims)[0] if c.victims else ip
        key = f"arp_spoof:{mac}:{victim}"
        if self.emitter.due(key, now):
            out.append(traffic_finding(
                kind="arp_spoof", severity=Severity.HIGH, attacker=mac, victim=victim, key=key,
                summary=_("ARP spoofing: {attacker} claims {ips} ({reasons})").format(
                    attacker=mac, ips=", ".join(sorted(c.ips)), reasons=", ".join(reasons)),
                first_ts=c.first, last_ts=c.last, window_s=s.binding_ttl_s,
                impact=Level.HIGH, urgency=Level.HIGH,
                evidence={"reasons": reasons, "attacker_mac": mac,
                          "claimed_ips": sorted(c.ips)[:16],
                          "unsolicited_reply_ips": sorted(c.unsolicited)[:16],
                          "poisoned_hosts": sorted(c.victims)[:16],
                          "impersonated_ip": ip, "previous_mac": previous_mac}))
        return out

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        now = self.clock.advance(now_ts)
        for t in (self.bindings, self.claims, self.requests):
            t.expire(now)
        return []


@dataclass(frozen=True, slots=True)
class MacFloodSettings:
    new_macs_per_s: float = 50.0  # never-seen source MACs per second on one segment
    window_s: float = 1.0
    max_macs: int = 100_000  # cap on remembered MACs (oldest forgotten first)
    mac_ttl_s: float = 3600.0
    repeat_s: float = 60.0


class MacFloodDetector:
    name = "mac_flood"
    routes = EVERY_ROUTE  # every source MAC counts

    def __init__(self, settings: MacFloodSettings | None = None) -> None:
        self.settings = s = settings or MacFloodSettings()
        self.clock = Clock()
        self.macs: BoundedTable[list] = BoundedTable(s.max_macs, s.mac_ttl_s)
        self.segments: BoundedTable[list] = BoundedTable(4096, s.mac_ttl_s)
        self.emitter = Emitter(s.repeat_s)

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"macs": self.macs.stats(), "segments": self.segments.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        mac = p.src_mac
        if mac is None:
            return []
        ts = p.ts
        clock = self.clock  # Clock.advance, inlined: this runs for every frame
        if ts > clock.now and ts <= MAX_TS:
            clock.now = ts
        now = clock.now
        macs = self.macs
        last = macs.touched.get(mac)
        if last is not None:  # a known station, the common case
            if now - last >= macs.grain:  # else touch() would change nothing
                macs.touch(mac, now, list)
            return []
        macs.touch(mac, now, list)
        if not _unicast(mac):
            return []
        s = self.settings
        seg = p.vlan if p.vlan is not None else 0
        # [rate window, first, last, new macs, samples]
        st = self.segments.touch(seg, now, lambda: [RateWindow(ts), ts, ts, 0, [], 0.0])
        rate = st[0].add(now, s.window_s)
        st[1], st[2] = min(st[1], ts), max(st[2], ts)
        st[3] += 1
        if len(st[4]) < 10:
            st[4].append(mac)
        if rate < s.new_macs_per_s * s.window_s:
            return []
        st[5] = max(st[5], rate)
        key = f"mac_flood:-:vlan{seg}"
        if not self.emitter.due(key, now):
            return []
        return [self._finding(seg, st, key)]

    def _finding(self, seg: int, st: list, key: str) -> Finding:
        s = self.settings
        return traffic_finding(
            kind="mac_flood", severity=Severity.HIGH, attacker=None, victim=None, key=key,
            summary=_("MAC flooding on VLAN {vlan}: {rate:.0f} new MAC addresses per second")
            .format(vlan=seg, rate=st[5] / s.window_s),
            first_ts=st[1], last_ts=st[2], window_s=s.window_s,
            impact=Level.HIGH, urgency=Level.HIGH,
            evidence={"vlan": seg, "new_macs": st[3], "peak_new_macs_per_s":
                      round(st[5] / s.window_s, 1), "sample_macs": list(st[4])})

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        now = self.clock.advance(now_ts)
        out = []
        if final:
            for seg, st in self.segments.items():
                if st[5]:
                    out.append(self._finding(seg, st, f"mac_flood:-:vlan{seg}"))  # type: ignore[arg-type]
        self.macs.expire(now)
        self.segments.expire(now)
        return out


@dataclass(frozen=True, slots=True)
class NewDeviceSettings:
    max_devices: int = 100_000  # cap on remembered stations
    device_ttl_s: float = 30 * 86400.0  # a station silent this long is new again
    max_reports_per_window: int = 20  # at most this many new-device findings ...
    report_window_s: float = 60.0  # ... per window; the rest are counted as suppressed
    allowlist: frozenset[str] = field(default_factory=frozenset)


class NewDeviceDetector:
    name = "new_device"
    routes = EVERY_ROUTE  # every source MAC counts

    def __init__(self, settings: NewDeviceSettings | None = None) -> None:
        self.settings = s = settings or NewDeviceSettings()
        self.clock = Clock()
        self.devices: BoundedTable[list] = BoundedTable(s.max_devices, s.device_ttl_s)
        self._window_start = 0.0
        self._reported = 0
        self.suppressed = 0

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"devices": self.devices.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        mac = p.src_mac
        if mac is None:
            return []
        ts = p.ts
        clock = self.clock  # Clock.advance, inlined: this runs for every frame
        if ts > clock.now and ts <= MAX_TS:
            clock.now = ts
        now = clock.now
        devices = self.devices
        last = devices.touched.get(mac)
        if last is not None:  # a known station, the common case
            if now - last >= devices.grain:  # else touch() would change nothing
                devices.touch(mac, now, list)
            return []
        devices.touch(mac, now, list)
        ip = p.src_ip if p.arp is None else p.arp.sender_ip
        s = self.settings
        if not _unicast(mac) or mac in s.allowlist:
            return []
        if now - self._window_start >= s.report_window_s:
            self._window_start, self._reported = now, 0
        if self._reported >= s.max_reports_per_window:
            self.suppressed += 1
            return []
        self._reported += 1
        suppressed, self.suppressed = self.suppressed, 0
        return [traffic_finding(
            kind="new_device", severity=Severity.INFO, attacker=None, victim=mac,
            key=f"new_device:-:{mac}",
            summary=_("New device {mac} ({ip})").format(mac=mac, ip=ip or "-"),
            first_ts=p.ts, last_ts=p.ts, window_s=s.report_window_s,
            impact=Level.LOW, urgency=Level.LOW,
            evidence={"mac": mac, "ip": ip, "vlan": p.vlan,
                      "suppressed_before": suppressed})]

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        self.devices.expire(self.clock.advance(now_ts))
        return []
