"""`port_scan`: vertical (many ports on one host), horizontal (one port on many hosts, counting
only probes that were not answered with SYN/ACK or a UDP reply), and sweeps (ARP who-has or
ICMP echo to many addresses). The finding names the scan type: SYN, connect, FIN, Xmas, NULL,
UDP, ARP or ICMP.

Only probes count: a TCP segment without ACK that is a SYN, FIN, Xmas (FIN+PSH+URG) or NULL; a
UDP datagram not sent from a well-known service port; an ICMP echo request; an ARP request.
DoS backscatter (SYN/ACKs and RSTs answering someone else's spoofed flood) is therefore never a
scan. Pure: packets in, findings out; time is the packets' own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitord.packet import (EVERY_ROUTE, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG,
                             Packet)
from monitord.detectors._traffic import (MAX_TS, BoundedTable, Clock, Emitter, bounded_add,
                                         top, traffic_finding)
from monitord.i18n import _
from monitord.records import Finding, Level, Severity

#: UDP sent FROM these ports is a service answering, not a probe.
UDP_SERVICE_PORTS = frozenset({53, 67, 68, 69, 123, 137, 138, 161, 162, 389, 500, 514, 520,
                               1900, 4500, 5353, 5355, 11211})


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """Defaults are documented beside each field."""

    vertical_min_ports: int = 25  # distinct ports probed on one host ...
    vertical_window_s: float = 120.0  # ... within this window
    horizontal_min_hosts: int = 8  # distinct hosts probed on one port and not answering ...
    horizontal_window_s: float = 7200.0  # ... within this window (slow worm scans are slow)
    answer_grace_s: float = 2.0  # a probe younger than this may still be answered
    sweep_min_hosts: int = 64  # ARP who-has: distinct targets, mostly unanswered ...
    icmp_sweep_min_hosts: int = 20  # ICMP echo: distinct targets ...
    sweep_window_s: float = 60.0  # ... within this window
    max_sources: int = 50_000  # cap on tracked (source, target) / (source, port) entries
    max_items: int = 2048  # cap on ports/hosts remembered per entry
    repeat_s: float = 300.0  # a firing scan is re-reported at most this often
    allowlist: frozenset[str] = field(default_factory=frozenset)  # scanner IPs/MACs to ignore


class _Vertical:
    __slots__ = ("start", "first", "last", "ports", "types", "acks", "probes")

    def __init__(self, ts: float) -> None:
        self.start = self.first = self.last = ts
        self.ports: set[int] = set()
        self.types: dict[str, int] = {}
        self.acks = 0  # handshakes completed by the prober (connect scan)
        self.probes = 0


_NO_ANSWERS: frozenset[str] = frozenset()


class _Horizontal:
    __slots__ = ("first", "last", "hosts", "answered", "types", "probes")

    def __init__(self, ts: float) -> None:
        self.first = self.last = ts
        self.hosts: dict[str, float] = {}  # host -> first probe time
        # Most entries (a spoofed flood's sources, one probe each) are never answered: they
        # share one empty frozenset until the first answer (fewer allocations, less for the GC).
        self.answered: set[str] | frozenset[str] = _NO_ANSWERS
        self.types: dict[str, int] = {}
        self.probes = 0


class _Sweep:
    __slots__ = ("start", "first", "last", "hosts", "answered", "mac", "probes")

    def __init__(self, ts: float, mac: str | None) -> None:
        self.start = self.first = self.last = ts
        self.hosts: set[str] = set()
        self.answered: set[str] = set()
        self.mac = mac
        self.probes = 0


def probe_type(flags: int) -> str | None:
    """The scan type a TCP segment's flags betray, or None if it is no probe."""
    if flags & (TCP_ACK | TCP_RST):
        return None
    f = flags & 0x3F
    if f & TCP_SYN:
        return "SYN"
    if f == 0:
        return "NULL"
    if f == TCP_FIN:
        return "FIN"
    if f == TCP_FIN | TCP_PSH | TCP_URG:
        return "Xmas"
    return "other"


class PortScanDetector:
    name = "port_scan"
    routes = EVERY_ROUTE  # its clock moves with every packet

    def __init__(self, settings: ScanSettings | None = None) -> None:
        self.settings = s = settings or ScanSettings()
        self.clock = Clock()
        self.vertical: BoundedTable[_Vertical] = BoundedTable(s.max_sources, s.vertical_window_s)
        self.horizontal: BoundedTable[_Horizontal] = BoundedTable(s.max_sources,
                                                                  s.horizontal_window_s)
        self.sweeps: BoundedTable[_Sweep] = BoundedTable(s.max_sources, s.sweep_window_s)
        self.emitter = Emitter(s.repeat_s)

    def state_sizes(self) -> dict[str, dict[str, int]]:
        return {"vertical": self.vertical.stats(), "horizontal": self.horizontal.stats(),
                "sweeps": self.sweeps.stats()}

    def observe(self, p: Packet) -> list[Finding]:
        ts = p.ts
        clock = self.clock  # Clock.advance, inlined: this runs for every frame
        if ts > clock.now and ts <= MAX_TS:
            clock.now = ts
        now = clock.now
        allow = self.settings.allowlist
        if p.arp is not None:
            return self._arp(p, now)
        src = p.src_ip
        if src is None or (allow and (src in allow or p.src_mac in allow)):
            return []
        proto = p.proto
        if proto == 6:
            ptype = probe_type(p.tcp_flags)
            if ptype is None:
                return self._tcp_answer(p)
            return self._probe(p, now, ptype, "tcp")
        if proto == 17:
            if p.sport in UDP_SERVICE_PORTS or p.dst_ip is None:
                return self._udp_answer(p)
            self._udp_answer(p)
            return self._probe(p, now, "UDP", "udp")
        if proto == 1 and p.icmp_type == 8 or proto == 58 and p.icmp_type == 128:
            return self._icmp_sweep(p, now)
        return []

    # -- answers -------------------------------------------------------------------------------
    def _tcp_answer(self, p: Packet) -> list[Finding]:
        flags = p.tcp_flags
        if flags & TCP_SYN and flags & TCP_ACK:  # SYN/ACK: the port answered
            h = self.horizontal.entries.get((p.dst_ip, "tcp", p.sport))
            if h is not None and p.src_ip in h.hosts:
                if h.answered is _NO_ANSWERS:
                    h.answered = set()
                h.answered.add(p.src_ip)  # type: ignore[union-attr]
        elif flags & 0x3F == TCP_ACK and p.payload_len == 0:  # prober completing a handshake
            v = self.vertical.entries.get((p.src_ip, p.dst_ip))
            if v is not None and p.dport in v.ports:
                v.acks += 1
        return []

    def _udp_answer(self, p: Packet) -> list[Finding]:
        h = self.horizontal.entries.get((p.dst_ip, "udp", p.sport))
        if h is not None and p.src_ip in h.hosts:
            if h.answered is _NO_ANSWERS:
                h.answered = set()
            h.answered.add(p.src_ip)  # type: ignore[arg-type,union-attr]
        return []

    # -- probes --------------------------------------------------------------------------------
    def _probe(self, p: Packet, now: float, ptype: str, l4: str) -> list[Finding]:
        # The hot path of a spoofed flood (every packet a new source): plain comparisons and
        # inlined set/dict updates instead of min()/max()/helper calls.
        s = self.settings
        ts = p.ts
        src, dst, dport = p.src_ip, p.dst_ip, p.dport
        out: list[Finding] = []
        # touch() only when it would change something (a new entry, or a second gone by)
        table, key = self.vertical, (src, dst)
        last = table.touched.get(key)
        if last is None:
            v = table.insert(key, now, _Vertical(ts))
        elif now - last < table.grain:
            v = table.entries[key]
        else:
            v = table.refresh(key, now)
        ports = v.ports
        if now - v.start > s.vertical_window_s and len(ports) < s.vertical_min_ports:
            v.start = ts
            ports.clear()
            v.types.clear()
            v.acks = 0
        v.probes += 1
        if ts < v.first:
            v.first = ts
        if ts > v.last:
            v.last = ts
        if dport not in ports and len(ports) < s.max_items:
            ports.add(dport)
        types = v.types
        if ptype in types:
            types[ptype] += 1
        elif len(types) < 8:
            types[ptype] = 1
        if len(ports) >= s.vertical_min_ports:
            if self.emitter.due(f"port_scan:{src}:{dst}", now):
                out.append(self._vertical_finding(src, dst, v, l4))  # type: ignore[arg-type]

        table, key = self.horizontal, (src, l4, dport)
        last = table.touched.get(key)
        if last is None:
            h = table.insert(key, now, _Horizontal(ts))
        elif now - last < table.grain:
            h = table.entries[key]
        else:
            h = table.refresh(key, now)
        h.probes += 1
        if ts < h.first:
            h.first = ts
        if ts > h.last:
            h.last = ts
        hosts = h.hosts
        if dst not in hosts and len(hosts) < s.max_items:
            hosts[dst] = ts  # type: ignore[index]
        types = h.types
        if ptype in types:
            types[ptype] += 1
        elif len(types) < 8:
            types[ptype] = 1
        if len(hosts) >= s.horizontal_min_hosts:
            out.extend(self._check_horizontal(src, l4, dport, h, now))  # type: ignore[arg-type]
        return out

    def _check_horizontal(self, src: str, l4: str, port: int, h: _Horizontal,
                          now: float, force: bool = False) -> list[Finding]:
        s = self.settings
        if len(h.hosts) - len(h.answered) < s.horizontal_min_hosts:
            return []  # cheap bound: the unanswered are at most the hosts not answered
        limit = now - s.answer_grace_s
        failed = [host for host, t in h.hosts.items() if t <= limit and host not in h.answered]
        if len(failed) < s.horizontal_min_hosts:
            return []
        key = f"port_scan:{src}:*:{port}/{l4}"
        if not self.emitter.due(key, now) and not force:
            return []
        stype = _dominant(h.types) if l4 == "tcp" else "UDP"
        return [traffic_finding(
            kind="port_scan", severity=Severity.MEDIUM, attacker=src, victim=None, key=key,
            summary=_("Horizontal {scan_type} scan from {attacker}: port {port}/{proto} on "
                         "{hosts} hosts").format(scan_type=stype, attacker=src, port=port,
                                                  proto=l4, hosts=len(failed)),
            first_ts=h.first, last_ts=h.last, window_s=s.horizontal_window_s,
            urgency=Level.MEDIUM,
            evidence={"scan": "horizontal", "scan_type": stype, "port": port, "proto": l4,
                      "hosts": len(h.hosts), "unanswered_hosts": len(failed),
                      "sample_victims": sorted(failed)[:10], "probes": h.probes})]

    def _vertical_finding(self, src: str, dst: str, v: _Vertical, l4: str) -> Finding:
        s = self.settings
        stype = _dominant(v.types)
        if stype == "SYN" and v.acks:
            stype = "connect"
        return traffic_finding(
            kind="port_scan", severity=Severity.MEDIUM, attacker=src, victim=dst,
            summary=_("Vertical {scan_type} scan from {attacker} on {victim}: {ports} ports")
            .format(scan_type=stype, attacker=src, victim=dst, ports=len(v.ports)),
            first_ts=v.first, last_ts=v.last, window_s=s.vertical_window_s,
            evidence={"scan": "vertical", "scan_type": stype, "proto": l4,
                      "ports": len(v.ports), "probes": v.probes,
                      "sample_ports": sorted(v.ports)[:20], "completed_handshakes": v.acks})

    # -- sweeps --------------------------------------------------------------------------------
    def _icmp_sweep(self, p: Packet, now: float) -> list[Finding]:
        s = self.settings
        ts = p.ts
        w = self.sweeps.touch(("icmp", p.src_ip), now, lambda: _Sweep(ts, p.src_mac))
        if now - w.start > s.sweep_window_s and len(w.hosts) < s.icmp_sweep_min_hosts:
            w.start, w.hosts = ts, set()
        w.probes += 1
        w.first, w.last = min(w.first, ts), max(w.last, ts)
        bounded_add(w.hosts, p.dst_ip, s.max_items)
        if len(w.hosts) < s.icmp_sweep_min_hosts:
            return []
        return self._sweep_finding("ICMP", p.src_ip, w, now)  # type: ignore[arg-type]

    def _arp(self, p: Packet, now: float) -> list[Finding]:
        s = self.settings
        arp = p.arp
        assert arp is not None
        allow = s.allowlist
        if arp.op == 2:  # a reply answers the asker's sweep
            w = self.sweeps.get(("arp", arp.target_ip))
            if w is not None and arp.sender_ip in w.hosts:
                w.answered.add(arp.sender_ip)
            return []
        if arp.op != 1 or arp.sender_ip == arp.target_ip or arp.sender_ip == "0.0.0.0":
            return []  # gratuitous or probe: not a sweep
        if allow and (arp.sender_ip in allow or arp.sender_mac in allow or p.src_mac in allow):
            return []
        ts = p.ts
        w = self.sweeps.touch(("arp", arp.sender_ip), now, lambda: _Sweep(ts, arp.sender_mac))
        if now - w.start > s.sweep_window_s and len(w.hosts) < s.sweep_min_hosts:
            w.start, w.hosts, w.answered = ts, set(), set()
        w.probes += 1
        w.first, w.last = min(w.first, ts), max(w.last, ts)
        bounded_add(w.hosts, arp.target_ip, s.max_items)
        if len(w.hosts) < s.sweep_min_hosts or len(w.answered) * 2 > len(w.hosts):
            return []
        return self._sweep_finding("ARP", arp.sender_ip, w, now)

    def _sweep_finding(self, kind: str, src: str, w: _Sweep, now: float,
                       force: bool = False) -> list[Finding]:
        key = f"port_scan:{src}:*:{kind.lower()}-sweep"
        if not self.emitter.due(key, now) and not force:
            return []
        return [traffic_finding(
            kind="port_scan", severity=Severity.LOW, attacker=src, victim=None, key=key,
            summary=_("{scan_type} sweep from {attacker}: {hosts} addresses").format(
                scan_type=kind, attacker=src, hosts=len(w.hosts)),
            first_ts=w.first, last_ts=w.last, window_s=self.settings.sweep_window_s,
            urgency=Level.LOW,
            evidence={"scan": "sweep", "scan_type": kind, "hosts": len(w.hosts),
                      "answered": len(w.answered), "probes": w.probes, "attacker_mac": w.mac,
                      "sample_victims": sorted(w.hosts)[:10]})]

    def flush(self, now_ts: float, final: bool = False) -> list[Finding]:
        """A periodic tick: judge pending horizontal probes, expire idle state. With `final`
        (end of a capture), every firing entry is reported once more with its full counts."""
        s = self.settings
        now = self.clock.advance(now_ts)
        out: list[Finding] = []
        for (src, l4, port), h in self.horizontal.items():  # type: ignore[misc]
            if len(h.hosts) >= s.horizontal_min_hosts:
                # at the end of input every probe has had its chance to be answered
                out.extend(self._check_horizontal(
                    src, l4, port, h, now + (s.answer_grace_s if final else 0.0), force=final))
        if final:
            for (src, dst), v in self.vertical.items():  # type: ignore[misc]
                if len(v.ports) >= s.vertical_min_ports:
                    out.append(self._vertical_finding(src, dst, v, "udp" if v.types.get("UDP") else "tcp"))
            for (kind, src), w in self.sweeps.items():  # type: ignore[misc]
                need = s.sweep_min_hosts if kind == "arp" else s.icmp_sweep_min_hosts
                if len(w.hosts) >= need and (kind != "arp" or len(w.answered) * 2 <= len(w.hosts)):
                    out.extend(self._sweep_finding(kind.upper(), src, w, now, force=True))
        for table in (self.vertical, self.horizontal, self.sweeps):
            table.expire(now)
        return out


def _dominant(types: dict[str, int]) -> str:
    return top(types, 1)[0] if types else "other"
