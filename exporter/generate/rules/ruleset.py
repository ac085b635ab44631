"""From checked thresholds to the complete rule set: every alert built, tiered and checked.

Escalation is done with rules: each severity of an alert becomes up to three rules with the
same name and condition, ``for`` growing by the configured tier delays, labelled
``escalation="1"``, ``"2"``, ``"3"``. Held 5 minutes, tiers 1 and 2 fire together; held
15 minutes, all three. Alertmanager routes each tier to its audience.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.catalog import CATALOG_BY_NAME, PROMETHEUS_SERIES
from exporter.config.errors import ConfigError
from exporter.generate.alertdefs import ALERT_DEFS
from exporter.generate.promql import metric_names
from exporter.generate.rules.alerts import availability as avail
from exporter.generate.rules.alerts import messaging as ops
from exporter.generate.rules.alerts import payments as biz
from exporter.generate.rules.alerts import sales
from exporter.generate.rules.model import (
    AlertBuild,
    AlertRule,
    RecordingRule,
    Scenario,
    tier_delays,
)
from exporter.generate.rules.recording import Recorder, time_rules
from exporter.generate.thresholds import Alert, Thresholds

Builder = Callable[[Alert, Thresholds, Recorder], AlertBuild]


def _builders(th: Thresholds) -> dict[str, Builder]:
    alerts = th.alerts
    return {
        "PaymentSuccessRateLow": biz.payment_success_rate_low,
        "PaymentFailuresBurst": biz.payment_failures_burst,
        "RefundRateHigh": biz.refund_rate_high,
        "DisputeRateHigh": biz.dispute_rate_high,
        "InventoryLow": lambda a, t, r: biz.inventory_level(a, t, r, alerts["InventoryCritical"]),
        "InventoryCritical": lambda a, t, r: biz.inventory_level(a, t, r, None),
        "InventorySoldOut": lambda a, t, r: biz.inventory_fixed(a, t, r, oversold=False),
        "InventoryOversold": lambda a, t, r: biz.inventory_fixed(a, t, r, oversold=True),
        "SelloutPredicted": sales.sellout_predicted,
        "SalesVelocitySpike": sales.sales_velocity_spike,
        "NoRecentSales": sales.no_recent_sales,
        "RevenueBelowForecast": sales.revenue_below_forecast,
        "CheckoutConversionLow": sales.checkout_conversion_low,
        "StripeWebhookBacklog": ops.stripe_webhook_backlog,
        "WebhookProcessingErrors": ops.webhook_processing_errors,
        "SmsDeliveryFailureRateHigh": ops.sms_delivery_failure_rate_high,
        "SmsCostHigh": ops.sms_cost_high,
        "TwilioBalanceLow": ops.twilio_balance_low,
        "AppHealthDegraded": lambda a, t, r: ops.down_alert(
            a, t, "boxoffice_app_component_up", {"component": "database", "target": "app"},
            "Component {component} of {target} reports unhealthy (up: {value}).", "http"),
        "ProbeFailing": lambda a, t, r: ops.down_alert(
            a, t, "boxoffice_probe_success", {"target": "app"},
            "The HTTP probe of {target} fails (success: {value}).", "http"),
        "EndpointLatencyHigh": avail.endpoint_latency_high,
        "SLOErrorBudgetBurn": avail.slo_error_budget_burn,
        "ExporterSourceDown": lambda a, t, r: ops.down_alert(
            a, t, "boxoffice_source_up", {"source": "postgres"},
            "boxoffice cannot collect from {source} (up: {value}); its business alerts are blind.",
            ""),
        "ExporterDown": ops.exporter_down,
        "ExporterDataStale": ops.exporter_data_stale,
    }  # fmt: skip


@dataclass(frozen=True)
class BuiltAlert:
    """One alert of the product with its rules and test scenarios."""

    alert: Alert
    rules: tuple[AlertRule, ...]
    scenarios: tuple[Scenario, ...]
    tier_delays: dict[str, tuple[float, ...]]  # per severity


@dataclass(frozen=True)
class RuleSet:
    """Everything the rule files, tests and runbooks are rendered from."""

    thresholds: Thresholds
    time_rules: tuple[RecordingRule, ...]
    rate_rules: tuple[RecordingRule, ...]  # every rate and ratio, shared or not
    alerts: tuple[BuiltAlert, ...]
    recorder: Recorder

    def shared_rules(self) -> tuple[RecordingRule, ...]:
        """Rates read by alerts of more than one category: they live in recording.yml."""
        return self.recorder.filed(None)

    def category_rules(self, category: str) -> tuple[RecordingRule, ...]:
        return self.recorder.filed(category)


def build_ruleset(th: Thresholds) -> RuleSet:
    """Build every enabled alert, then check every metric the rules read exists."""
    recorder = Recorder()
    builders = _builders(th)
    built: list[BuiltAlert] = []
    for spec in ALERT_DEFS:
        alert = th.alerts[spec.name]
        if not alert.enabled:
            continue
        recorder.category = spec.category
        result = builders[spec.name](alert, th, recorder)
        if not result.variants:
            continue  # nothing configured (no latency endpoints, no SLOs)
        built.append(_tiered(th, alert, result))
    ruleset = RuleSet(
        th, tuple(time_rules(th)), tuple(recorder.rules.values()), tuple(built), recorder
    )
    check_metric_names(ruleset)
    return ruleset


def _tiered(th: Thresholds, alert: Alert, result: AlertBuild) -> BuiltAlert:
    links = th.file.links
    esc = th.file.escalation
    rules: list[AlertRule] = []
    delays: dict[str, tuple[float, ...]] = {}
    dashboard = "business" if alert.spec.category in ("sales", "inventory") else "operations"
    for variant in result.variants:
        tiers = tier_delays(variant.severity, float(esc.tier2_after), float(esc.tier3_after))
        delays[variant.severity] = tuple(tiers)
        for tier, delay in enumerate(tiers, start=1):
            labels = {"severity": variant.severity, "category": alert.spec.category}
            if result.source:
                labels["source"] = result.source
            labels["escalation"] = str(tier)
            labels.update(alert.labels)
            annotations = {
                "summary": variant.summary,
                "description": variant.description.go(),
                "runbook_url": f"{links.runbook_base_url.rstrip('/')}/{alert.spec.name}.md",
                "dashboard_url": f"{links.dashboard_base_url.rstrip('/')}/boxoffice-{dashboard}",
            }
            expr = variant.expr
            if alert.spec.category != "monitoring":
                expr = held_while_blind(expr, alert.spec.name, labels)
            rules.append(
                AlertRule(alert.spec.name, expr, alert.for_seconds + delay, labels,
                          annotations, variant.severity, tier, variant.description)
            )  # fmt: skip
    return BuiltAlert(alert, tuple(rules), tuple(result.scenarios), delays)


def held_while_blind(expr: str, name: str, labels: dict[str, str]) -> str:
    """``expr``, or the alert as it fired, while the source it is about cannot collect.

    When a source goes down its series go with it, so an alert that was firing would
    resolve on no data: a false all-clear. Alertmanager's source-down inhibition cannot
    catch it: a resolved notification muted by an inhibition is dropped, never sent later
    (prometheus/alertmanager#2754), which leaves PagerDuty incidents open. So the alert
    holds, unchanged and inhibited, while ``boxoffice_source_up`` of its ``source`` label
    is 0 or ExporterSourceDown for it still fires, and is judged on fresh data after that:
    it resolves an evaluation after ExporterSourceDown, so the inhibition is gone when its
    all-clear reaches Alertmanager. The held alert's value is its ALERTS sample (1), which
    nobody reads while the inhibition mutes it.
    """
    matchers = ", ".join(
        [f'alertname="{name}"', 'alertstate="firing"'] + [f'{k}="{v}"' for k, v in labels.items()]
    )
    drop = ", ".join(["alertname", "alertstate", *labels])
    paging = 'ALERTS{alertname="ExporterSourceDown", alertstate="firing"'
    if "source" in labels:  # one source, set by the rule: the expression has no such label
        source = labels["source"]
        down = (
            f'and on () (max(boxoffice_source_up{{source="{source}"}}) == 0 '
            f'or max({paging}, source="{source}"}}))'
        )
    else:  # the expression labels each series with its source
        down = (
            "and on (source) (max by (source) (boxoffice_source_up) == 0 "
            f"or max by (source) ({paging}}}))"
        )
    return f"({expr}) or (max without ({drop}) (ALERTS{{{matchers}}}) {down})"


def check_metric_names(ruleset: RuleSet) -> None:
    """Refuse a rule that reads a metric nobody publishes (a typo would never fire)."""
    th = ruleset.thresholds
    recorded = {r.record for r in (*ruleset.time_rules, *ruleset.rate_rules)}
    known = set(CATALOG_BY_NAME) | recorded | set(th.file.app_metrics) | PROMETHEUS_SERIES
    exprs: list[tuple[str, str]] = [
        (f"recording rule {r.record}", r.expr) for r in ruleset.rate_rules
    ]
    exprs += [(f"alerts.{r.alert}", r.expr) for b in ruleset.alerts for r in b.rules]
    for name, slo in th.file.slos.items():
        exprs += [(f"slos.{name}.total", slo.total), (f"slos.{name}.errors", slo.errors)]
    if th.file.latency is not None:
        exprs.append(("latency.histogram", th.file.latency.histogram + "_bucket"))
    for where, expr in sorted(exprs, key=lambda e: not e[0].startswith(("slos", "latency"))):
        for metric in metric_names(expr):
            if metric not in known:
                raise ConfigError(
                    th.source, where,
                    f"unknown metric {metric!r}: not published by the exporter, not a "
                    "recording rule generated here, not declared under app_metrics",
                )  # fmt: skip
