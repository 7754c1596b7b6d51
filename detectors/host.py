"""Host resource thresholds: a value past its threshold for N consecutive samples fires; the
first sample back clears. One table says what is watched (Home Assistant style).

The detector reads `host_*` samples with a device name and labels, never psutil objects, so the
same kinds and thresholds apply to the host monitord runs on (`collectors/host.py`) and to remote
servers polled over SNMP (HOST-RESOURCES / UCD), as long as those emit the same metric names.

A disk also has a trend: a least-squares line over the recent `host_disk_used_percent` samples
gives `hours_to_full`, which is evidence on every `disk_full` finding and, when it is below
`disk_hours_to_full`, fires `disk_full` before the percent threshold is reached."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from monitord.config import Config, HostThresholds
from monitord.i18n import N_, _
from monitord.records import Category, Event, Finding, FindingState, Level, Sample, Severity

# Thresholds that HostThresholds may not (yet) have: read with getattr, these are the defaults.
DEFAULTS: Mapping[str, float] = {
    "cpu_percent": 90.0,
    "memory_percent": 90.0,
    "swap_percent": 80.0,
    "disk_used_percent": 90.0,
    "load_per_cpu": 2.0,
    "inodes_used_percent": 90.0,
    "nic_errors_per_second": 1.0,
    "disk_hours_to_full": 24.0,      # 0 turns the trend alarm off (the estimate stays evidence)
    "clock_offset_seconds": 1.0,
    "disk_trend_window": 6 * 3600.0,  # seconds of samples the trend line is fitted to
    "disk_trend_min_samples": 5,
    "disk_trend_min_span": 600.0,    # seconds the samples must cover before a trend is trusted
    "consecutive": 3,
}
TREND_MAX_SAMPLES = 720  # per mount: bounded whatever the interval


@dataclass(frozen=True, slots=True)
class Rule:
    metric: str
    threshold: str | None  # attribute of HostThresholds; None: the fixed `limit`
    kind: str
    severity: Severity
    urgency: Level
    summary: str  # translatable, formatted with device, subject, value, threshold
    subject_label: str = ""
    below: bool = False  # fires when the value is BELOW the threshold
    limit: float = 0.0
    limit_label: str = ""  # a label that overrides `limit` (host_process_count's min_count)
    absolute: bool = False  # compare |value| (a clock may be ahead or behind)


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
         N_("Disk {subject} at {value:.0f}% on {device} (threshold {threshold:g}%)"), "mount"),
    Rule("host_inodes_used_percent", "inodes_used_percent", "inodes_full", Severity.HIGH,
         Level.HIGH,
         N_("Inodes of {subject} at {value:.0f}% on {device} (threshold {threshold:g}%)"),
         "mount"),
    Rule("host_nic_errors_per_second", "nic_errors_per_second", "nic_errors", Severity.MEDIUM,
         Level.MEDIUM,
         N_("{subject} on {device}: {value:.1f} errors and drops per second "
            "(threshold {threshold:g})"), "nic"),
    Rule("host_process_count", None, "process_down", Severity.HIGH, Level.HIGH,
         N_("Process {subject} is not running on {device} ({value:.0f} of {threshold:g})"),
         "process", below=True, limit=1.0, limit_label="min_count"),
    Rule("host_port_listening", None, "port_not_listening", Severity.HIGH, Level.HIGH,
         N_("Nothing listens on port {subject} on {device}"), "port", below=True, limit=1.0),
    Rule("host_clock_offset_seconds", "clock_offset_seconds", "clock_offset", Severity.MEDIUM,
         Level.MEDIUM,
         N_("The clock of {device} is {value:+.3f} s off the NTP server (threshold "
            "{threshold:g} s)"), absolute=True),
)
_BY_METRIC = {rule.metric: rule for rule in RULES}
DISK_FILLING = N_("Disk {subject} at {value:.0f}% on {device} will be full in about "
                  "{hours:.1f} hours at the current rate")
KINDS = tuple(rule.kind for rule in RULES)


def time_to_full(points: Sequence[tuple[float, float]], capacity: float = 100.0
                 ) -> tuple[float | None, float]:
    """Least-squares line through (seconds, percent) points -> (hours until `capacity`, slope in
    percent per hour). Hours is None when the line is flat or falling; 0 when already full."""
    n = len(points)
    if n < 2:
        return None, 0.0
    mean_t = sum(t for t, _v in points) / n
    mean_v = sum(v for _t, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _v in points)
    if var_t == 0:
        return None, 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var_t  # percent per second
    per_hour = slope * 3600.0
    last = points[-1][1]
    if last >= capacity:
        return 0.0, per_hour
    if slope <= 1e-12:
        return None, per_hour
    return (capacity - last) / per_hour, per_hour


@dataclass(slots=True)
class _Track:
    above: int = 0
    firing: bool = False
    first_seen: datetime | None = None
    trend: deque = field(default_factory=lambda: deque(maxlen=TREND_MAX_SAMPLES))


class HostThresholdDetector:
    name = "host"

    def __init__(self, thresholds: HostThresholds | Any | None = None,
                 consecutive: int | None = None) -> None:
        """`consecutive` overrides the thresholds' (a one-shot `monitord check host` uses 1)."""
        self.thresholds = thresholds if thresholds is not None else HostThresholds()
        self.consecutive_override = consecutive
        self._tracks: dict[tuple[str, str, str], _Track] = {}

    def reconfigure(self, config: Config) -> None:
        self.thresholds = config.detectors.host

    def threshold(self, name: str) -> float:
        value = getattr(self.thresholds, name, None)
        if value is None:
            value = DEFAULTS[name]
        if isinstance(value, timedelta):
            return value.total_seconds()
        return float(value)

    @property
    def consecutive(self) -> int:
        if self.consecutive_override is not None:
            return self.consecutive_override
        return int(self.threshold("consecutive"))

    def observe(self, record: Sample | Event) -> list[Finding]:
        if not isinstance(record, Sample) or record.metric not in _BY_METRIC:
            return []
        rule = _BY_METRIC[record.metric]
        subject = record.labels.get(rule.subject_label, "") if rule.subject_label else ""
        key = (record.device, rule.metric, subject)
        track = self._tracks.setdefault(key, _Track())
        threshold = self._rule_threshold(rule, record)
        value = abs(record.value) if rule.absolute else record.value
        breach = value < threshold if rule.below else value > threshold
        extra: dict[str, Any] = {}
        if rule.kind == "disk_full":
            hours, slope = self._trend(track, record)
            extra = {"hours_to_full": None if hours is None else round(hours, 2),
                     "trend_percent_per_hour": round(slope, 4)}
            limit = self.threshold("disk_hours_to_full")
            if hours is not None and limit > 0 and hours <= limit:
                extra["filling"] = True
                breach = True
        if breach:
            track.above += 1
            if track.above < self.consecutive:
                return []
            if not track.firing:
                track.firing, track.first_seen = True, record.at
            return [self._finding(rule, record, subject, threshold, FindingState.FIRING, track,
                                  extra)]
        track.above = 0
        if track.firing:
            track.firing = False
            return [self._finding(rule, record, subject, threshold, FindingState.CLEARED, track,
                                  extra)]
        return []

    def firing(self) -> list[tuple[str, str, str]]:
        """(device, metric, subject) of every problem firing now."""
        return [key for key, track in self._tracks.items() if track.firing]

    # -- helpers ----------------------------------------------------------------------------

    def _rule_threshold(self, rule: Rule, record: Sample) -> float:
        if rule.threshold is not None:
            return self.threshold(rule.threshold)
        if rule.limit_label and rule.limit_label in record.labels:
            try:
                return float(record.labels[rule.limit_label])
            except ValueError:
                pass
        return rule.limit

    def _trend(self, track: _Track, record: Sample) -> tuple[float | None, float]:
        at = record.at.timestamp()
        if track.trend and at <= track.trend[-1][0]:
            track.trend.clear()  # the clock went back (or a replay restarted): start again
        track.trend.append((at, float(record.value)))
        window = self.threshold("disk_trend_window")
        while track.trend and track.trend[0][0] < at - window:
            track.trend.popleft()
        points = list(track.trend)
        if (len(points) < self.threshold("disk_trend_min_samples")
                or points[-1][0] - points[0][0] < self.threshold("disk_trend_min_span")):
            return None, 0.0
        return time_to_full(points)

    def _finding(self, rule: Rule, record: Sample, subject: str, threshold: float,
                 state: FindingState, track: _Track, extra: Mapping[str, Any]) -> Finding:
        severity = rule.severity
        summary = rule.summary
        hours = extra.get("hours_to_full")
        if rule.kind == "disk_full":
            if record.value <= threshold:  # fired by the trend alone: not full yet
                severity = Severity.MEDIUM
            if hours is not None:
                summary = DISK_FILLING
        text = _(summary).format(device=record.device, subject=subject, value=record.value,
                                 threshold=threshold, hours=hours or 0.0)
        evidence = {"metric": rule.metric, "value": round(record.value, 2),
                    "threshold": threshold, "consecutive": self.consecutive, **extra}
        return Finding(
            kind=rule.kind, category=Category.SERVER, severity=severity, state=state,
            dedup_key=f"{rule.kind}:{record.device}:{subject}",
            summary=text, first_seen=track.first_seen or record.at, last_seen=record.at,
            device=record.device, subject=subject or None, impact=Level.MEDIUM,
            urgency=rule.urgency, evidence=evidence,
        )


# -- a one-shot report (`monitord check host --json`) -----------------------------------------

def finding_json(finding: Finding) -> dict[str, Any]:
    return {"kind": finding.kind, "category": finding.category.value,
            "severity": finding.severity.value, "state": finding.state.value,
            "dedup_key": finding.dedup_key, "summary": finding.summary,
            "device": finding.device, "subject": finding.subject,
            "evidence": dict(finding.evidence)}


_SHORT = {"host_disk_used_percent": "used_percent", "host_disk_free_bytes": "free_bytes",
          "host_disk_total_bytes": "total_bytes", "host_nic_errors_per_second": "errors_per_second",
          "host_nic_errors_total": "errors_total", "host_nic_drops_total": "drops_total",
          "host_process_count": "count", "host_port_listening": "listening"}


def host_report(samples: Iterable[Sample], thresholds: HostThresholds | Any | None = None
                ) -> dict[str, Any]:
    """One poll's samples -> the JSON of `monitord check host`, with the findings this poll
    would raise at once (consecutive = 1). Pure: the samples carry everything."""
    samples = list(samples)
    detector = HostThresholdDetector(thresholds, consecutive=1)
    findings = [f for s in samples for f in detector.observe(s)]
    scalar = {s.metric: s.value for s in samples if not s.labels}
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for s in samples:
        for label, group in (("mount", "disks"), ("nic", "nics"), ("process", "processes"),
                             ("port", "ports")):
            if label in s.labels:
                entry = grouped.setdefault((group, s.labels[label]), {label: s.labels[label]})
                if "fstype" in s.labels:
                    entry["fstype"] = s.labels["fstype"]
                if "min_count" in s.labels:
                    entry["min_count"] = int(float(s.labels["min_count"]))
                if "proto" in s.labels:
                    entry["proto"] = s.labels["proto"]
                entry[_SHORT.get(s.metric, s.metric.removeprefix("host_"))] = round(s.value, 2)
                break
    listed: dict[str, list[dict[str, Any]]] = {"disks": [], "nics": [], "processes": [],
                                               "ports": []}
    for (group, _name), entry in grouped.items():
        listed[group].append(entry)
    for entry in listed["processes"]:
        entry["ok"] = entry.get("count", 0) >= entry.get("min_count", 1)
    for entry in listed["ports"]:
        entry["listening"] = entry.pop("listening", 0) >= 1
    return {
        "device": samples[0].device if samples else None,
        "at": samples[0].at.isoformat() if samples else None,
        "ok": not findings,
        "cpu": {"percent": scalar.get("host_cpu_percent"),
                "count": int(scalar.get("host_cpu_count", 0)) or None},
        "load": {"load1": scalar.get("host_load1"), "load5": scalar.get("host_load5"),
                 "load15": scalar.get("host_load15"),
                 "per_cpu": round(scalar.get("host_load_per_cpu", 0.0), 3)},
        "memory": {"percent": scalar.get("host_memory_percent"),
                   "available_bytes": scalar.get("host_memory_available_bytes")},
        "swap": {"percent": scalar.get("host_swap_percent")},
        "clock": {"offset_seconds": scalar.get("host_clock_offset_seconds"),
                  "ntp_reachable": None if "host_ntp_reachable" not in scalar
                  else scalar["host_ntp_reachable"] >= 1},
        **listed,
        "findings": [finding_json(f) for f in findings],
    }
