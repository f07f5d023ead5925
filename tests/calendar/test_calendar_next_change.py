"""Calendar.next_change: exact instants, horizons, and a brute-force comparison."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pricing_service.rules.calendar import Calendar
from pricing_service.rules.model import Event, Weekday, Window

NEW_YORK = ZoneInfo("America/New_York")
ONE_MINUTE = timedelta(minutes=1)


def window(**conditions: Any) -> Window:
    return Window.model_validate(conditions)


def event(**fields: Any) -> Event:
    return Event.model_validate({"name": "An event", **fields})


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_change_is_exact_and_in_utc() -> None:
    calendar = Calendar("America/New_York", {})
    office = window(hours="09:00-17:00")
    at = datetime(2026, 5, 4, 8, 15, 30, 250, tzinfo=NEW_YORK)
    change = calendar.next_change(office, at, timedelta(days=1))
    assert change == utc(2026, 5, 4, 13, 0)
    assert change is not None
    assert change.tzinfo is UTC
    assert calendar.next_change(office, change, timedelta(days=1)) == utc(2026, 5, 4, 21, 0)


def test_no_change_within_the_horizon() -> None:
    calendar = Calendar("America/New_York", {})
    office = window(hours="09:00-17:00")
    at = datetime(2026, 5, 4, 17, 0, tzinfo=NEW_YORK)
    assert calendar.next_change(office, at, timedelta(hours=15, minutes=59)) is None
    # The horizon's end is included.
    assert calendar.next_change(office, at, timedelta(hours=16)) == utc(2026, 5, 5, 13, 0)
    assert calendar.next_change(window(days=list(Weekday)), at, timedelta(days=30)) is None


def test_spring_forward_start_is_the_jump() -> None:
    calendar = Calendar("America/New_York", {})
    early = window(hours="02:30-04:00")
    at = datetime(2026, 3, 8, 1, 0, tzinfo=NEW_YORK)
    assert calendar.next_change(early, at, timedelta(hours=6)) == utc(2026, 3, 8, 7, 0)


def test_fall_back_window_does_not_break_in_the_repeat() -> None:
    calendar = Calendar("Europe/Berlin", {})
    overnight = window(hours="02:30-04:00")
    start = utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert calendar.next_change(overnight, start - ONE_MINUTE, timedelta(hours=1)) == start
    assert calendar.next_change(overnight, start, timedelta(hours=6)) == utc(2026, 10, 25, 3, 0)


def test_event_changes_across_the_year_end() -> None:
    calendar = Calendar(
        "Australia/Sydney",
        {"new_year": event(month_day="12-31", starts_at="18:00", duration_days=2)},
    )
    party = window(events=["new_year"])
    sydney = ZoneInfo("Australia/Sydney")
    at = datetime(2026, 12, 1, tzinfo=sydney)
    start = calendar.next_change(party, at, timedelta(days=60))
    assert start == datetime(2026, 12, 31, 18, 0, tzinfo=sydney)
    assert calendar.next_change(party, start, timedelta(days=60)) == datetime(
        2027, 1, 2, tzinfo=sydney
    )


def test_clocks_falling_back_across_midnight_return_to_the_previous_date() -> None:
    # America/Moncton, 2006-10-29: at 00:01 ADT (03:01 UTC) the clocks went back to
    # 23:01 AST on Saturday the 28th, so Sunday began, ended after a minute, began again.
    calendar = Calendar("America/Moncton", {})
    sunday = window(days=["sun"])
    horizon = timedelta(hours=3)
    assert calendar.next_change(sunday, utc(2006, 10, 29, 2, 0), horizon) == utc(2006, 10, 29, 3, 0)
    assert calendar.next_change(sunday, utc(2006, 10, 29, 3, 0), horizon) == utc(2006, 10, 29, 3, 1)
    assert calendar.next_change(sunday, utc(2006, 10, 29, 3, 1), horizon) == utc(2006, 10, 29, 4, 0)


# -- against a brute-force scan ------------------------------------------------------------

ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe")
# DST changes of 2026 in those zones (Lord Howe shifts by 30 minutes) and a year end.
INTERESTING_INSTANTS = (
    utc(2026, 3, 8, 7, 0),
    utc(2026, 11, 1, 6, 0),
    utc(2026, 3, 29, 1, 0),
    utc(2026, 10, 25, 1, 0),
    utc(2026, 4, 4, 16, 0),
    utc(2026, 10, 3, 16, 0),
    utc(2026, 4, 4, 15, 0),
    utc(2026, 10, 3, 15, 30),
    utc(2026, 12, 31, 12, 0),
)
# Events starting in gaps and repeats of those zones, and one spanning the new year.
EVENTS = {
    "dst_day_0130": event(month_day="03-08", starts_at="01:30"),
    "dst_day_0230": event(month_day="11-01", starts_at="02:30", duration_days=2),
    "europe_0230": event(month_day="03-29", starts_at="02:30"),
    "europe_autumn": event(month_day="10-25", starts_at="02:30"),
    "south_autumn": event(month_day="04-05", starts_at="02:15", duration_days=3),
    "south_spring": event(month_day="10-04", starts_at="02:00"),
    "new_year": event(month_day="12-31", starts_at="18:00", duration_days=2),
    "two_ranges": event(
        dates=[
            {"from": "2026-03-07", "to": "2026-03-08"},
            {"from": "2026-10-03", "to": "2026-10-04"},
        ]
    ),
}
CLOCK_TIMES = st.one_of(
    st.sampled_from([time(0), time(1, 30), time(2), time(2, 30), time(3), time(22)]),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 59])),
)


@st.composite
def windows(draw: st.DrawFn, near: date) -> Window:
    conditions: dict[str, Any] = {}
    if draw(st.booleans()):
        conditions["days"] = draw(st.lists(st.sampled_from(list(Weekday)), min_size=1, max_size=6))
    if draw(st.booleans()):
        start, end = draw(st.lists(CLOCK_TIMES, min_size=2, max_size=2, unique=True))
        conditions["hours"] = {"start": start, "end": end}
    if draw(st.booleans()):
        first = near + timedelta(days=draw(st.integers(-3, 3)))
        conditions["dates"] = {"from": first, "to": first + timedelta(days=draw(st.integers(0, 3)))}
    if draw(st.booleans()) or not conditions:
        conditions["events"] = draw(
            st.lists(st.sampled_from(sorted(EVENTS)), min_size=1, max_size=3)
        )
    return Window.model_validate(conditions)


@st.composite
def situations(draw: st.DrawFn) -> tuple[str, Window, datetime, timedelta]:
    near = draw(st.sampled_from(INTERESTING_INSTANTS))
    at = near + draw(st.integers(-2 * 24 * 60, 2 * 24 * 60)) * ONE_MINUTE
    horizon = draw(st.integers(1, 3 * 24 * 60)) * ONE_MINUTE
    return draw(st.sampled_from(ZONES)), draw(windows(near.date())), at, horizon


def first_change_by_minutes(
    calendar: Calendar, rule: Window, at: datetime, horizon: timedelta
) -> datetime | None:
    # Every boundary here lies on a whole minute, so minute steps cannot miss a change.
    was_active = calendar.is_active(rule, at)
    for minute in range(1, int(horizon / ONE_MINUTE) + 1):
        instant = at + minute * ONE_MINUTE
        if calendar.is_active(rule, instant) != was_active:
            return instant
    return None


@settings(max_examples=120, deadline=None)
@given(situations())
def test_next_change_matches_a_minute_by_minute_scan(
    situation: tuple[str, Window, datetime, timedelta],
) -> None:
    zone, rule, at, horizon = situation
    calendar = Calendar(zone, EVENTS)
    assert calendar.next_change(rule, at, horizon) == first_change_by_minutes(
        calendar, rule, at, horizon
    )
