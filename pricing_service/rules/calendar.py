"""When windows and named sales events are on, in a ruleset's IANA timezone.

A :class:`Calendar` answers three questions for the engine: when an event occurs in a year
(:meth:`Calendar.occurrences`), whether a window holds at an instant
(:meth:`Calendar.is_active`, on the hot path) and when that next changes
(:meth:`Calendar.next_change`). :func:`unresolvable_events` checks rule files for holiday
anchors that the ``holidays`` library cannot resolve. The module does no I/O.

Local times and daylight saving time
------------------------------------
Rules speak in local wall-clock times; the clocks skip an hour in spring and repeat one
in autumn. One rule resolves every local time to an instant:

* A time that does not exist (in the spring-forward gap) means the first instant after
  the gap: a window or event starting at 02:30 on the day New York jumps from 02:00 to
  03:00 starts at 03:00 EDT; a window ending at 02:30 that day ends at 03:00 EDT too.
* A time that exists twice (in the fall-back repeat) means its first occurrence (fold=0):
  01:30 on the day New York falls back is 01:30 EDT, never 01:30 EST.

Hours of a window are therefore one contiguous stretch of instants per local day, from
the resolved start to the resolved end (the next day's end when the range wraps past
midnight). On the fall-back day ``01:30-03:00`` is on from 01:30 EDT until 03:00 EST
without a break, and ``00:00-01:30`` is off during the repeated 01:00-01:30 EST.

``days`` and ``dates`` test the local calendar date of the instant, so a day is the
stretch between two local midnights: 23 hours in spring, 25 in autumn. Events last
``duration_days`` local days: from ``starts_at`` on their first day until the local
midnight that ends their last day.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays

from pricing_service.rules.model import Event, HolidayAnchor, HourRange, NthWeekday, Weekday, Window

Interval = tuple[datetime, datetime]
"""``[start, end)``: on from ``start``, off again at ``end``."""

_MIDNIGHT = time(0, 0)
_ONE_DAY = timedelta(days=1)
_ONE_MICROSECOND = timedelta(microseconds=1)
# Indexed by ``date.weekday()``: ``Weekday.iso_index`` scans a list, too slow for the hot path.
_WEEKDAYS = tuple(Weekday)
# ``offset_days`` moves an occurrence at most 60 days from its anchor and it lasts at most
# 60 days (see model.Event), so an occurrence touching year Y is anchored in Y-1, Y or Y+1.
_NEIGHBOUR_YEARS = (-1, 0, 1)
# The holidays library marks lunar-calendar dates it computed rather than took from an
# official source, e.g. "Eid al-Fitr (estimated)"; that is the same holiday for matching.
_ESTIMATED_SUFFIX = re.compile(r"\s*\(estimated\)$", re.IGNORECASE)
_SUGGESTIONS = 3
_LISTED = 12


class Calendar:
    """Windows and events of one ruleset, evaluated in its timezone.

    Occurrences are computed lazily and cached per (event, year); a calendar is cheap to
    build and safe to share between threads (a race only computes a cache entry twice).
    """

    def __init__(self, timezone: str, events: Mapping[str, Event]) -> None:
        self.timezone = timezone
        self._zone = ZoneInfo(timezone)
        self._events = dict(events)
        self._occurrences: dict[tuple[str, int], tuple[Interval, ...]] = {}
        # Per (event, local year): the merged occurrences touching that year, as sorted
        # UTC starts and their ends, for a binary search in is_active.
        self._spans: dict[tuple[str, int], tuple[list[datetime], list[datetime]]] = {}

    def occurrences(self, event_id: str, year: int) -> list[Interval]:
        """The event's occurrences anchored in ``year``, in start order, as aware datetimes
        in the ruleset's timezone. An occurrence may run into the next year (or, with a
        negative ``offset_days``, start in the previous one); it still belongs to the
        year of its anchor. A year in which the anchor does not exist (``month_day``
        "02-29", a fifth weekday, a holiday not held that year) has none.

        Anchors: a holiday spanning consecutive days anchors on its first day; explicit
        ``dates`` ranges are anchored on their ``from`` date and give their own length,
        so ``duration_days`` does not apply to them (``offset_days`` shifts them).

        Raises ``KeyError`` for an unknown event and ``ValueError`` for a holiday anchor
        whose country or subdivision the holidays library does not know.
        """
        return [
            (start.astimezone(self._zone), end.astimezone(self._zone))
            for start, end in self._utc_occurrences(event_id, year)
        ]

    def is_active(self, window: Window, at: datetime) -> bool:
        """Whether every condition of ``window`` holds at the aware instant ``at``."""
        if at.tzinfo is None:
            raise ValueError(f"`at` must be timezone-aware, got {at!r}")
        local = at.astimezone(self._zone)
        if window.days is not None and _WEEKDAYS[local.weekday()] not in window.days:
            return False
        if window.dates is not None and not window.dates.from_ <= local.date() <= window.dates.to:
            return False
        if window.hours is not None and not self._within_hours(window.hours, local):
            return False
        if window.events is not None:
            instant = local.astimezone(UTC)
            return any(self._event_on(event_id, instant, local.year) for event_id in window.events)
        return True

    def next_change(self, window: Window, at: datetime, horizon: timedelta) -> datetime | None:
        """The first instant in ``(at, at + horizon]`` at which ``is_active(window, ·)``
        differs from its value at ``at``, in UTC; None if it stays the same throughout.

        Exact to the microsecond: a window can only change where a local date begins, an
        hour range resolves to its start or end, or an event starts or ends, so those
        instants are the only ones tested.
        """
        if at.tzinfo is None:
            raise ValueError(f"`at` must be timezone-aware, got {at!r}")
        start = at.astimezone(UTC)
        until = start + horizon
        was_active = self.is_active(window, start)
        for candidate in sorted(self._possible_changes(window, start, until)):
            if self.is_active(window, candidate) != was_active:
                return candidate
        return None

    # -- local time ------------------------------------------------------------------

    def _resolve(self, day: date, clock: time) -> datetime:
        """The UTC instant at which the local clock shows ``clock`` on ``day``: the first
        of two when the time repeats, the end of the gap when the time is skipped."""
        wall = datetime.combine(day, clock)
        first = wall.replace(tzinfo=self._zone).astimezone(UTC)
        if first.astimezone(self._zone).replace(tzinfo=None) == wall:
            return first
        # ``wall`` is in a spring-forward gap. Per PEP 495, fold=0 maps it with the offset
        # from before the gap (an instant after the gap) and fold=1 with the offset after
        # it (an instant before the gap); the clocks jump in between.
        before_gap = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        return self._offset_change(before_gap, first)

    def _offset_change(self, before: datetime, after: datetime) -> datetime:
        """The instant in ``(before, after]`` at which the UTC offset changes, given that
        it changes exactly once in between (zoneinfo does not expose its transitions)."""
        offset_before = before.astimezone(self._zone).utcoffset()
        while after - before > _ONE_MICROSECOND:
            middle = before + (after - before) / 2
            if middle.astimezone(self._zone).utcoffset() == offset_before:
                before = middle
            else:
                after = middle
        return after

    def _offset(self, instant: datetime) -> timedelta | None:
        return instant.astimezone(self._zone).utcoffset()

    # -- hours -----------------------------------------------------------------------

    def _within_hours(self, hours: HourRange, local: datetime) -> bool:
        if local.fold == 0:
            # Outside a repeated hour, instants and local wall times are in the same
            # order, so comparing wall times agrees with the resolved hour stretches
            # (a skipped start or end resolves to the first wall time after the gap).
            clock = local.time()
            if hours.start < hours.end:
                return hours.start <= clock < hours.end
            return clock >= hours.start or clock < hours.end
        # The second pass of a repeated hour: wall times no longer tell the order.
        instant = local.astimezone(UTC)
        day = local.date()
        stretches = (self._hour_stretch(hours, day + delta * _ONE_DAY) for delta in (-1, 0, 1))
        return any(start <= instant < end for start, end in stretches)

    def _hour_stretch(self, hours: HourRange, day: date) -> Interval:
        """The instants covered by ``hours`` starting on local ``day``."""
        end_day = day if hours.start < hours.end else day + _ONE_DAY
        return self._resolve(day, hours.start), self._resolve(end_day, hours.end)

    # -- events ----------------------------------------------------------------------

    def _event(self, event_id: str) -> Event:
        try:
            return self._events[event_id]
        except KeyError:
            raise KeyError(f"unknown event {event_id!r}") from None

    def _utc_occurrences(self, event_id: str, year: int) -> tuple[Interval, ...]:
        key = (event_id, year)
        cached = self._occurrences.get(key)
        if cached is None:
            event = self._event(event_id)
            try:
                days = _occurrence_days(event, year)
            except NotImplementedError as error:
                raise ValueError(f"event {event_id!r} cannot be resolved: {error}") from None
            cached = tuple(
                sorted(
                    (self._resolve(first_day, event.starts_at), self._resolve(end_day, _MIDNIGHT))
                    for first_day, end_day in days
                )
            )
            self._occurrences[key] = cached
        return cached

    def _event_spans(self, event_id: str, year: int) -> tuple[list[datetime], list[datetime]]:
        """Every occurrence of the event that touches local ``year``, merged where they
        overlap or meet, as sorted starts and the matching ends."""
        key = (event_id, year)
        cached = self._spans.get(key)
        if cached is not None:
            return cached
        event = self._event(event_id)
        if event.dates is not None:
            anchor_years: Iterable[int] = {date_range.from_.year for date_range in event.dates}
        else:
            anchor_years = (year + delta for delta in _NEIGHBOUR_YEARS)
        intervals = sorted(
            interval
            for anchor_year in anchor_years
            for interval in self._utc_occurrences(event_id, anchor_year)
        )
        starts: list[datetime] = []
        ends: list[datetime] = []
        for start, end in intervals:
            if ends and start <= ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        self._spans[key] = starts, ends
        return starts, ends

    def _event_on(self, event_id: str, instant: datetime, local_year: int) -> bool:
        starts, ends = self._event_spans(event_id, local_year)
        index = bisect_right(starts, instant) - 1
        return index >= 0 and instant < ends[index]

    # -- changes ---------------------------------------------------------------------

    def _possible_changes(self, window: Window, start: datetime, until: datetime) -> set[datetime]:
        """Every instant in ``(start, until]`` at which ``window`` may turn on or off."""
        first_day = start.astimezone(self._zone).date() - _ONE_DAY
        last_day = until.astimezone(self._zone).date() + _ONE_DAY
        found: set[datetime] = set()
        day = first_day
        while day <= last_day:
            if window.days is not None or window.dates is not None:
                found.update(self._date_changes(day))
            if window.hours is not None:
                found.update(self._hour_stretch(window.hours, day))
            day += _ONE_DAY
        for event_id in window.events or ():
            for year in range(first_day.year, last_day.year + 1):
                starts, ends = self._event_spans(event_id, year)
                found.update(starts)
                found.update(ends)
        return {instant for instant in found if start < instant <= until}

    def _date_changes(self, day: date) -> set[datetime]:
        """The instants around local ``day`` at which the local date may change: its
        midnight, the repeat of that midnight when the clocks fall back over it, and any
        UTC-offset change during the day. The last matters where clocks fell back across
        midnight, returning to the previous date without showing 00:00 (America/Moncton
        until 2006: 00:01 ADT became 23:01 AST)."""
        midnight = self._resolve(day, _MIDNIGHT)
        repeated_midnight = (
            datetime.combine(day, _MIDNIGHT, self._zone).replace(fold=1).astimezone(UTC)
        )
        next_midnight = self._resolve(day + _ONE_DAY, _MIDNIGHT)
        changes = {midnight, repeated_midnight}
        if self._offset(midnight) != self._offset(next_midnight):
            changes.add(self._offset_change(midnight, next_midnight))
        return changes


# -- anchors -----------------------------------------------------------------------------


def _occurrence_days(event: Event, year: int) -> list[tuple[date, date]]:
    """The first day and the day after the last day of each occurrence anchored in
    ``year``. Raises NotImplementedError for an unknown holiday country or subdivision."""
    offset = timedelta(days=event.offset_days)
    if event.dates is not None:
        return [
            (date_range.from_ + offset, date_range.to + offset + _ONE_DAY)
            for date_range in event.dates
            if date_range.from_.year == year
        ]
    length = timedelta(days=event.duration_days)
    return [(anchor + offset, anchor + offset + length) for anchor in _anchor_days(event, year)]


def _anchor_days(event: Event, year: int) -> list[date]:
    if event.holiday is not None:
        return _holiday_days(event.holiday, year)
    if event.nth_weekday is not None:
        day = _nth_weekday(event.nth_weekday, year)
        return [] if day is None else [day]
    assert event.month_day is not None, "model.Event requires exactly one anchor"
    day = _month_day(event.month_day, year)
    return [] if day is None else [day]


def _month_day(text: str, year: int) -> date | None:
    """``"12-24"`` in ``year``; None when that year has no such day (``"02-29"``)."""
    month, day = (int(part) for part in text.split("-"))
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _nth_weekday(rule: NthWeekday, year: int) -> date | None:
    """The n-th (or, negative, n-th last) given weekday of the month; None when the
    month has fewer, as with a fifth Monday."""
    weekday = _WEEKDAYS.index(rule.weekday)
    if rule.n > 0:
        first = date(year, rule.month, 1)
        day = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (rule.n - 1))
    else:
        following_month = date(year + rule.month // 12, rule.month % 12 + 1, 1)
        last = following_month - _ONE_DAY
        day = last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-rule.n - 1))
    return day if day.month == rule.month and day.year == year else None


def _holiday_days(anchor: HolidayAnchor, year: int) -> list[date]:
    """First days of the anchor's holiday in ``year``: a holiday held on consecutive days
    (Eid al-Fitr in Egypt) anchors once, on its first day."""
    table = _holiday_table(anchor.country, anchor.subdivision, year)
    names = _matching_names(anchor.name, {name for _, name in table})
    days = sorted({day for day, name in table if name in names})
    return [day for day in days if day - _ONE_DAY not in days]


def _matching_names(wanted: str, names: Iterable[str]) -> set[str]:
    """The holiday names an anchor's ``name`` picks: the one it equals (ignoring case),
    else every name containing it."""
    needle = wanted.casefold()
    names = set(names)
    exact = {name for name in names if name.casefold() == needle}
    return exact or {name for name in names if needle in name.casefold()}


@cache
def _localized_countries() -> dict[str, list[str]]:
    languages: dict[str, list[str]] = holidays.list_localized_countries()
    return languages


@lru_cache(maxsize=512)
def _holiday_table(
    country: str, subdivision: str | None, year: int
) -> tuple[tuple[date, str], ...]:
    """Every public holiday of ``year`` as (day, name): in English where the library has
    an English translation, without "(estimated)" marks or observed-on-another-day
    entries. Raises NotImplementedError for an unknown country or subdivision."""
    language = "en_US" if "en_US" in _localized_countries().get(country, ()) else None
    calendar = holidays.country_holidays(
        country, subdiv=subdivision, years=year, language=language, observed=False
    )
    return tuple(
        (day, _ESTIMATED_SUFFIX.sub("", name))
        for day in sorted(calendar)
        for name in calendar.get_list(day)
    )


# -- validation --------------------------------------------------------------------------


def unresolvable_events(
    events: Mapping[str, Event], timezone: str, *, year: int | None = None
) -> dict[str, str]:
    """Events whose anchor cannot be resolved, each mapped to a message saying why.

    A holiday anchor must name a country (and subdivision) the holidays library knows
    and, in ``year`` (default: the current year in ``timezone``) or the next, match
    holidays by exactly one name (see :func:`_matching_names`): "Christmas" in Germany
    matches both "Christmas Day" and "Second Day of Christmas", which would silently
    double the event. A ``month_day`` must exist in some year ("02-30" never does).
    Messages suggest close names.
    """
    if year is None:
        year = datetime.now(ZoneInfo(timezone)).year
    problems: dict[str, str] = {}
    for event_id, event in events.items():
        problem = None
        if event.holiday is not None:
            problem = _holiday_anchor_problem(event.holiday, (year, year + 1))
        elif event.month_day is not None and _month_day(event.month_day, 2000) is None:
            # 2000 is a leap year: a day missing then is missing every year.
            problem = f"month_day {event.month_day!r} is not a day of any year"
        if problem is not None:
            problems[event_id] = problem
    return problems


def _holiday_anchor_problem(anchor: HolidayAnchor, years: tuple[int, int]) -> str | None:
    place = (
        anchor.country if anchor.subdivision is None else f"{anchor.country}-{anchor.subdivision}"
    )
    try:
        tables = [_holiday_table(anchor.country, anchor.subdivision, year) for year in years]
    except NotImplementedError:
        supported: dict[str, list[str]] = holidays.list_supported_countries()
        if anchor.country not in supported:
            return f"the holidays library has no country {anchor.country!r}" + _suggest(
                anchor.country, supported
            )
        return (
            f"the holidays library has no subdivision {anchor.subdivision!r} of {anchor.country}"
            + (_suggest(anchor.subdivision or "", supported[anchor.country]))
        )
    for year, table in zip(years, tables, strict=True):
        matched = _matching_names(anchor.name, {name for _, name in table})
        if len(matched) > 1:
            return (
                f"{anchor.name!r} matches several {place} holidays in {year} "
                f"({_quoted(sorted(matched))}); write the full name of one"
            )
        if matched:
            return None
    names = sorted({name for table in tables for _, name in table})
    # A short list beats no hint when the wanted name resembles none of them.
    hint = _suggest(anchor.name, names) or "; its holidays are " + _quoted(names[:_LISTED])
    return (
        f"no {place} holiday in {years[0]} or {years[1]} has a name containing {anchor.name!r}"
        + hint
    )


def _suggest(wanted: str, known: Iterable[str]) -> str:
    """``"; did you mean 'A', 'B'?"`` for the known names closest to ``wanted``."""
    by_folded = {name.casefold(): name for name in known}
    close = difflib.get_close_matches(wanted.casefold(), by_folded, n=_SUGGESTIONS, cutoff=0.4)
    if not close:
        return ""
    return "; did you mean " + _quoted(by_folded[name] for name in close) + "?"


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


# -- skipped clock time ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkippedTime:
    """Local wall-clock times a day does not have: the clocks jump from ``start`` to
    ``end`` (``None``: to the next midnight) when they go forward."""

    day: date
    start: time
    end: time | None

    def __str__(self) -> str:
        end = "24:00" if self.end is None else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"


#: Years of an annual event looked at by :func:`hours_skipped`: this one and the next two.
SKIPPED_EVENT_YEARS = 3
#: Years of a window's ``dates`` looked at by :func:`hours_skipped`, from the first.
SKIPPED_YEARS_AT_MOST = 10
#: A window's ``dates`` longer than this surely hold a day the clocks do not skip.
_LONGEST_DATES_ENUMERATED = timedelta(days=400)
_ONE_HOUR = timedelta(hours=1)


@cache
def skipped_times(timezone: str, year: int) -> tuple[SkippedTime, ...]:
    """Every stretch of local wall-clock time that ``year`` does not have in ``timezone``
    (the spring-forward gaps), split at midnight, in date order, as the zone's tzdata
    says. Hourly UTC samples find each change of offset, a bisection its instant."""
    zone = ZoneInfo(timezone)
    start = datetime(year, 1, 1, tzinfo=UTC) - _ONE_DAY
    end = datetime(year + 1, 1, 1, tzinfo=UTC) + _ONE_DAY
    found: list[SkippedTime] = []
    instant = start
    offset = instant.astimezone(zone).utcoffset()
    while instant < end:
        following = instant + _ONE_HOUR
        next_offset = following.astimezone(zone).utcoffset()
        if offset is not None and next_offset is not None and next_offset > offset:
            low, high = instant, following
            while high - low > _ONE_MICROSECOND:
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            first = (high + offset).replace(tzinfo=None)
            after = (high + next_offset).replace(tzinfo=None)
            found += _split_at_midnight(first, after)
        instant, offset = following, next_offset
    return tuple(piece for piece in found if piece.day.year == year)


def _split_at_midnight(first: datetime, after: datetime) -> list[SkippedTime]:
    """The skipped wall times ``[first, after)`` as one piece per local date."""
    pieces: list[SkippedTime] = []
    day = first.date()
    while day <= after.date():
        start = first.time() if day == first.date() else _MIDNIGHT
        end = after.time() if day == after.date() else None
        if end != start:
            pieces.append(SkippedTime(day, start, end))
        day += _ONE_DAY
    return pieces


def _wholly_skipped(hours: HourRange, skipped: SkippedTime) -> bool:
    """Whether every local time of ``hours`` on that day is skipped: the window's start
    and end then resolve to the same instant, the end of the gap, and it is never on."""
    until_midnight = hours.end == _MIDNIGHT
    if hours.start >= hours.end and not until_midnight:
        return False  # runs past midnight: it holds the next day's early hours too
    if hours.start < skipped.start:
        return False
    if skipped.end is None:
        return True
    return not until_midnight and hours.end <= skipped.end


def hours_skipped(
    window: Window, timezone: str, events: Mapping[str, Event], year: int
) -> tuple[list[SkippedTime], bool]:
    """The days on which the window's ``hours`` lie wholly in time the clocks skip, so
    that it does not apply on them, and whether those are all the days its ``dates``,
    ``days`` and ``events`` allow (it then never applies).

    A window with neither dates nor events is looked at in ``year`` and the next; one
    with dates, in their years (at most :data:`SKIPPED_YEARS_AT_MOST` from the first);
    one with events, on the days of their occurrences in ``year`` and the next
    :data:`SKIPPED_EVENT_YEARS` - 1 (explicit event dates: their own years). An event's
    day counts whole, from its start time on its first day. Unknown events and anchors
    the calendar cannot place are left to the checks that report them."""
    hours = window.hours
    if hours is None:
        return [], False
    dates = window.dates
    try:
        years = _years_looked_at(window, events, year)
    except KeyError:
        return [], False
    skipped = [
        piece
        for each_year in years
        for piece in skipped_times(timezone, each_year)
        if _wholly_skipped(hours, piece)
        and (window.days is None or _WEEKDAYS[piece.day.weekday()] in window.days)
        and (dates is None or dates.from_ <= piece.day <= dates.to)
    ]
    if not skipped:  # the usual case, decided without placing any event
        return [], False
    candidates: set[date] | None = None  # None: every day
    if dates is not None and dates.to - dates.from_ <= _LONGEST_DATES_ENUMERATED:
        candidates = {dates.from_ + n * _ONE_DAY for n in range((dates.to - dates.from_).days + 1)}
    if window.events:
        try:
            on_event = _event_days(window.events, timezone, events, year)
        except (KeyError, ValueError):
            return [], False
        skipped = [piece for piece in skipped if piece.day in on_event]
        candidates = on_event if candidates is None else candidates & on_event
    if candidates is None or not skipped:
        return skipped, False
    possible = {
        day
        for day in candidates
        if (window.days is None or _WEEKDAYS[day.weekday()] in window.days)
        and (dates is None or dates.from_ <= day <= dates.to)
    }
    return skipped, possible <= {piece.day for piece in skipped}


def _years_looked_at(window: Window, events: Mapping[str, Event], year: int) -> list[int]:
    if window.dates is not None:
        first, last = window.dates.from_.year, window.dates.to.year
        return list(range(first, min(last, first + SKIPPED_YEARS_AT_MOST - 1) + 1))
    if not window.events:
        return [year, year + 1]
    years: set[int] = set()
    for event_id in window.events:
        event = events[event_id]
        if event.dates is None:
            years.update(range(year, year + SKIPPED_EVENT_YEARS))
        else:
            # offset_days may move a range into a neighbouring year.
            for date_range in event.dates:
                years.update(range(date_range.from_.year - 1, date_range.to.year + 2))
    return sorted(years)


def _event_days(
    event_ids: Iterable[str], timezone: str, events: Mapping[str, Event], year: int
) -> set[date]:
    """The local dates on which any of the events is on, in the years looked at."""
    calendar = Calendar(timezone, {event_id: events[event_id] for event_id in event_ids})
    days: set[date] = set()
    for event_id in event_ids:
        event = events[event_id]
        if event.dates is not None:
            years: Iterable[int] = {date_range.from_.year for date_range in event.dates}
        else:
            years = range(year, year + SKIPPED_EVENT_YEARS)
        for each_year in years:
            for start, end in calendar.occurrences(event_id, each_year):
                day, last = start.date(), (end - _ONE_MICROSECOND).date()
                while day <= last:
                    days.add(day)
                    day += _ONE_DAY
    return days
