"""Device profiles as data (`config/profiles/*.yaml`, like snmp_exporter modules): what to poll
for a kind of device and how a raw value becomes a number with a unit.

A profile has a `name`, a `match` (sysObjectID prefixes and/or sysDescr regular expressions;
`always: true` for the base profiles `system` and `if-mib`) and any of the groups `ups`, `cpu`,
`memory`, `temperatures`, `storage`. A group's field is a *value spec*:

    {get: OID}                       one scalar (GET)
    {column: OID, reduce: average}   a table column (walked);
                                     reduce: first|average|max|min|sum|count
    scale: 0.1                       multiply (TimeTicks -> minutes is scale: 1/6000)
    offset: 100                      then add (100 - idle is scale: -1, offset: 100)
    contains: OID                    a column of OID values -> true when a row holds OID
                                     (upsAlarmTable), false when none does
    skip_zero: true                  rows reading 0 mean "no sensor" and are left out
    map: {1: unknown, 2: normal}     integer -> text
    equals: [3]                      -> true when the value is one of these, else false
    any: [spec, spec]                the first spec that yields a value (high-precision OIDs
                                     with a fallback)

Selection: `select_profiles(sysObjectID, sysDescr)` returns the base profiles plus every
profile whose match fits (first the most specific). A device's config may name its profiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from monitord.collectors.snmp.ber import BerError, oid_to_bytes

GROUPS = ("ups", "cpu", "memory", "temperatures", "storage", "load", "cpu_count")
REDUCERS = ("first", "average", "max", "min", "sum", "count")


class ProfileError(ValueError):
    """A profile file is not valid (names the file and the key)."""


@dataclass(frozen=True, slots=True)
class ValueSpec:
    get: bytes | None = None
    column: bytes | None = None
    reduce: str = "first"
    scale: float = 1.0
    mapping: Mapping[int, str] | None = None
    equals: tuple[int, ...] | None = None
    alternatives: tuple["ValueSpec", ...] = ()
    label_column: bytes | None = None  # temperatures: a column naming each row
    offset: float = 0.0
    contains: str | None = None  # a column of OIDs: true when one row holds this OID
    skip_zero: bool = False  # rows reading 0 mean "no sensor here" (Juniper)

    def oids(self) -> tuple[set[bytes], set[bytes]]:
        gets: set[bytes] = set()
        cols: set[bytes] = set()
        if self.get is not None:
            gets.add(self.get)
        if self.column is not None:
            cols.add(self.column)
        if self.label_column is not None:
            cols.add(self.label_column)
        for alt in self.alternatives:
            g, c = alt.oids()
            gets |= g
            cols |= c
        return gets, cols


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str = ""
    always: bool = False
    sys_object_ids: tuple[str, ...] = ()
    sys_descr: tuple[re.Pattern, ...] = ()
    ups: Mapping[str, ValueSpec] = field(default_factory=dict)
    cpu: ValueSpec | None = None
    memory: Mapping[str, Any] | None = None  # {method: ..., specs}
    temperatures: tuple[tuple[str, ValueSpec], ...] = ()
    storage: str | None = None  # "hrstorage"
    load: ValueSpec | None = None  # 1-minute load average
    cpu_count: ValueSpec | None = None

    def matches(self, sys_object_id: str | None, sys_descr: str | None) -> bool:
        if self.always:
            return True
        oid = (sys_object_id or "").lstrip(".")
        if any(oid == p.rstrip(".") or oid.startswith(p.rstrip(".") + ".")
               for p in self.sys_object_ids):
            return True
        return bool(sys_descr) and any(p.search(sys_descr) for p in self.sys_descr)

    def oids(self) -> tuple[set[bytes], set[bytes]]:
        gets: set[bytes] = set()
        cols: set[bytes] = set()
        specs: list[ValueSpec] = list(self.ups.values())
        specs += [spec for spec in (self.cpu, self.load, self.cpu_count) if spec is not None]
        specs += [spec for _n, spec in self.temperatures]
        if self.memory:
            specs += [v for v in self.memory.values() if isinstance(v, ValueSpec)]
            if self.memory.get("method") == "hrstorage":
                cols |= set(HRSTORAGE_COLUMNS)
            if self.memory.get("method") == "ucd":
                gets |= set(UCD_MEMORY.values())
        if self.storage == "hrstorage":
            cols |= set(HRSTORAGE_COLUMNS)
        for spec in specs:
            g, c = spec.oids()
            gets |= g
            cols |= c
        return gets, cols


HRSTORAGE = "1.3.6.1.2.1.25.2.3.1"
HRSTORAGE_COLUMNS = {oid_to_bytes(f"{HRSTORAGE}.{n}"): name for n, name in
                     ((2, "type"), (3, "descr"), (4, "units"), (5, "size"), (6, "used"))}
HR_RAM = "1.3.6.1.2.1.25.2.1.2"
HR_FIXED_DISK = "1.3.6.1.2.1.25.2.1.4"
UCD_MEMORY = {name: oid_to_bytes(f"1.3.6.1.4.1.2021.4.{n}.0") for name, n in
              (("total", 5), ("avail", 6), ("buffer", 14), ("cached", 15))}


def _parse_scale(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            pass
    raise ProfileError(f"{where}: scale must be a number or a fraction such as 1/6000")


def _oid(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"\.?\d+(\.\d+)+", value.strip()):
        raise ProfileError(f"{where}: expected a numeric OID such as 1.3.6.1.2.1.1.3.0")
    try:
        return oid_to_bytes(value)
    except BerError as exc:
        raise ProfileError(f"{where}: {exc}") from None


def parse_spec(raw: Any, where: str) -> ValueSpec:
    if isinstance(raw, str):
        return ValueSpec(get=_oid(raw, where))
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected an OID or a mapping with get/column/any")
    unknown = set(raw) - {"get", "column", "reduce", "scale", "map", "equals", "any", "label",
                           "offset", "contains", "skip_zero"}
    if unknown:
        raise ProfileError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if "any" in raw:
        if not isinstance(raw["any"], list) or not raw["any"]:
            raise ProfileError(f"{where}.any: expected a list of value specs")
        return ValueSpec(alternatives=tuple(parse_spec(item, f"{where}.any[{i}]")
                                            for i, item in enumerate(raw["any"])))
    if ("get" in raw) == ("column" in raw):
        raise ProfileError(f"{where}: exactly one of get or column")
    reduce = raw.get("reduce", "first")
    if reduce not in REDUCERS:
        raise ProfileError(f"{where}.reduce: one of {', '.join(REDUCERS)}")
    mapping = raw.get("map")
    if mapping is not None and not (isinstance(mapping, dict) and
                                    all(isinstance(k, int) for k in mapping)):
        raise ProfileError(f"{where}.map: expected integer keys")
    equals = raw.get("equals")
    if equals is not None:
        if isinstance(equals, int):
            equals = [equals]
        if not isinstance(equals, list) or not all(isinstance(e, int) for e in equals):
            raise ProfileError(f"{where}.equals: expected an integer or a list of integers")
    return ValueSpec(
        get=_oid(raw["get"], f"{where}.get") if "get" in raw else None,
        column=_oid(raw["column"], f"{where}.column") if "column" in raw else None,
        reduce=reduce, scale=_parse_scale(raw.get("scale", 1), f"{where}.scale"),
        mapping={int(k): str(v) for k, v in mapping.items()} if mapping else None,
        equals=tuple(equals) if equals is not None else None,
        label_column=_oid(raw["label"], f"{where}.label") if "label" in raw else None,
        offset=_parse_scale(raw.get("offset", 0), f"{where}.offset"),
        contains=(_oid(raw["contains"], f"{where}.contains") and
                  str(raw["contains"]).strip().lstrip(".")) if "contains" in raw else None,
        skip_zero=bool(raw.get("skip_zero", False)),
    )


UPS_FIELDS = ("battery_status", "charge_percent", "runtime_minutes", "output_load_percent",
              "input_voltage_v", "output_voltage_v", "on_battery", "temperature_c",
              "battery_replace", "overload", "input_frequency_hz")


def parse_profile(data: Any, source: str) -> Profile:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping")
    unknown = set(data) - {"name", "description", "match", *GROUPS}
    if unknown:
        raise ProfileError(f"{source}: unknown key {sorted(unknown)[0]!r}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise ProfileError(f"{source}: name: expected a lower-case name such as if-mib")
    match = data.get("match") or {}
    if not isinstance(match, dict) or set(match) - {"always", "sysObjectID", "sysDescr"}:
        raise ProfileError(f"{source}: match: expected always, sysObjectID and/or sysDescr")
    try:
        descr = tuple(re.compile(p) for p in match.get("sysDescr", []))
    except re.error as exc:
        raise ProfileError(f"{source}: match.sysDescr: {exc}") from None
    oids = tuple(str(p) for p in match.get("sysObjectID", []))
    for p in oids:
        _oid(p.rstrip("."), f"{source}: match.sysObjectID")
    ups_raw = data.get("ups") or {}
    if not isinstance(ups_raw, dict) or set(ups_raw) - set(UPS_FIELDS):
        bad = sorted(set(ups_raw) - set(UPS_FIELDS)) if isinstance(ups_raw, dict) else ["ups"]
        raise ProfileError(f"{source}: ups: unknown field {bad[0]!r} "
                           f"(known: {', '.join(UPS_FIELDS)})")
    ups = {k: parse_spec(v, f"{source}: ups.{k}") for k, v in ups_raw.items()}
    cpu = parse_spec(data["cpu"], f"{source}: cpu") if "cpu" in data else None
    load = parse_spec(data["load"], f"{source}: load") if "load" in data else None
    cpu_count = (parse_spec(data["cpu_count"], f"{source}: cpu_count")
                 if "cpu_count" in data else None)
    memory = None
    if "memory" in data:
        raw = data["memory"]
        method = raw.get("method") if isinstance(raw, dict) else None
        if method not in ("hrstorage", "ucd", "percent", "used_free", "used_total"):
            raise ProfileError(f"{source}: memory.method: one of hrstorage, ucd, percent, "
                               f"used_free, used_total")
        memory = {"method": method}
        for key in ("percent", "used", "free", "total"):
            if key in raw:
                memory[key] = parse_spec(raw[key], f"{source}: memory.{key}")
    temps: list[tuple[str, ValueSpec]] = []
    for i, item in enumerate(data.get("temperatures") or []):
        if not isinstance(item, dict) or "name" not in item:
            raise ProfileError(f"{source}: temperatures[{i}]: expected name and a value spec")
        spec = dict(item)
        temps.append((str(spec.pop("name")), parse_spec(spec, f"{source}: temperatures[{i}]")))
    storage = data.get("storage")
    if storage not in (None, "hrstorage"):
        raise ProfileError(f"{source}: storage: only hrstorage is known")
    return Profile(name=name, description=str(data.get("description", "")),
                   always=bool(match.get("always")), sys_object_ids=oids, sys_descr=descr,
                   ups=ups, cpu=cpu, memory=memory, temperatures=tuple(temps), storage=storage,
                   load=load, cpu_count=cpu_count)


def _bundled() -> list[tuple[str, str]]:
    folder = resources.files("monitord.bundled").joinpath("profiles")
    return sorted((f"profiles/{item.name}", item.read_text("utf-8"))
                  for item in folder.iterdir() if item.name.endswith(".yaml"))


_CACHE: dict[tuple[str, ...], dict[str, Profile]] = {}


def load_profiles(extra_dirs: Iterable[str | Path] = ()) -> dict[str, Profile]:
    """The bundled profiles plus any `*.yaml` in `extra_dirs` (an office's own; same name
    replaces a bundled one)."""
    key = tuple(str(d) for d in extra_dirs)
    if key in _CACHE:  # only the bundled set is cached: an office's files are re-read (reload)
        return _CACHE[key]
    sources = _bundled()
    for folder in key:
        for path in sorted(Path(folder).glob("*.yaml")):
            sources.append((str(path), path.read_text("utf-8")))
    profiles: dict[str, Profile] = {}
    for source, text in sources:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ProfileError(f"{source}: not valid YAML: {exc}") from None
        profile = parse_profile(data, source)
        profiles[profile.name] = profile
    if not key:
        _CACHE[key] = profiles
    return profiles


def select_profiles(profiles: Mapping[str, Profile], sys_object_id: str | None,
                    sys_descr: str | None) -> list[Profile]:
    """The base profiles plus those whose match fits, the vendor-specific ones first."""
    base = [p for p in profiles.values() if p.always]
    vendor = [p for p in profiles.values() if not p.always and p.matches(sys_object_id,
                                                                          sys_descr)]
    vendor.sort(key=lambda p: -max((len(o) for o in p.sys_object_ids
                                    if (sys_object_id or "").lstrip(".").startswith(
                                        o.rstrip("."))), default=0))
    return base + vendor


def profiles_by_name(profiles: Mapping[str, Profile], names: Iterable[str]) -> list[Profile]:
    chosen = [p for p in profiles.values() if p.always]
    for name in names:
        if name not in profiles:
            raise ProfileError(f"unknown profile {name!r} (known: {', '.join(sorted(profiles))})")
        if profiles[name] not in chosen:
            chosen.append(profiles[name])
    return chosen
