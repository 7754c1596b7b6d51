"""Poll one device (or many at once) into a typed `DeviceSnapshot`: the system group, IF-MIB
interfaces, and whatever the device's profiles describe (UPS, CPU, memory, temperatures,
storage). The same function serves the daemon's `SnmpCollector`, the CLI `monitord snmp poll`
and the benchmark.

Entry points:
    await poll_device(client, name, profiles=None) -> DeviceSnapshot
    await poll_many(targets) -> list[DeviceSnapshot]   # N devices concurrently, one socket

`client` is anything with `get(oids)` and `walk(columns)` (a `V2Session` for v1/v2c, a
`V3Session` for v3). A device that does not answer costs its own timeout budget only; its
snapshot says `error="timeout"` (or `"auth"` when a v3 agent refused the credentials).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol, Sequence

from monitord.collectors.base import AuthFailed
from monitord.collectors.snmp import ber
from monitord.collectors.snmp.ber import BerError, oid_to_bytes
from monitord.collectors.snmp.profiles import (HR_FIXED_DISK, HR_RAM, HRSTORAGE_COLUMNS,
                                               UCD_MEMORY, UPS_FIELDS, Profile, ValueSpec,
                                               load_profiles, select_profiles)
from monitord.collectors.snmp.transport import SnmpError, SnmpTimeout

SYS_DESCR = oid_to_bytes("1.3.6.1.2.1.1.1.0")
SYS_OBJECT_ID = oid_to_bytes("1.3.6.1.2.1.1.2.0")
SYS_UPTIME = oid_to_bytes("1.3.6.1.2.1.1.3.0")
SYS_NAME = oid_to_bytes("1.3.6.1.2.1.1.5.0")
SYSTEM_OIDS = [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME]

_IF = "1.3.6.1.2.1.2.2.1."
_IFX = "1.3.6.1.2.1.31.1.1.1."
IF_COLUMNS: dict[str, bytes] = {name: oid_to_bytes(oid) for name, oid in (
    ("ifDescr", _IF + "2"), ("ifSpeed", _IF + "5"), ("ifAdminStatus", _IF + "7"),
    ("ifOperStatus", _IF + "8"), ("ifInOctets", _IF + "10"), ("ifInDiscards", _IF + "13"),
    ("ifInErrors", _IF + "14"), ("ifOutOctets", _IF + "16"), ("ifOutDiscards", _IF + "19"),
    ("ifOutErrors", _IF + "20"), ("ifName", _IFX + "1"), ("ifHCInOctets", _IFX + "6"),
    ("ifHCOutOctets", _IFX + "10"), ("ifHighSpeed", _IFX + "15"), ("ifAlias", _IFX + "18"),
)}
IF_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
             7: "lowerLayerDown"}
MAX_GET_VARBINDS = 40


class SnmpClient(Protocol):
    async def get(self, oids: list[bytes]) -> dict[bytes, tuple[int, Any]]: ...

    async def walk(self, columns: Iterable[bytes]) -> dict[bytes, dict[tuple[int, ...],
                                                                      tuple[int, Any]]]: ...


@dataclass(slots=True)
class Interface:
    if_index: int
    if_name: str | None = None
    if_descr: str | None = None
    if_alias: str | None = None
    admin_status: str | None = None
    oper_status: str | None = None
    speed_bps: int | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    in_discards: int | None = None
    out_discards: int | None = None
    counter_bits: int = 32  # 64 when the octets came from ifHC*

    def as_json(self) -> dict[str, Any]:
        return {"ifIndex": self.if_index, "ifName": self.if_name, "ifDescr": self.if_descr,
                "ifAlias": self.if_alias, "adminStatus": self.admin_status,
                "operStatus": self.oper_status, "speed_bps": self.speed_bps,
                "in_octets": self.in_octets, "out_octets": self.out_octets,
                "in_errors": self.in_errors, "out_errors": self.out_errors,
                "in_discards": self.in_discards, "out_discards": self.out_discards}


@dataclass(slots=True)
class DeviceSnapshot:
    """One poll's result. `error` is None, "timeout", "auth" or "error" (the agent answered
    with an SNMP error-status or garbage); values the device lacks are None, never guessed."""

    device: str
    error: str | None = None
    error_detail: str = ""
    sys_name: str | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    uptime_ticks: int | None = None
    interfaces: list[Interface] = field(default_factory=list)
    ups: dict[str, Any] | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    storage: list[dict[str, Any]] | None = None
    load1: float | None = None
    cpu_count: int | None = None
    temperatures: dict[str, float] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        """The object `monitord snmp poll --json` prints (issue 5, item 7)."""
        return {
            "device": self.device,
            "error": self.error,
            "system": {"sysName": self.sys_name, "sysDescr": self.sys_descr,
                       "sysObjectID": self.sys_object_id,
                       "sysUpTime_s": (None if self.uptime_ticks is None
                                       else self.uptime_ticks / 100)},
            "interfaces": [i.as_json() for i in self.interfaces],
            "ups": self.ups,
            "cpu_percent": self.cpu_percent,
            "memory_percent": self.memory_percent,
            "storage": self.storage,
            "load1": self.load1,
            "cpu_count": self.cpu_count,
            "temperatures": self.temperatures or None,
            "profiles": self.profiles,
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _number(tag: int, value: Any) -> float | int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):  # DisplayString numbers ("23.5", UCD laLoad)
        try:
            return float(value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
    return None


def _round(x: float) -> float | int:
    r = round(x, 4)
    return int(r) if r == int(r) and abs(r) < 2**53 else r


Gets = Mapping[bytes, tuple[int, Any]]
Cols = Mapping[bytes, Mapping[tuple[int, ...], tuple[int, Any]]]


def evaluate(spec: ValueSpec, gets: Gets, cols: Cols) -> Any:
    """A value spec applied to the raw GET and walk results (None when absent)."""
    if spec.alternatives:
        for alt in spec.alternatives:
            value = evaluate(alt, gets, cols)
            if value is not None:
                return value
        return None
    if spec.contains is not None:
        rows = cols.get(spec.column, {}) if spec.column is not None else {}
        return any(v == spec.contains for _t, v in rows.values())
    if spec.get is not None:
        raw = gets.get(spec.get)
        if raw is None:
            return None
        number = _number(*raw)
    else:
        rows = cols.get(spec.column, {})
        if spec.reduce == "count":  # rows, whatever their values (OIDs, strings)
            return len(rows) or None
        numbers = [n for n in (_number(t, v) for _i, (t, v) in sorted(rows.items()))
                   if n is not None and not (spec.skip_zero and n == 0)]
        if not numbers:
            return None
        number = {"first": lambda v: v[0], "max": max, "min": min, "sum": sum, "count": len,
                  "average": lambda v: sum(v) / len(v)}[spec.reduce](numbers)
    if number is None:
        return None
    if spec.equals is not None:
        return int(number) in spec.equals
    if spec.mapping is not None:
        return spec.mapping.get(int(number), str(int(number)))
    return _round(number * spec.scale + spec.offset)


def _hrstorage(cols: Cols) -> list[dict[str, Any]]:
    by_name = {name: cols.get(oid, {}) for oid, name in HRSTORAGE_COLUMNS.items()}
    rows = []
    for index, (_tag, type_oid) in sorted(by_name["type"].items()):
        units = by_name["units"].get(index, (0, None))[1]
        size = by_name["size"].get(index, (0, None))[1]
        used = by_name["used"].get(index, (0, None))[1]
        descr = _text(by_name["descr"].get(index, (0, None))[1])
        if not all(isinstance(x, int) for x in (units, size, used)) or size <= 0:
            continue
        rows.append({"type": type_oid, "descr": descr, "size_bytes": size * units,
                     "used_bytes": used * units,
                     "used_percent": _round(100.0 * used / size)})
    return rows


def _memory(memory: Mapping[str, Any], gets: Gets, cols: Cols) -> float | None:
    method = memory["method"]
    if method == "hrstorage":
        rows = _hrstorage(cols)
        ram = [r for r in rows if r["type"] == HR_RAM]
        if not ram:
            return None
        # net-snmp counts buffers and page cache as used RAM and lists them as their own
        # rows; like `free` (and psutil, which the local host check uses) they count as free.
        reclaimable = sum(r["used_bytes"] for r in rows
                          if r["descr"] in ("Memory buffers", "Cached memory"))
        used = max(0, ram[0]["used_bytes"] - reclaimable)
        return _round(100.0 * used / ram[0]["size_bytes"])
    if method == "ucd":
        raw = {k: gets.get(oid, (0, None))[1] for k, oid in UCD_MEMORY.items()}
        if not isinstance(raw["total"], int) or not isinstance(raw["avail"], int) or \
                raw["total"] <= 0:
            return None
        free = raw["avail"] + sum(v for k, v in raw.items()
                                  if k in ("buffer", "cached") and isinstance(v, int))
        return _round(100.0 * max(0, raw["total"] - free) / raw["total"])
    if method == "percent":
        return evaluate(memory["percent"], gets, cols)
    used = evaluate(memory["used"], gets, cols)
    other = evaluate(memory["free" if method == "used_free" else "total"], gets, cols)
    if used is None or other is None:
        return None
    total = used + other if method == "used_free" else other
    return _round(100.0 * used / total) if total > 0 else None


def build_interfaces(cols: Cols) -> list[Interface]:
    c = {name: cols.get(oid, {}) for name, oid in IF_COLUMNS.items()}
    indexes = sorted({i for name in ("ifDescr", "ifOperStatus", "ifName", "ifAdminStatus")
                      for i in c[name]})
    out = []
    for index in indexes:
        if len(index) != 1:
            continue

        def val(name: str) -> Any:
            got = c[name].get(index)
            return None if got is None else got[1]

        def num(name: str) -> int | None:
            got = c[name].get(index)
            return got[1] if got is not None and isinstance(got[1], int) else None

        hc_in, hc_out = num("ifHCInOctets"), num("ifHCOutOctets")
        high = num("ifHighSpeed")
        speed = high * 1_000_000 if high else num("ifSpeed")
        oper, admin = num("ifOperStatus"), num("ifAdminStatus")
        out.append(Interface(
            if_index=index[0], if_name=_text(val("ifName")), if_descr=_text(val("ifDescr")),
            if_alias=_text(val("ifAlias")),
            admin_status=None if admin is None else IF_STATUS.get(admin, str(admin)),
            oper_status=None if oper is None else IF_STATUS.get(oper, str(oper)),
            speed_bps=speed,
            in_octets=hc_in if hc_in is not None else num("ifInOctets"),
            out_octets=hc_out if hc_out is not None else num("ifOutOctets"),
            in_errors=num("ifInErrors"), out_errors=num("ifOutErrors"),
            in_discards=num("ifInDiscards"), out_discards=num("ifOutDiscards"),
            counter_bits=64 if hc_in is not None else 32,
        ))
    return out


def apply_profiles(snapshot: DeviceSnapshot, chosen: Sequence[Profile], gets: Gets,
                   cols: Cols) -> None:
    """Fill UPS, CPU, memory, temperatures and storage; the first profile with a value wins."""
    ups: dict[str, Any] = {}
    has_ups = False
    for profile in chosen:
        if profile.ups:
            has_ups = True
        for key, spec in profile.ups.items():
            if ups.get(key) is None:
                ups[key] = evaluate(spec, gets, cols)
        if snapshot.cpu_percent is None and profile.cpu is not None:
            snapshot.cpu_percent = evaluate(profile.cpu, gets, cols)
        if snapshot.load1 is None and profile.load is not None:
            snapshot.load1 = evaluate(profile.load, gets, cols)
        if snapshot.cpu_count is None and profile.cpu_count is not None:
            snapshot.cpu_count = evaluate(profile.cpu_count, gets, cols)
        if snapshot.memory_percent is None and profile.memory:
            snapshot.memory_percent = _memory(profile.memory, gets, cols)
        for name, spec in profile.temperatures:
            if spec.label_column is not None or (spec.column is not None and
                                                 spec.get is None):
                labels = cols.get(spec.label_column, {}) if spec.label_column else {}
                for index, (tag, raw) in sorted(cols.get(spec.column, {}).items()):
                    number = _number(tag, raw)
                    if number is None or (spec.skip_zero and number == 0):
                        continue
                    label = _text(labels.get(index, (0, None))[1]) or \
                        f"{name}.{'.'.join(map(str, index))}"
                    snapshot.temperatures.setdefault(label, _round(number * spec.scale
                                                                   + spec.offset))
            else:
                value = evaluate(spec, gets, cols)
                if value is not None:
                    snapshot.temperatures.setdefault(name, value)
        if snapshot.storage is None and profile.storage == "hrstorage":
            disks = [{k: v for k, v in r.items() if k != "type"} for r in _hrstorage(cols)
                     if r["type"] == HR_FIXED_DISK]
            snapshot.storage = disks or None
    if has_ups:
        snapshot.ups = {key: ups.get(key) for key in UPS_FIELDS}


async def _empty() -> dict:
    return {}


async def _get_chunked(client: SnmpClient, oids: list[bytes]) -> dict[bytes, tuple[int, Any]]:
    found: dict[bytes, tuple[int, Any]] = {}
    chunks = [oids[i:i + MAX_GET_VARBINDS] for i in range(0, len(oids), MAX_GET_VARBINDS)]
    for part in await asyncio.gather(*(client.get(chunk) for chunk in chunks)):
        found.update(part)
    return found


async def poll_device(client: SnmpClient, name: str,
                      profile_names: Sequence[str] | None = None,
                      profiles: Mapping[str, Profile] | None = None) -> DeviceSnapshot:
    """Poll one device; never raises for a device problem (the snapshot's `error` says)."""
    started = time.monotonic()
    snapshot = DeviceSnapshot(device=name)
    profiles = profiles if profiles is not None else load_profiles()
    try:
        system = await client.get(SYSTEM_OIDS)
        snapshot.sys_descr = _text(system.get(SYS_DESCR, (0, None))[1])
        snapshot.sys_name = _text(system.get(SYS_NAME, (0, None))[1])
        oid = system.get(SYS_OBJECT_ID, (0, None))[1]
        snapshot.sys_object_id = oid if isinstance(oid, str) else None
        uptime = system.get(SYS_UPTIME, (0, None))[1]
        snapshot.uptime_ticks = uptime if isinstance(uptime, int) else None
        if profile_names:
            from monitord.collectors.snmp.profiles import profiles_by_name
            chosen = profiles_by_name(profiles, profile_names)
        else:
            chosen = select_profiles(profiles, snapshot.sys_object_id, snapshot.sys_descr)
        snapshot.profiles = [p.name for p in chosen]
        gets: set[bytes] = set()
        cols: set[bytes] = set()
        for profile in chosen:
            g, c = profile.oids()
            gets |= g
            cols |= c
        if_walk, other_walk, got = await asyncio.gather(
            client.walk(list(IF_COLUMNS.values())),
            client.walk(sorted(cols)) if cols else _empty(),
            _get_chunked(client, sorted(gets)) if gets else _empty())
        walked = {**if_walk, **other_walk}
        snapshot.interfaces = build_interfaces(walked)
        apply_profiles(snapshot, chosen, got, walked)
    except SnmpTimeout as exc:
        snapshot.error, snapshot.error_detail = "timeout", str(exc)
    except AuthFailed as exc:
        snapshot.error, snapshot.error_detail = "auth", str(exc)
    except (SnmpError, BerError) as exc:
        snapshot.error, snapshot.error_detail = "error", str(exc)
    snapshot.duration_s = time.monotonic() - started
    return snapshot


async def poll_many(devices: Sequence[tuple[SnmpClient, str, Sequence[str] | None]],
                    profiles: Mapping[str, Profile] | None = None) -> list[DeviceSnapshot]:
    """Poll N devices concurrently (benchmark entry point: `devices` is a list of
    (client, name, profile names or None); clients share one `SnmpTransport`)."""
    profiles = profiles if profiles is not None else load_profiles()
    return list(await asyncio.gather(*(poll_device(c, n, p, profiles)
                                       for c, n, p in devices)))


__all__ = ["DeviceSnapshot", "Interface", "poll_device", "poll_many", "evaluate",
           "build_interfaces", "IF_COLUMNS", "ber"]
