"""`SnmpCollector`: the Collector protocol for one configured device, and the Prometheus view
of every polled value.

Records per poll are few on purpose (the benchmark counts them): one `Event` of kind
`snmp_poll` carrying a typed `PollResult` (reachability, restart, interface rates, UPS values,
temperatures) for the pure network and UPS detectors, plus the `host_*` samples
(`host_cpu_percent`, `host_memory_percent`, `host_disk_used_percent{mount}`) that the host
detector already judges, so a server polled over HOST-RESOURCES/UCD gets the same `cpu_high`,
`memory_high` and `disk_full` kinds and thresholds as the host monitord runs on.

The collector never raises for a device problem: a timeout or wrong credentials is a
`PollResult` with `reason`, so "N failed polls in a row" is counted by the detector at the
normal interval instead of disappearing into the scheduler's backoff.

Metrics are rendered at scrape time from the latest snapshot of each device
(`SnmpMetricsCollector`), so a poll costs no per-value metric updates at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitord.collectors.base import Record
from monitord.collectors.snmp import ber
from monitord.collectors.snmp.poller import DeviceSnapshot, poll_device
from monitord.collectors.snmp.profiles import Profile, load_profiles
from monitord.collectors.snmp.rates import InterfaceRates, RateState
from monitord.collectors.snmp.transport import SnmpTransport, Target, V2Session
from monitord.collectors.snmp.v3 import V3Session, V3Target
from monitord.records import Event, Sample

POLL_EVENT = "snmp_poll"


@dataclass(frozen=True, slots=True)
class PollResult:
    """What the detectors see of one poll (the `result` field of the `snmp_poll` event)."""

    ok: bool
    reason: str | None  # None | "timeout" | "auth" | "error"
    uptime_s: float | None = None
    restarted: bool = False
    interfaces: tuple[InterfaceRates, ...] = ()
    ups: Mapping[str, Any] | None = None
    temperatures: Mapping[str, float] = field(default_factory=dict)


class SnmpMetrics:
    """Poll duration and errors (updated per poll) plus the polled values (rendered from the
    latest snapshots at scrape time). Labels: device, ifIndex/ifName, sensor, reason: all
    bounded by the configuration and the devices' own tables."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "monitord_snmp_poll_duration_seconds", "Wall time of one device poll.", ["device"],
            registry=registry, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.errors = Counter("monitord_snmp_poll_errors_total",
                              "Failed device polls by reason (timeout, auth, error).",
                              ["device", "reason"], registry=registry)
        self.decode_errors = Counter("monitord_snmp_decode_errors_total",
                                     "SNMP datagrams that could not be decoded (dropped).",
                                     registry=registry)
        self.latest: dict[str, tuple[DeviceSnapshot, tuple[InterfaceRates, ...]]] = {}
        self._labels: dict[tuple[str, int, str], str] = {}
        registry.register(_ValuesCollector(self))

    def observe(self, snapshot: DeviceSnapshot, rates: tuple[InterfaceRates, ...]) -> None:
        self.duration.labels(snapshot.device).observe(snapshot.duration_s)
        if snapshot.error:
            self.errors.labels(snapshot.device, snapshot.error).inc()
        else:
            self.latest[snapshot.device] = (snapshot, rates)

    def render_text(self) -> str:
        """The per-interface families (status, speed, counters, rates: 11 lines per interface)
        in the Prometheus text format, appended to the registry's exposition by /metrics
        (`Metrics.text_sources`).

        Why not a registry collector: prometheus_client validates and escapes every label
        name and value of every sample again (about 11 us a line); a 50-port switch is ~550
        lines, and that cost was more than the whole poll (bench/snmp_poll.py). Here the label
        string of an interface is escaped once and reused while the interface exists."""
        latest = list(self.latest.items())
        old = self._labels
        cache: dict[tuple[str, int, str], str] = {}
        lines: dict[str, list[str]] = {name: [] for name, _h, _t in _IF_FAMILIES}
        oper, admin, speed = (lines["monitord_snmp_if_oper_up"],
                              lines["monitord_snmp_if_admin_up"],
                              lines["monitord_snmp_if_speed_bps"])
        counters = [(lines[name + "_total"], name + "_total", attr)
                    for name, _doc, attr in _IF_COUNTERS]
        rate_in, rate_out = lines["monitord_snmp_if_in_bps"], lines["monitord_snmp_if_out_bps"]
        for device, (snap, rates) in latest:
            for iface in snap.interfaces:
                key = (device, iface.if_index, (iface.if_name or iface.if_descr or "")[:64])
                lab = cache.get(key) or old.get(key) or _label_text(*key)
                cache[key] = lab
                oper.append(f"monitord_snmp_if_oper_up{lab}"
                            f"{'1.0' if iface.oper_status == 'up' else '0.0'}\n")
                admin.append(f"monitord_snmp_if_admin_up{lab}"
                             f"{'1.0' if iface.admin_status == 'up' else '0.0'}\n")
                if iface.speed_bps is not None:
                    speed.append(f"monitord_snmp_if_speed_bps{lab}{float(iface.speed_bps)!r}\n")
                for out, name, attr in counters:
                    value = getattr(iface, attr)
                    if value is not None:
                        out.append(f"{name}{lab}{float(value)!r}\n")
            for r in rates:
                key = (device, r.if_index, r.if_name[:64])
                lab = cache.get(key) or old.get(key) or _label_text(*key)
                cache[key] = lab
                if r.in_bps is not None:
                    rate_in.append(f"monitord_snmp_if_in_bps{lab}{float(r.in_bps)!r}\n")
                if r.out_bps is not None:
                    rate_out.append(f"monitord_snmp_if_out_bps{lab}{float(r.out_bps)!r}\n")
        self._labels = cache  # only interfaces that still exist stay cached
        return "".join(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n" + "".join(lines[name])
                       for name, doc, kind in _IF_FAMILIES)

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        for device in [d for d in self.latest if d not in keep]:
            del self.latest[device]


_IF_GAUGES = (
    ("monitord_snmp_if_oper_up", "1 when ifOperStatus is up.", None),
    ("monitord_snmp_if_admin_up", "1 when ifAdminStatus is up.", None),
    ("monitord_snmp_if_speed_bps", "Interface speed in bits per second.", "speed_bps"),
)
_IF_COUNTERS = (
    ("monitord_snmp_if_in_octets", "ifHCInOctets (ifInOctets without 64-bit).", "in_octets"),
    ("monitord_snmp_if_out_octets", "ifHCOutOctets (ifOutOctets without 64-bit).",
     "out_octets"),
    ("monitord_snmp_if_in_errors", "ifInErrors.", "in_errors"),
    ("monitord_snmp_if_out_errors", "ifOutErrors.", "out_errors"),
    ("monitord_snmp_if_in_discards", "ifInDiscards.", "in_discards"),
    ("monitord_snmp_if_out_discards", "ifOutDiscards.", "out_discards"),
)
_RATE_GAUGES = (
    ("monitord_snmp_if_in_bps", "Inbound bits per second."),
    ("monitord_snmp_if_out_bps", "Outbound bits per second."),
)
# (sample name, HELP, TYPE) of every family render_text writes, in order.
_IF_FAMILIES = tuple(
    [(name, doc, "gauge") for name, doc, _a in _IF_GAUGES]
    + [(name + "_total", doc, "counter") for name, doc, _a in _IF_COUNTERS]
    + [(name, doc, "gauge") for name, doc in _RATE_GAUGES])


def _escape(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(device: str, if_index: int, if_name: str) -> str:
    return f'{{device="{_escape(device)}",ifIndex="{if_index}",ifName="{_escape(if_name)}"}} '


_UPS_GAUGES = (
    ("charge_percent", "monitord_snmp_ups_charge_percent", "Battery charge remaining (%)."),
    ("runtime_minutes", "monitord_snmp_ups_runtime_minutes", "Estimated runtime (minutes)."),
    ("output_load_percent", "monitord_snmp_ups_output_load_percent", "Output load (%)."),
    ("input_voltage_v", "monitord_snmp_ups_input_voltage_volts", "Input voltage."),
    ("output_voltage_v", "monitord_snmp_ups_output_voltage_volts", "Output voltage."),
    ("temperature_c", "monitord_snmp_ups_temperature_celsius", "UPS/battery temperature."),
    ("on_battery", "monitord_snmp_ups_on_battery", "1 when the output is fed by the battery."),
    ("battery_replace", "monitord_snmp_ups_battery_replace", "1 when the battery needs "
                                                              "replacing."),
)


class _ValuesCollector:
    def __init__(self, owner: SnmpMetrics) -> None:
        self.owner = owner

    def describe(self):
        return []

    def collect(self):
        latest = list(self.owner.latest.items())
        up = GaugeMetricFamily("monitord_snmp_uptime_seconds", "sysUpTime of the agent.",
                               labels=["device"])
        cpu = GaugeMetricFamily("monitord_snmp_cpu_percent", "CPU busy (%).", labels=["device"])
        mem = GaugeMetricFamily("monitord_snmp_memory_percent", "Memory used (%).",
                                labels=["device"])
        temp = GaugeMetricFamily("monitord_snmp_temperature_celsius", "Temperature sensors.",
                                 labels=["device", "sensor"])
        store = GaugeMetricFamily("monitord_snmp_storage_used_percent", "Disk used (%).",
                                  labels=["device", "mount"])
        ups = {key: GaugeMetricFamily(name, doc, labels=["device"])
               for key, name, doc in _UPS_GAUGES}
        for device, (snap, rates) in latest:
            if snap.uptime_ticks is not None:
                up.add_metric([device], snap.uptime_ticks / 100)
            if snap.cpu_percent is not None:
                cpu.add_metric([device], float(snap.cpu_percent))
            if snap.memory_percent is not None:
                mem.add_metric([device], float(snap.memory_percent))
            for sensor, value in list(snap.temperatures.items())[:64]:
                temp.add_metric([device, sensor[:64]], float(value))
            for disk in (snap.storage or [])[:64]:
                store.add_metric([device, str(disk["descr"])[:64]], float(disk["used_percent"]))
            for key, family in ups.items():
                value = (snap.ups or {}).get(key)
                if value is not None:
                    family.add_metric([device], float(value))
        yield from (up, cpu, mem, temp, store, *ups.values())


_SHARED: dict[int, SnmpTransport] = {}


def shared_transport(metrics: SnmpMetrics | None = None) -> SnmpTransport:
    """One UDP socket per event loop for every v1/v2c device."""
    import asyncio
    loop_id = id(asyncio.get_running_loop())
    transport = _SHARED.get(loop_id)
    if transport is None:
        transport = SnmpTransport(on_decode_error=(metrics.decode_errors.inc
                                                   if metrics is not None else None))
        _SHARED.clear()  # an old loop's socket is of no use
        _SHARED[loop_id] = transport
    return transport


class SnmpCollector:
    """Polls one device every interval (one `RunningCollector` per device; all share the
    transport). `client_factory()` builds the session lazily on the running loop."""

    def __init__(self, device: str, client_factory, profile_names: Sequence[str] = (),
                 profiles: Mapping[str, Profile] | None = None,
                 metrics: SnmpMetrics | None = None) -> None:
        self.name = f"snmp:{device}"
        self.device = device
        self._factory = client_factory
        self._client = None
        self.profile_names = list(profile_names)
        self.profiles = profiles if profiles is not None else load_profiles()
        self.metrics = metrics
        self.rates = RateState()

    async def poll(self, now: datetime) -> list[Record]:
        if self._client is None:
            self._client = self._factory(self.metrics)
        snapshot = await poll_device(self._client, self.device, self.profile_names or None,
                                     self.profiles)
        return self.records(snapshot, now)

    def records(self, snapshot: DeviceSnapshot, now: datetime) -> list[Record]:
        """Turn one snapshot into records (and metrics); pure apart from the rate state."""
        if not snapshot.ok:
            if self.metrics is not None:
                self.metrics.observe(snapshot, ())
            return [Event(self.device, POLL_EVENT, now,
                          {"result": PollResult(False, snapshot.error)})]
        restarted, rates = self.rates.update(now.timestamp(), snapshot.uptime_ticks,
                                             snapshot.interfaces)
        rates_t = tuple(rates)
        if self.metrics is not None:
            self.metrics.observe(snapshot, rates_t)
        result = PollResult(
            True, None, None if snapshot.uptime_ticks is None else snapshot.uptime_ticks / 100,
            restarted, rates_t, snapshot.ups, dict(snapshot.temperatures))
        records: list[Record] = [Event(self.device, POLL_EVENT, now, {"result": result})]
        if snapshot.cpu_percent is not None:
            records.append(Sample(self.device, "host_cpu_percent",
                                  float(snapshot.cpu_percent), now))
        if snapshot.memory_percent is not None:
            records.append(Sample(self.device, "host_memory_percent",
                                  float(snapshot.memory_percent), now))
        if snapshot.load1 is not None:
            records.append(Sample(self.device, "host_load1", float(snapshot.load1), now))
            if snapshot.cpu_count:
                records.append(Sample(self.device, "host_load_per_cpu",
                                      float(snapshot.load1) / snapshot.cpu_count, now))
        for disk in snapshot.storage or ():
            records.append(Sample(self.device, "host_disk_used_percent",
                                  float(disk["used_percent"]), now,
                                  {"mount": str(disk["descr"])[:128]}))
        return records


def v2_factory(host: str, port: int, community: str, version: int, timeout: float,
               retries: int, max_repetitions: int):
    """A factory for `SnmpCollector` (the community is held here, never logged)."""
    def build(metrics: SnmpMetrics | None):
        target = Target(host, port, community.encode(), version, timeout, retries)
        return V2Session(shared_transport(metrics), target, max_repetitions)
    return build


def v3_factory(target: V3Target, max_repetitions: int = 50):
    def build(_metrics: SnmpMetrics | None):
        return V3Session(target, max_repetitions)
    return build


def build_collectors(config, metrics: SnmpMetrics | None) -> list[SnmpCollector]:
    """One collector per configured device with an SNMP credential (daemon and reload)."""
    from monitord.config import SnmpV1Credential, SnmpV2cCredential, SnmpV3Credential
    settings = config.snmp
    if not settings.enabled:
        return []
    extra = [settings.profiles_dir] if settings.profiles_dir else []
    profiles = load_profiles(extra)
    timeout = settings.timeout.total_seconds()
    out = []
    for device in config.devices:
        credential = config.credentials.get(device.credential) if device.credential else None
        if isinstance(credential, (SnmpV1Credential, SnmpV2cCredential)):
            version = ber.VERSION_1 if isinstance(credential, SnmpV1Credential) \
                else ber.VERSION_2C
            factory = v2_factory(device.address, device.snmp_port,
                                 credential.community.resolve().reveal(), version, timeout,
                                 settings.retries, settings.max_repetitions)
        elif isinstance(credential, SnmpV3Credential):
            factory = v3_factory(V3Target(
                device.address, device.snmp_port, credential.user, credential.auth_protocol,
                credential.auth_key.resolve().reveal(), credential.priv_protocol,
                credential.priv_key.resolve().reveal() if credential.priv_key else None,
                credential.context, timeout, settings.retries))
        else:
            continue
        out.append(SnmpCollector(device.name, factory, settings.profiles.get(device.name, ()),
                                 profiles, metrics))
    if metrics is not None:  # a reload that removed a device stops exporting its values
        metrics.forget(c.device for c in out)
    return out

