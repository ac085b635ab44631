"""Rule objects between thresholds and YAML: alert variants, escalation tiers, annotations.

An alert builder returns :class:`Variant` objects (one per severity, each with its PromQL
condition and a description) and :class:`Scenario` objects (test data with a model of what
the condition evaluates to). This module expands variants into escalation tiers and renders
annotations both as Go templates for Prometheus and as the text promtool must see.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Format = Literal["percent", "number", "money", "duration", "seconds", "factor"]

# Go template for each value format, and the same formatting in Python for expected text.
_TEMPLATES: dict[Format, str] = {
    "percent": "{{ $value | humanizePercentage }}",
    "number": '{{ printf "%.4g" $value }}',
    "money": '{{ printf "%.2f" $value }}',
    "duration": "{{ $value | humanizeDuration }}",
    "seconds": '{{ printf "%.3g" $value }}s',
    "factor": '{{ printf "%.3g" $value }}x',
}


def format_value(fmt: Format, value: float) -> str:
    """What Prometheus prints for ``value`` with the template of ``fmt``."""
    if fmt == "percent":
        return _go_g(value * 100, 4) + "%"
    if fmt == "number":
        return _go_g(value, 4)
    if fmt == "money":
        return f"{value:.2f}"
    if fmt == "seconds":
        return _go_g(value, 3) + "s"
    if fmt == "factor":
        return _go_g(value, 3) + "x"
    return humanize_duration(value)


def _go_g(value: float, precision: int) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.{precision}g}"


def humanize_duration(value: float) -> str:
    """Prometheus' ``humanizeDuration``: ``2h 0m 0s``, ``45m 10s``, ``12.5s``."""
    if value == 0:
        return "0s"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 1:
        return f"{value * 1000:.4g}ms" if value >= 0.001 else f"{value:.4g}s"
    whole = int(value)
    seconds, minutes = whole % 60, (whole // 60) % 60
    hours, days = (whole // 3600) % 24, whole // 86400
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return f"{sign}{value:.4g}s"


@dataclass(frozen=True)
class Query:
    """A number a description reads at alert time: ``record{label="<the alert's label>"}``."""

    name: str  # its {placeholder} in the template
    record: str
    label: str
    fmt: Format


@dataclass(frozen=True)
class Text:
    """A description: literal text with ``{label}`` and one ``{value}`` placeholder.

    ``queries`` fill more placeholders from a PromQL query when the alert fires (the shop's
    normal, e.g.); promtool expands them against its test data too.
    """

    template: str
    fmt: Format
    queries: tuple[Query, ...] = ()

    def go(self, scope: tuple[str, ...] = ()) -> str:
        """The Go template Prometheus expands; each query picks the alert's own shop by its
        ``scope`` labels."""
        out = self._marked()
        for name in _placeholders(out):
            out = out.replace("{" + name + "}", "{{ $labels." + name + " }}")
        for i, q in enumerate(self.queries):
            shown = _TEMPLATES[q.fmt].replace("$value", "(. | first | value)")
            keys = (q.label, *scope)
            matchers = ", ".join(f"{key}=%q" for key in keys)
            args = " ".join(f"$labels.{key}" for key in keys)
            out = out.replace(
                chr(1 + i),
                f'{{{{ with printf "{q.record}{{{matchers}}}" {args} | query }}}}'
                f"{shown}{{{{ end }}}}",
            )
        return out.replace("\x00", _TEMPLATES[self.fmt])

    def expand(
        self, labels: dict[str, str], value: float, extra: dict[str, float] | None = None
    ) -> str:
        """The text promtool must see for an alert with ``labels`` and ``value``; ``extra``
        holds what each query returns (left out: the query returns nothing)."""
        out = self._marked()
        for name in _placeholders(out):
            out = out.replace("{" + name + "}", labels.get(name, "<no value>"))
        for i, q in enumerate(self.queries):
            found = (extra or {}).get(q.name)
            out = out.replace(chr(1 + i), "" if found is None else format_value(q.fmt, found))
        return out.replace("\x00", format_value(self.fmt, value))

    def _marked(self) -> str:
        out = self.template.replace("{value}", "\x00")
        for i, q in enumerate(self.queries):
            out = out.replace("{" + q.name + "}", chr(1 + i))
        return out


def _placeholders(text: str) -> list[str]:
    names, pos = [], 0
    while (start := text.find("{", pos)) >= 0:
        end = text.index("}", start)
        names.append(text[start + 1 : end])
        pos = end + 1
    return names


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One severity of an alert: its condition and how it describes itself."""

    severity: str
    expr: str
    summary: str
    description: Text


Model = Callable[[float], dict[str, float]]
"""Given seconds since the start of a scenario, the value of each severity's condition
that holds at that moment (severities whose condition is false are left out)."""


def constant(result: dict[str, float], after: float = 0.0) -> Model:
    """A model that holds ``result`` from ``after`` seconds on (gauges, steady ratios)."""
    return lambda t: result if t >= after else {}


@dataclass(frozen=True)
class Series:
    """One promtool input series in expanding notation."""

    selector: str
    values: str


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Test data for an alert and a model of what its conditions evaluate to over time."""

    name: str
    series: tuple[Series, ...]
    labels: dict[str, str]  # labels of the alert's result series, rule labels excluded
    model: Model
    length_seconds: float  # how long the input series run
    step_seconds: float = 60.0  # input series interval and evaluation interval
    # More result series the same data produces (labels, model), beside ``labels``.
    also: tuple[tuple[dict[str, str], Model], ...] = ()
    # Scenarios of one alert with the same ``merge`` key use distinct labels and share one
    # test group; empty: a group of its own.
    merge: str = ""
    # What the description's queries return at a moment (Text.queries); not merged.
    queried: Callable[[float], dict[str, float]] | None = None

    def results(self) -> list[tuple[dict[str, str], Model]]:
        return [(self.labels, self.model), *self.also]


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    alert: str
    expr: str
    for_seconds: float
    labels: dict[str, str]
    annotations: dict[str, str]
    severity: str
    tier: int
    text: Text  # the description, to expand the text promtool expects
    keep_firing_for: float = 0.0


@dataclass
class AlertBuild:
    """What a builder returns for one alert."""

    variants: list[Variant] = field(default_factory=list)
    scenarios: list[Scenario] = field(default_factory=list)
    source: str = ""  # the exporter source it is computed from, for inhibition
    # A group of its own, ``boxoffice-<category>-<group>``, instead of the category's: for
    # an alert that reads every ticket tier, so one group does not evaluate all of them in
    # turn (rules/recording.py on groups).
    group: str = ""


def tier_delays(tiers: int, tier2: float, tier3: float) -> list[float]:
    """Extra hold time of each of an alert's ``tiers`` escalation tiers: tier 1 at once, then
    tier 2 and tier 3. How many tiers a severity reaches is thresholds.yaml's
    ``escalation.top_tier`` (seed 001: critical 3, high 2, medium and low 1); alerts of a
    standing state have one."""
    return [0.0, tier2, tier3][: max(1, min(tiers, 3))]
