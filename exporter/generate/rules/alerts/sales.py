"""Sales alerts (SPEC 5): velocity against last week, no recent sales in business hours,
revenue below forecast, checkout conversion."""

from __future__ import annotations

import math

from exporter.generate import series
from exporter.generate.promql import duration_text
from exporter.generate.rules.alertkit import Builder, describe, ladder, pct, span, variants
from exporter.generate.rules.model import AlertBuild, Scenario
from exporter.generate.rules.promtool_series import Counter, gauge, selector
from exporter.generate.rules.recording import Recorder, in_business_hours, local_midnight
from exporter.generate.rules.scenarios import EVENT, ratio_scenario
from exporter.generate.series import COMPLETED, CREATED, LAST_PAID, REVENUE, SOLD, by
from exporter.generate.thresholds import Alert, Thresholds

WEEK = 7 * 86400.0
BUSINESS = "on() boxoffice:business_hours == 1"


def sales_velocity_spike(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    lad = ladder(alert)
    w = duration_text(window)
    now = rec.use(series.increase(SOLD, window))
    last_week = f"{by(SOLD)} (increase({SOLD}[{w}] offset 1w))"
    expr = f"{now} / ({last_week} > 0)"
    conditions = {
        sev: f"{cond} and {now} >= {alert.min_traffic:g}"
        for sev, cond in lad.conditions(expr).items()
    }
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"{{tier}} tickets for {{event}} in {{city}} sell at {{value}} the rate of the "
                f"same {w} last week (alerting above {t:g}x).",
                "factor",
            ),
        ),
        source="postgres",
    )
    step = 1800.0  # a week of data: half-hour steps keep promtool quick
    base = max(alert.min_traffic or 0.0, 10.0) / window  # last week's tickets per second
    length = WEEK + window + span(alert, th.file.escalation.tier3_after)
    for target, factor in lad.targets():
        counter = Counter(((WEEK, base), (math.inf, base * factor)))
        labels = {**EVENT, "event": f"{EVENT['event']}-{target}", "tier": "ga"}

        def model(t: float, counter: Counter = counter) -> dict[str, float]:
            current = counter.increase(window, t, step)
            if current is None or t - WEEK < step or current < (alert.min_traffic or 0.0):
                return {}
            before = counter.at(t - WEEK) - counter.at(max(0.0, t - WEEK - window))
            if before <= 0:
                return {}
            value = current / before
            severity = lad.severity(value)
            return {severity: value} if severity else {}

        input_series = (counter.series(selector(SOLD, labels), length, step),)
        build.scenarios.append(
            Scenario(
                name=target,
                series=input_series,
                labels=labels,
                model=model,
                length_seconds=length,
                step_seconds=step,
                merge="all",
            )
        )
    return build


def no_recent_sales(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    lad = ladder(alert)
    age = series.age(LAST_PAID)
    conditions = {sev: f"{cond} and {BUSINESS}" for sev, cond in lad.conditions(age).items()}
    zone = th.file.timezone
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"No paid order for {{value}} during business hours ({zone}); "
                f"alerting after {duration_text(t)}.",
                "duration",
            ),
        ),
        source="postgres",
    )
    step, opens = _opening(th, 0.0)
    length = opens + span(alert, th.file.escalation.tier3_after)
    for target, age_value in lad.targets():
        # Firing: that old when business hours open. Near: that old when the test ends.
        last_paid = opens - age_value if not target.startswith("near") else length - age_value

        def model(t: float, last_paid: float = last_paid) -> dict[str, float]:
            if not in_business_hours(th, t):
                return {}
            value = t - last_paid
            severity = lad.severity(value)
            return {severity: value} if severity else {}

        input_series = (gauge(LAST_PAID, last_paid, length, step),)
        build.scenarios.append(
            Scenario(
                name=target,
                series=input_series,
                labels={},
                model=model,
                length_seconds=length,
                step_seconds=step,
            )
        )
    return build


def _opening(th: Thresholds, start: float, step: float = 60.0) -> tuple[float, float]:
    """(step, first moment in business hours from ``start``): five-minute steps when the
    hours open far from the start, so promtool does not evaluate a day minute by minute."""
    opens = next(
        t for t in range(int(start), int(start) + 8 * 86400, 60) if in_business_hours(th, t)
    )
    if opens - start <= 6 * 3600:
        return step, float(opens)
    step = max(step, 300.0)
    grid = range(int(start), int(start) + 8 * 86400, int(step))
    return step, float(next(t for t in grid if in_business_hours(th, t)))


def revenue_below_forecast(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    lad = ladder(alert)
    today = rec.use(series.revenue_today())
    forecast_cfg = th.file.forecast
    forecast = rec.use(series.revenue_forecast(forecast_cfg))
    if forecast_cfg.method == "same_time_last_week":
        how = "same time last week"
    else:
        how = "the daily target prorated"
    shortfall = f"1 - {today} / {forecast}"
    conditions = {
        sev: f"{cond} and {forecast} >= {alert.min_traffic:g} and {BUSINESS}"
        for sev, cond in lad.conditions(shortfall).items()
    }
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"{{currency}} revenue today is {{value}} below forecast ({how}); "
                f"alerting at {pct(t)} below.",
                "percent",
            ),
        ),
        source="postgres",
    )
    if forecast_cfg.method == "same_time_last_week":
        step, start = 600.0, WEEK
        daily = 0.0
    else:
        daily = forecast_cfg.daily_target.get("usd", 0.0)
        if not daily:
            return build  # no usd target: the scenarios below would not apply
        start = 0.0
        step, opens = _opening(th, start)
    if not daily:  # the first business hours of a day that began in the second week
        grid = range(int(start), int(start) + 8 * 86400, int(step))
        opens = next(t for t in grid if in_business_hours(th, t) and local_midnight(th, t) >= start)
    length = opens + span(alert, th.file.escalation.tier3_after)
    usual = max(alert.min_traffic or 0.0, 100.0) / 3600  # reaches the guard within an hour

    for i, (target, short) in enumerate(lad.targets(ceiling=1.0)):
        # Same week-on-week data for every case, one currency each: one promtool group.
        labels = {"currency": "usd" if daily else f"c{i}"}
        counter = Counter(((start, usual), (math.inf, usual * (1 - short))))
        if daily:
            counter = Counter.linear(daily / 86400 * (1 - short))

        def today_at(t: float, counter: Counter = counter) -> float:
            return counter.at(t) - counter.at(max(0.0, local_midnight(th, t)))

        def model(t: float, today_at=today_at) -> dict[str, float]:  # type: ignore[no-untyped-def]
            if not in_business_hours(th, t) or t < step:
                return {}
            if daily:
                midnight = local_midnight(th, t)
                expected = daily * ((t - midnight) // 60) / 1440
            elif t - WEEK >= 0:
                expected = today_at(t - WEEK)
            else:
                return {}
            if expected < (alert.min_traffic or 0.0) or expected <= 0:
                return {}
            value = 1 - today_at(t) / expected
            severity = lad.severity(value)
            return {severity: value} if severity else {}

        input_series = (counter.series(selector(REVENUE, labels), length, step),)
        build.scenarios.append(
            Scenario(
                name=target,
                series=input_series,
                labels=labels,
                model=model,
                length_seconds=length,
                step_seconds=step,
                merge="" if daily else "all",
            )
        )
    return build


def checkout_conversion_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    lad = ladder(alert)
    ratio = rec.use(series.checkout_conversion(window))
    volume = rec.use(series.increase(CREATED, window))
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
                f"Only {{value}} of checkout sessions created in the last {w} completed "
                f"(alerting under {pct(t)}).",
                "percent",
            ),
        ),
        source="postgres",
    )
    for target, share in lad.targets(ceiling=1.0):
        build.scenarios.append(
            ratio_scenario(
                target,
                alert,
                th,
                lad,
                part=(COMPLETED, {}),
                whole=(CREATED, {}),
                share=share,
                labels={},
            )
        )
    return build


BUILDERS: dict[str, Builder] = {
    "SalesVelocitySpike": sales_velocity_spike,
    "NoRecentSales": no_recent_sales,
    "RevenueBelowForecast": revenue_below_forecast,
    "CheckoutConversionLow": checkout_conversion_low,
}
