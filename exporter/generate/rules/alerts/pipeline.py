"""The alerting path's own alerts (issue 19, category monitoring): the always-firing
Watchdog heartbeat, Alertmanager failing to notify, Prometheus failing to evaluate rules or
to reach Alertmanager, and the SMS bridge failing or deferring sends or running out of
Twilio balance.

They read Prometheus', Alertmanager's and the bridge's own metrics (scraped as the jobs
``prometheus``, ``alertmanager`` and ``sms-bridge``), grouped by ``instance`` and ``job`` so
each server of a pair is judged on its own. None of them can tell that Alertmanager itself
is gone, since their notification would go through it: that is what the Watchdog is for
(its notifications stop, and the bridge, or an external dead-man's switch, notices).
"""

from __future__ import annotations

from exporter.catalog import (
    ALERTMANAGER_NOTIFICATIONS,
    ALERTMANAGER_NOTIFICATIONS_FAILED,
    BRIDGE_MESSAGES_DEFERRED,
    BRIDGE_MESSAGES_FAILED,
    BRIDGE_TWILIO_BALANCE,
    PROMETHEUS_ALERTMANAGERS,
    PROMETHEUS_NOTIFICATION_ERRORS,
    PROMETHEUS_NOTIFICATIONS_DROPPED,
    PROMETHEUS_RULE_FAILURES,
)
from exporter.generate.promql import duration_text, num
from exporter.generate.rules.alertkit import Builder, Ladder, describe, ladder, pct, span
from exporter.generate.rules.alertkit import variants as ladder_variants
from exporter.generate.rules.model import AlertBuild, Format, Scenario, Text, Variant, constant
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.rules.scenarios import gauge_cases, ratio_scenario
from exporter.generate.thresholds import Alert, Thresholds

_SERVER = ("instance", "job")
# Test labels of each server's series, as a scrape of the compose stack gives them.
_ALERTMANAGER = {"instance": "alertmanager:9093", "job": "alertmanager"}
_PROMETHEUS = {"instance": "localhost:9090", "job": "prometheus"}
_BRIDGE = {"instance": "sms-bridge:9799", "job": "sms-bridge"}


def _by(*labels: str) -> str:
    return f"by ({', '.join((*_SERVER, *labels))})"


def watchdog(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """Always firing: routed to the heartbeat receiver only (label notify="heartbeat")."""
    severity: str = alert.severity or "low"
    text = Text(
        "The alerting pipeline is alive: this alert always fires (value {value}), and its "
        "notifications reaching the heartbeat receiver prove Prometheus, Alertmanager and the "
        "receiver work.",
        "number",
    )
    variant = Variant(
        severity=severity, expr="vector(1)", summary=alert.spec.summary, description=text
    )
    length = span(alert, th.file.escalation.tier3_after)
    scenario = Scenario(
        name="always",
        series=(),
        labels={},
        model=constant({severity: 1.0}),
        length_seconds=length,
    )
    return AlertBuild(variants=[variant], scenarios=[scenario])


def alertmanager_notifications_failing(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    w = duration_text(window)
    lad = ladder(alert)
    share = (
        f"sum {_by('integration')} (rate({ALERTMANAGER_NOTIFICATIONS_FAILED}[{w}])) / "
        f"sum {_by('integration')} (rate({ALERTMANAGER_NOTIFICATIONS}[{w}]))"
    )
    build = AlertBuild(
        variants=ladder_variants(
            alert,
            lad.conditions(share),
            lambda sev, t: describe(
                f"Alertmanager {{instance}} failed {{value}} of its {{integration}} "
                f"notifications in the last {w} (threshold {pct(t)}): those alerts reach "
                "their other channels only.",
                "percent",
            ),
        )
    )
    labels = {**_ALERTMANAGER, "integration": "slack"}
    for target, value in lad.targets(ceiling=1.0):
        build.scenarios.append(
            ratio_scenario(
                target,
                alert,
                th,
                lad,
                part=(ALERTMANAGER_NOTIFICATIONS_FAILED, labels),
                whole=(ALERTMANAGER_NOTIFICATIONS, labels),
                share=value,
                labels=labels,
            )
        )
    return build


def _counted(
    alert: Alert,
    th: Thresholds,
    *,
    expr: str,
    text: str,
    fmt: Format,
    metric: str,
    labels: dict[str, str],
    summed: tuple[str, ...] = (),
) -> AlertBuild:
    """A ladder over a counter's increase in the alert's window; ``{t}`` is the threshold;
    ``summed``: labels of the test series that the expression sums away."""
    lad = ladder(alert)
    build = AlertBuild(
        variants=ladder_variants(
            alert,
            lad.conditions(expr),
            lambda sev, t: describe(text.replace("{t}", num(t)), fmt),
        )
    )
    build.scenarios = _counter_cases(alert, th, lad, metric, labels, summed)
    return build


def _counter_cases(
    alert: Alert,
    th: Thresholds,
    lad: Ladder,
    metric: str,
    labels: dict[str, str],
    summed: tuple[str, ...],
) -> list[Scenario]:
    """Per band: a counter growing to twice its threshold (at least 1) per window, and one
    growing to half of it (nothing at a threshold of 0), which must not fire."""
    window = alert.window
    length = span(alert, th.file.escalation.tier3_after)
    result = {k: v for k, v in labels.items() if k not in summed}
    out: list[Scenario] = []
    for severity, threshold in lad.thresholds:
        for name, per_window in (
            (severity, max(2 * threshold, 1.0)),
            (f"near-{severity}", threshold / 2),
        ):
            counter = Counter.linear(per_window / window)

            def model(t: float, counter: Counter = counter) -> dict[str, float]:
                value = counter.increase(window, t, 60)
                band = lad.severity(value)
                return {band: value} if band and value is not None else {}

            out.append(
                Scenario(
                    name=name,
                    series=(counter.series(selector(metric, labels), length, 60),),
                    labels=result,
                    model=model,
                    length_seconds=length,
                )
            )
    return out


def prometheus_rule_evaluation_failing(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    w = duration_text(alert.window)
    return _counted(
        alert,
        th,
        expr=f"sum {_by('rule_group')} (increase({PROMETHEUS_RULE_FAILURES}[{w}]))",
        text=f"Prometheus {{instance}} failed {{value}} evaluations of rule group "
        f"{{rule_group}} in the last {w} (threshold {{t}}): its alerts may not fire.",
        fmt="number",
        metric=PROMETHEUS_RULE_FAILURES,
        labels={
            **_PROMETHEUS,
            "rule_group": "/etc/prometheus/rules/payments.yml;boxoffice-payments",
        },
    )


def prometheus_notifications_failing(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    w = duration_text(alert.window)
    # Errors carry the Alertmanager's address, drops do not: `or` keeps both, then the sum.
    expr = (
        f"sum {_by()} (increase({PROMETHEUS_NOTIFICATION_ERRORS}[{w}]) "
        f"or increase({PROMETHEUS_NOTIFICATIONS_DROPPED}[{w}]))"
    )
    return _counted(
        alert,
        th,
        expr=expr,
        text=f"Prometheus {{instance}} failed to send or dropped {{value}} alert batches for "
        f"Alertmanager in the last {w} (threshold {{t}}).",
        fmt="number",
        metric=PROMETHEUS_NOTIFICATION_ERRORS,
        labels={**_PROMETHEUS, "alertmanager": "http://alertmanager:9093/api/v2/alerts"},
        summed=("alertmanager",),
    )


def prometheus_alertmanager_missing(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    severity: str = alert.severity or "high"
    expr = f"max {_by()} ({PROMETHEUS_ALERTMANAGERS}) < 1"
    text = Text(
        "Prometheus {instance} knows {value} Alertmanagers: its alerts go nowhere.", "number"
    )
    variant = Variant(severity=severity, expr=expr, summary=alert.spec.summary, description=text)
    build = AlertBuild(variants=[variant])
    build.scenarios = gauge_cases(
        alert,
        th,
        PROMETHEUS_ALERTMANAGERS,
        dict(_PROMETHEUS),
        [("none", 0.0, {severity: 0.0}), ("near-one", 1.0, {})],
    )
    return build


def sms_bridge_sends_failing(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    w = duration_text(alert.window)
    # `rejected` is the recipient's own number (invalid, opted out): no retry can help and
    # the bridge is working; every other reason leaves an SMS unsent for now.
    return _counted(
        alert,
        th,
        expr=f'sum {_by()} (increase({BRIDGE_MESSAGES_FAILED}{{reason!="rejected"}}[{w}]))',
        text=f"The SMS bridge {{instance}} failed {{value}} sends in the last {w} (threshold "
        "{t}): Twilio unreachable, refusing our credentials or sender, or the store down. "
        "Alertmanager keeps retrying; pages may be late or lost.",
        fmt="number",
        metric=BRIDGE_MESSAGES_FAILED,
        labels={**_BRIDGE, "reason": "twilio_unavailable"},
        summed=("reason",),
    )


def sms_bridge_sends_deferred(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    w = duration_text(alert.window)
    return _counted(
        alert,
        th,
        expr=f"sum {_by()} (increase({BRIDGE_MESSAGES_DEFERRED}[{w}]))",
        text=f"The SMS bridge {{instance}} held {{value}} SMS past a recipient's rate limit in "
        f"the last {w} (threshold {{t}}): they go out as digests, late.",
        fmt="number",
        metric=BRIDGE_MESSAGES_DEFERRED,
        labels=dict(_BRIDGE),
    )


def sms_bridge_twilio_balance_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    lad = ladder(alert)
    expr = f"min {_by('currency')} ({BRIDGE_TWILIO_BALANCE})"
    build = AlertBuild(
        variants=ladder_variants(
            alert,
            lad.conditions(expr),
            lambda sev, t: describe(
                f"The Twilio account the SMS bridge pages through has {{value}} {{currency}} "
                f"left (threshold {t:.2f}): at 0 Twilio refuses every SMS.",
                "money",
            ),
        )
    )
    cases = [
        (target, value, {s: value} if (s := lad.severity(value)) else {})
        for target, value in lad.targets()
    ]
    build.scenarios = gauge_cases(
        alert, th, BRIDGE_TWILIO_BALANCE, {**_BRIDGE, "currency": "usd"}, cases
    )
    return build


BUILDERS: dict[str, Builder] = {
    "Watchdog": watchdog,
    "AlertmanagerNotificationsFailing": alertmanager_notifications_failing,
    "PrometheusRuleEvaluationFailing": prometheus_rule_evaluation_failing,
    "PrometheusNotificationsFailing": prometheus_notifications_failing,
    "PrometheusAlertmanagerMissing": prometheus_alertmanager_missing,
    "SmsBridgeSendsFailing": sms_bridge_sends_failing,
    "SmsBridgeSendsDeferred": sms_bridge_sends_deferred,
    "SmsBridgeTwilioBalanceLow": sms_bridge_twilio_balance_low,
}
