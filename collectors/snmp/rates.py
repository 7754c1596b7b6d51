"""Counters to rates, done right: a 32-bit counter that wrapped gives its true delta, an agent
that restarted (sysUpTime went backwards) or a counter that was reset gives *no* rate for that
interval instead of a spike, and a sysUpTime that wrapped after 497 days is not a restart.

Everything here is pure (no clock, no I/O): the collector passes the poll time in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WRAP32 = 1 << 32
TICKS_PER_S = 100


def counter_delta(previous: int, current: int, bits: int, max_delta: float | None = None
                  ) -> int | None:
    """The increase from `previous` to `current`, or None when it cannot be known.

    32-bit counters wrap at 2**32: a smaller value is taken as one wrap, unless that implies
    more than `max_delta` (the most the link could carry in the interval), which means the
    counter was reset rather than wrapped. A 64-bit counter practically never wraps: smaller
    means reset."""
    if current >= previous:
        delta = current - previous
        return None if max_delta is not None and delta > max_delta else delta
    if bits != 32:
        return None
    delta = current + WRAP32 - previous
    if max_delta is not None and delta > max_delta:
        return None
    return delta


def agent_restarted(previous_ticks: int | None, current_ticks: int | None,
                    elapsed_s: float) -> bool:
    """True when sysUpTime went backwards for a reason other than its own 32-bit wrap."""
    if previous_ticks is None or current_ticks is None:
        return False
    if current_ticks >= previous_ticks:
        return False
    expected = previous_ticks + elapsed_s * TICKS_PER_S
    if expected >= WRAP32 * 0.999 and current_ticks <= elapsed_s * TICKS_PER_S * 2 + 100:
        return False  # TimeTicks wrapped (after ~497 days), the agent did not restart
    return True


@dataclass(frozen=True, slots=True)
class InterfaceRates:
    """One interface after a poll: status plus per-second rates (None on the first poll, after
    a restart or a counter reset)."""

    if_index: int
    if_name: str
    admin_status: str | None
    oper_status: str | None
    speed_bps: int | None
    in_bps: float | None = None
    out_bps: float | None = None
    errors_per_s: float | None = None
    discards_per_s: float | None = None

    @property
    def utilisation_percent(self) -> float | None:
        if not self.speed_bps or self.in_bps is None or self.out_bps is None:
            return None
        return 100.0 * max(self.in_bps, self.out_bps) / self.speed_bps


@dataclass(slots=True)
class _Previous:
    at: float
    in_octets: int | None
    out_octets: int | None
    errors: int | None
    discards: int | None
    bits: int


@dataclass(slots=True)
class RateState:
    """What one device's previous poll said, to turn its counters into rates."""

    at: float | None = None
    uptime_ticks: int | None = None
    interfaces: dict[int, _Previous] = field(default_factory=dict)

    def update(self, at: float, uptime_ticks: int | None, interfaces) -> tuple[bool,
                                                                          list[InterfaceRates]]:
        """`interfaces`: poller `Interface`s. Returns (agent restarted, rates)."""
        elapsed = at - self.at if self.at is not None else 0.0
        restarted = self.at is not None and agent_restarted(self.uptime_ticks, uptime_ticks,
                                                            elapsed)
        out: list[InterfaceRates] = []
        previous = self.interfaces
        current: dict[int, _Previous] = {}
        for iface in interfaces:
            errors = _sum(iface.in_errors, iface.out_errors)
            discards = _sum(iface.in_discards, iface.out_discards)
            now = _Previous(at, iface.in_octets, iface.out_octets, errors, discards,
                            iface.counter_bits)
            current[iface.if_index] = now
            prev = previous.get(iface.if_index)
            rates = (None, None, None, None)
            if prev is not None and not restarted and elapsed > 0 and prev.bits == now.bits:
                # octets: at most 1.5x the link speed over the interval (None: no bound)
                max_octets = (iface.speed_bps * elapsed / 8 * 1.5) if iface.speed_bps else None
                rates = tuple(
                    _rate(p, c, now.bits if i < 2 else 32, elapsed,
                          max_octets if i < 2 else None)
                    for i, (p, c) in enumerate(((prev.in_octets, now.in_octets),
                                                (prev.out_octets, now.out_octets),
                                                (prev.errors, now.errors),
                                                (prev.discards, now.discards))))
            in_bps = rates[0] * 8 if rates[0] is not None else None
            out_bps = rates[1] * 8 if rates[1] is not None else None
            out.append(InterfaceRates(iface.if_index, iface.if_name or iface.if_descr or
                                      str(iface.if_index), iface.admin_status,
                                      iface.oper_status, iface.speed_bps, in_bps, out_bps,
                                      rates[2], rates[3]))
        self.at, self.uptime_ticks, self.interfaces = at, uptime_ticks, current
        return restarted, out


def _sum(a: int | None, b: int | None) -> int | None:
    if a is None and b is None:
        return None
    return (a or 0) + (b or 0)


def _rate(previous: int | None, current: int | None, bits: int, elapsed: float,
          max_delta: float | None) -> float | None:
    if previous is None or current is None:
        return None
    # errors + discards are sums of two 32-bit counters: a wrap of one still shows as one
    # 2**32 step, which counter_delta handles the same way
    delta = counter_delta(previous, current, bits, max_delta)
    return None if delta is None else delta / elapsed
