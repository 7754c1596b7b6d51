"""The office calendar (working time, "hari kerja", Indonesian public holidays, cuti bersama)
and the Katingan SOP's impact x urgency priority matrix.

Holiday dates are the `holidays` package's own for Indonesia in 2026 (checked by name below,
so a change in the package shows up here first): Nyepi (Day of Silence) Thu 19 March, Idul
Fitri Sat-Sun 21-22 March, Idul Adha Wed 27 May, Independence Day Mon 17 August. Default
office hours: Mon-Thu 08:00-16:00, Fri 08:00-16:30, Asia/Jakarta (WIB, UTC+7, no DST)."""

from __future__ import annotations

import random
import time as timer
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest

from monitord.config import PrioritySettings, WorkingCalendar
from monitord.config_loader import ConfigError, parse_config_text
from monitord.incidents.workflow.calendar import EXTRA_HOLIDAY_NAME, OfficeCalendar
from monitord.incidents.workflow.priority import PRIORITY_ORDER, priority_for, sla_for
from monitord.records import Level

WIB = ZoneInfo("Asia/Jakarta")
UTC = timezone.utc


def wib(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=WIB)


def cal(**settings) -> OfficeCalendar:
    return OfficeCalendar(WorkingCalendar(**settings), WIB)


@pytest.fixture(scope="module")
def office() -> OfficeCalendar:
    return cal()


def same(got: datetime, want: datetime) -> None:
    """Same instant, and returned as aware UTC."""
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0), got
    assert got == want, f"{got.astimezone(WIB):%a %d %b %H:%M} WIB != {want:%a %d %b %H:%M}"


# -- the package's Indonesian holidays ---------------------------------------------------------

def test_the_2026_holidays_used_here_are_the_packages():
    public = holidays.country_holidays("ID", years=2026)
    assert public.get(date(2026, 8, 17)) == "Independence Day"
    assert public.get(date(2026, 3, 19)) == "Day of Silence"  # Nyepi
    assert public.get(date(2026, 3, 21)) == "Eid al-Fitr"  # Idul Fitri, a Saturday
    assert public.get(date(2026, 3, 22)) == "Eid al-Fitr Second Day"
    assert public.get(date(2026, 5, 27)) == "Eid al-Adha"  # Idul Adha, a Wednesday
    assert date(2026, 8, 17).weekday() == 0 and date(2026, 3, 19).weekday() == 3
    assert date(2026, 5, 27).weekday() == 2


def test_holiday_names_and_working_days(office):
    assert office.holiday_name(date(2026, 8, 17)) == "Independence Day"
    assert office.holiday_name(date(2026, 8, 17), language="id") == \
        "Hari Kemerdekaan Republik Indonesia"
    assert office.holiday_name(date(2026, 3, 19), language="id") == "Hari Suci Nyepi"
    assert office.holiday_name(date(2026, 3, 21)) == "Eid al-Fitr"
    assert office.holiday_name(date(2026, 8, 18)) is None
    # a moment is read as its date in the office: 17:30 UTC on the 16th is the 17th in WIB
    assert office.holiday_name(datetime(2026, 8, 16, 17, 30, tzinfo=UTC)) == "Independence Day"
    assert not office.is_working_day(date(2026, 8, 17))  # holiday
    assert not office.is_working_day(date(2026, 3, 19))  # Nyepi
    assert not office.is_working_day(date(2026, 5, 27))  # Idul Adha
    assert not office.is_working_day(date(2026, 3, 21))  # Idul Fitri (and a Saturday)
    assert not office.is_working_day(date(2026, 8, 15))  # Saturday
    assert not office.is_working_day(date(2026, 8, 16))  # Sunday
    assert office.is_working_day(date(2026, 8, 14))  # Friday
    assert office.is_working_day(date(2026, 8, 18))  # Tuesday
    assert office.is_working_day(date(2027, 8, 16))  # a Monday of the next year: cached per year
    assert not office.is_working_day(date(2027, 8, 17))


# -- working-time arithmetic ---------------------------------------------------------------------

def test_two_hours_over_a_weekend_and_independence_day(office):
    # Fri 14 Aug 15:30 -> 16:30 is 1h; Sat, Sun off; Mon 17 Aug holiday; Tue 08:00 + 1h
    same(office.add(wib(2026, 8, 14, 15, 30), timedelta(hours=2)), wib(2026, 8, 18, 9, 0))
    # the same start given in UTC (08:30Z is 15:30 WIB) and in WITA (UTC+8)
    same(office.add(datetime(2026, 8, 14, 8, 30, tzinfo=UTC), timedelta(hours=2)),
         datetime(2026, 8, 18, 2, 0, tzinfo=UTC))
    wita = datetime(2026, 8, 14, 16, 30, tzinfo=ZoneInfo("Asia/Makassar"))
    same(office.add(wita, timedelta(hours=2)), wib(2026, 8, 18, 9, 0))


def test_nyepi_and_idul_adha_on_working_days_are_skipped(office):
    # Wed 18 Mar 15:00 -> 16:00 is 1h; Thu 19 Mar Nyepi; Fri 20 Mar 08:00 + 1h
    same(office.add(wib(2026, 3, 18, 15), timedelta(hours=2)), wib(2026, 3, 20, 9))
    # Tue 26 May 15:00 -> 16:00 is 1h; Wed 27 May Idul Adha; Thu 28 May 08:00 + 1h
    same(office.add(wib(2026, 5, 26, 15), timedelta(hours=2)), wib(2026, 5, 28, 9))


def test_cuti_bersama_as_extra_holidays_around_idul_fitri():
    # The package lists the government's joint leave (cuti bersama) as its "government"
    # category; an office enters them as extra_holidays.
    joint = holidays.country_holidays("ID", years=2026, categories=("government",))
    march = sorted(d for d in joint if d.month == 3)
    assert march == [date(2026, 3, 18), date(2026, 3, 20), date(2026, 3, 23),
                     date(2026, 3, 24)]
    office = cal(extra_holidays=tuple(march))
    assert office.holiday_name(date(2026, 3, 23)) == EXTRA_HOLIDAY_NAME
    assert office.holiday_name(date(2026, 3, 21)) == "Eid al-Fitr"  # public name kept
    # Tue 17 Mar 15:00 -> 16:00 is 1h; 18 cuti, 19 Nyepi, 20 cuti, 21-22 Idul Fitri,
    # 23-24 cuti; Wed 25 Mar 08:00 + 1h
    same(office.add(wib(2026, 3, 17, 15), timedelta(hours=2)), wib(2026, 3, 25, 9))
    # Kaltim: the whole procedure in "5 hari kerja" from Mon 16 Mar 09:00
    same(cal().add_working_days(wib(2026, 3, 16, 9), 5), wib(2026, 3, 24, 9))  # Nyepi only
    same(office.add_working_days(wib(2026, 3, 16, 9), 5), wib(2026, 3, 30, 9))


def test_extra_holidays_and_extra_working_days():
    fri = wib(2026, 8, 14, 15, 30)
    # Tue 18 Aug made a holiday too: Wed 19 Aug 09:00
    office = cal(extra_holidays=(date(2026, 8, 18),))
    assert not office.is_working_day(date(2026, 8, 18))
    assert office.holiday_name(date(2026, 8, 18)) == EXTRA_HOLIDAY_NAME
    same(office.add(fri, timedelta(hours=2)), wib(2026, 8, 19, 9))
    # Independence Day made a working day: Mon 17 Aug 09:00 (the name stays)
    office = cal(extra_working_days=(date(2026, 8, 17),))
    assert office.is_working_day(date(2026, 8, 17))
    assert office.holiday_name(date(2026, 8, 17)) == "Independence Day"
    same(office.add(fri, timedelta(hours=2)), wib(2026, 8, 17, 9))
    # A Saturday made a working day gets the usual hours (08:00-16:00): Sat 15 Aug 09:00
    office = cal(extra_working_days=(date(2026, 8, 15),))
    assert office.is_working_time(wib(2026, 8, 15, 8)) and not office.is_working_time(
        wib(2026, 8, 15, 16))
    same(office.add(fri, timedelta(hours=2)), wib(2026, 8, 15, 9))
    # extra working days override extra holidays as well
    office = cal(extra_holidays=(date(2026, 8, 18),), extra_working_days=(date(2026, 8, 18),))
    assert office.is_working_day(date(2026, 8, 18))


def test_calendar_from_the_configuration_file():
    config = parse_config_text("""
timezone: Asia/Makassar
workflows:
  calendar:
    office_hours: {mon: "07:30-16:00", tue: "07:30-16:00", wed: "07:30-16:00",
                   thu: "07:30-16:00", fri: "07:30-11:30", sat: "00:00-24:00"}
    extra_holidays: [2026-08-18]
    extra_working_days: [2026-08-16]
""")
    office = OfficeCalendar(config.workflows.calendar, config.tz)
    wita = ZoneInfo("Asia/Makassar")
    start = datetime(2026, 8, 14, 11, 0, tzinfo=wita)  # Fri: 30 min left
    # 30 min Fri + 24h Sat + 8.5h Sun (extra working day, usual hours 07:30-16:00) = 33h;
    # Mon holiday, Tue extra holiday; the last 1h from Wed 07:30
    same(office.add(start, timedelta(hours=34)),
         datetime(2026, 8, 19, 8, 30, tzinfo=wita).astimezone(UTC))
    assert office.is_working_time(datetime(2026, 8, 15, 23, 59, tzinfo=wita))
    assert office.working_time_between(datetime(2026, 8, 15, 0, tzinfo=wita),
                                       datetime(2026, 8, 16, 0, tzinfo=wita)) == timedelta(
        hours=24)


def test_start_outside_office_hours(office):
    # Saturday: counting begins Monday 08:00
    same(office.add(wib(2026, 1, 10, 10), timedelta(hours=1)), wib(2026, 1, 12, 9))
    # before opening, after closing, exactly at closing
    same(office.add(wib(2026, 1, 12, 6), timedelta(minutes=30)), wib(2026, 1, 12, 8, 30))
    same(office.add(wib(2026, 1, 13, 18), timedelta(hours=1)), wib(2026, 1, 14, 9))
    same(office.add(wib(2026, 1, 13, 16), timedelta(0)), wib(2026, 1, 14, 8))
    # inside hours a zero duration is the start itself; a deadline may fall at closing time
    same(office.add(wib(2026, 1, 13, 10), timedelta(0)), wib(2026, 1, 13, 10))
    same(office.add(wib(2026, 1, 12, 15), timedelta(hours=1)), wib(2026, 1, 12, 16))
    # "1 hari" of the Bekasi/Kaltim files is 8h of office hours: Mon 10:00 -> Tue 10:00
    same(office.add(wib(2026, 1, 12, 10), timedelta(hours=8)), wib(2026, 1, 13, 10))
    # Friday is 8.5h: Fri 10:00 + 8h -> Mon 09:30
    same(office.add(wib(2026, 1, 9, 10), timedelta(hours=8)), wib(2026, 1, 12, 9, 30))


def test_working_time_false_is_plain_wall_time(office):
    start = wib(2026, 8, 14, 15, 30)
    same(office.add(start, timedelta(hours=2), working_time=False), wib(2026, 8, 14, 17, 30))
    same(office.add(start, timedelta(days=3), working_time=False), wib(2026, 8, 17, 15, 30))
    same(office.add(wib(2026, 8, 15, 3), timedelta(minutes=15), working_time=False),
         wib(2026, 8, 15, 3, 15))


def test_is_working_time_in_utc(office):
    # Mon 12 Jan 2026: 08:00 WIB is 01:00 UTC; closing 16:00 WIB is 09:00 UTC
    assert not office.is_working_time(datetime(2026, 1, 12, 0, 59, tzinfo=UTC))
    assert office.is_working_time(datetime(2026, 1, 12, 1, 0, tzinfo=UTC))
    assert office.is_working_time(datetime(2026, 1, 12, 8, 59, tzinfo=UTC))
    assert not office.is_working_time(datetime(2026, 1, 12, 9, 0, tzinfo=UTC))
    # Fri 16:15 WIB is still open (Friday closes 16:30)
    assert office.is_working_time(datetime(2026, 1, 9, 9, 15, tzinfo=UTC))
    # 18:00 UTC Sunday is 01:00 WIB Monday: not yet open
    assert not office.is_working_time(datetime(2026, 1, 11, 18, 0, tzinfo=UTC))


def test_naive_datetimes_and_negative_durations_are_refused(office):
    with pytest.raises(ValueError, match="timezone-aware"):
        office.add(datetime(2026, 1, 12, 9), timedelta(hours=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        office.is_working_time(datetime(2026, 1, 12, 9))
    with pytest.raises(ValueError, match="negative"):
        office.add(wib(2026, 1, 12, 9), timedelta(hours=-1))
    with pytest.raises(ValueError, match="negative"):
        office.add_working_days(wib(2026, 1, 12, 9), -1)


def test_an_office_without_hours_has_no_working_time():
    office = cal(office_hours={})
    assert not office.is_working_day(date(2026, 1, 12))
    with pytest.raises(ValueError, match="no working time"):
        office.add(wib(2026, 1, 12, 9), timedelta(hours=1))


def test_office_hours_that_end_before_they_start_are_refused():
    # refused by the configuration already, so check-config reports it with file and line
    with pytest.raises(ValueError, match="office hours as HH:MM-HH:MM"):
        cal(office_hours={"mon": "16:00-08:00"})
    with pytest.raises(ValueError, match="office hours as HH:MM-HH:MM"):
        cal(office_hours={"mon": "08:00-24:30"})


def test_unknown_country_is_refused():
    with pytest.raises(ValueError, match="a country code the holidays package knows"):
        cal(country="XX")


# -- hari kerja ----------------------------------------------------------------------------------

def test_add_working_days(office):
    # same clock time on the next working day: over a weekend
    same(office.add_working_days(wib(2026, 1, 9, 10), 1), wib(2026, 1, 12, 10))
    same(office.add_working_days(wib(2026, 1, 9, 10), 2), wib(2026, 1, 13, 10))
    same(office.add_working_days(wib(2026, 1, 19, 10), 5), wib(2026, 1, 26, 10))
    # Fri 16 Jan 2026 is Isra' Mi'raj: five working days from Mon 12 Jan end on Tue 20 Jan
    assert office.holiday_name(date(2026, 1, 16)) == "Isra' and Mi'raj"
    same(office.add_working_days(wib(2026, 1, 12, 10), 5), wib(2026, 1, 20, 10))
    # over a weekend and Independence Day
    same(office.add_working_days(wib(2026, 8, 14, 10), 1), wib(2026, 8, 18, 10))
    # outside office hours: from the next opening (Saturday -> Monday 08:00 -> Tuesday 08:00)
    same(office.add_working_days(wib(2026, 1, 10, 10), 1), wib(2026, 1, 13, 8))
    same(office.add_working_days(wib(2026, 1, 9, 17), 1), wib(2026, 1, 13, 8))
    # Friday 16:15 is after Monday's closing: clamped to Monday 16:00
    same(office.add_working_days(wib(2026, 1, 9, 16, 15), 1), wib(2026, 1, 12, 16))
    # zero days: the start, or the next opening
    same(office.add_working_days(wib(2026, 1, 12, 10), 0), wib(2026, 1, 12, 10))
    same(office.add_working_days(wib(2026, 1, 10, 10), 0), wib(2026, 1, 12, 8))
    # fractions: that share of the day's office hours, as working time
    same(office.add_working_days(wib(2026, 1, 12, 8), 0.5), wib(2026, 1, 12, 12))
    same(office.add_working_days(wib(2026, 1, 9, 8), 1.5), wib(2026, 1, 12, 12))
    same(office.add_working_days(wib(2026, 1, 12, 14), 0.5), wib(2026, 1, 13, 10))
    # given in UTC: Fri 9 Jan 03:00Z is 10:00 WIB
    same(office.add_working_days(datetime(2026, 1, 9, 3, tzinfo=UTC), 1),
         datetime(2026, 1, 12, 3, tzinfo=UTC))


# -- working_time_between is the inverse of add --------------------------------------------------

def test_working_time_between(office):
    # Fri 15:30 -> Tue 09:00 over the weekend and Independence Day: 1h + 1h
    assert office.working_time_between(wib(2026, 8, 14, 15, 30), wib(2026, 8, 18, 9)) == \
        timedelta(hours=2)
    assert office.working_time_between(wib(2026, 8, 18, 9), wib(2026, 8, 14, 15, 30)) == \
        -timedelta(hours=2)
    assert office.working_time_between(wib(2026, 8, 15, 9), wib(2026, 8, 17, 12)) == \
        timedelta(0)
    # a week without holidays: 4 x 8h + 8.5h; the week before lost Fri 16 Jan (Isra' Mi'raj)
    assert office.working_time_between(wib(2026, 1, 19), wib(2026, 1, 26)) == \
        timedelta(hours=40, minutes=30)
    assert office.working_time_between(wib(2026, 1, 12), wib(2026, 1, 19)) == \
        timedelta(hours=32)


def _reference_add(start: datetime, minutes: int, public: set[date]) -> datetime:
    """Minute by minute, independent of OfficeCalendar: default hours, WIB, `public` off."""
    hours = {0: (time(8), time(16)), 1: (time(8), time(16)), 2: (time(8), time(16)),
             3: (time(8), time(16)), 4: (time(8), time(16, 30))}
    local = start.astimezone(WIB).replace(tzinfo=None)

    def open_at(t: datetime) -> bool:
        span = hours.get(t.weekday())
        return span is not None and t.date() not in public and span[0] <= t.time() < span[1]

    while not open_at(local):
        local += timedelta(minutes=1)
    for _ in range(minutes):
        local += timedelta(minutes=1)
        if not open_at(local):  # the deadline may sit at a closing time...
            if _ == minutes - 1:
                break
            while not open_at(local):  # ...otherwise counting resumes at the next opening
                local += timedelta(minutes=1)
    return local.replace(tzinfo=WIB).astimezone(UTC)


def test_add_agrees_with_a_minute_by_minute_reference(office):
    public = set(holidays.country_holidays("ID", years=2026))
    rng = random.Random(1945)
    for _ in range(40):
        start = wib(2026, 1, 1) + timedelta(minutes=rng.randrange(365 * 24 * 60))
        minutes = rng.randrange(1, 20 * 60)
        assert office.add(start, timedelta(minutes=minutes)) == \
            _reference_add(start, minutes, public), (start, minutes)


def test_working_time_between_inverts_add_over_random_starts():
    office = cal(extra_holidays=(date(2026, 3, 20), date(2026, 3, 23), date(2026, 3, 24)),
                 extra_working_days=(date(2026, 2, 28),))
    rng = random.Random(17081945)
    began = timer.perf_counter()
    for _ in range(3000):
        start = datetime(2025, 12, 20, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(400 * 86400))
        duration = timedelta(seconds=rng.randrange(0, 60 * 3600))
        deadline = office.add(start, duration)
        assert deadline >= start
        assert office.working_time_between(start, deadline) == duration, (start, duration)
        if duration:
            assert office.is_working_time(deadline - timedelta(microseconds=1))
        # and add inverts working_time_between for any end in office hours
        end = start + timedelta(seconds=rng.randrange(10 * 86400))
        if office.is_working_time(end):
            assert office.add(start, office.working_time_between(start, end)) == end
    # thousands of calls stay cheap (a day-by-day walk, never minute by minute)
    assert timer.perf_counter() - began < 10


# -- priority --------------------------------------------------------------------------------------

def test_default_priority_matrix_and_sla():
    settings = PrioritySettings()
    assert PRIORITY_ORDER == ("P1", "P2", "P3", "P4")
    assert priority_for(settings, Level.HIGH, Level.HIGH) == "P1"
    assert priority_for(settings, "high", "medium") == "P2"
    assert priority_for(settings, "medium", "high") == "P2"
    assert priority_for(settings, "medium", "medium") == "P3"
    assert priority_for(settings, Level.LOW, "high") == "P3"
    assert priority_for(settings, "LOW", " low ") == "P4"
    with pytest.raises(ValueError, match="impact must be one of low, medium, high"):
        priority_for(settings, "critical", "high")
    p1 = sla_for(settings, "P1")
    assert (p1.respond, p1.resolve, p1.working_time) == (timedelta(minutes=15),
                                                          timedelta(hours=4), False)
    p2 = sla_for(settings, "P2")
    assert (p2.respond, p2.resolve, p2.working_time) == (timedelta(hours=1), timedelta(hours=8),
                                                          True)
    with pytest.raises(KeyError, match="P9"):
        sla_for(settings, "P9")


def test_custom_priority_matrix_from_yaml():
    config = parse_config_text("""
workflows:
  priority:
    matrix:
      high: {high: P1, medium: P1, low: P2}
      medium: {high: P2, medium: P2, low: P3}
      low: {high: P3, medium: P3, low: P3}
    sla:
      P1: {respond: 10m, resolve: 2h, working_time: false}
      P2: {respond: 30m, resolve: 4h}
      P3: {respond: 2h, resolve: 16h}
      P4: {respond: 8h, resolve: 40h}
""")
    settings = config.workflows.priority
    assert priority_for(settings, "high", "medium") == "P1"
    assert priority_for(settings, "medium", "medium") == "P2"
    assert priority_for(settings, "low", "low") == "P3"
    every = {priority_for(settings, i, u) for i in Level for u in Level}
    assert every == {"P1", "P2", "P3"}
    assert sla_for(settings, "P3").resolve == timedelta(hours=16)
    assert sla_for(settings, "P1").working_time is False
    # an SLA deadline on the office calendar: P3 resolve (16h) from Fri 14 Aug 15:30 WIB
    office = OfficeCalendar(config.workflows.calendar, config.tz)
    target = sla_for(settings, priority_for(settings, "low", "high"))
    # Fri 1h, Tue 8h, Wed 7h -> Wed 19 Aug 15:00
    same(office.add(wib(2026, 8, 14, 15, 30), target.resolve, target.working_time),
         wib(2026, 8, 19, 15))


def test_an_incomplete_matrix_is_refused_by_check_config():
    with pytest.raises(ConfigError) as caught:
        parse_config_text("""
workflows:
  priority:
    matrix:
      high: {high: P1, medium: P2, low: P3}
      medium: {high: P2, medium: P3}
      low: {high: P3, medium: P4, low: P4}
""")
    problem = caught.value.problems[0]
    assert problem.path.startswith("workflows.priority"), problem
    assert "every impact and urgency" in str(caught.value)


def test_an_unknown_priority_in_the_matrix_is_refused():
    with pytest.raises(ConfigError) as caught:
        parse_config_text("workflows: {priority: {matrix: {high: {high: P0}}}}")
    assert caught.value.problems[0].path.startswith("workflows.priority")
