"""Building blocks of the generated dashboards, on Grafana's typed foundation SDK.

Everything a panel shares lives here: the datasource variable, severity colours,
threshold steps derived from an alert of thresholds.yaml (so the line on a panel is the number
that pages someone), runbook links, currency units and the panel layout with stable ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common, units
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from exporter.generate.thresholds import Alert, Thresholds

# Every panel and query variable reads the Prometheus chosen in the `datasource` variable, so
# the dashboards work in any Grafana (kube-prometheus-stack's uid is "prometheus", a Grafana
# Cloud stack's is generated). The docker compose stack provisions DATASOURCE_UID, the
# variable's initial choice; where no datasource has it, Grafana picks its default Prometheus.
DATASOURCE_VARIABLE = "datasource"
DATASOURCE_UID = "boxoffice-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")

# Severity colours, the same on every dashboard: worse is warmer.
SEVERITY_COLOURS = {"critical": "red", "high": "orange", "medium": "yellow", "low": "blue"}
OK = "green"

# ISO currency code (the `currency` label, lowercase) -> Grafana unit.
CURRENCY_UNITS: dict[str, str] = {
    "usd": units.Dollars,
    "eur": units.Euro,
    "gbp": units.Pounds,
    "jpy": units.Yen,
    "chf": units.SwissFranc,
    "sek": units.SwedishKrona,
    "nok": units.NorwegianKrone,
    "dkk": units.DanishKrone,
    "pln": units.PolishZloty,
    "czk": units.CzechKoruna,
    "brl": units.Real,
    "inr": units.IndianRupee,
    "zar": units.SouthAfricanRand,
    "krw": units.SouthKoreanWon,
}

PanelBuilder = Builder[model.Panel]


def query(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    """One PromQL target on the chosen datasource (refId is set by :class:`Board`)."""
    target = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    return target.instant() if instant else target.range()


def steps(*pairs: tuple[float | None, str]) -> builders.ThresholdsConfig:
    """Absolute threshold steps; the first pair's value is None (from minus infinity)."""
    return (
        builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value, colour) for value, colour in pairs])
    )


def no_steps() -> builders.ThresholdsConfig:
    """A panel without alert thresholds: one neutral colour."""
    return steps((None, OK))


def alert_steps(alert: Alert, *, keys: Sequence[str] | None = None) -> builders.ThresholdsConfig:
    """Colour steps at the alert's thresholds, coloured by severity.

    An alert that fires above its thresholds (failures) is green below the lowest and takes
    each severity's colour from its threshold up; one that fires below (success rates,
    balances) is the most severe colour below the lowest threshold and green above the
    highest. A disabled alert pages nobody, so it draws no thresholds. ``keys`` picks some
    of a ladder's thresholds (WebhookProcessingErrors mixes a ratio and a count).
    """
    ladder = [(k, v) for k, v in alert.thresholds if keys is None or k in keys]
    if not alert.enabled or not ladder:
        return no_steps()
    if alert.spec.upward:
        rising = sorted(ladder, key=lambda kv: kv[1])
        return steps((None, OK), *((v, _colour(alert, k)) for k, v in rising))
    # Below the lowest threshold the most severe level holds; each threshold hands over to
    # the next milder level, the highest to OK.
    falling = sorted(ladder, key=lambda kv: kv[1])
    colours = [_colour(alert, k) for k, _ in falling[1:]] + [OK]
    first = (None, _colour(alert, falling[0][0]))
    return steps(first, *((v, c) for (_, v), c in zip(falling, colours, strict=True)))


def floor_steps(alert: Alert, floor: float) -> builders.ThresholdsConfig:
    """The most severe colour below an absolute floor, green above (a baseline alert's only
    fixed number; the rest of its band moves with the shop's own normal)."""
    if not alert.enabled:
        return no_steps()
    return steps((None, _colour(alert, alert.thresholds[0][0])), (floor, OK))


def _colour(alert: Alert, key: str) -> str:
    severity = key if key in SEVERITY_COLOURS else (alert.severity or "high")
    return SEVERITY_COLOURS[severity]


def runbook_links(th: Thresholds, *alert_names: str) -> list[Builder[model.DashboardLink]]:
    """Links to the runbook of each enabled alert, the same URL as its runbook_url."""
    base = th.file.links.runbook_base_url.rstrip("/")
    return [
        builders.DashboardLink(f"Runbook: {name}").url(f"{base}/{name}.md").target_blank(True)
        for name in alert_names
        if th.alerts[name].enabled
    ]


class _MoneyPanel(Protocol):
    """What every panel builder of the SDK offers."""

    def unit(self, unit: str) -> object: ...

    def decimals(self, decimals: float) -> object: ...

    def override_by_regexp(
        self, regexp: str, properties: list[model.DynamicConfigValue]
    ) -> object: ...


def money_overrides(panel: _MoneyPanel) -> None:
    """Show each series in its currency: the legend must start with the currency label.

    Money is in major units (SPEC 4); a currency Grafana has no unit for shows as a plain
    number with two decimals.
    """
    panel.unit("none")
    panel.decimals(2)
    for code, unit in CURRENCY_UNITS.items():
        panel.override_by_regexp(f"^{code}( .*)?$", [model.DynamicConfigValue("unit", unit)])


def up_down_mappings() -> list[model.ValueMapping]:
    """0/1 gauges (source up, probe success) as words with colours."""
    return [
        model.ValueMap(
            {
                "0": model.ValueMappingResult(text="down", color="red", index=0),
                "1": model.ValueMappingResult(text="up", color=OK, index=1),
            }
        )
    ]


def up_down_stat(title: str, description: str, target: prometheus.Dataquery) -> stat.Panel:
    """A stat panel of 0/1 series (source up, probe success) as up/down on red or green."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .with_target(target)
        .mappings(up_down_mappings())
        .thresholds(steps((None, "red"), (1, OK)))
        .color_mode(common.BigValueColorMode.BACKGROUND)
    )


def legend(*calcs: str) -> common_builders.VizLegendOptions:
    """A table legend with the given reducers (last, max, ...)."""
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(list(calcs))
    )


def threshold_lines() -> common_builders.GraphThresholdsStyleConfig:
    """Draw thresholds as dashed lines on time series."""
    return common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)


def series_panel(title: str, description: str) -> timeseries.Panel:
    """A time series panel with a table legend (last, max) and thresholds as dashed lines."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .legend(legend("lastNotNull", "max"))
        .thresholds_style(threshold_lines())
    )


def shown() -> common_builders.HideSeriesConfig:
    """Series visible in legend, tooltip and graph (written out, as Grafana stores it)."""
    return common_builders.HideSeriesConfig().legend(False).tooltip(False).viz(False)


def reduce_last(*, all_values: bool = False) -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(all_values)


@dataclass(kw_only=True)
class Board:
    """A dashboard being laid out: rows of panels, 24 columns wide, ids in order of adding."""

    dashboard: builders.Dashboard
    _next_id: int = field(default=1, init=False)
    _x: int = field(default=0, init=False)
    _y: int = field(default=0, init=False)
    _row_height: int = field(default=0, init=False)

    def row(self, title: str) -> None:
        self._newline()
        row = (
            builders.Row(title)
            .id(self._take_id())
            .grid_pos(model.GridPos(h=1, w=24, x=0, y=self._y))
        )
        self.dashboard = self.dashboard.with_row(row)
        self._y += 1

    def add(self, panel: PanelBuilder, *, width: int, height: int) -> None:
        """Place ``panel`` right of the previous one, or on a new line when it does not fit."""
        if self._x + width > 24:
            self._newline()
        built = panel.build()
        built.id_val = self._take_id()
        built.grid_pos = model.GridPos(h=height, w=width, x=self._x, y=self._y)
        built.datasource = DATASOURCE
        for number, target in enumerate(built.targets or []):
            if isinstance(target, prometheus_model.Dataquery):
                target.ref_id = chr(ord("A") + number)
        self.dashboard = self.dashboard.with_panel(_Built(built))
        self._x += width
        self._row_height = max(self._row_height, height)

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_height
        self._x, self._row_height = 0, 0

    def _take_id(self) -> int:
        taken = self._next_id
        self._next_id += 1
        return taken


class _Built(PanelBuilder):
    """A finished panel handed back to the dashboard builder as it is."""

    def __init__(self, panel: model.Panel) -> None:
        self._panel = panel

    def build(self) -> model.Panel:
        return self._panel
