"""Impact x urgency -> priority (the Katingan SOP's matrix) and each priority's SLA target.
Pure lookups in `PrioritySettings` (workflows.priority in the configuration)."""

from __future__ import annotations

from monitord.config import PrioritySettings, SlaTarget
from monitord.records import Level

PRIORITY_ORDER = ("P1", "P2", "P3", "P4")  # most urgent first


def _level(value: Level | str, what: str) -> Level:
    if isinstance(value, Level):
        return value
    try:
        return Level(str(value).strip().lower())
    except ValueError:
        raise ValueError(f"{what} must be one of low, medium, high; got {value!r}") from None


def priority_for(settings: PrioritySettings, impact: Level | str, urgency: Level | str) -> str:
    """The matrix's priority ("P1".."P4") for an impact and an urgency (Level or its value)."""
    return settings.matrix[_level(impact, "impact")][_level(urgency, "urgency")]


def sla_for(settings: PrioritySettings, priority: str) -> SlaTarget:
    """The SLA target (respond, resolve, working_time) of a priority."""
    try:
        return settings.sla[priority]  # type: ignore[index]
    except KeyError:
        raise KeyError(f"no SLA target for priority {priority!r} in workflows.priority.sla "
                       f"(has {', '.join(sorted(settings.sla)) or 'none'})") from None
