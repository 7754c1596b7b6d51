"""Topology folding: when a device's parent (config `devices[].parent`) is unreachable, the
children behind it are unreachable too, and their findings belong to the parent's incident --
one incident for one cut cable, not one per switch (the alert storm people complain about in
LibreNMS and Icinga).

Decided by the topology, not by the order the devices happened to be polled in: a child seen
unreachable before its parent is *held* (a row in `topology_holds`) for
`incidents.topology_hold`. If the parent's incident opens meanwhile, the held child folds into
it at once; when the hold runs out with the parent still fine, the child's own incident opens
(`IncidentManager.tick`). The hold lives in the store, in the same transaction as everything
else, so an acknowledged finding survives a restart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitord.incidents.store import repository as repo
from monitord.incidents.store.models import IncidentRow, TopologyHoldRow
from monitord.records import Finding

UNREACHABLE = "device_unreachable"
FOLDED = "folded"
HELD = "held"


def unreachable_key(device: str) -> str:
    return f"{UNREACHABLE}:{device}"


@dataclass(frozen=True, slots=True)
class Topology:
    """Parent links from the configuration (cycles are refused by check-config)."""

    parents: Mapping[str, str | None]
    hold: timedelta

    @classmethod
    def from_config(cls, config: Any) -> "Topology":
        return cls({d.name: d.parent for d in config.devices}, config.incidents.topology_hold)

    def ancestors(self, device: str) -> list[str]:
        """Parent, grandparent, ... nearest first; stops at a loop instead of spinning."""
        out: list[str] = []
        current = self.parents.get(device)
        while current is not None and current not in out and current != device:
            out.append(current)
            current = self.parents.get(current)
        return out

    def descendants(self, device: str) -> list[str]:
        return [name for name in self.parents if device in self.ancestors(name)]

    def foldable(self, finding: Finding) -> bool:
        return finding.kind == UNREACHABLE and bool(finding.device) \
            and self.parents.get(finding.device) is not None


def finding_to_json(finding: Finding) -> dict[str, Any]:
    return {"kind": finding.kind, "category": finding.category.value,
            "severity": finding.severity.value, "state": finding.state.value,
            "dedup_key": finding.dedup_key, "summary": finding.summary,
            "first_seen": finding.first_seen.isoformat(),
            "last_seen": finding.last_seen.isoformat(), "device": finding.device,
            "subject": finding.subject, "impact": finding.impact.value,
            "urgency": finding.urgency.value, "evidence": dict(finding.evidence)}


def finding_from_json(data: Mapping[str, Any]) -> Finding:
    values = dict(data)
    values["first_seen"] = datetime.fromisoformat(values["first_seen"])
    values["last_seen"] = datetime.fromisoformat(values["last_seen"])
    return Finding(**values)


def find_holds(session: Session, keys: Iterable[str]) -> dict[str, TopologyHoldRow]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = session.scalars(select(TopologyHoldRow).where(TopologyHoldRow.dedup_key.in_(keys)))
    return {row.dedup_key: row for row in rows}


def due_holds(session: Session, now: datetime) -> list[TopologyHoldRow]:
    return list(session.scalars(select(TopologyHoldRow)
                                .where(TopologyHoldRow.held_until <= now)
                                .order_by(TopologyHoldRow.held_until)))


def hold(session: Session, finding: Finding, until: datetime, now: datetime) -> TopologyHoldRow:
    row = TopologyHoldRow(dedup_key=finding.dedup_key, device=finding.device or "",
                          finding=finding_to_json(finding), held_until=until, created_at=now)
    session.add(row)
    return row


def release(session: Session, row: TopologyHoldRow) -> None:
    if row in session.new:  # held and released in the same batch: never written
        session.expunge(row)
    else:
        session.delete(row)


def fold(session: Session, parent: IncidentRow, finding: Finding, now: datetime) -> None:
    """Record the child on the parent's incident: its name in the evidence's
    `folded_devices` and one timeline entry the first time it folds in."""
    devices = list((parent.evidence or {}).get("folded_devices", []))
    parent.updated_at = now
    if finding.device in devices:
        return
    devices.append(finding.device)
    parent.evidence = {**(parent.evidence or {}), "folded_devices": devices}
    repo.append_timeline(session, parent, now, FOLDED, finding.summary,
                         data={"device": finding.device, "dedup_key": finding.dedup_key})
