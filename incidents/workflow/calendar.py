"""The office's working calendar: which days the office works, its hours on each, and the
arithmetic the SOPs' time standards need ("1 jam" of working time, "1 hari kerja").

* A working day is a weekday listed in `office_hours` that is not a public holiday (the
  `holidays` package for `country`) and not one of `extra_holidays` (cuti bersama), or any
  date in `extra_working_days` (hari kerja pengganti), which overrides all of that.
* Working time is the office hours of working days only. Each day's hours are one span
  "HH:MM-HH:MM" in the office time zone; "24:00" ends the span at the next midnight.
* An extra working day on a weekday without hours of its own (a Saturday, say) gets the
  office's usual hours: the span most weekdays use (the earliest such weekday on a tie).

Pure: no clock of its own. Every datetime in must be timezone-aware (any zone; it is read in
the office time zone) and every datetime out is timezone-aware UTC. Time differences are
exact elapsed time, so a daylight-saving change in the office zone is counted correctly.
Cost: a walk day by day (never minute by minute), with each day's span cached.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays

from monitord.config import WorkingCalendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXTRA_HOLIDAY_NAME = "Cuti bersama"
_ZERO = timedelta(0)
# How many days in a row without office hours before the calendar is declared empty (no
# working time at all): longer than any run of weekends, holidays and cuti bersama.
_MAX_IDLE_DAYS = 400

# A span as offsets from local midnight: (opening, closing), closing up to 24h.
_Span = tuple[timedelta, timedelta]


def _parse_span(spec: str) -> _Span:
    try:
        start, end = spec.split("-")
        (h1, m1), (h2, m2) = ((int(x) for x in part.split(":")) for part in (start, end))
    except ValueError:
        raise ValueError(f"office hours {spec!r}: expected HH:MM-HH:MM") from None
    opening, closing = timedelta(hours=h1, minutes=m1), timedelta(hours=h2, minutes=m2)
    if not (0 <= m1 < 60 and 0 <= m2 < 60 and h1 < 24 and closing <= timedelta(hours=24)):
        raise ValueError(f"office hours {spec!r}: times run from 00:00 to 24:00")
    if closing <= opening:
        raise ValueError(f"office hours {spec!r}: the end must come after the start")
    return opening, closing


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(timezone.utc)


class OfficeCalendar:
    """Office hours, holidays and working-time arithmetic for one office (see the module)."""

    def __init__(self, settings: WorkingCalendar, tz: ZoneInfo) -> None:
        self.settings = settings
        self.tz = tz
        self._spans: dict[int, _Span] = {
            WEEKDAYS.index(day): _parse_span(spec) for day, spec in settings.office_hours.items()}
        usual = Counter(self._spans[i] for i in sorted(self._spans)).most_common(1)
        self._usual: _Span = usual[0][0] if usual else _parse_span("08:00-16:00")
        self._extra_holidays = frozenset(settings.extra_holidays)
        self._extra_working = frozenset(settings.extra_working_days)
        try:  # fail now, not on the first deadline, if the package has no such country
            holidays.country_holidays(settings.country)
        except NotImplementedError:
            raise ValueError(f"the holidays package has no country {settings.country!r}") \
                from None
        self._public: dict[tuple[int, str | None], dict[date, str]] = {}
        self._day_cache: dict[date, tuple[datetime, datetime] | None] = {}

    # -- days ------------------------------------------------------------------------------

    def _local_date(self, day: date) -> date:
        if isinstance(day, datetime):  # a moment: its date in the office
            return _aware(day, "day").astimezone(self.tz).date()
        return day

    def _public_holidays(self, year: int, language: str | None = None) -> dict[date, str]:
        key = (year, language)
        if key not in self._public:
            self._public[key] = dict(holidays.country_holidays(
                self.settings.country, years=year, language=language))
        return self._public[key]

    def holiday_name(self, day: date, language: str | None = None) -> str | None:
        """The public holiday's name (in the package's `language`, e.g. "id"; its default
        otherwise), "Cuti bersama" for an extra holiday that is not also a public one, or None.
        A holiday made an extra working day still has its name. A datetime is read as its
        date in the office time zone."""
        day = self._local_date(day)
        name = self._public_holidays(day.year, language).get(day)
        if name is None and day in self._extra_holidays:
            return EXTRA_HOLIDAY_NAME
        return name

    def is_working_day(self, day: date) -> bool:
        """Whether the office works on `day` (a datetime is read as its date in the office)."""
        day = self._local_date(day)
        if day in self._extra_working:
            return True
        if day.weekday() not in self._spans or day in self._extra_holidays:
            return False
        return day not in self._public_holidays(day.year)

    def _day(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC opening and closing of `day`, or None when it is not a working day."""
        if day not in self._day_cache:
            span = None
            if self.is_working_day(day):
                opening, closing = self._spans.get(day.weekday(), self._usual)
                midnight = datetime.combine(day, time(0))  # naive local wall time
                span = tuple(  # type: ignore[assignment]
                    (midnight + offset).replace(tzinfo=self.tz).astimezone(timezone.utc)
                    for offset in (opening, closing))
            self._day_cache[day] = span
        return self._day_cache[day]

    def is_working_time(self, moment: datetime) -> bool:
        """Whether `moment` falls in office hours (opening included, closing excluded)."""
        at = _aware(moment, "moment")
        span = self._day(at.astimezone(self.tz).date())
        return span is not None and span[0] <= at < span[1]

    # -- arithmetic --------------------------------------------------------------------------

    def add(self, start: datetime, duration: timedelta, working_time: bool = True) -> datetime:
        """The deadline `duration` after `start` (UTC).

        With `working_time`, only office hours of working days count: a start outside them
        begins counting at the next opening, and a deadline that falls exactly at a closing
        time stays there (it is not moved to the next opening). A zero duration gives `start`
        itself in office hours, else the next opening. Without it, plain elapsed time."""
        at = _aware(start, "start")
        if duration < _ZERO:
            raise ValueError(f"duration must not be negative, got {duration}")
        if not working_time:
            return at + duration
        remaining = duration
        day, idle = at.astimezone(self.tz).date(), 0
        while idle < _MAX_IDLE_DAYS:
            span = self._day(day)
            if span is not None and span[1] > at:
                idle = 0
                begin = max(span[0], at)
                available = span[1] - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            else:
                idle += 1
            day += timedelta(days=1)
        raise ValueError(f"the office calendar has no working time within {_MAX_IDLE_DAYS} "
                         f"days after {at.isoformat()}")

    def add_working_days(self, start: datetime, days: int | float) -> datetime:
        """The deadline `days` working days ("hari kerja") after `start` (UTC).

        One working day is the same clock time on the next working day: Friday 10:00 + 1 is
        Monday 10:00 (Tuesday if Monday is a holiday). A start outside office hours counts
        from the next opening (Saturday 10:00 + 1 is Tuesday 08:00, via Monday's opening).
        If that clock time is outside the target day's hours (shorter hours that day) the
        deadline is clamped to its opening or closing. A fraction is that share of the
        office hours of the day it is counted on, as working time: Monday 08:00 + 0.5 with
        08:00-16:00 is Monday 12:00. Zero days gives the start (or the next opening)."""
        if isinstance(days, bool) or days < 0:
            raise ValueError(f"days must be a non-negative number, got {days!r}")
        anchor = self.add(start, _ZERO)  # start itself in office hours, else the next opening
        whole = int(days)
        fraction = days - whole
        day = anchor.astimezone(self.tz).date()
        clock = anchor.astimezone(self.tz).time()
        span = self._day(day)
        for _ in range(whole):
            day, idle = day + timedelta(days=1), 0
            while (span := self._day(day)) is None:
                idle += 1
                if idle > _MAX_IDLE_DAYS:
                    raise ValueError("the office calendar has no further working day")
                day += timedelta(days=1)
        assert span is not None  # the anchor is in office hours
        if whole:
            wanted = datetime.combine(day, clock).replace(tzinfo=self.tz).astimezone(timezone.utc)
            at = min(max(wanted, span[0]), span[1])
        else:
            at = anchor
        if fraction:
            at = self.add(at, (span[1] - span[0]) * fraction)
        return at

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Office hours between `a` and `b` (negative if `b` is before `a`): the inverse of
        `add`, so working_time_between(a, add(a, d)) == d. For SLA compliance reports."""
        start, end = _aware(a, "a"), _aware(b, "b")
        if end < start:
            return -self.working_time_between(b, a)
        total = _ZERO
        day, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        while day <= last:
            span = self._day(day)
            if span is not None:
                begin, finish = max(span[0], start), min(span[1], end)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total
