"""Payments alerts (SPEC 5): success rate, failure bursts, refund and dispute rates."""

from __future__ import annotations

from dataclasses import replace

from exporter.generate import class_series, series
from exporter.generate.promql import duration_text, num
from exporter.generate.rules.alertkit import Builder, describe, ladder, pct, span, variants
from exporter.generate.rules.model import AlertBuild, Scenario, constant
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.rules.scenarios import ratio_scenario
from exporter.generate.series import NamedSeries
from exporter.generate.thresholds import Alert, Thresholds


def payment_success_rate_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    lad = ladder(alert)
    per_source: dict[str, dict[str, str]] = {}
    for source, _failed, total in series.PAYMENT_SOURCES:
        ratio = rec.use(class_series.failure_ratio(source, window, th))
        volume = rec.use(series.increase(total, window))
        success = f'label_replace(1 - {ratio}, "source", "{source}", "", "")'
        per_source[source] = {
            sev: f"{cond} and on() {volume} >= {alert.min_traffic:g}"
            for sev, cond in lad.conditions(success).items()
        }
    conditions = {
        sev: "\n  or ".join(f"({c[sev]})" for c in per_source.values())
        for sev in per_source["postgres"]
    }
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"Payment success rate ({{source}}) is {{value}} over the last {w}, "
                f"below {pct(t)}, with at least {alert.min_traffic:g} payments "
                "(system failures only: card declines and fraud blocks are not outages).",
                "percent",
            ),
        )
    )
    for target, success_rate in lad.targets(ceiling=1.0):
        build.scenarios.append(
            ratio_scenario(
                target,
                alert,
                th,
                lad,
                part=(series.PAYMENTS_FAILED, {"failure_code": "processing_error"}),
                whole=(series.PAYMENTS, {}),
                share=1 - success_rate,
                labels={"source": "postgres"},
                shown="success",
            )
        )
    # Declines are customer behaviour: half the attempts declined is no outage.
    declined = ratio_scenario(
        "declines-only",
        alert,
        th,
        lad,
        part=(series.PAYMENTS_FAILED, {"failure_code": "card_declined"}),
        whole=(series.PAYMENTS, {}),
        share=0.5,
        labels={"source": "postgres"},
        shown="success",
    )
    build.scenarios.append(replace(declined, model=constant({})))
    return build


def payment_failures_burst(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """System failures: at least the ladder's count AND at least min_ratio of attempts, so a
    big healthy shop's trickle of processing errors never pages."""
    window = alert.window
    lad = ladder(alert, strict=False)
    failed = rec.use(class_series.failed("postgres", window, th))
    ratio = rec.use(class_series.failure_ratio("postgres", window, th))
    floor = alert.min_ratio or 0.0
    conditions = {
        sev: f"{cond} and on() {ratio} >= {floor:g}" for sev, cond in lad.conditions(failed).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"{{value}} payments failed for a system reason in the last {w} (threshold "
                f"{t:g}, and at least {pct(floor)} of attempts; declines not counted).",
                "number",
            ),
        ),
        source="postgres",
    )
    length = span(alert, th.file.escalation.tier3_after, window)
    cases = [(target, count, 2 * floor, "processing_error") for target, count in lad.targets()]
    high = lad.thresholds[0][1]
    cases.append(("big-shop-trickle", 3 * high, floor / 2, "processing_error"))
    cases.append(("declines-only", 3 * high, 0.5, "card_declined"))
    for target, count, share, code in cases:
        bad = Counter.linear(count / window)
        total = Counter.linear(count / window / share)
        system = code == "processing_error"

        def model(
            t: float, bad: Counter = bad, total: Counter = total, system: bool = system
        ) -> dict[str, float]:
            value = bad.increase(window, t, 60)
            attempts = total.increase(window, t, 60)
            if not system or value is None or not attempts or value / attempts < floor:
                return {}
            severity = lad.severity(value)
            return {severity: value} if severity else {}

        build.scenarios.append(
            Scenario(
                name=target,
                series=(
                    bad.series(
                        selector(series.PAYMENTS_FAILED, {"failure_code": code}), length, 60
                    ),
                    total.series(selector(series.PAYMENTS, {}), length, 60),
                ),
                labels={},
                model=model,
                length_seconds=length,
            )
        )
    return build


def money_ratio_alert(
    alert: Alert,
    th: Thresholds,
    rec: Recorder,
    *,
    ratio: NamedSeries,
    part: str,
    whole: str,
    keep: tuple[str, ...],
    text: str,
    labels: dict[str, str],
    source: str,
) -> AlertBuild:
    """``ratio`` (part / whole) above the ladder, with ``whole`` at least min_traffic."""
    window = alert.window
    lad = ladder(alert)
    name = rec.use(ratio)
    volume = rec.use(series.increase(whole, window, keep=keep))
    on = f"on({', '.join(keep)})" if keep else "on()"
    conditions = {
        sev: f"{cond} and {on} {volume} >= {alert.min_traffic:g}"
        for sev, cond in lad.conditions(name).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(text.replace("{w}", w).replace("{t}", pct(t)), "percent"),
        ),
        source=source,
    )
    for i, (target, share) in enumerate(lad.targets(ceiling=1.0)):
        distinct = {k: f"{v}{i}" if i else v for k, v in labels.items()}
        build.scenarios.append(
            ratio_scenario(
                target,
                alert,
                th,
                lad,
                part=(part, distinct),
                whole=(whole, distinct),
                share=share,
                labels=distinct,
                merge="all" if labels else "",
            )
        )
    return build


def refund_rate_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """Refunds above the ladder's share of the window's revenue, with ``min_traffic`` of
    revenue, and worth at least ``relative.min_refunds`` average orders (the window's revenue
    over its paid orders): at a shop of ten orders a day one refund is a tenth of the day's
    revenue, which is chance, not a refund wave."""
    window = alert.window
    lad = ladder(alert)
    keep = ("currency",)
    ratio = rec.use(series.refund_ratio(window))
    volume = rec.use(series.increase(series.REVENUE, window, keep=keep))
    refunded = rec.use(series.increase(series.REFUNDS, window, keep=keep))
    order_value = rec.use(series.order_value(window))
    least = alert.relative["min_refunds"]
    evidence = f"on(currency) {refunded} >= {num(least)} * {order_value}"
    conditions = {
        sev: f"{cond} and on(currency) {volume} >= {alert.min_traffic:g}\nand {evidence}"
        for sev, cond in lad.conditions(ratio).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"Refunds are {{value}} of {{currency}} revenue over the last {w} (threshold "
                f"{pct(t)}, and worth at least {least:g} average orders).",
                "percent",
            ),
        ),
        source="postgres",
    )
    # (name, revenue a second, average order value, refunded share of revenue, step): a
    # busy shop where the share decides; a club of ten 38-dollar orders a day, over a day,
    # where one refund is a tenth of the day's revenue and six are a refund wave.
    small = 380.0 / 86400
    cases = [(name, 100.0, 100.0, share, 60.0) for name, share in lad.targets(ceiling=1.0)]
    cases.append(("one refund at a small shop", small, 38.0, 0.105, 600.0))
    cases.append(("a refund wave at a small shop", small, 38.0, 0.6, 600.0))
    breakdown = {"city": "Austin", "tier": "ga", "payment_method": "card", "member": "false"}
    for i, (name, per_second, value, share, step) in enumerate(cases):
        labels = {"currency": f"c{i}"}
        revenue = Counter.linear(per_second)
        refunds = Counter.linear(per_second * share)
        orders = Counter.linear(per_second / value)
        length = span(alert, th.file.escalation.tier3_after, window if step > 60 else 0.0)

        def model(
            t: float,
            revenue: Counter = revenue,
            refunds: Counter = refunds,
            value: float = value,
            step: float = step,
        ) -> dict[str, float]:
            earned, back = revenue.increase(window, t, step), refunds.increase(window, t, step)
            if not earned or back is None or earned < (alert.min_traffic or 0.0):
                return {}
            if back < least * value:
                return {}
            severity = lad.severity(back / earned)
            return {severity: back / earned} if severity else {}

        build.scenarios.append(
            Scenario(
                name=name,
                series=(
                    revenue.series(selector(series.REVENUE, labels), length, step),
                    refunds.series(selector(series.REFUNDS, labels), length, step),
                    orders.series(
                        selector(series.ORDERS_PAID, {**breakdown, **labels}), length, step
                    ),
                    revenue.series(
                        selector(series.ORDERS_PAID_REVENUE, {**breakdown, **labels}),
                        length,
                        step,
                    ),
                ),
                labels=labels,
                model=model,
                length_seconds=length,
                step_seconds=step,
                merge=f"step{step:g}",
            )
        )
    return build


def dispute_rate_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return money_ratio_alert(
        alert,
        th,
        rec,
        ratio=series.dispute_ratio(alert.window),
        part=series.DISPUTES,
        whole=series.CHARGES,
        keep=(),
        labels={},
        source="stripe",
        text="Disputes are {value} of Stripe charges over the last {w} (threshold {t}).",
    )


BUILDERS: dict[str, Builder] = {
    "PaymentSuccessRateLow": payment_success_rate_low,
    "PaymentFailuresBurst": payment_failures_burst,
    "RefundRateHigh": refund_rate_high,
    "DisputeRateHigh": dispute_rate_high,
}
