"""Configuration versions in the incident store, and unified diffs between them.

A version is written only when the masked text changes; a fetch that returned the same text
moves `last_seen_at`. `show` outputs keep their last `SHOW_KEEP` versions per command."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from monitord.incidents.store.models import NetconfigVersionRow

CONFIG, SHOW, HOSTKEY = "config", "show", "hostkey"  # hostkey: the pinned SSH host key
SHOW_KEEP = 20
DIFF_MAX_LINES = 400  # in a finding's evidence; `monitord config-diff` prints all of it
DIFF_MAX_CHARS = 40_000


@dataclass(frozen=True, slots=True)
class Recorded:
    version: NetconfigVersionRow
    previous: NetconfigVersionRow | None
    changed: bool  # a new version after an older one (the first version is a baseline)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def latest(session: Session, device: str, kind: str = CONFIG, command: str | None = None,
           limit: int = 1) -> Sequence[NetconfigVersionRow]:
    query = select(NetconfigVersionRow).where(NetconfigVersionRow.device == device,
                                              NetconfigVersionRow.kind == kind)
    if command is not None:
        query = query.where(NetconfigVersionRow.command == command)
    return session.scalars(query.order_by(NetconfigVersionRow.id.desc()).limit(limit)).all()


def record(session: Session, device: str, kind: str, command: str, text: str,
           at: datetime) -> Recorded:
    """Store `text` (already masked) as the newest version unless it equals the latest."""
    command = command[:200]
    last = next(iter(latest(session, device, kind, command)), None)
    sha = digest(text)
    if last is not None and last.sha256 == sha:
        last.last_seen_at = at
        return Recorded(last, None, False)
    row = NetconfigVersionRow(device=device, kind=kind, command=command, sha256=sha,
                              content=text, lines=len(text.splitlines()), fetched_at=at,
                              last_seen_at=at)
    session.add(row)
    session.flush()
    if kind == SHOW:
        keep = [r.id for r in latest(session, device, SHOW, command, SHOW_KEEP)]
        session.execute(delete(NetconfigVersionRow).where(
            NetconfigVersionRow.device == device, NetconfigVersionRow.kind == SHOW,
            NetconfigVersionRow.command == command, NetconfigVersionRow.id.not_in(keep)))
    return Recorded(row, last, last is not None)


@dataclass(frozen=True, slots=True)
class Diff:
    text: str
    added: int
    removed: int
    truncated: bool


def unified_diff(device: str, old: NetconfigVersionRow | None, new: NetconfigVersionRow,
                 max_lines: int | None = DIFF_MAX_LINES) -> Diff:
    before = old.content.splitlines() if old is not None else []
    label_old = f"{device} v{old.id} {old.fetched_at.isoformat()}" if old else "/dev/null"
    label_new = f"{device} v{new.id} {new.fetched_at.isoformat()}"
    lines = list(difflib.unified_diff(before, new.content.splitlines(), label_old, label_new,
                                      lineterm=""))
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    truncated = False
    if max_lines is not None and len(lines) > max_lines:
        lines, truncated = lines[:max_lines], True
    text = "\n".join(lines)
    if max_lines is not None and len(text) > DIFF_MAX_CHARS:
        text, truncated = text[:DIFF_MAX_CHARS], True
    return Diff(text, added, removed, truncated)
