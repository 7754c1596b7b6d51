"""UPS detectors over the `ups` values of `snmp_poll` events (UPS-MIB, APC PowerNet, ...):
pure, the time is the record's. Every kind's dedup key is `{kind}:{device}`, the same keys
the trap receiver uses for RFC 1628 / APC traps, so a trap and the next poll fold into one
incident.

| kind | fires when |
| ups_on_battery | the output is fed by the battery |
| ups_battery_low | battery status low/depleted, or charge below `ups_charge_percent` |
| ups_runtime_low | estimated runtime below `ups_runtime_minutes` |
| ups_overload | output load above `ups_load_percent`, or the agent's overload alarm |
| ups_battery_replace | the agent says the battery needs replacing |
| ups_input_voltage_out_of_range | input voltage outside [min, max] |

A value the UPS does not report never fires (and never clears a finding) by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from monitord.config import SnmpThresholds
from monitord.detectors.network import PollDetector, _Problem, make_finding, step
from monitord.i18n import N_, _
from monitord.records import Category, Event, Finding, Level, Sample, Severity


@dataclass(frozen=True, slots=True)
class UpsRule:
    kind: str
    severity: Severity
    urgency: Level
    summary: str
    check: Callable[[Mapping[str, Any], SnmpThresholds], bool | None]  # None: cannot tell


def _on_battery(u, t):
    return u.get("on_battery")


def _battery_low(u, t):
    status, charge = u.get("battery_status"), u.get("charge_percent")
    if status is None and charge is None:
        return None
    return status in ("low", "depleted") or (charge is not None and
                                               charge < t.ups_charge_percent)


def _runtime_low(u, t):
    runtime = u.get("runtime_minutes")
    return None if runtime is None else runtime < t.ups_runtime_minutes


def _overload(u, t):
    load, alarm = u.get("output_load_percent"), u.get("overload")
    if load is None and alarm is None:
        return None
    return bool(alarm) or (load is not None and load > t.ups_load_percent)


def _replace(u, t):
    return u.get("battery_replace")


def _voltage(u, t):
    volts = u.get("input_voltage_v")
    if volts is None:
        return None
    return not t.ups_input_voltage_min <= volts <= t.ups_input_voltage_max


RULES = (
    UpsRule("ups_on_battery", Severity.HIGH, Level.HIGH,
            N_("UPS {device} is running on battery"), _on_battery),
    UpsRule("ups_battery_low", Severity.CRITICAL, Level.HIGH,
            N_("UPS {device} battery is low ({charge}% charge)"), _battery_low),
    UpsRule("ups_runtime_low", Severity.CRITICAL, Level.HIGH,
            N_("UPS {device} has {runtime} minutes of runtime left"), _runtime_low),
    UpsRule("ups_overload", Severity.HIGH, Level.HIGH,
            N_("UPS {device} output is overloaded ({load}% load)"), _overload),
    UpsRule("ups_battery_replace", Severity.MEDIUM, Level.MEDIUM,
            N_("UPS {device} battery needs replacing"), _replace),
    UpsRule("ups_input_voltage_out_of_range", Severity.HIGH, Level.HIGH,
            N_("UPS {device} input voltage {voltage} V is out of range ({low:g}-{high:g} V)"),
            _voltage),
)


@dataclass(slots=True)
class _Ups:
    problems: dict[str, _Problem] = field(default_factory=dict)


class UpsDetector(PollDetector):
    name = "ups"

    def __init__(self, thresholds: SnmpThresholds | None = None) -> None:
        super().__init__(thresholds)
        self._units: dict[str, _Ups] = {}

    def observe(self, record: Sample | Event) -> list[Finding]:
        result = self.poll_result(record)
        if result is None or not result.ok or not result.ups:
            return []
        ups = result.ups
        unit = self._units.setdefault(record.device, _Ups())
        out = []
        for rule in RULES:
            verdict = rule.check(ups, self.t)
            if verdict is None:
                continue
            problem = unit.problems.setdefault(rule.kind, _Problem())
            state = step(problem, bool(verdict), record.at)
            if state is None:
                continue
            text = _(rule.summary).format(
                device=record.device, charge=_show(ups.get("charge_percent")),
                runtime=_show(ups.get("runtime_minutes")),
                load=_show(ups.get("output_load_percent")),
                voltage=_show(ups.get("input_voltage_v")), low=self.t.ups_input_voltage_min,
                high=self.t.ups_input_voltage_max)
            evidence = {k: ups.get(k) for k in ("battery_status", "charge_percent",
                                                 "runtime_minutes", "output_load_percent",
                                                 "input_voltage_v", "on_battery")}
            out.append(make_finding(rule.kind, state, f"{rule.kind}:{record.device}", text,
                                    problem, record.at, record.device, None, rule.severity,
                                    evidence, category=Category.SERVER, urgency=rule.urgency,
                                    impact=Level.HIGH))
        return out


def _show(value: Any) -> str:
    return "?" if value is None else f"{value:g}" if isinstance(value, (int, float)) \
        else str(value)
