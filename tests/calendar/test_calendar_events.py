"""Calendar.occurrences, events in windows, and unresolvable_events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pricing_service.rules.calendar import Calendar, unresolvable_events
from pricing_service.rules.model import Event, Window

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")


def event(**fields: Any) -> Event:
    return Event.model_validate({"name": "An event", **fields})


THANKSGIVING = {"country": "US", "name": "Thanksgiving"}
RETAIL_EVENTS = {
    "black_friday": event(holiday=THANKSGIVING, offset_days=1),
    "cyber_monday": event(holiday=THANKSGIVING, offset_days=4),
    "christmas": event(month_day="12-25"),
    "prime_day": event(
        dates=[
            {"from": "2026-07-14", "to": "2026-07-15"},
            {"from": "2027-07-13", "to": "2027-07-14"},
        ]
    ),
    # Starts on New Year's Eve at 18:00 and lasts two local days: until Jan 2 00:00.
    "new_year": event(month_day="12-31", starts_at="18:00", duration_days=2),
}


def local_days(calendar: Calendar, event_id: str, year: int) -> list[tuple[datetime, datetime]]:
    return [
        (start.replace(tzinfo=None), end.replace(tzinfo=None))
        for start, end in calendar.occurrences(event_id, year)
    ]


def day(year: int, month: int, day_of_month: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day_of_month, hour, minute)


# -- occurrences -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_id", "year", "first_day"),
    [
        ("black_friday", 2025, date(2025, 11, 28)),
        ("black_friday", 2026, date(2026, 11, 27)),
        ("black_friday", 2027, date(2027, 11, 26)),
        ("cyber_monday", 2026, date(2026, 11, 30)),
        ("christmas", 2026, date(2026, 12, 25)),
    ],
)
def test_named_retail_events_last_one_local_day(event_id: str, year: int, first_day: date) -> None:
    calendar = Calendar("America/New_York", RETAIL_EVENTS)
    [(start, end)] = calendar.occurrences(event_id, year)
    assert start == datetime(first_day.year, first_day.month, first_day.day, tzinfo=NEW_YORK)
    assert end == start + timedelta(days=1)
    assert start.tzinfo == NEW_YORK


def test_explicit_dates_are_inclusive_and_belong_to_their_year() -> None:
    calendar = Calendar("America/New_York", RETAIL_EVENTS)
    assert local_days(calendar, "prime_day", 2026) == [(day(2026, 7, 14), day(2026, 7, 16))]
    assert local_days(calendar, "prime_day", 2027) == [(day(2027, 7, 13), day(2027, 7, 15))]
    assert calendar.occurrences("prime_day", 2028) == []


def test_event_spanning_new_year_belongs_to_its_start_year() -> None:
    calendar = Calendar("Europe/Berlin", RETAIL_EVENTS)
    assert local_days(calendar, "new_year", 2026) == [(day(2026, 12, 31, 18), day(2027, 1, 2))]
    assert local_days(calendar, "new_year", 2027) == [(day(2027, 12, 31, 18), day(2028, 1, 2))]
    party = Window.model_validate({"events": ["new_year"]})
    assert not calendar.is_active(party, datetime(2026, 12, 31, 17, 59, tzinfo=BERLIN))
    assert calendar.is_active(party, datetime(2026, 12, 31, 18, 0, tzinfo=BERLIN))
    # Still on in early January, anchored in the previous year.
    assert calendar.is_active(party, datetime(2027, 1, 1, 23, 59, tzinfo=BERLIN))
    assert not calendar.is_active(party, datetime(2027, 1, 2, 0, 0, tzinfo=BERLIN))


def test_negative_offset_reaches_back_into_the_previous_year() -> None:
    calendar = Calendar("America/New_York", {"pre_sale": event(month_day="01-10", offset_days=-12)})
    assert local_days(calendar, "pre_sale", 2027) == [(day(2026, 12, 29), day(2026, 12, 30))]
    pre_sale = Window.model_validate({"events": ["pre_sale"]})
    assert calendar.is_active(pre_sale, datetime(2026, 12, 29, 12, 0, tzinfo=NEW_YORK))


def test_nth_weekday_anchors() -> None:
    calendar = Calendar(
        "America/New_York",
        {
            "thanksgiving": event(nth_weekday={"month": 11, "weekday": "thu", "n": 4}),
            "memorial_day": event(nth_weekday={"month": 5, "weekday": "mon", "n": -1}),
            "fifth_monday_of_february": event(nth_weekday={"month": 2, "weekday": "mon", "n": 5}),
            "last_sunday_of_december": event(nth_weekday={"month": 12, "weekday": "sun", "n": -1}),
        },
    )
    assert local_days(calendar, "thanksgiving", 2026) == [(day(2026, 11, 26), day(2026, 11, 27))]
    assert local_days(calendar, "memorial_day", 2026) == [(day(2026, 5, 25), day(2026, 5, 26))]
    assert calendar.occurrences("fifth_monday_of_february", 2026) == []
    assert local_days(calendar, "fifth_monday_of_february", 2027) == []
    # 2044 is a leap year whose February starts on a Monday.
    assert local_days(calendar, "fifth_monday_of_february", 2044) == [
        (day(2044, 2, 29), day(2044, 3, 1))
    ]
    assert local_days(calendar, "last_sunday_of_december", 2026) == [
        (day(2026, 12, 27), day(2026, 12, 28))
    ]


def test_leap_day_occurs_only_in_leap_years() -> None:
    calendar = Calendar("Europe/Berlin", {"leap": event(month_day="02-29")})
    assert calendar.occurrences("leap", 2026) == []
    assert local_days(calendar, "leap", 2028) == [(day(2028, 2, 29), day(2028, 3, 1))]


def test_holiday_held_on_consecutive_days_anchors_on_its_first() -> None:
    # The UAE's National Day is a two-day holiday, Dec 2 and 3.
    calendar = Calendar(
        "Asia/Dubai", {"national_day": event(holiday={"country": "AE", "name": "National Day"})}
    )
    assert local_days(calendar, "national_day", 2026) == [(day(2026, 12, 2), day(2026, 12, 3))]


def test_holiday_names_are_english_and_matched_exactly_first() -> None:
    calendar = Calendar(
        "Europe/Berlin",
        {
            "unity": event(holiday={"country": "DE", "name": "german unity"}),
            "christmas": event(holiday={"country": "DE", "name": "Christmas Day"}, duration_days=2),
        },
    )
    assert local_days(calendar, "unity", 2026) == [(day(2026, 10, 3), day(2026, 10, 4))]
    # The exact name wins: "Second Day of Christmas" is not a second anchor.
    assert local_days(calendar, "christmas", 2026) == [(day(2026, 12, 25), day(2026, 12, 27))]


def test_events_last_whole_local_days_across_dst() -> None:
    calendar = Calendar("America/New_York", {"weekend": event(month_day="03-07", duration_days=2)})
    [(start, end)] = calendar.occurrences("weekend", 2026)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=47)  # Mar 8: 23 h
    assert end.astimezone(UTC) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # midnight EDT


def test_event_start_time_in_a_gap_or_repeat_resolves_like_windows() -> None:
    calendar = Calendar(
        "America/New_York",
        {
            "spring": event(month_day="03-08", starts_at="02:30"),
            "autumn": event(month_day="11-01", starts_at="01:30"),
        },
    )
    [(spring_start, _)] = calendar.occurrences("spring", 2026)
    assert spring_start.astimezone(UTC) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    [(autumn_start, _)] = calendar.occurrences("autumn", 2026)
    assert autumn_start.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert autumn_start.fold == 0


def test_southern_hemisphere_event_start_in_the_repeat() -> None:
    calendar = Calendar("Australia/Sydney", {"sale": event(month_day="04-05", starts_at="02:30")})
    [(start, end)] = calendar.occurrences("sale", 2026)
    assert start.astimezone(UTC) == datetime(2026, 4, 4, 15, 30, tzinfo=UTC)  # 02:30 AEDT
    assert end == datetime(2026, 4, 6, tzinfo=SYDNEY)


# -- events in windows ---------------------------------------------------------------------


def test_event_window_follows_the_ruleset_timezone() -> None:
    calendar = Calendar("America/New_York", RETAIL_EVENTS)
    black_friday = Window.model_validate({"events": ["black_friday"]})
    assert not calendar.is_active(black_friday, datetime(2026, 11, 27, 4, 59, 59, tzinfo=UTC))
    assert calendar.is_active(black_friday, datetime(2026, 11, 27, 5, 0, tzinfo=UTC))
    assert calendar.is_active(black_friday, datetime(2026, 11, 27, 23, 59, 59, tzinfo=NEW_YORK))
    assert not calendar.is_active(black_friday, datetime(2026, 11, 28, 0, 0, tzinfo=NEW_YORK))


def test_any_listed_event_and_the_other_conditions() -> None:
    calendar = Calendar("America/New_York", RETAIL_EVENTS)
    cyber_week_evenings = Window.model_validate(
        {"events": ["black_friday", "cyber_monday"], "hours": "18:00-23:00"}
    )
    assert calendar.is_active(cyber_week_evenings, datetime(2026, 11, 27, 19, 0, tzinfo=NEW_YORK))
    assert calendar.is_active(cyber_week_evenings, datetime(2026, 11, 30, 19, 0, tzinfo=NEW_YORK))
    assert not calendar.is_active(
        cyber_week_evenings, datetime(2026, 11, 30, 9, 0, tzinfo=NEW_YORK)
    )
    assert not calendar.is_active(
        cyber_week_evenings, datetime(2026, 11, 29, 19, 0, tzinfo=NEW_YORK)
    )


def test_christmas_in_sydney_is_december_25_local() -> None:
    calendar = Calendar("Australia/Sydney", RETAIL_EVENTS)
    christmas = Window.model_validate({"events": ["christmas"]})
    assert calendar.is_active(christmas, datetime(2026, 12, 24, 13, 0, tzinfo=UTC))
    assert not calendar.is_active(christmas, datetime(2026, 12, 24, 12, 59, tzinfo=UTC))


def test_unknown_event_is_a_key_error() -> None:
    calendar = Calendar("America/New_York", RETAIL_EVENTS)
    with pytest.raises(KeyError, match="unknown event 'easter'"):
        calendar.is_active(Window.model_validate({"events": ["easter"]}), datetime.now(UTC))


def test_unknown_holiday_country_at_run_time_is_a_value_error() -> None:
    calendar = Calendar("UTC", {"odd": event(holiday={"country": "QQ", "name": "Day"})})
    with pytest.raises(ValueError, match="'odd' cannot be resolved"):
        calendar.occurrences("odd", 2026)


# -- unresolvable_events -------------------------------------------------------------------


def test_resolvable_events_pass() -> None:
    assert unresolvable_events(RETAIL_EVENTS, "America/New_York", year=2026) == {}
    assert unresolvable_events(RETAIL_EVENTS, "America/New_York") == {}  # the current year


def test_unknown_country_and_subdivision() -> None:
    problems = unresolvable_events(
        {
            "country": event(holiday={"country": "QQ", "name": "Christmas"}),
            "subdivision": event(
                holiday={"country": "US", "subdivision": "Cal", "name": "Christmas"}
            ),
        },
        "UTC",
        year=2026,
    )
    assert problems["country"].startswith("the holidays library has no country 'QQ'")
    assert problems["subdivision"].startswith("the holidays library has no subdivision 'Cal' of US")
    assert "'CA'" in problems["subdivision"]


def test_unmatched_name_lists_close_names() -> None:
    problems = unresolvable_events(
        {
            "typo": event(holiday={"country": "US", "name": "Thanksgivng"}),
            "nothing_alike": event(holiday={"country": "US", "name": "Oktoberfest"}),
        },
        "UTC",
        year=2026,
    )
    assert problems["typo"] == (
        "no US holiday in 2026 or 2027 has a name containing 'Thanksgivng'; "
        "did you mean 'Thanksgiving Day'?"
    )
    # With nothing close, the message lists the country's holidays instead.
    assert "its holidays are 'Christmas Day', 'Columbus Day'" in problems["nothing_alike"]


def test_name_matching_several_holidays_is_ambiguous() -> None:
    problems = unresolvable_events(
        {
            "german_christmas": event(holiday={"country": "DE", "name": "Christmas"}),
            "californian_black_friday": event(
                holiday={"country": "US", "subdivision": "CA", "name": "Thanksgiving"},
                offset_days=1,
            ),
        },
        "Europe/Berlin",
        year=2026,
    )
    assert problems["german_christmas"] == (
        "'Christmas' matches several DE holidays in 2026 "
        "('Christmas Day', 'Second Day of Christmas'); write the full name of one"
    )
    assert "'Day After Thanksgiving', 'Thanksgiving Day'" in problems["californian_black_friday"]


def test_impossible_month_day() -> None:
    problems = unresolvable_events(
        {"never": event(month_day="02-30"), "leap": event(month_day="02-29")}, "UTC", year=2026
    )
    assert problems == {"never": "month_day '02-30' is not a day of any year"}
