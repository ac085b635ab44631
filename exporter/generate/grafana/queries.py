"""PromQL of the dashboard panels, reading the generated recording rules where they exist.

A panel asks for a rate the way an alert builder does (through a :class:`Recorder`); when the
rule set already records that exact expression the panel reads the recorded series, which is
cheap and is the number the alert compares. When it does not (the alert is disabled, or no
alert needs that window) the panel gets the same expression inline, so it still shows data.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from exporter.generate.rules.model import AlertBuild
from exporter.generate.rules.recording import Recorder, by
from exporter.generate.rules.ruleset import RuleSet
from exporter.generate.thresholds import Alert, Thresholds

AlertBuilder = Callable[[Alert, Thresholds, Recorder], AlertBuild]

# Template variables of every dashboard, and the labels they filter.
VARIABLES = ("city", "event", "tier")
SELECTOR = ", ".join(f'{name}=~"${name}"' for name in VARIABLES)
# Every series with event, city and tier labels comes from the PostgreSQL source; capacity is
# the one that exists for every tier of every event.
_SCOPE = "boxoffice_inventory_capacity_tickets"


class PanelQueries:
    """Names or inline expressions of rates, ratios and filtered series."""

    def __init__(self, ruleset: RuleSet) -> None:
        self._known = {
            rule.record: rule.expr for rule in (*ruleset.time_rules, *ruleset.rate_rules)
        }

    def increase(self, metric: str, window: float, *, keep: tuple[str, ...] | None = None) -> str:
        """Increase of ``metric`` over ``window``, max over exporter replicas."""
        scratch = Recorder()
        return self._resolve(scratch, scratch.increase(metric, window, keep=keep))

    def ratio(self, failed: str, total: str, window: float, *, keep: tuple[str, ...] = ()) -> str:
        """``failed`` / ``total`` increases over ``window``."""
        scratch = Recorder()
        return self._resolve(scratch, scratch.ratio(failed, total, window, keep=keep))

    def built(self, builder: AlertBuilder, alert: Alert, th: Thresholds, name: str) -> str:
        """A rule an alert builder records (latency, SLO ratios), resolved like the others."""
        scratch = Recorder()
        builder(alert, th, scratch)
        return self._resolve(scratch, name)

    def recorded(self, name: str) -> str:
        """A recording rule the rule set must have (the local clock, today's revenue)."""
        if name not in self._known:
            raise KeyError(f"no recording rule {name}")  # a dashboard builder bug
        return name

    def has(self, name: str) -> bool:
        return name in self._known

    def _resolve(self, scratch: Recorder, name: str) -> str:
        expr = scratch.rules[name].expr
        if self._known.get(name) == expr:
            return name
        for other in scratch.rules:
            if other != name:
                pattern = rf"(?<![\w:]){re.escape(other)}(?![\w:])"
                if re.search(pattern, expr):
                    expr = re.sub(
                        pattern, self._resolve(scratch, other).replace("\\", "\\\\"), expr
                    )
        return f"({expr})"


def scoped(expr: str) -> str:
    """``expr`` (a series with event, city and tier labels) limited to the chosen variables."""
    if re.fullmatch(r"[\w:]+", expr):
        return f"{expr}{{{SELECTOR}}}"
    return f"({expr} and on(event, city, tier) {_SCOPE}{{{SELECTOR}}})"


def per_tier(metric: str) -> str:
    """A PostgreSQL gauge by event, city and tier, filtered, max over replicas."""
    return f"{by(metric)} ({metric}{{{SELECTOR}}})"


def substitute_variables(expr: str) -> str:
    """The expression as Prometheus sees it with every variable set to All (tests, docs)."""
    for name in VARIABLES:
        expr = expr.replace(f"${name}", ".*")
    return expr


def since_local_midnight(expr: str) -> str:
    """How much a counter expression grew since the seller's local midnight.

    The same method as ``boxoffice:revenue:today``: the current value minus the lowest value
    seen since the local day (``boxoffice:local_day``, DST-aware) began.
    """
    return (
        f"{expr}\n- min_over_time(\n    ({expr}\n"
        "      and on() (boxoffice:local_day == on() (boxoffice:local_day @ end()))\n"
        "    )[1d:5m]\n  )"
    )
