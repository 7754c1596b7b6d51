"""Host resource thresholds: a value above its threshold for N consecutive samples fires; the
first sample back below clears. One table says what is watched (Home Assistant style)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitord.config import Config, HostThresholds
from monitord.i18n import N_, _
from monitord.records import Category, Event, Finding, FindingState, Level, Sample, Severity


@dataclass(frozen=True, slots=True)
class Rule:
    metric: str
    threshold: str  # attribute of HostThresholds
    kind: str
    severity: Severity
    urgency: Level
    summary: str  # translatable, formatted with device, subject, value, threshold


RULES = (
    Rule("host_cpu_percent", "cpu_percent", "cpu_high", Severity.MEDIUM, Level.MEDIUM,
         N_("CPU at {value:.0f}% on {device} (threshold {threshold:g}%)")),
    Rule("host_memory_percent", "memory_percent", "memory_high", Severity.HIGH, Level.HIGH,
         N_("Memory at {value:.0f}% on {device} (threshold {threshold:g}%)")),
    Rule("host_swap_percent", "swap_percent", "swap_high", Severity.MEDIUM, Level.MEDIUM,
         N_("Swap at {value:.0f}% on {device} (threshold {threshold:g}%)")),
    Rule("host_load_per_cpu", "load_per_cpu", "load_high", Severity.MEDIUM, Level.MEDIUM,
         N_("Load {value:.2f} per CPU on {device} (threshold {threshold:g})")),
    Rule("host_disk_used_percent", "disk_used_percent", "disk_full", Severity.HIGH, Level.HIGH,
         N_("Disk {subject} at {value:.0f}% on {device} (threshold {threshold:g}%)")),
)
_BY_METRIC = {rule.metric: rule for rule in RULES}


@dataclass(slots=True)
class _Track:
    above: int = 0
    firing: bool = False
    first_seen: datetime | None = None


class HostThresholdDetector:
    name = "host"

    def __init__(self, thresholds: HostThresholds) -> None:
        self.thresholds = thresholds
        self._tracks: dict[tuple[str, str, str], _Track] = {}

    def reconfigure(self, config: Config) -> None:
        self.thresholds = config.detectors.host

    def observe(self, record: Sample | Event) -> list[Finding]:
        if not isinstance(record, Sample) or record.metric not in _BY_METRIC:
            return []
        rule = _BY_METRIC[record.metric]
        subject = record.labels.get("mount", "")
        key = (record.device, rule.metric, subject)
        track = self._tracks.setdefault(key, _Track())
        threshold = float(getattr(self.thresholds, rule.threshold))
        if record.value > threshold:
            track.above += 1
            if track.above < self.thresholds.consecutive:
                return []
            if not track.firing:
                track.firing, track.first_seen = True, record.at
            return [self._finding(rule, record, subject, threshold, FindingState.FIRING, track)]
        track.above = 0
        if track.firing:
            track.firing = False
            return [self._finding(rule, record, subject, threshold, FindingState.CLEARED, track)]
        return []

    def _finding(self, rule: Rule, record: Sample, subject: str, threshold: float,
                 state: FindingState, track: _Track) -> Finding:
        return Finding(
            kind=rule.kind, category=Category.SERVER, severity=rule.severity, state=state,
            dedup_key=f"{rule.kind}:{record.device}:{subject}",
            summary=_(rule.summary).format(device=record.device, subject=subject,
                                           value=record.value, threshold=threshold),
            first_seen=track.first_seen or record.at, last_seen=record.at,
            device=record.device, subject=subject or None, impact=Level.MEDIUM,
            urgency=rule.urgency,
            evidence={"metric": rule.metric, "value": round(record.value, 2),
                      "threshold": threshold, "consecutive": self.thresholds.consecutive},
        )
