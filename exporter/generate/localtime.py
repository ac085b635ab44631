"""The seller's wall clock in PromQL, which (in Prometheus 2.42) only knows UTC.

The tz database gives, for every year in a configured range, the periods during which the
zone's UTC offset is constant. The generator writes them into one recording rule, so
``boxoffice:timezone_offset_seconds`` is the right offset on both sides of every daylight
saving change; outside the range it falls back to the zone's standard offset.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class OffsetPeriod:
    """``[start, end)`` in Unix seconds during which local time is UTC + ``offset`` seconds."""

    start: int
    end: int
    offset: int


@functools.cache
def offset_periods(zone: str, first_year: int, last_year: int) -> tuple[OffsetPeriod, ...]:
    """Constant-offset periods covering Jan 1 of ``first_year`` to Jan 1 after ``last_year``.

    Transitions are found hour by hour and then pinned to the second by bisection, which
    is exact for every zone in the tz database (all transitions fall on whole seconds).
    """
    tz = ZoneInfo(zone)
    start = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    stop = int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    periods: list[OffsetPeriod] = []
    period_start, offset = start, _offset(tz, start)
    t = start
    while t < stop:
        step = min(t + 3600, stop)
        if _offset(tz, step) != offset and step < stop:
            change = _first_change(tz, t, step, offset)
            periods.append(OffsetPeriod(period_start, change, offset))
            period_start, offset = change, _offset(tz, change)
            t = change
            continue
        t = step
    periods.append(OffsetPeriod(period_start, stop, offset))
    return tuple(periods)


def standard_offset(zone: str, year: int) -> int:
    """The zone's standard (non-daylight-saving) offset in ``year``, in seconds."""
    tz = ZoneInfo(zone)
    moment = datetime(year, 1, 1, tzinfo=UTC).astimezone(tz)
    utcoffset = moment.utcoffset() or timedelta(0)
    dst = moment.dst() or timedelta(0)
    return int((utcoffset - dst).total_seconds())


def _offset(tz: ZoneInfo, unix: int) -> int:
    moment = datetime.fromtimestamp(unix, UTC).astimezone(tz)
    return int((moment.utcoffset() or timedelta(0)).total_seconds())


def _first_change(tz: ZoneInfo, low: int, high: int, offset: int) -> int:
    """The first second in ``(low, high]`` whose offset differs from ``offset``."""
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(tz, middle) == offset:
            low = middle
        else:
            high = middle
    return high


def offset_expression(periods: tuple[OffsetPeriod, ...], fallback: int) -> str:
    """PromQL for the offset now: ``fallback`` plus a term for each period that differs.

    Scalar arithmetic only (``time() >= bool start`` is 0 or 1), so evaluating it every
    cycle costs next to nothing; outside the table every term is 0 and ``fallback`` holds.
    """
    terms = [
        f"{p.offset - fallback:+d} * (time() >= bool {p.start}) * (time() < bool {p.end})"
        for p in periods
        if p.offset != fallback
    ]
    return "vector(" + "\n  ".join([str(fallback), *terms]) + ")"
