"""Small pieces every traffic detector shares: bounded state tables, a tolerant clock, and the
one way a traffic `Finding` is built. (Suggested home later: `detectors/_traffic.py`.)

Bounded everything: a `BoundedTable` has a capacity and a TTL; the least recently touched entry
is evicted first, and every eviction or expiry is counted (exported as metrics by the caller).
Time comes from the packets; a capture whose timestamps go backwards never moves a detector's
clock back (`Clock.advance` keeps the high-water mark), so windows only ever open forward.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable, Generic, Hashable, Iterable, TypeVar

from monitord.records import Category, Finding, FindingState, Level, Severity

V = TypeVar("V")

MAX_TS = _MAX_TS = 253402300799.0  # 9999-12-31: Clock ignores packet times beyond it


def ts_to_datetime(ts: float) -> datetime:
    """Packet time as aware UTC datetime; absurd values (fuzzed files) are clamped."""
    if not (0.0 <= ts <= _MAX_TS):  # also catches NaN
        ts = 0.0 if not ts > 0 else _MAX_TS
    return datetime.fromtimestamp(ts, timezone.utc)


def iso(ts: float) -> str:
    return ts_to_datetime(ts).isoformat().replace("+00:00", "Z")


class BoundedTable(Generic[V]):
    """A dict with a capacity and a TTL. `touch(key, now, factory)` returns the entry (creating
    it), marks it most recent; the oldest entries go first when full or idle past the TTL."""

    __slots__ = ("cap", "ttl", "grain", "_d", "_last", "entries", "touched", "evictions", "expired", "_ops")

    def __init__(self, cap: int, ttl: float) -> None:
        self.cap = max(1, int(cap))
        self.ttl = float(ttl)
        # An entry touched again within `grain` seconds keeps its place and time: recency is
        # exact to 1% of the TTL (at most a second), and the busiest keys (a host sending
        # thousands of packets a second) cost one dict lookup instead of a reorder and a store.
        self.grain = min(1.0, self.ttl / 100.0)
        self._d: OrderedDict[Hashable, V] = OrderedDict()
        self._last: dict[Hashable, float] = {}
        # Read-only views for hot paths: `entries` (key -> value) and `touched` (key -> time of
        # the last counted touch). A caller that finds its key in `touched` less than `grain`
        # ago may read `entries[key]` instead of calling `touch`, which would change nothing:
        # that saves the call and the factory closure (`is_fresh` spelt out inline); else it
        # calls `insert` (absent) or `refresh` (present).
        self.entries = self._d
        self.touched = self._last
        self.evictions = 0
        self.expired = 0
        self._ops = 0

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._d

    def get(self, key: Hashable) -> V | None:
        return self._d.get(key)

    def items(self) -> Iterable[tuple[Hashable, V]]:
        return list(self._d.items())

    def touch(self, key: Hashable, now: float, factory: Callable[[], V]) -> V:
        d = self._d
        value = d.get(key)
        if value is None:
            value = factory()
            d[key] = value
            if len(d) > self.cap:
                old, _v = d.popitem(last=False)
                self._last.pop(old, None)
                self.evictions += 1
        else:
            if now - self._last[key] < self.grain:  # every key in _d has a time in _last
                return value
            d.move_to_end(key)
        self._last[key] = now
        self._ops += 1
        if self._ops >= 4096:
            self._ops = 0
            self.expire(now)
        return value

    # `touch` split in its two cases, for hot paths that already looked the key up in
    # `touched` (absent: `insert` the new value, no factory closure; present: `refresh`).
    def insert(self, key: Hashable, now: float, value: V) -> V:
        """`touch` of a key known to be absent, with its new value."""
        d = self._d
        d[key] = value
        if len(d) > self.cap:
            old, _v = d.popitem(last=False)
            self._last.pop(old, None)
            self.evictions += 1
        self._last[key] = now
        self._ops += 1
        if self._ops >= 4096:
            self._ops = 0
            self.expire(now)
        return value

    def refresh(self, key: Hashable, now: float) -> V:
        """`touch` of a key known to be present."""
        value = self._d[key]
        if now - self._last[key] < self.grain:
            return value
        self._d.move_to_end(key)
        self._last[key] = now
        self._ops += 1
        if self._ops >= 4096:
            self._ops = 0
            self.expire(now)
        return value

    def is_fresh(self, key: Hashable, now: float) -> bool:
        """True if `touch(key, now, ...)` would change nothing (the key was touched less than
        `grain` ago); then `get(key)` is the entry."""
        last = self._last.get(key)
        return last is not None and now - last < self.grain

    def pop(self, key: Hashable) -> V | None:
        self._last.pop(key, None)
        return self._d.pop(key, None)

    def expire(self, now: float) -> int:
        """Drop entries idle longer than the TTL (oldest first); returns how many."""
        d, last = self._d, self._last
        limit = now - self.ttl
        n = 0
        while d:
            key = next(iter(d))
            if last.get(key, now) >= limit:
                break
            d.popitem(last=False)
            last.pop(key, None)
            n += 1
        self.expired += n
        return n

    def stats(self) -> dict[str, int]:
        return {"size": len(self._d), "cap": self.cap, "evictions": self.evictions,
                "expired": self.expired}


class Clock:
    """The detector's notion of now: the latest packet time seen (never goes backwards)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0

    def advance(self, ts: float) -> float:
        if ts > self.now and ts <= _MAX_TS:
            self.now = ts
        return self.now


class RateWindow:
    """Sliding-window event rate from two fixed buckets (the rate limiter's estimate):
    count_in_last_window ~= current + previous * (1 - elapsed fraction of the current)."""

    __slots__ = ("start", "cur", "prev")

    def __init__(self, start: float) -> None:
        self.start = start
        self.cur = 0.0
        self.prev = 0.0

    def add(self, ts: float, width: float, amount: float = 1.0) -> float:
        """Count `amount` at `ts` (late packets count in the current bucket); return estimate."""
        elapsed = ts - self.start
        if elapsed >= width:
            if elapsed >= 2 * width:
                self.prev = 0.0
                self.start = ts
            else:
                self.prev = self.cur
                self.start += width
            self.cur = 0.0
            elapsed = ts - self.start
        self.cur += amount
        frac = elapsed / width if elapsed > 0 else 0.0
        return self.cur + self.prev * (1.0 - min(frac, 1.0))


def bounded_add(container: set, item: Any, cap: int) -> bool:
    """Add to a set unless it is full; True if the item is new (and was added)."""
    if item in container or len(container) >= cap:
        return False
    container.add(item)
    return True


def count_into(counter: dict, key: Any, cap: int, amount: int = 1) -> None:
    """Counter with a cap on distinct keys (new keys beyond the cap are not tracked)."""
    if key in counter:
        counter[key] += amount
    elif len(counter) < cap:
        counter[key] = amount


def top(counter: dict, n: int) -> list:
    return [k for k, _v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]]


def shannon_entropy(text: str) -> float:
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def traffic_finding(*, kind: str, severity: Severity, summary: str, attacker: str | None,
                    victim: str | None, first_ts: float, last_ts: float, window_s: float,
                    evidence: dict[str, Any], category: Category = Category.NETWORK_SECURITY,
                    impact: Level = Level.MEDIUM, urgency: Level = Level.MEDIUM,
                    key: str | None = None) -> Finding:
    """The one shape of a traffic finding: attacker/victim/window/first and last packet time
    are always in the evidence; dedup_key is `kind:attacker-or-dash:victim-or-dash`."""
    ev = {"attacker": attacker, "victim": victim, "window_s": window_s,
          "first_packet": iso(first_ts), "last_packet": iso(last_ts)}
    ev.update(evidence)
    return Finding(
        kind=kind, category=category, severity=severity, state=FindingState.FIRING,
        dedup_key=key or f"{kind}:{attacker or '-'}:{victim or '-'}", summary=summary,
        first_seen=ts_to_datetime(first_ts), last_seen=ts_to_datetime(last_ts),
        device=None, subject=attacker or victim, impact=impact, urgency=urgency, evidence=ev)


class Emitter:
    """Rate-limits re-emission per dedup key: the first crossing emits at once, then at most one
    updated finding per `repeat_s` of packet time. Bounded like the rest."""

    __slots__ = ("repeat_s", "_last")

    def __init__(self, repeat_s: float, cap: int = 10_000) -> None:
        self.repeat_s = repeat_s
        self._last: BoundedTable[list[float]] = BoundedTable(cap, max(repeat_s * 4, 3600.0))

    def due(self, key: str, now: float) -> bool:
        slot = self._last.entries.get(key)
        if slot is None:
            self._last.touch(key, now, lambda: [now])
            return True
        if now - slot[0] >= self.repeat_s:
            slot[0] = now
            self._last.touch(key, now, lambda: slot)
            return True
        return False
