"""The typed records that cross stage boundaries (ARCHITECTURE.md).

Collectors emit `Sample` and `Event`; detectors turn them into `Finding`s; the incident manager
turns findings into incidents in the store. Nothing else crosses a boundary, so each stage can be
tested on a plain list of records.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Mapping


class Severity(str, enum.Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = list(Severity)


class Level(str, enum.Enum):
    """Impact and urgency share one scale (the Katingan SOP's impact x urgency matrix)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Category(str, enum.Enum):
    """The DKI Jakarta SOP's sections; each belongs to a division (SIM, IPL, IPK)."""

    APPLICATION = "application"
    OPERATING_SYSTEM = "operating_system"
    DATABASE = "database"
    NETWORK = "network"
    NETWORK_SECURITY = "network_security"
    MALWARE = "malware"
    SERVER = "server"
    PC_CLIENT = "pc_client"


# Form HD-01's initial classification: 1 application/information system, 2 software,
# 3 hardware, 4 data-communication network.
HD01_CLASSIFICATION: Mapping[Category, int] = MappingProxyType(
    {
        Category.APPLICATION: 1,
        Category.OPERATING_SYSTEM: 2,
        Category.DATABASE: 2,
        Category.NETWORK_SECURITY: 2,
        Category.MALWARE: 3,
        Category.SERVER: 3,
        Category.PC_CLIENT: 3,
        Category.NETWORK: 4,
    }
)


class FindingState(str, enum.Enum):
    FIRING = "firing"
    CLEARED = "cleared"


KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value: `device` `metric`{labels} = value at `at`."""

    device: str
    metric: str
    value: float
    at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_mapping(self.labels))


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at a device (a trap, a link change, a configuration change)."""

    device: str
    kind: str
    at: datetime
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _frozen_mapping(self.fields))


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's conclusion. `dedup_key` names the problem so repeats fold into one incident."""

    kind: str
    category: Category
    severity: Severity
    state: FindingState
    dedup_key: str
    summary: str
    first_seen: datetime
    last_seen: datetime
    device: str | None = None
    subject: str | None = None
    impact: Level = Level.MEDIUM
    urgency: Level = Level.MEDIUM
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not KIND_PATTERN.match(self.kind):
            raise ValueError(f"finding kind {self.kind!r} must match {KIND_PATTERN.pattern}")
        if not self.dedup_key:
            raise ValueError("finding dedup_key must not be empty")
        for name, enum_type in (
            ("category", Category),
            ("severity", Severity),
            ("state", FindingState),
            ("impact", Level),
            ("urgency", Level),
        ):
            object.__setattr__(self, name, enum_type(getattr(self, name)))
        object.__setattr__(self, "evidence", _frozen_mapping(self.evidence))

    @property
    def firing(self) -> bool:
        return self.state is FindingState.FIRING
