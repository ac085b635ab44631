"""PromQL of the dashboard panels: named series read by name where the rule set records them.

A panel reads a named series (``generate/series.py``) the way an alert does. When the rule
set records that exact expression the panel reads the recorded series, which is cheap and
is the number the alert compares; when it does not (the alert is disabled, or no alert needs
that window) the panel gets the expression inline, so it still shows data.
"""

from __future__ import annotations

from exporter.generate.rules.ruleset import RuleSet
from exporter.generate.scope import scoped
from exporter.generate.series import NamedSeries, by

# Template variables of every dashboard, and the labels they filter.
VARIABLES = ("city", "event", "tier")
SELECTOR = ", ".join(f'{name}=~"${name}"' for name in VARIABLES)
# Every series with event, city and tier labels comes from the PostgreSQL source; capacity is
# the one that exists for every tier of every event.
_SCOPE = "boxoffice_inventory_capacity_tickets"


class PanelQueries:
    """Reads named series: by name when recorded, else inline."""

    def __init__(self, ruleset: RuleSet) -> None:
        self._known = {
            rule.record: rule.expr for rule in (*ruleset.time_rules, *ruleset.rate_rules)
        }
        self._scope = tuple(ruleset.thresholds.file.scope.labels)

    def recorded(self, series: NamedSeries) -> bool:
        """Whether the rule set records ``series`` with this very expression (scoped as the
        rules are)."""
        return self._known.get(series.name) == scoped(series.expr, self._scope)

    def read(self, series: NamedSeries) -> str:
        """The series' name when recorded, else its expression (parts resolved alike)."""
        if self.recorded(series):
            return series.name
        return f"({series.written(self.read)})"

    def scoped(self, series: NamedSeries) -> str:
        """``series`` (with event, city and tier labels) limited to the chosen variables."""
        if self.recorded(series):
            return f"{series.name}{{{SELECTOR}}}"
        return f"({self.read(series)} and on(event, city, tier) {_SCOPE}{{{SELECTOR}}})"


def per_tier(metric: str) -> str:
    """A PostgreSQL gauge by event, city and tier, filtered, max over replicas."""
    return f"{by(metric)} ({metric}{{{SELECTOR}}})"


def substitute_variables(expr: str) -> str:
    """The expression as Prometheus sees it with every variable set to All (tests, docs)."""
    for name in VARIABLES:
        expr = expr.replace(f"${name}", ".*")
    return expr
