"""Recording rules: the seller's local clock, and every rate and ratio the alerts read.

Builders hand a :class:`Recorder` the named series they read (``generate/series.py``); it
keeps one rule per name, so alerts and dashboards read the same cheap precomputed series.

Where a rule is evaluated matters. Prometheus evaluates the groups independently (two cores
run two groups at once), so a rule that reads another group's output reads it up to one
evaluation late; within a group the rules run one after another at one timestamp, each
seeing what the rules before it wrote, and the group takes the sum of their times. So:

- a rate over minutes, hours or days can lag an evaluation: its category's ``-rates`` group;
- a rule that reads every ticket tier (a per-tier metric, or a series recorded from one) is
  costly with hundreds of tiers per shop and many shops: its category's ``-tiers`` group,
  apart from the cheap rates;
- a value an alert must see at once (the tiers oversold now) is recorded *beside* its
  readers, ahead of them in their own group (``Recorder.use(..., beside=True)``);
- a costly per-tier series whose readers can wait an evaluation goes to a group of its own
  (``Recorder.use(..., group=...)``), so no group holds two such costs;
- a series read by two categories goes to recording.yml: ``boxoffice-tiers`` if it reads
  every tier, ``boxoffice-rates`` otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime

from exporter.catalog import CATALOG
from exporter.generate.localtime import (
    OffsetPeriod,
    offset_expression,
    offset_periods,
    standard_offset,
)
from exporter.generate.promql import metric_names
from exporter.generate.rules.model import RecordingRule
from exporter.generate.scope import scoped
from exporter.generate.series import NamedSeries
from exporter.generate.thresholds import DAYS, Thresholds

TIME_GROUP = "boxoffice-local-time"
RATES_GROUP = "boxoffice-rates"
TIERS_GROUP = "boxoffice-tiers"  # shared rules reading every tier: apart from the cheap rates
SHARED_GROUPS = (RATES_GROUP, TIERS_GROUP)
# Metrics with a series per ticket tier (hundreds per shop).
PER_TIER = frozenset(metric.name for metric in CATALOG if "event" in metric.labels)


class Recorder:
    """Collects recording rules by name, refusing two different expressions for one name.

    Each rule is filed under the category of the alerts that read it, so a category's file
    carries its own rates; a rule read by two categories is shared (``home`` is None).
    """

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        self.scope = scope  # scope labels every rule aggregates by (generate/scope.py)
        self.rules: dict[str, RecordingRule] = {}
        self.home: dict[str, str | None] = {}
        self.beside: set[str] = set()  # recorded in their readers' alert group
        self.own: dict[str, str] = {}  # recorded in a group of their own: name -> suffix
        self.intervals: dict[str, float] = {}  # group -> its own evaluation interval, s
        self.category = ""

    def use(self, series: NamedSeries, *, beside: bool = False, group: str = "") -> str:
        """Record ``series`` (after the series it reads) and return the name to read it by.

        ``beside``: in the group of the category's alerts, ahead of them, so they read this
        evaluation's value; such a series has one category (its readers' group).
        ``group``: in the category's group ``boxoffice-<category>-<group>``, alone with its
        cost (the series it reads are filed as usual)."""
        for part in series.parts:
            self.use(part, beside=beside)
        name, expr = series.name, scoped(series.expr, self.scope)
        existing = self.rules.get(name)
        if existing is not None and existing.expr != expr:
            raise ValueError(f"two expressions for recording rule {name}")  # a builder bug
        self.rules[name] = RecordingRule(name, expr)
        if name not in self.home:
            self.home[name] = self.category
        elif self.home[name] != self.category:
            self.home[name] = None
        if beside and name not in self.own:  # a part recorded apart stays in its group
            self.beside.add(name)
        if group:
            self.own[name] = group
        if name in self.beside and self.home[name] is None:
            raise ValueError(f"{name} is recorded beside the alerts of two categories")
        if name in self.own and self.home[name] is None:
            raise ValueError(f"{name} is recorded in a group of two categories")
        return name

    def evaluate_every(self, group: str, seconds: float) -> None:
        """Evaluate the category's group ``boxoffice-<category>-<group>`` every ``seconds``
        instead of at Prometheus' global interval: for a costly series (or an alert reading
        it) whose news is hours ahead, so it costs its share of the cores less often."""
        self.intervals[f"boxoffice-{self.category}-{group}"] = seconds

    def group_of(self, name: str) -> str:
        """The group a recorded series is evaluated in (module docstring)."""
        category = self.home[name]
        if category is None:
            return TIERS_GROUP if self._reads_tiers(name) else RATES_GROUP
        if name in self.beside:
            return f"boxoffice-{category}"
        if name in self.own:
            return f"boxoffice-{category}-{self.own[name]}"
        return f"boxoffice-{category}-{'tiers' if self._reads_tiers(name) else 'rates'}"

    def _reads_tiers(self, name: str) -> bool:
        read = metric_names(self.rules[name].expr)
        return any(
            m in PER_TIER or (m in self.rules and m != name and self._reads_tiers(m)) for m in read
        )

    def filed(self, group: str) -> tuple[RecordingRule, ...]:
        """The rules of one group, in the order they were first used (a series after the
        series it reads)."""
        return tuple(rule for name, rule in self.rules.items() if self.group_of(name) == group)

    def own_groups(self, category: str) -> list[str]:
        """The groups of their own holding series of ``category``, in the order first used."""
        names = [self.group_of(n) for n in self.own if self.home[n] == category]
        return list(dict.fromkeys(names))


def time_rules(thresholds: Thresholds) -> list[RecordingRule]:
    """The local clock: offset, minute of day, day of week, day number and business hours."""
    file = thresholds.file
    periods = timezone_periods(thresholds)
    fallback = standard_offset(file.timezone, file.timezone_table.first_year)
    local = "boxoffice:local_time_seconds"
    hours = file.business_hours
    start, end = _minutes(hours.start), _minutes(hours.end)
    days = [DAYS.index(d) for d in hours.days]
    minute = "boxoffice:local_minute_of_day"
    today = _day_filter("boxoffice:local_day_of_week", days)
    if start < end:
        business = f"({minute} >= bool {start}) * ({minute} < bool {end}){today}"
    else:  # the window wraps past midnight: after midnight counts for the day it opened
        yesterday = _day_filter("((boxoffice:local_day_of_week + 6) % 7)", days)
        business = (
            f"clamp_max(({minute} >= bool {start}){today} + ({minute} < bool {end}){yesterday}, 1)"
        )
    return [
        RecordingRule("boxoffice:timezone_offset_seconds", offset_expression(periods, fallback)),
        RecordingRule(local, "vector(time()) + boxoffice:timezone_offset_seconds"),
        RecordingRule(minute, f"hour({local}) * 60 + minute({local})"),
        RecordingRule("boxoffice:local_day_of_week", f"day_of_week({local})"),
        RecordingRule("boxoffice:local_day", f"floor({local} / 86400)"),
        RecordingRule("boxoffice:business_hours", business),
    ]


def timezone_periods(thresholds: Thresholds) -> tuple[OffsetPeriod, ...]:
    table = thresholds.file.timezone_table
    return offset_periods(thresholds.file.timezone, table.first_year, table.last_year)


def _day_filter(day_expr: str, days: list[int]) -> str:
    if len(days) == 7:
        return ""
    # day_of_week(): 0 is Sunday; our list is Monday first.
    numbers = sorted((d + 1) % 7 for d in days)
    terms = " + ".join(f"({day_expr} == bool {n})" for n in numbers)
    return f" * ({terms})"


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def local_offset(thresholds: Thresholds, unix: float) -> int:
    """What ``boxoffice:timezone_offset_seconds`` evaluates to at ``unix`` (test models)."""
    for period in timezone_periods(thresholds):
        if period.start <= unix < period.end:
            return period.offset
    return standard_offset(thresholds.file.timezone, thresholds.file.timezone_table.first_year)


def in_business_hours(thresholds: Thresholds, unix: float) -> bool:
    """What ``boxoffice:business_hours`` evaluates to at ``unix`` (test models)."""
    local = unix + local_offset(thresholds, unix)
    moment = datetime.fromtimestamp(local, UTC)
    minute = moment.hour * 60 + moment.minute
    hours = thresholds.file.business_hours
    start, end = _minutes(hours.start), _minutes(hours.end)
    today = DAYS[moment.weekday()] in hours.days
    yesterday = DAYS[(moment.weekday() + 6) % 7] in hours.days
    if start < end:
        return today and start <= minute < end
    return (today and minute >= start) or (yesterday and minute < end)


def local_midnight(thresholds: Thresholds, unix: float) -> float:
    """Unix time of the most recent local midnight, as ``boxoffice:local_day`` sees it."""
    local = unix + local_offset(thresholds, unix)
    return unix - (local % 86400)
