"""Tickets rendered from an outbox payload: a one-line subject, a text body and an HTML body, in
English or Indonesian.

Everything in the payload may be hostile (device strings, packet fields, a reporter's words). It
is only ever passed to the templates as *data*: the templates are files shipped with monitord,
rendered by a sandboxed, strict Jinja2 environment; HTML output is autoescaped; the subject is
collapsed to one line and capped, so no text can become a mail header. Templates never see a
raw payload: `ticket_view` turns it into a complete, plain view (every key present), so a
template typo fails loudly (StrictUndefined) while an old or partial payload still renders.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from jinja2 import PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

LANGUAGES = ("en", "id")
SUBJECT_MAX = 200
_SURROGATE = re.compile("[\ud800-\udfff]")
_ONE_LINE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
}


@dataclass(frozen=True, slots=True)
class RenderedTicket:
    language: str
    subject: str
    text: str
    html: str


def one_line(text: str, limit: int = SUBJECT_MAX) -> str:
    """Collapse every line break, control character and whitespace run to one space, then cap
    the length: safe for a mail header or a log line."""
    text = _ONE_LINE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = value if isinstance(value, str) else str(value)
    # A lone surrogate (possible in JSON) cannot be encoded for any transport: replace it.
    return text.encode("utf-8", "replace").decode("utf-8") if _SURROGATE.search(text) else text


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _localised(value: Any, language: str) -> str:
    """{"en": ..., "id": ...} -> the recipient's language, else the other one; plain text
    stays as it is."""
    if isinstance(value, dict):
        chosen = value.get(language) or next((value[k] for k in LANGUAGES if value.get(k)), "")
        return _str(chosen)
    return _str(value)


class TicketRenderer:
    """Renders tickets with the office's time zone (deadlines are read by people in the
    office, so they are shown in its local time)."""

    def __init__(self, tz: ZoneInfo, loader: Any = None) -> None:
        self.tz = tz
        self.env = ImmutableSandboxedEnvironment(
            loader=loader or PackageLoader("monitord.incidents.notify", "templates"),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False,
                                         default_for_string=False),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        )
        self._subject = self.env.get_template("subject.txt")
        self._text = self.env.get_template("ticket.txt")
        self._html = self.env.get_template("ticket.html")

    # -- public -------------------------------------------------------------------------------

    def render(self, payload: Mapping[str, Any], language: str | None = None) -> RenderedTicket:
        view = self.ticket_view(payload, language)
        subject = one_line(self._subject.render(view))
        return RenderedTicket(view["language"], subject, self._text.render(view),
                              self._html.render(view))

    def when(self, value: Any, language: str) -> str:
        """An ISO timestamp as the office reads it: 'Senin 2026-03-02 09:00 WIB'."""
        if not value:
            return ""
        try:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            return _str(value)  # shown as given, never dropped
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        local = moment.astimezone(self.tz)
        day = _WEEKDAYS.get(language, _WEEKDAYS["en"])[local.weekday()]
        return f"{day} {local:%Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()

    def ticket_view(self, payload: Mapping[str, Any], language: str | None = None
                    ) -> dict[str, Any]:
        """The complete set of template variables (all strings, lists and dicts of strings)."""
        payload = _dict(dict(payload))
        recipient = _dict(payload.get("recipient"))
        language = language or recipient.get("language") or "en"
        if language not in LANGUAGES:
            language = "en"
        incident = _dict(payload.get("incident"))
        if not incident:  # the manager's first, flat payload: {"number", "summary", ...}
            incident = {key: payload.get(key) for key in
                        ("number", "summary", "severity", "category", "device", "subject")}
        hd01 = _dict(incident.get("hd01"))
        reporter = _dict(hd01.get("reporter"))
        step = _dict(payload.get("step"))
        workflow = _dict(payload.get("workflow"))
        evidence = incident.get("evidence")
        if isinstance(evidence, dict):
            evidence_items = [(_str(k), _str(v)) for k, v in evidence.items()]
        elif evidence in (None, "", [], {}):
            evidence_items = []
        else:
            evidence_items = [("", _str(evidence))]
        classification = hd01.get("classification")
        return {
            "language": language,
            "event": _str(payload.get("event") or "ticket"),
            "number": _str(incident.get("number")),
            "summary": _str(incident.get("summary")),
            "severity": _str(incident.get("severity")),
            "priority": _str(incident.get("priority")),
            "category": _str(incident.get("category")),
            "division": _str(incident.get("division")),
            "device": _str(incident.get("device")),
            "subject": _str(incident.get("subject")),
            "status": _str(incident.get("status")),
            "description": _str(incident.get("description")),
            "evidence": evidence_items,
            "hd01": {
                "recorded_at": self.when(hd01.get("recorded_at"), language),
                "reported_at": self.when(hd01.get("reported_at"), language),
                "location": _str(hd01.get("location")),
                "reporter_name": _str(reporter.get("name")),
                "reporter_agency": _str(reporter.get("agency")),
                "reporter_phone": _str(reporter.get("phone")),
                "reporter_email": _str(reporter.get("email")),
                "classification": classification if isinstance(classification, int)
                and not isinstance(classification, bool) else _str(classification),
                "helpdesk_officer": _str(hd01.get("helpdesk_officer")),
            } if hd01 else None,
            "step": {
                "name": _str(step.get("name")),
                "title": _localised(step.get("title"), language),
                "role": _str(step.get("role")),
                "due": self.when(step.get("due_at"), language),
                "action": _localised(step.get("action_needed"), language),
            } if step else None,
            "workflow": {
                "name": _str(workflow.get("name")),
                "title": _localised(workflow.get("title"), language),
            } if workflow else None,
            "recipient": {
                "name": _str(recipient.get("name")),
                "full_name": _str(recipient.get("full_name")),
                "role": _str(recipient.get("role")),
            },
            "note": _str(payload.get("note")),
            "actor": _str(payload.get("actor")),
            "at": self.when(payload.get("at"), language),
            "timezone": str(self.tz.key),
        }
