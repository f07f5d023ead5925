"""Calendar.is_active: days, dates and hours, across DST changes and year ends.

DST dates used (2026): New York springs forward on Mar 8 at 02:00 EST (07:00 UTC) and
falls back on Nov 1 at 02:00 EDT (06:00 UTC); Berlin on Mar 29 at 02:00 CET and Oct 25 at
03:00 CEST (both 01:00 UTC); Sydney falls back on Apr 5 at 03:00 AEDT (Apr 4 16:00 UTC)
and springs forward on Oct 4 at 02:00 AEST (Oct 3 16:00 UTC).

No ``__init__.py`` in this folder on purpose: as a package it would be named ``calendar``
and shadow the standard library module.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing_service.rules.calendar import Calendar
from pricing_service.rules.model import Window

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")


def window(**conditions: Any) -> Window:
    return Window.model_validate(conditions)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def active_minutes(calendar: Calendar, rule: Window, start: datetime, hours: int) -> int:
    """How many of the minutes in the ``hours`` real hours from ``start`` the window is on."""
    # Arithmetic on aware datetimes of one ZoneInfo zone is wall-clock arithmetic; in UTC
    # it counts real time.
    first = start.astimezone(UTC)
    return sum(calendar.is_active(rule, first + timedelta(minutes=m)) for m in range(hours * 60))


def hours_later(start: datetime, hours: int) -> datetime:
    return start.astimezone(UTC) + timedelta(hours=hours)


# -- days and dates ------------------------------------------------------------------------


def test_weekdays_follow_the_local_date_not_utc() -> None:
    calendar = Calendar("America/New_York", {})
    weekdays = window(days=["mon", "tue", "wed", "thu", "fri"])
    # Friday 2026-01-09 23:30 in New York is already Saturday 04:30 in UTC.
    assert calendar.is_active(weekdays, datetime(2026, 1, 9, 23, 30, tzinfo=NEW_YORK))
    assert calendar.is_active(weekdays, utc(2026, 1, 10, 4, 30))
    assert not calendar.is_active(weekdays, utc(2026, 1, 10, 5, 0))  # Saturday 00:00 local
    # The instant may come in any timezone: Saturday 13:59 in Tokyo is Friday 23:59 here.
    tokyo = ZoneInfo("Asia/Tokyo")
    assert calendar.is_active(weekdays, datetime(2026, 1, 10, 13, 59, tzinfo=tokyo))
    assert not calendar.is_active(weekdays, datetime(2026, 1, 10, 14, 0, tzinfo=tokyo))


def test_date_range_is_inclusive_and_crosses_the_year_end() -> None:
    calendar = Calendar("Europe/Berlin", {})
    holidays = window(dates={"from": "2026-12-30", "to": "2027-01-01"})
    assert not calendar.is_active(holidays, datetime(2026, 12, 29, 23, 59, 59, tzinfo=BERLIN))
    assert calendar.is_active(holidays, datetime(2026, 12, 30, 0, 0, tzinfo=BERLIN))
    assert calendar.is_active(holidays, datetime(2026, 12, 31, 23, 59, 59, tzinfo=BERLIN))
    assert calendar.is_active(holidays, datetime(2027, 1, 1, 23, 59, 59, tzinfo=BERLIN))
    assert not calendar.is_active(holidays, datetime(2027, 1, 2, 0, 0, tzinfo=BERLIN))
    # 2026-12-29 23:30 UTC is already 2026-12-30 00:30 in Berlin.
    assert calendar.is_active(holidays, utc(2026, 12, 29, 23, 30))


def test_all_conditions_must_hold() -> None:
    calendar = Calendar("America/New_York", {})
    weekend_afternoons = window(
        days=["sat", "sun"], hours="12:00-18:00", dates={"from": "2026-06-01", "to": "2026-06-30"}
    )
    assert calendar.is_active(weekend_afternoons, datetime(2026, 6, 6, 12, 0, tzinfo=NEW_YORK))
    assert not calendar.is_active(weekend_afternoons, datetime(2026, 6, 5, 12, 0, tzinfo=NEW_YORK))
    assert not calendar.is_active(weekend_afternoons, datetime(2026, 6, 6, 18, 0, tzinfo=NEW_YORK))
    assert not calendar.is_active(weekend_afternoons, datetime(2026, 7, 4, 12, 0, tzinfo=NEW_YORK))


def test_naive_instants_are_rejected() -> None:
    calendar = Calendar("America/New_York", {})
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.is_active(window(days=["mon"]), datetime(2026, 1, 5, 12, 0))


# -- hours ---------------------------------------------------------------------------------


def test_hour_range_end_is_exclusive() -> None:
    calendar = Calendar("Europe/Berlin", {})
    office = window(hours="09:00-17:30")
    assert not calendar.is_active(office, datetime(2026, 5, 4, 8, 59, 59, tzinfo=BERLIN))
    assert calendar.is_active(office, datetime(2026, 5, 4, 9, 0, tzinfo=BERLIN))
    assert calendar.is_active(office, datetime(2026, 5, 4, 17, 29, 59, 999999, tzinfo=BERLIN))
    assert not calendar.is_active(office, datetime(2026, 5, 4, 17, 30, tzinfo=BERLIN))


def test_wrapping_hour_range_is_on_late_evening_and_early_morning() -> None:
    calendar = Calendar("America/New_York", {})
    night = window(hours="22:00-06:00")
    at = datetime(2026, 5, 4, tzinfo=NEW_YORK)
    assert not calendar.is_active(night, at.replace(hour=21, minute=59, second=59))
    assert calendar.is_active(night, at.replace(hour=22))
    assert calendar.is_active(night, at.replace(hour=23, minute=59, second=59))
    assert calendar.is_active(night, at.replace(hour=0))
    assert calendar.is_active(night, at.replace(hour=5, minute=59, second=59))
    assert not calendar.is_active(night, at.replace(hour=6))
    assert active_minutes(calendar, night, at, 24) == 8 * 60


def test_wrapping_hours_and_days_both_use_the_instants_own_date() -> None:
    calendar = Calendar("America/New_York", {})
    friday_nights = window(days=["fri"], hours="22:00-06:00")
    assert calendar.is_active(friday_nights, datetime(2026, 5, 8, 23, 0, tzinfo=NEW_YORK))
    assert calendar.is_active(friday_nights, datetime(2026, 5, 8, 2, 0, tzinfo=NEW_YORK))
    # Saturday 02:00 continues Friday's night on the clock, but it is Saturday.
    assert not calendar.is_active(friday_nights, datetime(2026, 5, 9, 2, 0, tzinfo=NEW_YORK))


def test_wrapping_hours_across_the_year_end() -> None:
    calendar = Calendar("Australia/Sydney", {})
    night = window(hours="20:00-04:00")
    assert calendar.is_active(night, datetime(2026, 12, 31, 23, 59, tzinfo=SYDNEY))
    assert calendar.is_active(night, datetime(2027, 1, 1, 3, 59, tzinfo=SYDNEY))
    assert not calendar.is_active(night, datetime(2027, 1, 1, 4, 0, tzinfo=SYDNEY))


# -- DST: spring forward (skipped local times) ---------------------------------------------


def test_window_starting_in_the_gap_starts_when_the_clocks_jump() -> None:
    calendar = Calendar("America/New_York", {})
    early = window(hours="02:30-04:00")
    assert not calendar.is_active(early, utc(2026, 3, 8, 6, 59, 59))  # 01:59:59 EST
    assert calendar.is_active(early, utc(2026, 3, 8, 7, 0))  # 03:00 EDT
    assert not calendar.is_active(early, utc(2026, 3, 8, 8, 0))  # 04:00 EDT
    # On an ordinary day the same window lasts 90 minutes; on the short day 60.
    day = datetime(2026, 3, 8, tzinfo=NEW_YORK)
    assert active_minutes(calendar, early, day, 23) == 60


def test_window_ending_in_the_gap_ends_when_the_clocks_jump() -> None:
    calendar = Calendar("Europe/Berlin", {})
    late_night = window(hours="01:00-02:30")
    assert calendar.is_active(late_night, utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET
    assert not calendar.is_active(late_night, utc(2026, 3, 29, 1, 0))  # 03:00 CEST
    day = datetime(2026, 3, 29, tzinfo=BERLIN)
    assert active_minutes(calendar, late_night, day, 23) == 60


def test_window_entirely_inside_the_gap_never_starts() -> None:
    calendar = Calendar("Australia/Sydney", {})
    skipped = window(hours="02:00-02:45")
    day = datetime(2026, 10, 4, tzinfo=SYDNEY)
    assert active_minutes(calendar, skipped, day, 23) == 0


def test_short_day_lasts_23_hours() -> None:
    calendar = Calendar("America/New_York", {})
    sunday = window(days=["sun"])
    start = datetime(2026, 3, 8, tzinfo=NEW_YORK)
    assert calendar.next_change(sunday, start, timedelta(days=2)) == hours_later(start, 23)


# -- DST: fall back (repeated local times, first occurrence wins) --------------------------


def test_repeated_hour_is_covered_once_by_a_window_spanning_it() -> None:
    calendar = Calendar("America/New_York", {})
    overnight = window(hours="01:30-03:00")
    assert not calendar.is_active(overnight, utc(2026, 11, 1, 5, 29))  # 01:29 EDT
    assert calendar.is_active(overnight, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    # 01:10 EST is earlier on the wall clock than the start, but later in time: still on.
    assert calendar.is_active(overnight, utc(2026, 11, 1, 6, 10))
    assert calendar.is_active(overnight, utc(2026, 11, 1, 7, 59))  # 02:59 EST
    assert not calendar.is_active(overnight, utc(2026, 11, 1, 8, 0))  # 03:00 EST
    day = datetime(2026, 11, 1, tzinfo=NEW_YORK)
    assert active_minutes(calendar, overnight, day, 25) == 150


def test_window_ending_in_the_repeat_ends_at_its_first_occurrence() -> None:
    calendar = Calendar("America/New_York", {})
    after_midnight = window(hours="00:00-01:30")
    assert calendar.is_active(after_midnight, utc(2026, 11, 1, 5, 29))  # 01:29 EDT
    assert not calendar.is_active(after_midnight, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    # The repeated 01:00-01:30 EST reads inside the range on the clock but stays off.
    assert not calendar.is_active(after_midnight, utc(2026, 11, 1, 6, 0))  # 01:00 EST
    assert not calendar.is_active(after_midnight, utc(2026, 11, 1, 6, 29))  # 01:29 EST


def test_window_inside_the_repeat_runs_only_in_its_first_pass() -> None:
    calendar = Calendar("Europe/Berlin", {})
    repeated = window(hours="02:30-02:45")
    assert calendar.is_active(repeated, utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert not calendar.is_active(repeated, utc(2026, 10, 25, 1, 30))  # 02:30 CET
    day = datetime(2026, 10, 25, tzinfo=BERLIN)
    assert active_minutes(calendar, repeated, day, 25) == 15


def test_wrapping_window_over_the_repeat_in_sydney() -> None:
    calendar = Calendar("Australia/Sydney", {})
    night = window(hours="22:00-02:30")
    # Sydney repeats 02:00-03:00 on Apr 5: 02:00 AEDT is 15:00 UTC, 02:00 AEST 16:00 UTC.
    assert calendar.is_active(night, utc(2026, 4, 4, 15, 29))  # 02:29 AEDT
    assert not calendar.is_active(night, utc(2026, 4, 4, 15, 30))  # 02:30 AEDT
    assert not calendar.is_active(night, utc(2026, 4, 4, 16, 10))  # 02:10 AEST
    start = datetime(2026, 4, 4, 12, 0, tzinfo=SYDNEY)
    assert active_minutes(calendar, night, start, 16) == 4 * 60 + 30


def test_long_day_lasts_25_hours_in_both_hemispheres() -> None:
    sunday = window(days=["sun"])
    new_york = Calendar("America/New_York", {})
    start = datetime(2026, 11, 1, tzinfo=NEW_YORK)
    assert new_york.next_change(sunday, start, timedelta(days=2)) == hours_later(start, 25)
    sydney = Calendar("Australia/Sydney", {})
    start = datetime(2026, 4, 5, tzinfo=SYDNEY)
    assert sydney.next_change(sunday, start, timedelta(days=2)) == hours_later(start, 25)


# -- hours against an independent definition -------------------------------------------------

DST_CHANGES = {
    "America/New_York": (
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
    ),
    "Europe/Berlin": (
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    ),
    "Australia/Sydney": (
        datetime(2026, 4, 4, 16, 0, tzinfo=UTC),
        datetime(2026, 10, 3, 16, 0, tzinfo=UTC),
    ),
    # Lord Howe Island shifts by 30 minutes.
    "Australia/Lord_Howe": (
        datetime(2026, 4, 4, 15, 0, tzinfo=UTC),
        datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    ),
}
CLOCK_TIMES = st.one_of(
    st.sampled_from([time(0), time(1), time(1, 30), time(2), time(2, 30), time(3), time(23)]),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(sorted(DST_CHANGES)),
    st.integers(0, 1),
    st.lists(CLOCK_TIMES, min_size=2, max_size=2, unique=True),
)
def test_hours_run_from_when_the_clock_first_reaches_start_until_it_first_reaches_end(
    zone_name: str, change: int, start_and_end: list[time]
) -> None:
    """Around a DST change, minute by minute: a window is on from the first instant the
    local clock shows its start (or later) to the first instant it shows its end."""
    zone = ZoneInfo(zone_name)
    start, end = start_and_end
    rule = window(hours={"start": start, "end": end})
    calendar = Calendar(zone_name, {})
    first = DST_CHANGES[zone_name][change] - timedelta(hours=36)
    instants = [first + timedelta(minutes=m) for m in range(72 * 60)]
    walls = [instant.astimezone(zone).replace(tzinfo=None) for instant in instants]
    # The latest wall time seen so far only grows, so it can be searched for "first reaches".
    latest_walls = list(accumulate(walls, max))

    def first_reaching(day: datetime, clock: time) -> int:
        return bisect_left(latest_walls, datetime.combine(day.date(), clock))

    expected = [False] * len(instants)
    for day in {wall.replace(hour=0, minute=0) for wall in walls} | {walls[0] - timedelta(days=1)}:
        end_day = day if start < end else day + timedelta(days=1)
        for index in range(first_reaching(day, start), first_reaching(end_day, end)):
            expected[index] = True
    assert [calendar.is_active(rule, instant) for instant in instants] == expected
