"""From checked thresholds to the complete rule set: every alert built, tiered and checked.

Escalation is done with rules: each severity of an alert becomes up to three rules with the
same name and condition, ``for`` growing by the configured tier delays, labelled
``escalation="1"``, ``"2"``, ``"3"``. Held 5 minutes, tiers 1 and 2 fire together; held
15 minutes, all three. How far a severity escalates is ``escalation.top_tier`` (critical to
tier 3, high to tier 2, medium and low never); alerts of a standing state never escalate.
Alertmanager routes each tier to its audience.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.catalog import ALERTING_PATH_SERIES, CATALOG_BY_NAME, PROMETHEUS_SERIES
from exporter.generate.alertdefs import ALERT_DEFS
from exporter.generate.promql import metric_names
from exporter.generate.rules.alerts import BUILDERS
from exporter.generate.rules.model import (
    AlertBuild,
    AlertRule,
    RecordingRule,
    Scenario,
    tier_delays,
)
from exporter.generate.rules.recording import SHARED_GROUPS, Recorder, time_rules
from exporter.generate.scope import scoped
from exporter.generate.thresholds import Alert, Thresholds


@dataclass(frozen=True, kw_only=True)
class BuiltAlert:
    """One alert of the product with its rules and test scenarios."""

    alert: Alert
    rules: tuple[AlertRule, ...]
    scenarios: tuple[Scenario, ...]
    tier_delays: dict[str, tuple[float, ...]]  # per severity
    group: str  # the rule group its rules are evaluated in


@dataclass(frozen=True, kw_only=True)
class RuleGroup:
    """One group of a category's file: recorded series first, then alerts."""

    name: str
    records: tuple[RecordingRule, ...]
    alerts: tuple[AlertRule, ...] = ()
    interval: float = 0.0  # its own evaluation interval, s (0: Prometheus' global one)


@dataclass(frozen=True, kw_only=True)
class RuleSet:
    """Everything the rule files, tests and runbooks are rendered from."""

    thresholds: Thresholds
    time_rules: tuple[RecordingRule, ...]
    rate_rules: tuple[RecordingRule, ...]  # every rate and ratio, shared or not
    alerts: tuple[BuiltAlert, ...]
    recorder: Recorder

    def shared_groups(self) -> list[RuleGroup]:
        """Series read by alerts of more than one category, in recording.yml: rates, and
        rules reading every tier. Empty groups are left out."""
        groups = [RuleGroup(name=name, records=self.recorder.filed(name)) for name in SHARED_GROUPS]
        return [g for g in groups if g.records]

    def category_groups(self, category: str) -> list[RuleGroup]:
        """The groups of a category's file in the order promtool evaluates them: rules
        reading every tier, rates, the alerts (after the series recorded beside them), series
        recorded in a group of their own, then alerts with a group of their own. Empty groups
        are left out."""
        base = f"boxoffice-{category}"
        alerts = [b for b in self.alerts if b.alert.spec.category == category]
        own = self.recorder.own_groups(category)
        own += [
            g for g in dict.fromkeys(b.group for b in alerts if b.group != base) if g not in own
        ]
        groups = [
            RuleGroup(
                name=name,
                records=self.recorder.filed(name),
                alerts=tuple(r for b in alerts if b.group == name for r in b.rules),
                interval=self.recorder.intervals.get(name, 0.0),
            )
            for name in (f"{base}-tiers", f"{base}-rates", base, *own)
        ]
        return [g for g in groups if g.records or g.alerts]


def build_ruleset(th: Thresholds) -> RuleSet:
    """Build every enabled alert, then check every metric the rules read exists."""
    scope = tuple(th.file.scope.labels)
    recorder = Recorder(scope)
    built: list[BuiltAlert] = []
    for spec in ALERT_DEFS:
        alert = th.alerts[spec.name]
        if not alert.enabled:
            continue
        recorder.category = spec.category
        result = BUILDERS[spec.name](alert, th, recorder)
        if not result.variants:
            continue  # nothing configured (no latency endpoints, no SLOs)
        built.append(_tiered(th, alert, result))
    ruleset = RuleSet(
        thresholds=th,
        time_rules=tuple(time_rules(th)),
        rate_rules=tuple(recorder.rules.values()),
        alerts=tuple(built),
        recorder=recorder,
    )
    check_metric_names(ruleset)
    return ruleset


def _tiered(th: Thresholds, alert: Alert, result: AlertBuild) -> BuiltAlert:
    links = th.file.links
    esc = th.file.escalation
    scope = tuple(th.file.scope.labels)
    rules: list[AlertRule] = []
    delays: dict[str, tuple[float, ...]] = {}
    dashboard = "business" if alert.spec.category in ("sales", "inventory") else "operations"
    for variant in result.variants:
        top = 1 if alert.spec.standing else esc.tiers(variant.severity)
        tiers = tier_delays(top, float(esc.tier2_after), float(esc.tier3_after))
        delays[variant.severity] = tuple(tiers)
        for tier, delay in enumerate(tiers, start=1):
            labels = {"severity": variant.severity, "category": alert.spec.category}
            if result.source:
                labels["source"] = result.source
            labels["escalation"] = str(tier)
            if alert.spec.notify_once:
                labels["notify"] = "once"
            if alert.spec.heartbeat:
                labels["notify"] = "heartbeat"
            labels.update(alert.labels)
            annotations = {
                "summary": variant.summary,
                "description": variant.description.go(scope),
                "runbook_url": f"{links.runbook_base_url.rstrip('/')}/{alert.spec.name}.md",
                "dashboard_url": f"{links.dashboard_base_url.rstrip('/')}/boxoffice-{dashboard}",
            }
            expr = variant.expr
            if alert.spec.category != "monitoring":
                expr = held_while_blind(expr, alert.spec.name, labels)
            expr = scoped(expr, scope)
            rules.append(
                AlertRule(
                    alert=alert.spec.name,
                    expr=expr,
                    for_seconds=alert.for_seconds + delay,
                    labels=labels,
                    annotations=annotations,
                    severity=variant.severity,
                    tier=tier,
                    text=variant.description,
                    keep_firing_for=alert.keep_firing_for,
                )
            )
    group = f"boxoffice-{alert.spec.category}" + (f"-{result.group}" if result.group else "")
    return BuiltAlert(
        alert=alert,
        rules=tuple(rules),
        scenarios=tuple(result.scenarios),
        tier_delays=delays,
        group=group,
    )


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
    """Refuse a rule that reads a metric nobody publishes: a builder bug, as thresholds.py
    already refused unknown metrics in the SLO and latency settings."""
    th = ruleset.thresholds
    recorded = {r.record for r in (*ruleset.time_rules, *ruleset.rate_rules)}
    known = set(CATALOG_BY_NAME) | recorded | set(th.file.app_metrics) | PROMETHEUS_SERIES
    known |= ALERTING_PATH_SERIES
    exprs = [(f"recording rule {r.record}", r.expr) for r in ruleset.rate_rules]
    exprs += [(f"alerts.{r.alert}", r.expr) for b in ruleset.alerts for r in b.rules]
    for where, expr in exprs:
        unknown = [m for m in metric_names(expr) if m not in known]
        if unknown:
            raise ValueError(f"{where} reads unknown metric {unknown[0]!r}")
