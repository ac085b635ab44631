"""rules/thresholds.yaml: YAML -> typed schema (unknown keys refused) -> checks -> frozen.

Every problem is a :class:`ConfigError` naming the file, the dotted path inside it and the
reason, e.g. ``alerts.InventoryLow.thresholds.vip: must be >= 0, got -1``.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

from exporter.catalog import CATALOG_BY_NAME, PROMETHEUS_SERIES
from exporter.config.errors import ConfigError
from exporter.config.typed import (
    Duration,
    at_least,
    field,
    join,
    positive,
)
from exporter.config.yamlfile import load_typed
from exporter.generate.alertdefs import (
    ALERT_DEFS,
    ALERT_DEFS_BY_NAME,
    SEVERITIES,
    AlertDef,
    Severity,
)
from exporter.generate.digest_settings import Digest, Ticker, check_reports
from exporter.generate.failure_classes import (
    CLASSIFIED,
    PaymentFailureClasses,
    SmsFailureClasses,
    check_classes,
)
from exporter.generate.promql import PromQLSyntaxError, duration_text, metric_names
from exporter.generate.selectors import (
    SelectorError,
    UntestableSelector,
    failed_and_good,
    parse_selector,
)
from exporter.generate.threshold_values import ErrorAt, alert_thresholds, relative_settings

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
_NAME = re.compile(r"[a-z0-9_]+")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_VALUE = re.compile(r"[^\"\\\n]*")


def _clock(value: str) -> str | None:
    return None if _CLOCK.fullmatch(value) else f"must be a time of day like 09:00, got {value!r}"


def _zone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown IANA time zone {value!r}"
    return None


def _objective(value: float) -> str | None:
    return None if 0 < value < 100 else f"must be a percentage between 0 and 100, got {value:g}"


@dataclass(frozen=True)
class TimezoneTable:
    first_year: int = field(2025, doc="First year of the generated UTC offset table.")
    last_year: int = field(2040, doc="Last year; regenerate before it ends.")


@dataclass(frozen=True)
class BusinessHours:
    start: str = field("09:00", check=_clock, doc="Local time business hours start.")
    end: str = field("21:00", check=_clock, doc="Local time they end; before start wraps.")
    days: list[Day] = field(default_factory=lambda: list(DAYS), doc="Days they start on.")


def _link(value: str) -> str | None:
    # Links reach annotations (Go templates), Slack/email bodies and dashboards' HTML.
    if not value.startswith(("https://", "http://")):
        return f"must be an http(s) URL, got {value!r}"
    if any(c in value for c in "\"'`<> \\"):
        return "must not contain quotes, spaces, backslashes or <>"
    return None


@dataclass(frozen=True)
class Links:
    runbook_base_url: str = field(check=_link, doc="Runbooks, one <Alert>.md page each.")
    dashboard_base_url: str = field(
        check=_link, doc="Grafana base URL of the generated dashboards."
    )


def _tier(value: int) -> str | None:
    return None if value in (1, 2, 3) else f"must be a tier 1, 2 or 3, got {value!r}"


@dataclass(frozen=True, kw_only=True)
class TopTiers:
    """The highest escalation tier each severity reaches (seed 001's matrix)."""

    critical: int = field(3, check=_tier, doc="Tier 3: executives.")
    high: int = field(2, check=_tier, doc="Tier 2: the lead.")
    medium: int = field(1, check=_tier, doc="Never escalates.")
    low: int = field(1, check=_tier, doc="Never escalates.")


@dataclass(frozen=True)
class Escalation:
    tier2_after: Duration = field(Duration(300), check=positive, doc="Tier 2 after this long.")
    tier3_after: Duration = field(Duration(900), check=positive, doc="Tier 3 after this long.")
    top_tier: TopTiers = field(default_factory=TopTiers, doc="Highest tier per severity.")

    def tiers(self, severity: str) -> int:
        """How many tiers an alert of ``severity`` has."""
        top: int = getattr(self.top_tier, severity, 1)
        return top


@dataclass(frozen=True)
class Forecast:
    method: Literal["seasonal", "same_time_last_week", "daily_target"] = "seasonal"
    daily_target: dict[str, float] = field(
        default_factory=dict, doc="Revenue target per day per currency (daily_target method)."
    )


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """Each shop's own normal (issue 15, seed 003's anomaly bands)."""

    weeks: int = field(4, check=at_least(1), doc="Past weeks the median is taken over.")
    min_weeks: int = field(2, check=at_least(1), doc="Weeks of history before alerts read it.")
    z: float = field(4.0, check=positive, doc="Band width in binomial standard deviations.")
    completion_floor: float = field(
        0.10, check=at_least(0), doc="Checkout completion below this is never normal."
    )
    min_silence: Duration = field(
        Duration(300), check=positive, doc="NoRecentSales never fires on a shorter silence."
    )


@dataclass(frozen=True)
class Endpoint:
    route: str = field(doc="Value of the endpoint label in the app's histogram.")
    high: Duration = field(check=positive)
    critical: Duration = field(check=positive)


@dataclass(frozen=True, kw_only=True)
class Latency:
    histogram: str = field(doc="Base name of the app's latency histogram.")
    selector: str = field("", doc='Extra label matchers, e.g. job="ticket-app".')
    endpoint_label: str = "route"
    endpoints: dict[str, Endpoint] = field(default_factory=dict)


@dataclass(frozen=True)
class Slo:
    objective: float = field(check=_objective, doc="Availability target in percent.")
    total: str = field(doc="Selector of all requests or events (a counter).")
    errors: str = field(doc="Selector of the failed ones (a counter).")
    min_errors: float = field(
        5,
        check=at_least(0),
        doc="Failed events the long window must hold before it burns: one failure at a "
        "small shop is a large share of a short window, not an incident.",
    )


@dataclass(frozen=True, kw_only=True)
class AlertSettings:
    enabled: bool = True
    severity: Severity | None = None
    for_: Duration | None = field(None, key="for")
    window: Duration | None = field(None, check=positive)
    min_traffic: float | None = field(None, check=at_least(0))
    min_ratio: float | None = field(None, check=at_least(0))
    baseline: Duration | None = field(None, check=positive)
    labels: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    keep_firing_for: Duration | None = field(None, doc="Hysteresis (Prometheus >= 2.42).")
    relative: dict[str, Any] = field(default_factory=dict, doc="Shop-relative settings.")


@dataclass(frozen=True)
class Scope:
    """The labels that tell one independent shop from another (issue 20): every rule
    aggregates by them and every alert carries them. None: one shop, as before."""

    labels: list[str] = field(
        default_factory=list, doc="Label names identifying one shop, e.g. [seller, region]."
    )


@dataclass(frozen=True, kw_only=True)
class ThresholdsFile:
    timezone: str = field(check=_zone, doc="IANA time zone of the seller.")
    links: Links = field()
    timezone_table: TimezoneTable = field(default_factory=TimezoneTable)
    scope: Scope = field(default_factory=Scope, doc="Labels identifying one shop.")
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    escalation: Escalation = field(default_factory=Escalation)
    exporter_job: str = field("boxoffice.*", doc="Regex of the exporter's scrape job(s).")
    forecast: Forecast = field(default_factory=Forecast)
    baseline: Baseline = field(default_factory=Baseline)
    app_metrics: list[str] = field(default_factory=list)
    latency: Latency | None = None
    slos: dict[str, Slo] = field(default_factory=dict)
    payment_failure_classes: PaymentFailureClasses = field(default_factory=PaymentFailureClasses)
    sms_failure_classes: SmsFailureClasses = field(default_factory=SmsFailureClasses)
    alerts: dict[str, AlertSettings] = field(default_factory=dict)
    digest: Digest = field(default_factory=Digest, doc="The daily digest (docs/digest.md).")
    ticker: Ticker = field(default_factory=Ticker, doc="The sales ticker (docs/digest.md).")


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert, defaults merged with thresholds.yaml; ``thresholds`` most severe first."""

    spec: AlertDef
    enabled: bool
    severity: Severity | None
    for_seconds: float
    window_seconds: float | None
    min_traffic: float | None
    labels: dict[str, str]
    thresholds: tuple[tuple[str, float], ...]
    keep_firing_for: float = 0.0
    relative: dict[str, float] = dataclass_field(default_factory=dict)
    min_ratio: float | None = None
    baseline_seconds: float | None = None

    @property
    def window(self) -> float:
        """The window of an alert whose definition has one (alertdefs.py declares it)."""
        if self.window_seconds is None:
            raise ValueError(f"{self.spec.name} has no window")  # a builder bug
        return self.window_seconds


@dataclass(frozen=True)
class Thresholds:
    """thresholds.yaml, checked and frozen: what the rule builders read."""

    source: str
    file: ThresholdsFile
    alerts: dict[str, Alert]


def load_thresholds(path: str, name: str | None = None) -> Thresholds:
    """Read, type and check thresholds.yaml; ConfigError on the first problem.

    ``name`` is how errors and generated headers call the file (a path relative to the
    repository, so generated output does not depend on where the checkout lives).
    """
    name = name or path
    parsed = load_typed(ThresholdsFile, path, name=name, plain_text=True)
    return _check(name, parsed)


def _check(source: str, parsed: ThresholdsFile) -> Thresholds:
    def error(where: str, reason: str) -> ConfigError:
        return ConfigError(source, where, reason)

    _check_clock(parsed, error)
    _check_scope(parsed, error)
    check_reports(parsed.digest, error)
    escalation = parsed.escalation
    if escalation.tier3_after <= escalation.tier2_after:
        raise error(
            "escalation.tier3_after",
            f"must be after tier2_after ({duration_text(escalation.tier2_after)})",
        )
    check_classes("payment_failure_classes", parsed.payment_failure_classes.classes(), error)
    check_classes("sms_failure_classes", parsed.sms_failure_classes.classes(), error)
    _check_latency(parsed.latency, error)
    for name, slo in parsed.slos.items():
        if not _NAME.fullmatch(name):
            raise error(join("slos", name), "SLO names are lowercase letters, digits and _")
        for key in ("total", "errors"):
            _check_selector(getattr(slo, key), join(join("slos", name), key), error)
    for name in parsed.alerts:
        if name not in ALERT_DEFS_BY_NAME:
            close = difflib.get_close_matches(name, ALERT_DEFS_BY_NAME, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise error(join("alerts", name), f"unknown alert{hint}")
    alerts = {
        spec.name: _alert(spec, parsed.alerts.get(spec.name), join("alerts", spec.name), error)
        for spec in ALERT_DEFS
    }
    if alerts["SLOErrorBudgetBurn"].enabled:
        _check_slo_tests(parsed, error)
    _check_metrics(parsed, error)
    return Thresholds(source, parsed, alerts)


def _check_slo_tests(parsed: ThresholdsFile, error: ErrorAt) -> None:
    """The SLO alert's promtool tests need label values each selector matches."""
    for name, slo in sorted(parsed.slos.items()):
        try:
            failed_and_good(slo.total, slo.errors)
        except UntestableSelector as exc:
            raise error(join(join("slos", name), exc.key), _UNTESTABLE.format(exc)) from None


_UNTESTABLE = "cannot make test series for it ({}); use = matchers or simpler regexes"


def _check_metrics(parsed: ThresholdsFile, error: ErrorAt) -> None:
    """Refuse an SLO or latency histogram nobody publishes (a typo would never fire)."""
    known = set(CATALOG_BY_NAME) | set(parsed.app_metrics) | PROMETHEUS_SERIES | set(CLASSIFIED)
    exprs = [
        (join(join("slos", name), key), getattr(slo, key))
        for name, slo in parsed.slos.items()
        for key in ("total", "errors")
    ]
    if parsed.latency is not None:
        exprs.append(("latency.histogram", parsed.latency.histogram + "_bucket"))
    for where, expr in exprs:
        for metric in metric_names(expr):
            if metric not in known:
                raise error(
                    where,
                    f"unknown metric {metric!r}: not published by the exporter, not a "
                    "recording rule generated here, not declared under app_metrics",
                )


def _check_clock(parsed: ThresholdsFile, error: ErrorAt) -> None:
    """Time zone table, business hours, exporter job, app metrics and forecast."""
    table = parsed.timezone_table
    if not 1970 <= table.first_year <= table.last_year <= 2200:
        raise error("timezone_table", "years must satisfy 1970 <= first_year <= last_year <= 2200")
    hours = parsed.business_hours
    if hours.start == hours.end:
        raise error("business_hours.end", "must differ from business_hours.start")
    if not hours.days or len(set(hours.days)) != len(hours.days):
        raise error("business_hours.days", "must list at least one day, each once")
    try:
        re.compile(parsed.exporter_job)
        if '"' in parsed.exporter_job or "\n" in parsed.exporter_job:
            raise re.error("quotes and newlines cannot go into a PromQL string")
    except re.error as exc:
        raise error("exporter_job", f"is not a regular expression: {exc}") from None
    for i, name in enumerate(parsed.app_metrics):
        if not _METRIC.fullmatch(name):
            raise error(join("app_metrics", i), f"is not a metric name: {name!r}")
    if parsed.baseline.min_weeks > parsed.baseline.weeks:
        raise error("baseline.min_weeks", f"must be at most weeks ({parsed.baseline.weeks})")
    if parsed.forecast.method == "daily_target":
        if not parsed.forecast.daily_target:
            raise error("forecast.daily_target", "is required with method daily_target")
        for currency, target in parsed.forecast.daily_target.items():
            if not _NAME.fullmatch(currency) or target <= 0:
                raise error(
                    join("forecast.daily_target", currency),
                    "must be a lowercase currency code with a target > 0",
                )


# Labels Prometheus, the exporter's replicas or the generated rules and routes already use.
RESERVED_SCOPE_LABELS = frozenset(
    {
        "job",
        "instance",
        "le",
        "quantile",
        "alertname",
        "alertstate",
        "severity",
        "category",
        "escalation",
        "notify",
        "source",
        "slo",
        "silence",
        "endpoint",
        "failure_class",
        "hour",
        "baseline_week",
        "integration",
        "rule_group",
        "metric",
        "target",
        "component",
        "reason",
    }
)


def _check_scope(parsed: ThresholdsFile, error: ErrorAt) -> None:
    """Scope labels: Prometheus label names, each once, not one the rules already use."""
    metric_labels = {label for metric in CATALOG_BY_NAME.values() for label in metric.labels}
    labels = parsed.scope.labels
    for i, label in enumerate(labels):
        where = join("scope.labels", i)
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) or label.startswith("__"):
            raise error(where, f"is not a label name (letters, digits, _; no __ prefix): {label!r}")
        if label in RESERVED_SCOPE_LABELS:
            raise error(where, f"{label!r} is reserved: Prometheus or the generated rules set it")
        if label in metric_labels:
            raise error(where, f"{label!r} is a label of boxoffice metrics, not of a shop")
        if label in labels[:i]:
            raise error(where, f"{label!r} is listed twice")
    for name, settings in parsed.alerts.items():
        for label in settings.labels:
            if label in labels:
                where = join(join(join("alerts", name), "labels"), label)
                raise error(where, "is a scope label: it comes from the shop's series")
    if labels and parsed.forecast.method == "daily_target":
        raise error(
            "forecast.method",
            "daily_target is one target for one shop: with scope labels use seasonal or "
            "same_time_last_week",
        )


def _check_latency(latency: Latency | None, error: ErrorAt) -> None:
    if latency is None:
        return
    if not _METRIC.fullmatch(latency.histogram):
        raise error("latency.histogram", f"is not a metric name: {latency.histogram!r}")
    if latency.selector:
        _check_selector("x{" + latency.selector + "}", "latency.selector", error)
    for name, endpoint in latency.endpoints.items():
        path = join("latency.endpoints", name)
        if endpoint.critical <= endpoint.high:
            raise error(join(path, "critical"), f"must be above high ({endpoint.high:g}s)")
        if not _LABEL_VALUE.fullmatch(endpoint.route):
            raise error(join(path, "route"), "must not contain quotes, backslashes or newlines")


def _check_selector(selector: str, path: str, error: ErrorAt) -> None:
    try:
        names = metric_names(selector)
    except PromQLSyntaxError as exc:
        raise error(path, f"is not a PromQL selector: {exc}") from None
    shape = f'must be one metric selector like name{{label="value"}}, got {selector!r}'
    if len(names) != 1 or not selector.strip().startswith(names[0]):
        raise error(path, shape)
    try:
        name, _matchers = parse_selector(selector)
    except SelectorError:
        raise error(path, shape) from None
    if name != names[0]:
        raise error(path, shape)


def _alert(spec: AlertDef, given: AlertSettings | None, path: str, error: ErrorAt) -> Alert:
    settings = given or AlertSettings()
    if settings.severity is not None and spec.keys in ("ladder", "table"):
        why = "thresholds are keyed by severity" if spec.keys == "ladder" else "it has two"
        raise error(join(path, "severity"), f"cannot be set for {spec.name}: {why}")
    if settings.window is not None and spec.window_seconds is None:
        raise error(join(path, "window"), f"{spec.name} has no window to set")
    if settings.min_traffic is not None and spec.min_traffic is None:
        raise error(join(path, "min_traffic"), f"{spec.name} has no minimum-traffic guard")
    if settings.min_ratio is not None and spec.min_ratio is None:
        raise error(join(path, "min_ratio"), f"{spec.name} has no minimum-ratio guard")
    if settings.min_ratio is not None and not 0 < settings.min_ratio < 1:
        raise error(
            join(path, "min_ratio"), f"must be a ratio between 0 and 1, got {settings.min_ratio:g}"
        )
    if settings.baseline is not None and spec.baseline_seconds is None:
        raise error(join(path, "baseline"), f"{spec.name} has no baseline window")
    for label in settings.labels:
        if label in (
            "severity",
            "category",
            "escalation",
            "alertname",
        ) or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
            raise error(join(join(path, "labels"), label), "is not a label name this alert may set")
        if not _LABEL_VALUE.fullmatch(settings.labels[label]):
            raise error(
                join(join(path, "labels"), label),
                "must not contain quotes, backslashes, newlines or {{ }}",
            )
    thresholds = alert_thresholds(spec, settings.thresholds, join(path, "thresholds"), error)
    relative = relative_settings(spec, settings.relative, join(path, "relative"), error)
    keep = spec.keep_firing_for if settings.keep_firing_for is None else settings.keep_firing_for
    return Alert(
        spec=spec,
        enabled=settings.enabled,
        severity=settings.severity or spec.severity,
        for_seconds=spec.for_seconds if settings.for_ is None else float(settings.for_),
        window_seconds=spec.window_seconds if settings.window is None else float(settings.window),
        min_traffic=spec.min_traffic if settings.min_traffic is None else settings.min_traffic,
        labels=dict(sorted(settings.labels.items())),
        thresholds=thresholds,
        keep_firing_for=float(keep),
        relative=relative,
        min_ratio=spec.min_ratio if settings.min_ratio is None else settings.min_ratio,
        baseline_seconds=(
            spec.baseline_seconds if settings.baseline is None else float(settings.baseline)
        ),
    )


__all__ = ["SEVERITIES", "Alert", "Scope", "Thresholds", "ThresholdsFile", "load_thresholds"]
