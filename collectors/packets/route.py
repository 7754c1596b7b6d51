"""Send each decoded packet only to the traffic detectors that can act on it.

Why: nine detectors each looking at every packet cost nine calls per packet, yet most packets
matter to a few of them (a TCP ACK of a web download is nothing to the ARP, DHCP, DNS, flood
and brute-force detectors). The decoder tags each packet with a class (`Packet.route`, one of
monitord.packet's ROUTE_*); every detector lists the classes it acts on in `routes`. A table of
observers per class is built once, so the hot path is one tuple lookup and only useful calls.

Results cannot change: a detector's contract is that for a class it does not list it returns
[] and leaves its state (its clock included) alone. The detectors whose clock moves with every
packet (port_scan, mac_flood, new_device, traffic_anomaly) list every class. Detector order is
kept, so findings come out in the same order as before. A Packet built by hand (ROUTE_ALL), or
a detector without `routes`, reaches every detector.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from monitord.packet import EVERY_ROUTE, ROUTE_ALL, ROUTE_COUNT, Packet
from monitord.records import Finding

Observer = Callable[[Packet], list[Finding]]


def route_table(detectors: Sequence[Any], observers: Sequence[Observer] | None = None
                ) -> tuple[tuple[Observer, ...], ...]:
    """For each ROUTE_* class, the observers (in detector order) that act on it."""
    obs = list(observers) if observers is not None else [d.observe for d in detectors]
    table = []
    for route in range(ROUTE_COUNT):
        table.append(tuple(o for d, o in zip(detectors, obs)
                           if route == ROUTE_ALL or route in getattr(d, "routes", EVERY_ROUTE)))
    return tuple(table)


class Router:
    """`observe(packet)`: the findings of the detectors that act on the packet's class."""

    __slots__ = ("detectors", "routes")

    def __init__(self, detectors: Sequence[Any], observers: Sequence[Observer] | None = None
                 ) -> None:
        self.detectors = list(detectors)
        self.routes = route_table(self.detectors, observers)

    def observe(self, p: Packet) -> list[Finding]:
        out: list[Finding] = []
        for observe in self.routes[p.route]:
            found = observe(p)
            if found:
                out.extend(found)
        return out
