"""The office's working calendar: office hours per weekday, public holidays (the `holidays`
package knows Indonesia's), the office's own extra holidays (cuti bersama) and working days.
"1 jam" of working time counts only office hours; "1 hari kerja" is the same clock time on
the next working day. Pure: no clock of its own; aware datetimes in, aware UTC out."""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays

from monitord.config import WorkingCalendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hours(spec: str) -> tuple[time, time]:
    start, end = spec.split("-")
    h1, m1 = (int(x) for x in start.split(":"))
    h2, m2 = (int(x) for x in end.split(":"))
    return time(h1, m1), (time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2))


class OfficeCalendar:
    def __init__(self, settings: WorkingCalendar, tz: ZoneInfo) -> None:
        self.settings = settings
        self.tz = tz
        self._hours = {day: _hours(spec) for day, spec in settings.office_hours.items()}
        self._extra_holidays = set(settings.extra_holidays)
        self._extra_working = set(settings.extra_working_days)

    @functools.lru_cache(maxsize=64)
    def _public(self, year: int):
        try:
            return holidays.country_holidays(self.settings.country, years=year)
        except NotImplementedError:
            return {}

    def holiday_name(self, day: date) -> str | None:
        if day in self._extra_holidays:
            return "cuti bersama"
        return self._public(day.year).get(day)

    def is_working_day(self, day: date) -> bool:
        if day in self._extra_working:
            return True
        if WEEKDAYS[day.weekday()] not in self._hours:
            return False
        return self.holiday_name(day) is None

    def _open_close(self, day: date) -> tuple[datetime, datetime] | None:
        if not self.is_working_day(day):
            return None
        opening, closing = self._hours.get(WEEKDAYS[day.weekday()], (time(8), time(16)))
        return (datetime.combine(day, opening, self.tz), datetime.combine(day, closing, self.tz))

    def is_working_time(self, moment: datetime) -> bool:
        local = moment.astimezone(self.tz)
        span = self._open_close(local.date())
        return span is not None and span[0] <= local < span[1]

    def add(self, start: datetime, duration: timedelta, working_time: bool = True) -> datetime:
        """The deadline `duration` after `start`: wall time, or office hours only."""
        if not working_time:
            return (start + duration).astimezone(timezone.utc)
        remaining = duration
        local = start.astimezone(self.tz)
        day = local.date()
        for _ in range(3660):  # ten years of days at most
            span = self._open_close(day)
            if span is not None:
                begin = max(span[0], local)
                if begin < span[1]:
                    available = span[1] - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(timezone.utc)
                    remaining -= available
            day += timedelta(days=1)
            local = datetime.combine(day, time(0), self.tz)
        raise ValueError("no working time in the calendar")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Same clock time `days` working days later (from the next opening if outside)."""
        local = start.astimezone(self.tz)
        if not self.is_working_time(local):
            local = self.add(local, timedelta(0)).astimezone(self.tz)
        day, moved = local.date(), 0
        while moved < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                moved += 1
        return datetime.combine(day, local.timetz().replace(tzinfo=None), self.tz) \
            .astimezone(timezone.utc)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        total = timedelta(0)
        local, end = a.astimezone(self.tz), b.astimezone(self.tz)
        day = local.date()
        while day <= end.date():
            span = self._open_close(day)
            if span is not None:
                begin, finish = max(span[0], local), min(span[1], end)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total
