"""Maintenance windows: during a window a device's (or site's, or category's) findings are still
recorded and shown, but open no ticket and escalate nothing. A condition still present when the
window ends opens its incident then.

Windows come from the configuration (one-off or weekly) and from people (KD/KS/KB) through
`monitord maintenance add|list|end`, stored in the `maintenance_windows` table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitord.config import Config, MaintenanceWindow as ConfiguredWindow
from monitord.incidents.store.models import MaintenanceRow

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAY_SET_WINDOWS = ("KD", "KS", "KB")


@dataclass(frozen=True, slots=True)
class Window:
    scope: str  # device | site | category
    value: str
    start: datetime
    end: datetime
    reason: str
    origin: str  # "config" or the stored row's id

    def covers(self, device: str | None, site: str | None, category: str | None,
               at: datetime) -> bool:
        if not self.start <= at < self.end:
            return False
        return {"device": device, "site": site, "category": category}.get(self.scope) == self.value


def expand(configured: ConfiguredWindow, tz: ZoneInfo, around: datetime) -> list[Window]:
    """Concrete windows of a configured one near `around` (weekly ones: this week and last)."""
    scope, value = configured.scope()
    if configured.start_at is not None:
        return [Window(scope, value, configured.start_at, configured.end_at, configured.reason,
                       "config")]
    local = around.astimezone(tz)
    hours, minutes = (int(x) for x in configured.weekly.start.split(":"))
    windows = []
    for back in range(0, 8):
        day = (local - timedelta(days=back)).date()
        if WEEKDAYS[day.weekday()] in configured.weekly.days:
            start = datetime.combine(day, time(hours, minutes), tz)
            windows.append(Window(scope, value, start, start + configured.weekly.duration,
                                  configured.reason, "config"))
    return windows


class MaintenanceCalendar:
    """Answers "is this finding's device in maintenance at this moment?"."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def windows(self, session: Session, at: datetime) -> list[Window]:
        found: list[Window] = []
        for configured in self.config.maintenance:
            found.extend(expand(configured, self.config.tz, at))
        for row in session.scalars(select(MaintenanceRow).where(
                MaintenanceRow.starts_at <= at, MaintenanceRow.ends_at > at)):
            found.append(Window(row.scope, row.value, row.starts_at, row.ends_at, row.reason,
                                str(row.id)))
        return found

    def covering(self, windows: Iterable[Window], device: str | None, category: str | None,
                 at: datetime) -> Window | None:
        site = None
        if device:
            configured = self.config.device(device)
            site = configured.site if configured else None
        return next((w for w in windows if w.covers(device, site, category, at)), None)


def add_window(session: Session, scope: str, value: str, starts_at: datetime, ends_at: datetime,
               reason: str, created_by: str, at: datetime) -> MaintenanceRow:
    row = MaintenanceRow(scope=scope, value=value, starts_at=starts_at, ends_at=ends_at,
                         reason=reason, created_by=created_by, created_at=at)
    session.add(row)
    session.flush()
    return row


def end_window(session: Session, window_id: int, at: datetime) -> MaintenanceRow | None:
    row = session.get(MaintenanceRow, window_id)
    if row is not None and row.ends_at > at:
        row.ends_at = max(at, row.starts_at)
    return row


def list_windows(session: Session, at: datetime) -> Sequence[MaintenanceRow]:
    return session.scalars(select(MaintenanceRow).where(MaintenanceRow.ends_at > at)
                           .order_by(MaintenanceRow.starts_at)).all()
