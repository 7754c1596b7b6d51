"""Network detectors for polled devices: pure functions of the `snmp_poll` events (no I/O, the
time is the record's).

| kind | fires | clears | dedup key |
| device_unreachable | `unreachable_after` polls in a row without an answer | an answer | device_unreachable:{device} |
| snmp_credentials_rejected | the agent refused the credentials (USM report) | an answer | snmp_credentials_rejected:{device} |
| device_rebooted | sysUpTime went backwards | the next poll | device_rebooted:{device} |
| interface_down | admin up and oper down/lowerLayerDown | oper up or admin down | interface_down:{device}:{ifIndex} |
| interface_flapping | `flap_changes` oper changes within `flap_window` | a quiet window | interface_flapping:{device}:{ifIndex} |
| interface_errors / interface_discards | rate above threshold `consecutive` polls | a poll below | {kind}:{device}:{ifIndex} |
| interface_utilisation_high | max(in, out) / speed above threshold for `utilisation_sustained` | a poll below | interface_utilisation_high:{device}:{ifIndex} |
| temperature_high | a sensor above `temperature_c` `consecutive` polls | a poll below | temperature_high:{device}:{sensor} |

The snmp-traps helper maps linkDown/linkUp and UPS traps onto the same kinds and keys.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitord.config import SnmpThresholds
from monitord.i18n import N_, _
from monitord.records import Category, Event, Finding, FindingState, Level, Sample, Severity

POLL_EVENT = "snmp_poll"
DOWN_STATES = ("down", "lowerLayerDown")


@dataclass(slots=True)
class _Problem:
    firing: bool = False
    first_seen: datetime | None = None
    count: int = 0
    since: datetime | None = None


@dataclass(slots=True)
class _Interface:
    last_oper: str | None = None
    changes: deque = field(default_factory=lambda: deque(maxlen=1000))
    down: _Problem = field(default_factory=_Problem)
    flapping: _Problem = field(default_factory=_Problem)
    errors: _Problem = field(default_factory=_Problem)
    discards: _Problem = field(default_factory=_Problem)
    utilisation: _Problem = field(default_factory=_Problem)


@dataclass(slots=True)
class _Device:
    failures: int = 0
    unreachable: _Problem = field(default_factory=_Problem)
    credentials: _Problem = field(default_factory=_Problem)
    rebooted: _Problem = field(default_factory=_Problem)
    interfaces: dict[int, _Interface] = field(default_factory=dict)
    temperatures: dict[str, _Problem] = field(default_factory=dict)


def make_finding(kind: str, state: FindingState, dedup_key: str, summary: str, problem: _Problem,
                 at: datetime, device: str, subject: str | None, severity: Severity,
                 evidence: dict[str, Any], category: Category = Category.NETWORK,
                 urgency: Level = Level.HIGH, impact: Level = Level.MEDIUM) -> Finding:
    return Finding(kind=kind, category=category, severity=severity, state=state,
                   dedup_key=dedup_key, summary=summary,
                   first_seen=problem.first_seen or at, last_seen=at, device=device,
                   subject=subject, impact=impact, urgency=urgency, evidence=evidence)


def step(problem: _Problem, breach: bool, at: datetime, needed: int = 1) -> FindingState | None:
    """Advance a problem by one observation: FIRING when it (still) fires, CLEARED once when it
    stops, None when nothing is to be said."""
    if breach:
        problem.count += 1
        if problem.since is None:
            problem.since = at
        if problem.count < needed:
            return None
        if not problem.firing:
            problem.firing, problem.first_seen = True, at
        return FindingState.FIRING
    problem.count, problem.since = 0, None
    if problem.firing:
        problem.firing = False
        return FindingState.CLEARED
    return None


class PollDetector:
    """What every detector over `snmp_poll` events shares: the SNMP thresholds (kept across a
    reload) and picking the poll result out of a record."""

    def __init__(self, thresholds: SnmpThresholds | None = None) -> None:
        self.t = thresholds or SnmpThresholds()

    def reconfigure(self, config) -> None:
        self.t = config.snmp.thresholds

    @staticmethod
    def poll_result(record: Sample | Event):
        """The poll result an `snmp_poll` event carries, or None for any other record."""
        if not isinstance(record, Event) or record.kind != POLL_EVENT:
            return None
        return record.fields.get("result")


class NetworkDetector(PollDetector):
    name = "network"

    def __init__(self, thresholds: SnmpThresholds | None = None) -> None:
        super().__init__(thresholds)
        self._devices: dict[str, _Device] = {}

    def observe(self, record: Sample | Event) -> list[Finding]:
        result = self.poll_result(record)
        if result is None:
            return []
        device = self._devices.setdefault(record.device, _Device())
        at, name = record.at, record.device
        out: list[Finding] = []
        if not result.ok:
            device.failures += 1
            if result.reason == "auth":
                state = step(device.credentials, True, at)
                out.append(make_finding(
                    "snmp_credentials_rejected", state, f"snmp_credentials_rejected:{name}",
                    _("{device} refused monitord's SNMP credentials").format(device=name),
                    device.credentials, at, name, None, Severity.HIGH,
                    {"reason": "auth", "failed_polls": device.failures}))
            else:
                state = step(device.unreachable, True, at, self.t.unreachable_after)
                if state is not None:
                    out.append(make_finding(
                        "device_unreachable", state, f"device_unreachable:{name}",
                        _("{device} does not answer SNMP ({count} polls)").format(
                            device=name, count=device.failures),
                        device.unreachable, at, name, None, Severity.HIGH,
                        {"reason": result.reason or "timeout",
                         "failed_polls": device.failures}))
            return out
        device.failures = 0
        for problem, kind, text in (
                (device.unreachable, "device_unreachable", N_("{device} answers SNMP again")),
                (device.credentials, "snmp_credentials_rejected",
                 N_("{device} accepts monitord's SNMP credentials again"))):
            if step(problem, False, at) is FindingState.CLEARED:
                out.append(make_finding(kind, FindingState.CLEARED, f"{kind}:{name}",
                                        _(text).format(device=name), problem, at, name, None,
                                        Severity.HIGH, {"reason": "answered"}))
        state = step(device.rebooted, bool(result.restarted), at)
        if state is not None:
            out.append(make_finding(
                "device_rebooted", state, f"device_rebooted:{name}",
                _("{device} restarted (uptime {uptime})").format(
                    device=name, uptime=_uptime(result.uptime_s)),
                device.rebooted, at, name, None, Severity.MEDIUM,
                {"uptime_s": result.uptime_s}, urgency=Level.MEDIUM))
        for rates in result.interfaces:
            out += self._interface(name, device, rates, at)
        for sensor, value in result.temperatures.items():
            problem = device.temperatures.setdefault(sensor, _Problem())
            state = step(problem, value > self.t.temperature_c, at, self.t.consecutive)
            if state is not None:
                out.append(make_finding(
                    "temperature_high", state, f"temperature_high:{name}:{sensor}",
                    _("Temperature {sensor} on {device} at {value:g} °C (threshold "
                      "{threshold:g} °C)").format(sensor=sensor, device=name, value=value,
                                                  threshold=self.t.temperature_c),
                    problem, at, name, sensor, Severity.HIGH,
                    {"sensor": sensor, "value": value, "threshold": self.t.temperature_c},
                    category=Category.SERVER))
        return out

    def _interface(self, name: str, device: _Device, r, at: datetime) -> list[Finding]:
        iface = device.interfaces.setdefault(r.if_index, _Interface())
        out: list[Finding] = []
        subject = r.if_name
        key = f"{name}:{r.if_index}"
        base = {"ifIndex": r.if_index, "ifName": r.if_name}
        # down: admin up, oper down
        down = r.admin_status == "up" and r.oper_status in DOWN_STATES
        state = step(iface.down, down, at)
        if state is not None:
            out.append(make_finding(
                "interface_down", state, f"interface_down:{key}",
                _("Interface {interface} on {device} is down").format(interface=subject,
                                                                        device=name),
                iface.down, at, name, subject, Severity.HIGH,
                {**base, "adminStatus": r.admin_status, "operStatus": r.oper_status}))
        # flapping: oper status changes within the window
        window = self.t.flap_window.total_seconds()
        if iface.last_oper is not None and r.oper_status != iface.last_oper:
            iface.changes.append(at)
        iface.last_oper = r.oper_status
        while iface.changes and (at - iface.changes[0]).total_seconds() > window:
            iface.changes.popleft()
        state = step(iface.flapping, len(iface.changes) >= self.t.flap_changes, at)
        if state is not None:
            out.append(make_finding(
                "interface_flapping", state, f"interface_flapping:{key}",
                _("Interface {interface} on {device} is flapping ({count} changes)").format(
                    interface=subject, device=name, count=len(iface.changes)),
                iface.flapping, at, name, subject, Severity.MEDIUM,
                {**base, "changes": len(iface.changes), "window_s": window},
                urgency=Level.MEDIUM))
        for problem, kind, value, limit, text in (
                (iface.errors, "interface_errors", r.errors_per_s,
                 self.t.interface_errors_per_second,
                 N_("Interface {interface} on {device}: {value:.1f} errors per second "
                    "(threshold {threshold:g})")),
                (iface.discards, "interface_discards", r.discards_per_s,
                 self.t.interface_discards_per_second,
                 N_("Interface {interface} on {device}: {value:.1f} discards per second "
                    "(threshold {threshold:g})"))):
            if value is None:
                continue  # no rate this poll (first poll, restart, reset): judge nothing
            state = step(problem, value > limit, at, self.t.consecutive)
            if state is not None:
                out.append(make_finding(
                    kind, state, f"{kind}:{key}",
                    _(text).format(interface=subject, device=name, value=value,
                                   threshold=limit),
                    problem, at, name, subject, Severity.MEDIUM,
                    {**base, "per_second": round(value, 3), "threshold": limit},
                    urgency=Level.MEDIUM))
        util = r.utilisation_percent
        if util is not None:
            problem = iface.utilisation
            state = None
            if util > self.t.utilisation_percent:
                if problem.since is None:
                    problem.since = at
                held = (at - problem.since).total_seconds()
                if held >= self.t.utilisation_sustained.total_seconds():
                    if not problem.firing:
                        problem.firing, problem.first_seen = True, problem.since
                    state = FindingState.FIRING
            else:
                state = step(problem, False, at)
            if state is not None:
                out.append(make_finding(
                    "interface_utilisation_high", state,
                    f"interface_utilisation_high:{key}",
                    _("Interface {interface} on {device} at {value:.0f}% of its speed "
                      "(threshold {threshold:g}%)").format(
                        interface=subject, device=name, value=util,
                        threshold=self.t.utilisation_percent),
                    problem, at, name, subject, Severity.MEDIUM,
                    {**base, "utilisation_percent": round(util, 1),
                     "threshold": self.t.utilisation_percent, "speed_bps": r.speed_bps},
                    urgency=Level.MEDIUM))
        return out


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s"
