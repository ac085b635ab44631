"""Business hours of thresholds.yaml as Alertmanager time intervals: the hours outside them.

thresholds.yaml says when business hours start, end (an end before the start runs past
midnight) and on which days they start. Alertmanager's time ranges cannot run past
midnight, so the week is laid out minute by minute in local time, the business minutes
are taken away, and what is left is cut into one time range list per group of weekdays
with the same hours. ``location`` makes Alertmanager read them in the seller's time zone,
so they follow daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.generate.thresholds import DAYS, BusinessHours

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY = 1440
_WEEK = 7 * _DAY


@dataclass(frozen=True)
class TimeRange:
    """Minutes of the local day, end exclusive (Alertmanager's ``start_time``/``end_time``)."""

    start: int
    end: int

    def text(self) -> dict[str, str]:
        return {"start_time": _clock(self.start), "end_time": _clock(self.end)}


@dataclass(frozen=True)
class DayRanges:
    """Weekdays (0 = Monday) sharing the same time ranges; no ranges: the whole day."""

    weekdays: tuple[int, ...]
    ranges: tuple[TimeRange, ...]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def business_week(hours: BusinessHours) -> list[bool]:
    """For each minute of the local week (Monday 00:00 first): inside business hours?"""
    week = [False] * _WEEK
    start, end = _minutes(hours.start), _minutes(hours.end)
    length = end - start if end > start else _DAY - start + end
    for day in hours.days:
        first = DAYS.index(day) * _DAY + start
        for minute in range(first, first + length):
            week[minute % _WEEK] = True
    return week


def outside_business_hours(hours: BusinessHours) -> tuple[DayRanges, ...]:
    """The hours outside business hours, grouped by weekdays with the same ranges."""
    week = business_week(hours)
    per_day: list[tuple[TimeRange, ...]] = []
    for day in range(7):
        minutes = week[day * _DAY : (day + 1) * _DAY]
        ranges: list[TimeRange] = []
        run_start: int | None = None
        for minute, inside in enumerate([*minutes, True]):
            if not inside and run_start is None:
                run_start = minute
            elif inside and run_start is not None:
                ranges.append(TimeRange(run_start, minute))
                run_start = None
        per_day.append(tuple(ranges))
    groups: dict[tuple[TimeRange, ...], list[int]] = {}
    for day, day_ranges in enumerate(per_day):
        if day_ranges:
            groups.setdefault(day_ranges, []).append(day)
    out = []
    for shared, days in groups.items():
        whole_day = shared == (TimeRange(0, _DAY),)
        out.append(DayRanges(tuple(days), () if whole_day else shared))
    return tuple(out)


def weekday_ranges(days: tuple[int, ...]) -> list[str]:
    """Alertmanager weekday text, consecutive days joined: ``["monday:friday", "sunday"]``.

    Alertmanager numbers the week from Sunday and refuses a range ending before it starts,
    so a run from Saturday into Sunday is written as two.
    """
    order = sorted((day + 1) % 7 for day in days)  # Sunday = 0, as Alertmanager counts
    names = (WEEKDAYS[6], *WEEKDAYS[:6])
    out: list[str] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and order[j + 1] == order[j] + 1:
            j += 1
        first, last = names[order[i]], names[order[j]]
        out.append(first if i == j else f"{first}:{last}")
        i = j + 1
    return out


def time_interval(hours: BusinessHours, timezone: str) -> list[dict[str, Any]]:
    """The ``time_intervals`` entries of the outside-business-hours interval (may be empty)."""
    entries: list[dict[str, Any]] = []
    for group in outside_business_hours(hours):
        entry: dict[str, Any] = {}
        if group.ranges:
            entry["times"] = [r.text() for r in group.ranges]
        entry["weekdays"] = weekday_ranges(group.weekdays)
        entry["location"] = timezone
        entries.append(entry)
    return entries
