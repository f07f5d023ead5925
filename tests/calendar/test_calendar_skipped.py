"""skipped_times and hours_skipped: the local time the clocks skip, and the windows whose
hours lie wholly inside it (which the loader warns about), checked against is_active."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pricing_service.rules.calendar import Calendar, SkippedTime, hours_skipped, skipped_times
from pricing_service.rules.model import Event, Window


def window(**conditions: Any) -> Window:
    return Window.model_validate(conditions)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("America/New_York", [SkippedTime(date(2027, 3, 14), time(2), time(3))]),
        ("Europe/Berlin", [SkippedTime(date(2027, 3, 28), time(2), time(3))]),
        # Half an hour, in October (southern spring).
        ("Australia/Lord_Howe", [SkippedTime(date(2027, 10, 3), time(2), time(2, 30))]),
        # At midnight: the day starts at 01:00.
        ("America/Santiago", [SkippedTime(date(2027, 9, 5), time(0), time(1))]),
        ("Asia/Tokyo", []),
        ("UTC", []),
    ],
)
def test_skipped_times_follow_tzdata(zone: str, expected: list[SkippedTime]) -> None:
    assert list(skipped_times(zone, 2027)) == expected


def active_minutes_on(timezone: str, rule: Window, day: date) -> int:
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    calendar = Calendar(timezone, {})
    minutes = int((end - start).total_seconds() // 60)
    return sum(calendar.is_active(rule, start + timedelta(minutes=m)) for m in range(minutes))


@pytest.mark.parametrize(
    ("zone", "hours", "skipped"),
    [
        ("America/New_York", "02:00-03:00", True),
        ("America/New_York", "02:10-02:50", True),
        ("America/New_York", "02:00-04:00", False),
        ("America/New_York", "01:00-02:00", False),
        ("Australia/Lord_Howe", "02:00-02:30", True),
        ("Australia/Lord_Howe", "02:00-03:00", False),
        ("America/Santiago", "00:00-01:00", True),
        ("America/Santiago", "23:00-01:00", False),  # past midnight: 23:00-24:00 is on
    ],
)
def test_a_window_reported_skipped_is_never_on_that_day(
    zone: str, hours: str, skipped: bool
) -> None:
    [gap] = skipped_times(zone, 2027)
    rule = window(hours=hours, dates={"from": gap.day, "to": gap.day})
    found, never = hours_skipped(rule, zone, {}, 2027)
    assert (found == [gap], never) == ((True, True) if skipped else (False, False))
    assert (active_minutes_on(zone, rule, gap.day) == 0) == skipped


#: The second Sunday of March is New York's spring-forward day every year; the weekend
#: before it holds a Saturday whose 02:00-03:00 is on.
EVENTS = {
    "clocks": Event.model_validate(
        {"name": "Clocks", "nth_weekday": {"month": 3, "weekday": "sun", "n": 2}}
    ),
    "weekend": Event.model_validate(
        {
            "name": "Weekend",
            "nth_weekday": {"month": 3, "weekday": "sat", "n": 2},
            "duration_days": 2,
        }
    ),
}


@pytest.mark.parametrize(("event", "never"), [("clocks", True), ("weekend", False)])
def test_an_event_window_looks_at_each_occurrence(event: str, never: bool) -> None:
    rule = window(hours="02:00-03:00", events=[event])
    found, found_never = hours_skipped(rule, "America/New_York", EVENTS, 2027)
    days = [date(2027, 3, 14), date(2028, 3, 12), date(2029, 3, 11)]
    assert ([piece.day for piece in found], found_never) == (days, never)
