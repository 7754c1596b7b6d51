"""The configuration schema: one YAML file validated into typed, frozen objects.

`monitord.config_loader` reads the file and turns every validation error into a message that
names the file, the line, the key path, what was found and what is expected. This module only
says what a valid configuration is.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import date, datetime, timedelta
from typing import Annotated, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from monitord.i18n import _
from monitord.records import Category, Level, Severity
from monitord.secrets import Secret, resolve_secret

DEFAULT_CONFIG_PATH = "/etc/monitord/monitord.yaml"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ROLE_CODES = ("HD", "PO", "KD", "KS", "KB", "TU")
DIVISIONS = ("SIM", "IPL", "IPK")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: object) -> object:
    """'30s', '5m', '1h', '2d' or a number of seconds -> timedelta."""
    if isinstance(value, bool):
        return value  # let pydantic reject it with its own message
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(_("a duration such as 30s, 5m, 1h or 2d"))
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Model):
    """Where a secret's value comes from; an inline value is never accepted."""

    env: str | None = None
    file: str | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretRef":
        given = [name for name in ("env", "file", "credential") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                _("exactly one of env, file or credential (systemd LoadCredential=)")
            )
        return self

    def resolve(self) -> Secret:
        return resolve_secret(self.env, self.file, self.credential)


def _secret_ref(value: object) -> object:
    if isinstance(value, str):
        raise ValueError(
            _("a reference such as {env: VARIABLE}, {file: /path} or {credential: NAME}; "
              "inline secrets are not accepted")
        )
    return value


SecretField = Annotated[SecretRef, BeforeValidator(_secret_ref)]


class Site(Model):
    name: Name
    description: str = ""
    address: str = ""


class SnmpV1Credential(Model):
    type: Literal["snmp_v1"]
    community: SecretField


class SnmpV2cCredential(Model):
    type: Literal["snmp_v2c"]
    community: SecretField


class SnmpV3Credential(Model):
    type: Literal["snmp_v3"]
    user: str
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] = "sha"
    auth_key: SecretField
    priv_protocol: Literal["none", "des", "aes", "aes192", "aes256"] = "aes"
    priv_key: SecretField | None = None
    context: str = ""

    @model_validator(mode="after")
    def _priv_needs_key(self) -> "SnmpV3Credential":
        if self.priv_protocol != "none" and self.priv_key is None:
            raise ValueError(_("priv_key when priv_protocol is not none (authPriv)"))
        return self


class SshCredential(Model):
    type: Literal["ssh"]
    username: str
    password: SecretField | None = None
    private_key: SecretField | None = None
    port: int = Field(22, ge=1, le=65535)


Credential = Annotated[
    Union[SnmpV1Credential, SnmpV2cCredential, SnmpV3Credential, SshCredential],
    Field(discriminator="type"),
]

DeviceKind = Literal["router", "switch", "firewall", "ups", "server", "pdu", "other"]


class Device(Model):
    name: Name
    address: str
    site: Name
    kind: DeviceKind
    credential: Name | None = None
    ssh_credential: Name | None = None
    parent: Name | None = None
    tags: tuple[str, ...] = ()
    snmp_port: int = Field(161, ge=1, le=65535)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not re.match(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                            r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$", value):
                raise ValueError(_("an IP address or a host name")) from None
        return value


class CollectorSettings(Model):
    enabled: bool = True
    interval: Duration = timedelta(seconds=60)
    jitter: Duration = timedelta(seconds=2)
    timeout: Duration = timedelta(seconds=30)


class HostCollectorSettings(CollectorSettings):
    """This host's checks. `processes`: names (or command-line substrings) that must run;
    `ports`: TCP ports something must listen on."""

    device: Name | None = None
    processes: tuple[str, ...] = ()
    ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = ()
    ntp_server: str | None = Field(None, pattern=r"^[A-Za-z0-9.:\[\]-]{1,260}$")  # HOST[:PORT]


# -- traffic capture and security detectors (issue 6) --------------------------------------------


class CaptureSettings(Model):
    """Live capture on one interface (AF_PACKET; the daemon needs CAP_NET_RAW and nothing else).
    Off unless `enabled`. `bpf` is a kernel filter in tcpdump syntax, compiled once at start."""

    enabled: bool = False
    interface: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:@-]{1,15}$")
    bpf: str = ""
    promiscuous: bool = False
    snaplen: int = Field(2048, ge=96, le=262144)
    buffer_mb: int = Field(32, ge=1, le=1024)
    stats_interval: Duration = timedelta(seconds=5)
    top_talkers: int = Field(10, ge=0, le=100)
    max_talkers: int = Field(10000, ge=10, le=1_000_000)
    # a pcap/pcapng file replayed once through the detectors at start, its times moved to
    # "now" (the demo's port scan; trying thresholds on a recorded incident)
    replay: str | None = None
    # findings below this severity are counted (monitord_traffic_findings_total) but open no
    # incident: by default a first-seen station (new_device, info) does not page the NOC
    min_severity: Severity = Severity.LOW

    @model_validator(mode="after")
    def _interface_when_enabled(self) -> "CaptureSettings":
        if self.enabled and not self.interface and not self.replay:
            raise ValueError(_("an interface name (interface: eth0) when capture is enabled"))
        if self.stats_interval.total_seconds() < 0.1:
            raise ValueError(_("a stats_interval of at least 100ms"))
        return self


def _settings_model(name: str, settings_class: type) -> type[Model]:
    """A config model with exactly the fields (and defaults) of a detector's settings dataclass,
    so the defaults live in one place: the detector. Sets become lists, mappings dicts."""
    import dataclasses
    import typing
    from pydantic import create_model

    hints = typing.get_type_hints(settings_class)
    fields: dict = {}
    for f in dataclasses.fields(settings_class):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        if origin is frozenset:
            fields[f.name] = (tuple[str, ...], tuple(sorted(default)))
        elif origin is not None and "Mapping" in str(origin):
            key, value = typing.get_args(hint)
            fields[f.name] = (dict[key, value], dict(default))
        elif hint is float:
            fields[f.name] = (float, Field(default, ge=0))
        elif hint is int:
            fields[f.name] = (int, Field(default, ge=0))
        else:
            fields[f.name] = (hint, default)
    return create_model(name, __base__=Model, **fields)


def _traffic_models() -> dict[str, tuple[type, type[Model]]]:
    from monitord.detectors.anomaly import AnomalySettings
    from monitord.detectors.arp import ArpSettings, MacFloodSettings, NewDeviceSettings
    from monitord.detectors.brute_force import BruteForceSettings
    from monitord.detectors.dhcp import DhcpSettings
    from monitord.detectors.dns_tunnel import DnsTunnelSettings
    from monitord.detectors.flood import FloodSettings
    from monitord.detectors.scan import ScanSettings

    pairs = {"port_scan": ScanSettings, "flood": FloodSettings, "arp_spoof": ArpSettings,
             "mac_flood": MacFloodSettings, "new_device": NewDeviceSettings,
             "rogue_dhcp": DhcpSettings, "dns_tunnel": DnsTunnelSettings,
             "brute_force": BruteForceSettings, "traffic_anomaly": AnomalySettings}
    return {key: (cls, _settings_model(cls.__name__ + "Config", cls))
            for key, cls in pairs.items()}


TRAFFIC_DETECTOR_MODELS = _traffic_models()


def _traffic_detectors_model() -> type[Model]:
    from pydantic import create_model

    fields: dict = {key: (model, model()) for key, (_cls, model) in
                    TRAFFIC_DETECTOR_MODELS.items()}
    # the NOC's own scanners and monitoring hosts (IPs or MACs): ignored by every detector
    fields["allowlist"] = (tuple[str, ...], ())
    return create_model("TrafficDetectors", __base__=Model, **fields)


TrafficDetectors = _traffic_detectors_model()

# -- end of traffic capture and security detectors (issue 6) -------------------------------------


class Collectors(Model):
    host: HostCollectorSettings = HostCollectorSettings(interval=timedelta(seconds=30))
    capture: CaptureSettings = CaptureSettings()
    backoff_max: Duration = timedelta(minutes=5)


class HostThresholds(Model):
    cpu_percent: float = Field(90.0, gt=0, le=100)
    memory_percent: float = Field(90.0, gt=0, le=100)
    swap_percent: float = Field(80.0, gt=0, le=100)
    disk_used_percent: float = Field(90.0, gt=0, le=100)
    load_per_cpu: float = Field(2.0, gt=0)
    inodes_used_percent: float = Field(90.0, gt=0, le=100)
    nic_errors_per_second: float = Field(1.0, gt=0)
    disk_hours_to_full: float = Field(24.0, ge=0)  # 0 = no early warning from the trend
    clock_offset_seconds: float = Field(1.0, gt=0)  # |offset| to collectors.host.ntp_server
    consecutive: int = Field(3, ge=1, le=100)


class ServiceThresholds(Model):
    """Defaults for every service check (`checks:` may override per check)."""

    failures: int = Field(3, ge=1, le=100)
    category: Category | None = None  # None: database for kind database, else application
    severity: Severity = Severity.HIGH
    impact: Level = Level.MEDIUM
    urgency: Level = Level.HIGH
    tls_warn_days: float = Field(30.0, gt=0)
    tls_critical_days: float = Field(7.0, ge=0)


class ServiceCheck(Model):
    """One e-government service to watch: ICMP, TCP, HTTP(S), TLS, DNS or a database port."""

    name: Name
    kind: Literal["icmp", "tcp", "http", "tls", "dns", "database"]
    target: str  # URL | HOST:PORT | HOST | DNS name
    device: Name | None = None
    enabled: bool = True
    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
    failures: int | None = Field(None, ge=1, le=100)
    category: Category | None = None
    tls_warn_days: float | None = Field(None, gt=0)
    match: str | None = None  # http: text the page must contain
    server: str | None = None  # dns: HOST[:PORT] of the server to ask
    expected: tuple[str, ...] | None = None  # dns: the answers expected

    def check_options(self) -> dict:
        wanted = {"http": ("match",), "dns": ("server", "expected")}.get(self.kind, ())
        options = {k: getattr(self, k) for k in wanted if getattr(self, k) is not None}
        options["timeout"] = self.timeout.total_seconds()
        return options

    def collector_settings(self) -> CollectorSettings:
        return CollectorSettings(enabled=self.enabled, interval=self.interval,
                                 jitter=timedelta(seconds=2), timeout=self.timeout * 4)


# -- netconfig (issue 7): device configuration over SSH with netmiko ----------------------------

# The command that prints the running configuration, per netmiko device type. A type not listed
# here needs `config_command` (a Linux box's "configuration" is whatever file the office keeps).
NETMIKO_CONFIG_COMMANDS = {
    "cisco_ios": "show running-config", "cisco_xe": "show running-config",
    "cisco_nxos": "show running-config", "cisco_asa": "show running-config",
    "cisco_xr": "show running-config", "arista_eos": "show running-config",
    "hp_procurve": "show running-config", "hp_comware": "display current-configuration",
    "huawei": "display current-configuration", "mikrotik_routeros": "/export",
    "juniper_junos": "show configuration | display set", "juniper": "show configuration",
    "fortinet": "show full-configuration", "paloalto_panos": "show config running",
    "ubiquiti_edgeswitch": "show running-config", "dell_os10": "show running-configuration",
}


class NetconfigDevice(Model):
    """One device whose configuration is fetched over SSH (its `ssh_credential`) on a schedule.
    `commands` are extra `show` commands kept beside it; `mask` adds words whose lines are
    masked before anything is stored or diffed (password, secret, key, community and the like
    always are)."""

    device: Name
    device_type: str
    config_command: str | None = None
    commands: tuple[str, ...] = ()
    interval: Duration = timedelta(hours=1)
    timeout: Duration = timedelta(seconds=60)
    enabled: bool = True
    mask: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{2,40}$")], ...] = ()

    @field_validator("device_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from netmiko.ssh_dispatcher import CLASS_MAPPER
        if value not in CLASS_MAPPER or value.endswith(("_telnet", "_serial")):
            raise ValueError(_("a netmiko SSH device type such as cisco_ios, mikrotik_routeros, "
                               "juniper_junos, hp_procurve or linux"))
        return value

    @model_validator(mode="after")
    def _has_command(self) -> "NetconfigDevice":
        if self.config_command is None and self.device_type.removesuffix("_ssh") \
                not in NETMIKO_CONFIG_COMMANDS:
            raise ValueError(_("config_command (no default for this device type), such as "
                               "'cat /etc/network/interfaces'"))
        return self

    @property
    def command(self) -> str:
        return self.config_command or \
            NETMIKO_CONFIG_COMMANDS[self.device_type.removesuffix("_ssh")]

    def collector_settings(self) -> CollectorSettings:
        # each step (TCP probe, host-key handshake, login, every command) is bounded by
        # `timeout`; the job's budget covers them all so a slow device is not cut mid-session
        jitter = timedelta(seconds=min(30.0, self.interval.total_seconds() / 10))
        return CollectorSettings(enabled=self.enabled, interval=self.interval, jitter=jitter,
                                 timeout=self.timeout * (5 + len(self.commands)))

# -- end netconfig ------------------------------------------------------------------------------


class Detectors(Model):
    host: HostThresholds = HostThresholds()
    services: ServiceThresholds = ServiceThresholds()
    traffic: TrafficDetectors = TrafficDetectors()  # type: ignore[valid-type]


class IncidentSettings(Model):
    resolve_hold: Duration = timedelta(minutes=5)
    flap_window: Duration = timedelta(hours=1)
    flap_threshold: int = Field(5, ge=2)
    batch_max: int = Field(500, ge=1, le=10000)
    # a child's device_unreachable waits this long for its parent's before it opens its own
    topology_hold: Duration = timedelta(seconds=90)


class Queues(Model):
    samples: int = Field(10000, ge=10)
    findings: int = Field(10000, ge=10)


class Storage(Model):
    url: str = "sqlite:////var/lib/monitord/monitord.db"
    password: SecretField | None = None
    sqlite_synchronous: Literal["full", "normal"] = "full"
    pool_size: int = Field(5, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError(
                _("a database URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
            )
        if re.match(r"^postgresql(\+\w+)?://[^/@]*:[^/@]*@", value):
            raise ValueError(_("a URL without a password; put it under storage.password"))
        return value


class Http(Model):
    listen: str = "127.0.0.1:9877"
    ingest_token: SecretField | None = None
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(_("HOST:PORT, such as 127.0.0.1:9877"))
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(_("IP addresses or networks of reverse proxies, such as "
                                   "127.0.0.1 or 10.0.0.0/24")) from None
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


NotifyEvent = Literal["incident_opened", "incident_reopened", "incident_resolved",
                      "incident_flapping"]
ALL_EVENTS: tuple[NotifyEvent, ...] = ("incident_opened", "incident_reopened", "incident_resolved",
                                       "incident_flapping")


class _Channel(Model):
    name: Name
    events: tuple[NotifyEvent, ...] = ALL_EVENTS
    min_severity: Severity = Severity.LOW


class EmailChannel(_Channel):
    """SMTP. Tickets go to each person's `email`; `to` adds fixed addresses (a NOC list)."""

    type: Literal["email"]
    smtp_host: str
    smtp_port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    sender: str
    to: tuple[str, ...] = ()
    username: str | None = None
    password: SecretField | None = None
    timeout: Duration = timedelta(seconds=20)


class TelegramChannel(_Channel):
    """Telegram Bot API. Tickets go to each person's `telegram_chat_id`; `chat_id` adds a
    group chat."""

    type: Literal["telegram"]
    bot_token: SecretField
    chat_id: str | None = None
    base_url: str = Field("https://api.telegram.org", pattern=r"^https?://")
    timeout: Duration = timedelta(seconds=20)


class WebhookChannel(_Channel):
    """JSON POST of every ticket, signed with HMAC-SHA256 of the body (X-Monitord-Signature)."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    hmac_secret: SecretField | None = None
    timeout: Duration = timedelta(seconds=20)


class LogChannel(_Channel):
    type: Literal["log"]


Channel = Annotated[
    Union[EmailChannel, TelegramChannel, WebhookChannel, LogChannel],
    Field(discriminator="type"),
]


class Notifications(Model):
    channels: tuple[Channel, ...] = ()
    retry_initial: Duration = timedelta(seconds=30)
    retry_max: Duration = timedelta(hours=1)
    worker_interval: Duration = timedelta(seconds=5)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")


def _office_hours(value: object) -> object:
    if isinstance(value, str):
        match = _HOURS.match(value)
        start, _sep, end = value.partition("-")
        if not match or end > "24:00" or end <= start:
            raise ValueError(_("office hours as HH:MM-HH:MM, such as 07:30-16:00"))
    return value


class WorkingCalendar(Model):
    """When the office works: "1 hari kerja" (one working day) is counted on this calendar.
    Days not listed in `office_hours` are days off; public holidays come from the `holidays`
    package for `country`, plus `extra_holidays` (cuti bersama) minus `extra_working_days`."""

    office_hours: dict[Weekday, Annotated[str, BeforeValidator(_office_hours)]] = {
        "mon": "08:00-16:00", "tue": "08:00-16:00", "wed": "08:00-16:00",
        "thu": "08:00-16:00", "fri": "08:00-16:30"}
    country: str = "ID"
    extra_holidays: tuple[date, ...] = ()
    extra_working_days: tuple[date, ...] = ()

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        import holidays
        if value not in holidays.list_supported_countries():
            raise ValueError(_("a country code the holidays package knows, such as ID"))
        return value


class Person(Model):
    """Someone who acts on tickets. `roles` are role codes of the loaded workflows (the DKI
    ladder's HD, PO, KD, KS, KB, or an office's own)."""

    name: Name
    full_name: str = ""
    roles: tuple[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,15}$")], ...] = Field(min_length=1)
    division: Literal[DIVISIONS] | None = None  # type: ignore[valid-type]
    email: str | None = None
    phone: str | None = None
    telegram_chat_id: str | None = None
    language: Literal["en", "id"] | None = None
    # When this person is on duty (office time zone); none = always. Tickets go to the people
    # of a role who are on duty, or to all of them when nobody is.
    working_hours: dict[Weekday, Annotated[str, BeforeValidator(_office_hours)]] | None = None

    def on_duty(self, local: datetime) -> bool:
        if self.working_hours is None:
            return True
        spec = self.working_hours.get(("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                                      [local.weekday()])
        if spec is None:
            return False
        start, _sep, end = spec.partition("-")
        return start <= local.strftime("%H:%M") < end


Priority = Literal["P1", "P2", "P3", "P4"]


class SlaTarget(Model):
    respond: Duration
    resolve: Duration
    working_time: bool = True


_DEFAULT_SLA = {
    "P1": SlaTarget(respond=timedelta(minutes=15), resolve=timedelta(hours=4),
                    working_time=False),
    "P2": SlaTarget(respond=timedelta(hours=1), resolve=timedelta(hours=8)),
    "P3": SlaTarget(respond=timedelta(hours=4), resolve=timedelta(hours=16)),
    "P4": SlaTarget(respond=timedelta(hours=8), resolve=timedelta(hours=40)),
}


class PrioritySettings(Model):
    """Impact x urgency -> priority (the Katingan SOP's matrix) and each priority's SLA."""

    matrix: dict[Level, dict[Level, Priority]] = {
        Level.HIGH: {Level.HIGH: "P1", Level.MEDIUM: "P2", Level.LOW: "P3"},
        Level.MEDIUM: {Level.HIGH: "P2", Level.MEDIUM: "P3", Level.LOW: "P4"},
        Level.LOW: {Level.HIGH: "P3", Level.MEDIUM: "P4", Level.LOW: "P4"},
    }
    sla: dict[Priority, SlaTarget] = _DEFAULT_SLA

    @field_validator("sla", mode="after")
    @classmethod
    def _keep_defaults(cls, value: dict) -> dict:
        """Setting one priority's SLA keeps the defaults of the others."""
        return {**_DEFAULT_SLA, **value}

    @model_validator(mode="after")
    def _complete(self) -> "PrioritySettings":
        for impact in Level:
            for urgency in Level:
                if urgency not in self.matrix.get(impact, {}):
                    raise ValueError(_("a priority for every impact and urgency "
                                       "(low, medium, high)"))
        return self


class Route(Model):
    division: Literal[DIVISIONS]  # type: ignore[valid-type]
    workflow: Name


# The DKI Jakarta 2013 SOP: which division (Bidang) owns which section.
DEFAULT_ROUTING = {
    Category.APPLICATION: Route(division="SIM", workflow="dki-jakarta-2013"),
    Category.OPERATING_SYSTEM: Route(division="IPL", workflow="dki-jakarta-2013"),
    Category.DATABASE: Route(division="IPL", workflow="dki-jakarta-2013"),
    Category.NETWORK: Route(division="IPL", workflow="dki-jakarta-2013"),
    Category.NETWORK_SECURITY: Route(division="IPL", workflow="dki-jakarta-2013"),
    Category.MALWARE: Route(division="IPK", workflow="dki-jakarta-2013"),
    Category.SERVER: Route(division="IPK", workflow="dki-jakarta-2013"),
    Category.PC_CLIENT: Route(division="IPK", workflow="dki-jakarta-2013"),
}


class Workflows(Model):
    """Which SOP each category follows. The five seed SOPs ship built in; `files` adds an
    office's own workflow files."""

    files: tuple[str, ...] = ()
    routing: dict[Category, Route] = DEFAULT_ROUTING
    calendar: WorkingCalendar = WorkingCalendar()
    priority: PrioritySettings = PrioritySettings()
    tick_interval: Duration = timedelta(seconds=30)

    @field_validator("routing")
    @classmethod
    def _keep_default_routes(cls, value: dict[Category, Route]) -> dict[Category, Route]:
        """A routing that names some categories keeps the default route for the others, so
        a finding of an unnamed category still enters an SOP instead of failing to open."""
        return {**DEFAULT_ROUTING, **value}


class WeeklyWindow(Model):
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    duration: Duration


class MaintenanceWindow(Model):
    """A planned window for one device, site or category: one-off (start_at/end_at, with
    their UTC offset) or weekly."""

    device: Name | None = None
    site: Name | None = None
    category: Category | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    weekly: WeeklyWindow | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _shape(self) -> "MaintenanceWindow":
        if sum(x is not None for x in (self.device, self.site, self.category)) != 1:
            raise ValueError(_("exactly one of device, site or category"))
        one_off = self.start_at is not None and self.end_at is not None
        if one_off == (self.weekly is not None):
            raise ValueError(_("either start_at and end_at, or weekly"))
        if one_off and (self.start_at.tzinfo is None or self.end_at.tzinfo is None or
                        self.end_at <= self.start_at):
            raise ValueError(_("start_at before end_at, each with its UTC offset, such as "
                               "2026-12-01T22:00:00+07:00"))
        return self

    def scope(self) -> tuple[str, str]:
        if self.device:
            return "device", self.device
        if self.site:
            return "site", self.site
        return "category", self.category.value


# -- web desk (issue 8) ----------------------------------------------------------------------


class Web(Model):
    """The desk served on http.listen. `public_url` is the address people and reporters open
    (behind a proxy, the proxy's); status links in reporters' e-mails start with it."""

    enabled: bool = True
    public_url: str = ""
    session_ttl: Duration = timedelta(hours=12)
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_window: Duration = timedelta(minutes=15)
    lockout: Duration = timedelta(minutes=15)
    due_soon: Duration = timedelta(minutes=30)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError(_("an http(s) URL such as https://desk.kominfo.example.go.id"))
        return value.rstrip("/")


# -- SNMP traps (issue 5: trap receiver) -----------------------------------------------------


class TrapSettings(Model):
    """The SNMP notification receiver (v1/v2c traps, v3 traps and informs).

    A notification is accepted only from the address of a configured device and only with that
    device's own `credential` or one named in `credentials` (e.g. a trap-only community); any
    other is counted and dropped. UDP 162 is a privileged port: the daemon needs
    CAP_NET_BIND_SERVICE for it (systemd/monitord.service grants it); without it, use a port
    above 1024 and have the devices send there."""

    enabled: bool = False
    listen: str = "0.0.0.0:162"
    credentials: tuple[Name, ...] = ()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(_("HOST:PORT, such as 0.0.0.0:162"))
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class Logging(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


# -- SNMP poller (issue 5) ---------------------------------------------------------------------

class SnmpThresholds(Model):
    """When polled values become findings (detectors/network.py, detectors/ups.py). CPU and
    memory of polled devices use `detectors.host` (same kinds as the local host)."""

    unreachable_after: int = Field(3, ge=1, le=100)  # failed polls in a row
    interface_errors_per_second: float = Field(1.0, gt=0)
    interface_discards_per_second: float = Field(10.0, gt=0)
    utilisation_percent: float = Field(90.0, gt=0, le=100)
    utilisation_sustained: Duration = timedelta(minutes=5)
    consecutive: int = Field(2, ge=1, le=100)  # errors/discards: polls in a row above
    flap_changes: int = Field(4, ge=2, le=1000)  # oper status changes ...
    flap_window: Duration = timedelta(minutes=15)  # ... within this window
    temperature_c: float = Field(70.0, gt=0)
    ups_charge_percent: float = Field(50.0, gt=0, le=100)
    ups_runtime_minutes: float = Field(10.0, gt=0)
    ups_load_percent: float = Field(90.0, gt=0)
    ups_input_voltage_min: float = Field(180.0, ge=0)
    ups_input_voltage_max: float = Field(260.0, gt=0)


class SnmpSettings(Model):
    """Polling of the `devices` that have an SNMP credential. `timeout` and `retries` apply to
    each request; a device that does not answer costs at most timeout x (retries + 1) per
    request and never delays the others. `profiles` names a device's profiles
    (config/profiles/*.yaml, or `profiles_dir`); otherwise they are chosen from sysObjectID
    and sysDescr."""

    enabled: bool = True
    interval: Duration = timedelta(seconds=60)
    jitter: Duration = timedelta(seconds=2)
    timeout: Duration = timedelta(seconds=2)
    retries: int = Field(1, ge=0, le=10)
    max_repetitions: int = Field(200, ge=1, le=2000)
    profiles_dir: str | None = None
    profiles: dict[Name, tuple[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")],
                               ...]] = {}
    thresholds: SnmpThresholds = SnmpThresholds()

    @model_validator(mode="after")
    def _profiles_exist(self) -> "SnmpSettings":
        """Profile files must parse and every named profile must exist (check-config says so
        before the daemon starts polling)."""
        if self.profiles_dir is None and not self.profiles:
            return self  # nothing to check: keep loading a config cheap
        from monitord.collectors.snmp.profiles import ProfileError, load_profiles
        if self.profiles_dir is not None and not os.path.isdir(self.profiles_dir):
            raise ValueError(_("profiles_dir: an existing directory of profile files"))
        try:
            known = load_profiles([self.profiles_dir] if self.profiles_dir else [])
        except ProfileError as exc:
            raise ValueError(_("valid profile files ({problem})").format(problem=exc)) from None
        for device, names in self.profiles.items():
            for name in names:
                if name not in known:
                    raise ValueError(_("profiles.{device}: a known profile, one of {known}")
                                     .format(device=device, known=", ".join(sorted(known))))
        return self

    def collector_settings(self) -> CollectorSettings:
        # the scheduler's timeout covers the whole poll: every request may use its retries
        budget = self.timeout * (self.retries + 1) * 8 + timedelta(seconds=5)
        return CollectorSettings(enabled=self.enabled, interval=self.interval,
                                 jitter=self.jitter, timeout=min(budget, self.interval))


class Config(Model):
    language: Literal["en", "id"] | None = None
    timezone: str = "Asia/Jakarta"
    logging: Logging = Logging()
    sites: tuple[Site, ...] = ()
    credentials: dict[Name, Credential] = {}
    devices: tuple[Device, ...] = ()
    collectors: Collectors = Collectors()
    detectors: Detectors = Detectors()
    incidents: IncidentSettings = IncidentSettings()
    queues: Queues = Queues()
    storage: Storage = Storage()
    http: Http = Http()
    notifications: Notifications = Notifications()
    people: tuple[Person, ...] = ()
    workflows: Workflows = Workflows()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    checks: tuple[ServiceCheck, ...] = ()
    snmp: SnmpSettings = SnmpSettings()
    web: Web = Web()
    traps: TrapSettings = TrapSettings()
    netconfig: tuple[NetconfigDevice, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(_("an IANA time zone such as Asia/Jakarta")) from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)

    def site(self, name: str) -> Site | None:
        return next((s for s in self.sites if s.name == name), None)

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every secret reference with its key path, to resolve them all at start."""
        found: list[tuple[str, SecretRef]] = []

        def walk(value: object, path: str) -> None:
            if isinstance(value, SecretRef):
                found.append((path, value))
            elif isinstance(value, BaseModel):
                for key in type(value).model_fields:
                    walk(getattr(value, key), f"{path}.{key}" if path else key)
            elif isinstance(value, dict):
                for key, item in value.items():
                    walk(item, f"{path}.{key}")
            elif isinstance(value, tuple):
                for index, item in enumerate(value):
                    walk(item, f"{path}[{index}]")

        walk(self, "")
        return found
