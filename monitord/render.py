"""Incidents as JSON (for scripts) and as readable text (for people at a terminal).

Text from devices and reporters is hostile: in the terminal, control characters are shown as
escapes so a crafted sysDescr or DNS name cannot move the cursor or rewrite the screen."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Sequence

from monitord.i18n import N_, _
from monitord.incidents.manager import TIMELINE_WORDS
from monitord.incidents.store.models import IncidentRow, OutboxRow

WEEKDAYS = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"),
            N_("Saturday"), N_("Sunday"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe_text(value: object, limit: int | None = None) -> str:
    text = "" if value is None else str(value)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", text)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def table(rows: Sequence[IncidentRow], tz) -> str:
    headers = [_("Number"), _("Status"), _("Severity"), _("Category"), _("Device"),
               _("Count"), _("Last seen"), _("Summary")]
    body = [[r.number, _(r.status) + (" ~" if r.flapping else ""), _(r.severity),
             _(r.category), safe_text(r.device or "-", 24), str(r.occurrences),
             r.last_seen.astimezone(tz).strftime("%Y-%m-%d %H:%M"), safe_text(r.summary, 70)]
            for r in rows]
    if not body:
        return _("No incidents.")
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in body]
    return "\n".join(lines)


def detail_text(row: IncidentRow, outbox: Sequence[OutboxRow], tz, engine=None) -> str:
    def when(moment: datetime | None) -> str:
        if moment is None:
            return "-"
        local = moment.astimezone(tz)  # Form HD-01 asks for the day as well as the date
        return f"{_(WEEKDAYS[local.weekday()])} {local.strftime('%Y-%m-%d %H:%M:%S %Z')}"

    out = [
        _("Incident {number}").format(number=row.number),
        f"  {_('Status')}: {_(row.status)}" + (f" ({_('flapping')})" if row.flapping else ""),
        f"  {_('Severity')}: {_(row.severity)}   {_('Impact')}: {_(row.impact)}   "
        f"{_('Urgency')}: {_(row.urgency)}",
        f"  {_('Category')}: {_(row.category)}   {_('Kind')}: {row.kind}",
        f"  {_('Device')}: {safe_text(row.device or '-')}   "
        f"{_('Subject')}: {safe_text(row.subject or '-')}",
        f"  {_('Summary')}: {safe_text(row.summary)}",
        f"  {_('Seen')}: {row.occurrences}x, {when(row.first_seen)} .. {when(row.last_seen)}",
        f"  {_('Workflow')}: {row.workflow or '-'}   {_('Division')}: {row.division or '-'}   "
        f"{_('Priority')}: {row.priority or '-'}",
        f"  {_('Step')}: {row.step or '-'}   {_('Due')}: {when(row.step_due_at)}",
        *([f"  {_('Allowed actions')}: " + ", ".join(
            f"{a['action']} ({'/'.join(a['roles'])})" for a in engine.allowed_actions(row))]
          if engine is not None and row.workflow in engine.workflows else []),
        "",
        _("Form HD-01"),
        f"  {_('Sequence number')}: {row.number}",
        f"  {_('Recorded')}: {when(row.recorded_at)}",
        f"  {_('Reported')}: {when(row.reported_at)}",
        f"  {_('Location')}: {safe_text(row.location or '-')}",
        f"  {_('Reporter')}: {safe_text(row.reporter_name)} {safe_text(row.reporter_agency)} "
        f"{safe_text(row.reporter_phone)} {safe_text(row.reporter_email)}".rstrip(),
        f"  {_('Classification')}: {row.classification}",
        f"  {_('Help-desk officer')}: {safe_text(row.helpdesk_officer)}",
        "",
        _("Evidence"),
        *[f"  {safe_text(k)}: {safe_text(v, 200)}" for k, v in sorted(row.evidence.items())],
        "",
        _("Timeline"),
        *[f"  {when(t.at)}  {safe_text(t.actor)} ({t.role})  "
          f"{_(TIMELINE_WORDS.get(t.action, t.action))}  {safe_text(t.note)}".rstrip()
          for t in row.timeline],
        "",
        _("Notifications"),
        *[f"  {o.channel}: {o.event} [{_(o.status)}]" for o in outbox],
    ]
    return "\n".join(out)
