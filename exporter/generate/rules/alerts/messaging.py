"""Messaging alerts (SPEC 5): SMS failing to deliver, SMS spend, and the Twilio balance."""

from __future__ import annotations

from dataclasses import replace

from exporter.generate import class_series, series
from exporter.generate.promql import duration_text
from exporter.generate.rules.alertkit import Builder, describe, ladder, pct, span, variants
from exporter.generate.rules.alerts.shapes import gauge_ladder
from exporter.generate.rules.model import AlertBuild, Scenario, constant
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.rules.scenarios import ratio_scenario
from exporter.generate.series import SMS, SMS_COST, SMS_FAILED
from exporter.generate.thresholds import Alert, Thresholds


def sms_delivery_failure_rate_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    lad = ladder(alert)
    ratio = rec.use(class_series.sms_failure_ratio(window, th))
    volume = rec.use(series.increase(SMS, window))
    conditions = {
        sev: f"{cond} and on() {volume} >= {alert.min_traffic:g}"
        for sev, cond in lad.conditions(ratio).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"{{value}} of SMS that reached a final status in the last {w} failed for a "
                f"reason on our side (provider or account; the recipient's bad numbers and "
                f"carrier filtering not counted) (threshold {pct(t)}).",
                "percent",
            ),
        ),
        source="twilio",
    )
    for target, share in lad.targets(ceiling=1.0):
        build.scenarios.append(
            ratio_scenario(
                target,
                alert,
                th,
                lad,
                part=(SMS_FAILED, {"error_code": "30008"}),
                whole=(SMS, {}),
                share=share,
                labels={},
            )
        )
    # Landlines and invalid numbers are the recipient's problem: never a delivery outage.
    recipient = ratio_scenario(
        "recipient-failures-only",
        alert,
        th,
        lad,
        part=(SMS_FAILED, {"error_code": "30006"}),
        whole=(SMS, {}),
        share=0.5,
        labels={},
    )
    build.scenarios.append(replace(recipient, model=constant({})))
    return build


def sms_cost_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    lad = ladder(alert)
    spend = rec.use(series.sms_cost(window))
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            lad.conditions(spend),
            lambda sev, t: describe(
                f"SMS spend was {{value}} {{currency}} in the last {w} (threshold {t:g}).",
                "money",
            ),
        ),
        source="twilio",
    )
    length = span(alert, th.file.escalation.tier3_after, window)
    for i, (target, amount) in enumerate(lad.targets()):
        labels = {"currency": f"c{i}"}
        counter = Counter.linear(amount / window)

        def model(t: float, counter: Counter = counter) -> dict[str, float]:
            value = counter.increase(window, t, 60)
            severity = lad.severity(value)
            return {severity: value} if severity and value is not None else {}

        build.scenarios.append(
            Scenario(
                name=target,
                series=(counter.series(selector(SMS_COST, labels), length, 60),),
                labels=labels,
                model=model,
                length_seconds=length,
                merge="all",
            )
        )
    return build


def twilio_balance_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return gauge_ladder(
        alert,
        th,
        metric="boxoffice_twilio_balance",
        labels={"currency": "usd"},
        text="Twilio balance is {value} {currency} (threshold {t}).",
        fmt="money",
        source="twilio",
    )


BUILDERS: dict[str, Builder] = {
    "SmsDeliveryFailureRateHigh": sms_delivery_failure_rate_high,
    "SmsCostHigh": sms_cost_high,
    "TwilioBalanceLow": twilio_balance_low,
}
