"""The monthly recap the SOPs require: what happened, how fast, where the SLA slipped.

`monthly_recap` computes the numbers from the store (incidents recorded in the month, in the
office's timezone); `write_recap` writes them as CSV and as a self-contained HTML page with
server-drawn SVG bar charts (no script)."""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from monitord.i18n import _
from monitord.incidents.store.models import IncidentRow
from monitord.incidents.workflow.engine import SYSTEM, WorkflowEngine

SECURITY_CATEGORIES = ("network_security", "malware")


@dataclass
class Recap:
    month: str
    total: int = 0
    by_category: Counter = field(default_factory=Counter)
    by_division: Counter = field(default_factory=Counter)
    by_priority: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    steps: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> entered, breached
    tiers: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> entered, breached
    acknowledge_s: list[float] = field(default_factory=list)
    resolve_s: list[float] = field(default_factory=list)
    reached_ks: int = 0
    reached_kb: int = 0
    top_devices: list[tuple[str, int]] = field(default_factory=list)
    target_breaches: Counter = field(default_factory=Counter)  # respond / resolve
    security: list[dict[str, Any]] = field(default_factory=list)

    def stats(self, values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"count": 0, "median_s": None, "p90_s": None}
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        return {"count": len(values), "median_s": statistics.median(ordered), "p90_s": p90}


def month_bounds(month: str, tz) -> tuple[datetime, datetime]:
    year, number = (int(x) for x in month.split("-"))
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=tz)
    return start, end


def monthly_recap(session: Session, engine: WorkflowEngine, month: str) -> Recap:
    start, end = month_bounds(month, engine.config.tz)
    rows = session.scalars(select(IncidentRow).where(IncidentRow.recorded_at >= start,
                                                     IncidentRow.recorded_at < end)
                           .options(selectinload(IncidentRow.timeline))).all()
    recap = Recap(month)
    devices: Counter = Counter()
    steps: dict[str, Counter] = defaultdict(Counter)
    tiers: dict[str, Counter] = defaultdict(Counter)
    for incident in rows:
        recap.total += 1
        recap.by_category[incident.category] += 1
        recap.by_division[incident.division or "-"] += 1
        recap.by_priority[incident.priority or "-"] += 1
        recap.by_source[incident.source] += 1
        recap.by_status[incident.status] += 1
        if incident.device:
            devices[incident.device] += 1
        workflow = engine.workflows.get(incident.workflow or "")
        entered = [workflow.entry(incident.source)] if workflow else []
        entered += [t.data.get("to") for t in incident.timeline if t.data.get("to")]
        roles = set()
        for name in entered:
            step = workflow.steps.get(name) if workflow else None
            if step is None or step.role is None:
                continue
            steps[f"{workflow.name}:{name}"]["entered"] += 1
            tiers[step.role]["entered"] += 1
            roles.add(step.role)
        for entry in incident.timeline:
            if entry.action == "sla_breach" and "target" in entry.data:
                recap.target_breaches[entry.data["target"]] += 1
            elif entry.action == "sla_breach" and workflow:
                step = workflow.steps.get(entry.data.get("step", ""))
                steps[f"{workflow.name}:{entry.data.get('step')}"]["breached"] += 1
                if step is not None and step.role:
                    tiers[step.role]["breached"] += 1
        recap.reached_ks += "KS" in roles
        recap.reached_kb += "KB" in roles
        human = [t.at for t in incident.timeline if t.actor != SYSTEM and t.role != "system"
                 and t.action not in ("reported",)]
        if human:
            recap.acknowledge_s.append((min(human) - incident.recorded_at).total_seconds())
        if incident.resolved_at:
            recap.resolve_s.append((incident.resolved_at - incident.recorded_at).total_seconds())
        if incident.category in SECURITY_CATEGORIES:
            recap.security.append({"number": incident.number, "kind": incident.kind,
                                   "summary": incident.summary, "status": incident.status})
    recap.steps = {k: {"entered": v["entered"], "breached": v["breached"]}
                   for k, v in sorted(steps.items())}
    recap.tiers = {k: {"entered": v["entered"], "breached": v["breached"]}
                   for k, v in sorted(tiers.items())}
    recap.top_devices = devices.most_common(10)
    return recap


def recap_rows(recap: Recap) -> list[tuple[str, str, str]]:
    """(section, key, value) rows: the CSV, and the data behind every chart."""
    rows: list[tuple[str, str, str]] = [("total", "incidents", str(recap.total))]
    for section, counter in (("category", recap.by_category), ("division", recap.by_division),
                             ("priority", recap.by_priority), ("source", recap.by_source),
                             ("status", recap.by_status)):
        rows += [(section, key, str(value)) for key, value in sorted(counter.items())]
    for section, table in (("step", recap.steps), ("tier", recap.tiers)):
        for key, value in table.items():
            compliance = 1 - value["breached"] / value["entered"] if value["entered"] else 1.0
            rows += [(f"{section}_entered", key, str(value["entered"])),
                     (f"{section}_breached", key, str(value["breached"])),
                     (f"{section}_sla_compliance", key, f"{compliance:.3f}")]
    for name, values in (("acknowledge", recap.acknowledge_s), ("resolve", recap.resolve_s)):
        for key, value in recap.stats(values).items():
            rows.append((f"time_to_{name}", key, "" if value is None else f"{value:.0f}"))
    rows += [("priority_target_breached", key, str(value))
             for key, value in sorted(recap.target_breaches.items())]
    rows += [("escalation", "reached_KS", str(recap.reached_ks)),
             ("escalation", "reached_KB", str(recap.reached_kb))]
    rows += [("top_device", device, str(count)) for device, count in recap.top_devices]
    rows += [("security", item["number"], item["kind"]) for item in recap.security]
    return rows


def _bars(counter: dict[str, int]) -> list[dict[str, Any]]:
    peak = max(counter.values(), default=0) or 1
    return [{"label": k, "value": v, "width": round(300 * v / peak)}
            for k, v in sorted(counter.items(), key=lambda kv: -kv[1])]


def write_recap(recap: Recap, directory: Path, language: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / f"recap-{recap.month}.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["section", "key", "value"])
        writer.writerows(recap_rows(recap))
    env = Environment(loader=PackageLoader("monitord.incidents", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined)
    env.globals["_"] = _
    html = env.get_template("recap.html").render(
        recap=recap, language=language, bars=_bars,
        acknowledge=recap.stats(recap.acknowledge_s), resolve=recap.stats(recap.resolve_s),
        hours=lambda s: "-" if s is None else f"{s / 3600:.1f} h")
    html_path = directory / f"recap-{recap.month}.html"
    html_path.write_text(html, encoding="utf-8")
    return html_path, csv_path
