"""monitord's Prometheus metrics, created in one place at start on a private registry.

Labels are bounded: collector names and queue names come from code, finding kinds are capped
(`KIND_LABEL_CAP` distinct values, the rest reported as "other"), and no label ever holds a
device-supplied string or a secret."""

from __future__ import annotations

import logging
import platform
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitord import __version__
from monitord.metrics_values import ValueGauges

log = logging.getLogger("monitord.metrics")
KIND_LABEL_CAP = 200


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.text_sources: list[Callable[[], str]] = []
        r = self.registry
        self.build_info = Gauge("monitord_build_info", "Version of the running monitord.",
                                ["version", "python"], registry=r)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.collector_duration = Histogram(
            "monitord_collector_run_duration_seconds", "Duration of one collector run.",
            ["collector"], registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.collector_runs = Counter("monitord_collector_runs_total",
                                      "Collector runs by outcome.", ["collector", "outcome"],
                                      registry=r)
        self.collector_overruns = Counter(
            "monitord_collector_overruns_total",
            "Runs skipped because the previous run of the same job was still going.",
            ["collector"], registry=r)
        self.samples = Counter("monitord_samples_total", "Samples emitted by collectors.",
                               ["collector"], registry=r)
        self.queue_full = Counter("monitord_queue_full_total",
                                  "Times a producer had to wait because a queue was full.",
                                  ["queue"], registry=r)
        self.findings = Counter("monitord_findings_total", "Findings by kind and state.",
                                ["kind", "state"], registry=r)
        self.finding_outcomes = Counter("monitord_finding_outcomes_total",
                                        "What the incident manager did with findings.",
                                        ["action"], registry=r)
        self.store_commits = Counter("monitord_store_commits_total",
                                     "Incident-store transactions by outcome.", ["outcome"],
                                     registry=r)
        self.detector_errors = Counter("monitord_detector_errors_total",
                                       "Records a detector could not handle.", ["detector"],
                                       registry=r)
        self.reloads = Counter("monitord_config_reloads_total",
                               "Configuration reloads (SIGHUP) by outcome.", ["outcome"],
                               registry=r)
        self.sla_breaches = Counter("monitord_sla_breaches_total",
                                    "SOP steps that outlived their time standard.",
                                    ["workflow", "step"], registry=r)
        self._kinds: set[str] = set()
        self.values = ValueGauges()  # host, service-check and netconfig samples (issue 7)
        r.register(self.values)

    def exposition(self) -> bytes:
        """The /metrics body: the registry, then every `text_sources` text (families that are
        rendered directly because they are large, e.g. SNMP interfaces; see
        `SnmpMetrics.render_text`)."""
        body = generate_latest(self.registry)
        extra = [source() for source in self.text_sources]
        return body + "".join(extra).encode() if extra else body

    def kind_label(self, kind: str) -> str:
        if kind in self._kinds:
            return kind
        if len(self._kinds) >= KIND_LABEL_CAP:
            return "other"
        self._kinds.add(kind)
        return kind

    def watch_queues(self, depths: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        self.registry.register(_QueueCollector(depths))

    def watch_workflows(self, counts: Callable[[], "WorkflowCounts"]) -> None:
        self.registry.register(_WorkflowCollector(counts))

    def watch_store(self, open_counts: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self.registry.register(_OpenIncidentsCollector(open_counts))


class _QueueCollector(Collector):
    def __init__(self, depths: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        self._depths = depths

    def collect(self):
        depth = GaugeMetricFamily("monitord_queue_depth", "Items waiting in a pipeline queue.",
                                  labels=["queue"])
        capacity = GaugeMetricFamily("monitord_queue_capacity", "Size bound of a pipeline queue.",
                                     labels=["queue"])
        for name, size, maxsize in self._depths():
            depth.add_metric([name], size)
            capacity.add_metric([name], maxsize)
        yield depth
        yield capacity


class _OpenIncidentsCollector(Collector):
    """Computed at scrape time from the store, so it is right after a restart too."""

    def __init__(self, counts: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self._counts = counts

    def collect(self):
        family = GaugeMetricFamily("monitord_incidents_open",
                                   "Open incidents by category and severity.",
                                   labels=["category", "severity"])
        up = GaugeMetricFamily("monitord_store_up", "1 if the incident store answered the scrape.")
        try:
            for category, severity, count in self._counts():
                family.add_metric([category, severity], count)
            up.add_metric([], 1)
        except Exception as exc:  # an outage must not break /metrics
            log.warning("store unavailable for metrics error=%s", type(exc).__name__)
            up.add_metric([], 0)
        yield family
        yield up


DURATION_BUCKETS = (300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 5 * 86400,
                    10 * 86400)


class WorkflowCounts:
    """What the store says at scrape time (see repository.workflow_counts)."""

    def __init__(self, open_by_step, acknowledge_s, resolve_s) -> None:
        self.open_by_step = open_by_step  # [(workflow, step, role, priority, count)]
        self.acknowledge_s = acknowledge_s  # seconds, incidents of the last 30 days
        self.resolve_s = resolve_s


def _histogram(name: str, documentation: str, values: list[float]):
    from prometheus_client.core import HistogramMetricFamily
    buckets, total = [], 0
    for bound in DURATION_BUCKETS:
        buckets.append((str(float(bound)), sum(1 for v in values if v <= bound)))
    buckets.append(("+Inf", len(values)))
    total = sum(values)
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total)


class _WorkflowCollector(Collector):
    def __init__(self, counts: Callable[[], WorkflowCounts]) -> None:
        self._counts = counts

    def collect(self):
        try:
            counts = self._counts()
        except Exception as exc:
            log.warning("store unavailable for workflow metrics error=%s", type(exc).__name__)
            return
        family = GaugeMetricFamily("monitord_workflow_incidents_open",
                                   "Open incidents by workflow, step, acting role and priority.",
                                   labels=["workflow", "step", "role", "priority"])
        for workflow, step, role, priority, count in counts.open_by_step:
            family.add_metric([workflow, step, role, priority], count)
        yield family
        yield _histogram("monitord_incident_time_to_acknowledge_seconds",
                         "From recording to the first person's action (last 30 days).",
                         counts.acknowledge_s)
        yield _histogram("monitord_incident_time_to_resolve_seconds",
                         "From recording to resolution (last 30 days).", counts.resolve_s)
