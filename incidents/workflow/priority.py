"""Impact x urgency -> priority (the Katingan SOP's matrix) and each priority's SLA target."""

from __future__ import annotations

from monitord.config import PrioritySettings, SlaTarget
from monitord.records import Level

PRIORITY_ORDER = ("P1", "P2", "P3", "P4")


def priority_for(settings: PrioritySettings, impact: Level | str, urgency: Level | str) -> str:
    return settings.matrix[Level(impact)][Level(urgency)]


def sla_for(settings: PrioritySettings, priority: str) -> SlaTarget:
    return settings.sla[priority]
