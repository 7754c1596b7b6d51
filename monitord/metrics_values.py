"""The latest value of every host, service-check and netconfig sample as a Prometheus gauge.

`host_cpu_percent` becomes `monitord_host_cpu_percent`, `service_latency_ms` becomes
`monitord_service_check_latency_ms`, `netconfig_up` becomes `monitord_netconfig_up`. Labels
are bounded: `device` (a configured device name, or this host's name), plus only the labels a
metric family is allowed to carry (a mount point, a NIC, a configured process, port or check
name); anything else a sample carries is dropped, and past `SERIES_CAP` series new ones are
counted in `monitord_value_series_dropped_total` instead of exported. Series not updated for
`STALE_SECONDS` (a removed check, an unplugged NIC) disappear."""

from __future__ import annotations

import threading
import time
from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitord.records import Sample

# sample prefix -> (exported prefix, labels the family may carry besides device)
FAMILIES = {
    "host_": ("monitord_host_", ("mount", "fstype", "nic", "disk", "process", "port",
                                 "proto")),
    "service_": ("monitord_service_check_", ("check", "kind")),
    "netconfig_": ("monitord_netconfig_", ()),
}
SERIES_CAP = 5000
STALE_SECONDS = 3 * 3600.0
HELP = {
    "monitord_service_check_up": "1 if the service check's last run succeeded.",
    "monitord_netconfig_up": "1 if the last configuration fetch over SSH succeeded.",
    "monitord_netconfig_config_changed": "1 if the last fetch found a new configuration.",
    "monitord_host_port_listening": "1 when something listens on the expected port.",
}


def exported_name(metric: str) -> tuple[str, tuple[str, ...]] | None:
    for prefix, (exported, labels) in FAMILIES.items():
        if metric.startswith(prefix):
            return exported + metric[len(prefix):], labels
    return None


class ValueGauges(Collector):
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # (name, device, ((label, value), ...)) -> (value, updated at)
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}
        self.dropped = 0

    def observe(self, records: Iterable[object]) -> None:
        now = self._clock()
        with self._lock:
            for record in records:
                if not isinstance(record, Sample):
                    continue
                named = exported_name(record.metric)
                if named is None:
                    continue
                name, allowed = named
                labels = tuple((k, str(record.labels[k])[:200]) for k in allowed
                               if k in record.labels)
                key = (name, str(record.device)[:200], labels)
                if key not in self._series and len(self._series) >= SERIES_CAP:
                    self.dropped += 1
                    continue
                self._series[key] = (float(record.value), now)

    def collect(self):
        now = self._clock()
        with self._lock:
            for key in [k for k, (_v, at) in self._series.items() if now - at > STALE_SECONDS]:
                del self._series[key]
            series = list(self._series.items())
            dropped = self.dropped
        families: dict[str, list] = {}
        for (name, device, labels), (value, _at) in series:
            families.setdefault(name, []).append((device, dict(labels), value))
        for name in sorted(families):
            rows = families[name]
            label_names = sorted({k for _d, labels, _v in rows for k in labels})
            documentation = HELP.get(name, f"Latest {name[9:]} sample.")
            if name.endswith("_total"):  # a device's own counter (NIC errors): a counter
                family = CounterMetricFamily(name.removesuffix("_total"), documentation,
                                             labels=["device", *label_names])
            else:
                family = GaugeMetricFamily(name, documentation, labels=["device", *label_names])
            for device, labels, value in rows:
                family.add_metric([device, *(labels.get(k, "") for k in label_names)], value)
            yield family
        counter = CounterMetricFamily("monitord_value_series_dropped",
                                      "Samples not exported because of the series cap.")
        counter.add_metric([], dropped)
        yield counter
