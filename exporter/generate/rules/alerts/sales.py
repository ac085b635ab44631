"""Sales alerts (SPEC 5): velocity against the shop's seasonal baseline, revenue below
forecast and the average order value against its normal (issue 18); NoRecentSales and
CheckoutConversionLow live in ``seasonal.py``."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from exporter.generate import series
from exporter.generate.promql import duration_text, num
from exporter.generate.rules.alertkit import Builder, describe, ladder, pct, span, variants
from exporter.generate.rules.alerts import seasonal
from exporter.generate.rules.alerts.seasonal import STEP, WEEK, buyers_share, weekly_median
from exporter.generate.rules.model import AlertBuild, Scenario, Series
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder, in_business_hours, local_midnight
from exporter.generate.rules.scenarios import EVENT
from exporter.generate.series import (
    CREATED,
    ORDERS_PAID,
    ORDERS_PAID_REVENUE,
    PAYMENTS,
    REVENUE,
    SOLD,
)
from exporter.generate.thresholds import Alert, Thresholds

BUSINESS = "on() boxoffice:business_hours == 1"


def sales_velocity_spike(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    lad = ladder(alert)
    w = duration_text(window)
    sold = series.tickets_sold_all(window)
    now = rec.use(sold)
    normal = rec.use(series.seasonal(sold, th.file.baseline))
    expr = f"{now} / ({normal} > 0)"
    # Beyond chance too, as two counts compared: the hour's tickets and the normal (itself
    # the median of a few past hours, as noisy as one) differ by more than baseline.z
    # deviations of their difference. Tickets come about two to an order, so each count
    # varies about twice as much as a Poisson count: a quiet night's 15 tickets against a
    # normal of 3 is chance, not a spike.
    z = num(th.file.baseline.z)
    chance = f"{now} - {normal} > {z} * sqrt(2 * ({now} + {normal}))"
    conditions = {
        sev: f"{cond} and {now} >= {alert.min_traffic:g} and {chance}"
        for sev, cond in lad.conditions(expr).items()
    }
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"Tickets sell at {{value}} this shop's normal rate for this {w} of the week "
                f"(the median of past weeks; alerting above {t:g}x).",
                "factor",
            ),
        ),
        source="postgres",
    )
    base = max(alert.min_traffic or 0.0, 100.0) / window  # tickets per second in past weeks
    change = 2 * WEEK + 6 * 3600
    length = change + window + span(alert, th.file.escalation.tier3_after)
    cases = [(target, base, factor) for target, factor in lad.targets()]
    # A quiet night: 3 tickets an hour normally, then 15 (five times, past min_traffic), which
    # two-ticket orders make by chance.
    minimum = alert.min_traffic or 0.0
    cases.append(("a quiet night's chance", minimum * 0.3 / window, 5.0))
    for target, usual, factor in cases:
        counter = Counter(((change, usual), (math.inf, usual * factor)))
        labels = {**EVENT, "event": f"{EVENT['event']}-{target}", "tier": "ga"}

        def model(t: float, counter: Counter = counter) -> dict[str, float]:
            def sold_at(moment: float) -> float | None:
                return counter.increase(window, moment, STEP) if moment >= window else None

            current, normal = sold_at(t), weekly_median(sold_at, t, th.file.baseline)
            if current is None or not normal or current < (alert.min_traffic or 0.0):
                return {}
            if current - normal <= th.file.baseline.z * math.sqrt(2 * (current + normal)):
                return {}
            severity = lad.severity(current / normal)
            return {severity: current / normal} if severity else {}

        build.scenarios.append(
            Scenario(
                name=target,
                series=(counter.series(selector(SOLD, labels), length, STEP),),
                labels={},
                model=model,
                length_seconds=length,
                step_seconds=STEP,
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


# The seasonal forecast's day must be this share of its lowest past week, or less.
LOWEST_WEEK_SHARE = 0.9


def revenue_below_forecast(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    lad = ladder(alert)
    today = rec.use(series.revenue_today())
    forecast_cfg = th.file.forecast
    forecast = rec.use(series.revenue_forecast(forecast_cfg, th.file.baseline))
    how = {
        "seasonal": "the median of the same time of day in past weeks, scaled down when "
        "fewer checkout sessions than usual opened today",
        "same_time_last_week": "same time last week",
    }.get(forecast_cfg.method, "the daily target prorated")
    expected = forecast
    if forecast_cfg.method == "seasonal":
        # Money lost after buyers arrived, not fewer buyers: with fewer checkout sessions
        # today than the median of past weeks (an event sold out, a quiet day), the forecast
        # shrinks in proportion. A shop without session counts keeps the plain forecast.
        expected = rec.use(series.revenue_forecast_for_buyers(forecast_cfg, th.file.baseline))
    shortfall = f"1 - {today} / {expected}"
    chance = _beyond_chance(th, rec, today, expected)
    if forecast_cfg.method == "seasonal":
        # Weeks differ by more than chance (which events are on sale, which sold out): the
        # day must also be a tenth below the lowest past week, not just below their median.
        weeks = rec.use(series.past_weeks(series.revenue_today(), th.file.baseline))
        lowest = f"min without ({series.WEEK_LABEL}) ({weeks})"
        chance += f"\nand {today} < {num(LOWEST_WEEK_SHARE)} * {lowest}"
    conditions = {
        sev: f"{cond} and {forecast} >= {alert.min_traffic:g} and {BUSINESS}{chance}"
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
    build.scenarios = _revenue_scenarios(alert, th, chance)
    return build


def _revenue_scenarios(alert: Alert, th: Thresholds, chance: str) -> list[Scenario]:
    """Two weeks of steady revenue, then a shortfall per band; with the seasonal forecast,
    also fewer buyers (sessions) with and without money lost on them."""
    lad = ladder(alert)
    forecast_cfg = th.file.forecast
    if forecast_cfg.method == "seasonal":
        step, start = STEP, 2 * WEEK
        daily = 0.0
    elif forecast_cfg.method == "same_time_last_week":
        step, start = 600.0, WEEK
        daily = 0.0
    else:
        daily = forecast_cfg.daily_target.get("usd", 0.0)
        if not daily:
            return []  # no usd target: the scenarios below would not apply
        start = 0.0
        step, opens = _opening(th, start)
    if not daily:  # the first business hours of a day that began in the second week
        grid = range(int(start), int(start) + 8 * 86400, int(step))
        opens = next(t for t in grid if in_business_hours(th, t) and local_midnight(th, t) >= start)
    length = opens + span(alert, th.file.escalation.tier3_after)
    usual = max(alert.min_traffic or 0.0, 100.0) / 3600  # reaches the guard within an hour
    if chance:  # enough orders (100 an hour, 10 each) for a 20% shortfall to be no chance
        usual = max(usual, 1000.0 / 3600)
    orders = Counter.linear(usual / 10)

    scenarios: list[Scenario] = []
    seasonal_method = forecast_cfg.method == "seasonal"
    # Checkout sessions: steady for the ladder's cases (today's buyers as usual).
    buyers = Counter.linear(usual / 10 / 0.5)
    cases: list[tuple[str, float, Counter | None, str]] = [
        (target, short, buyers if seasonal_method else None, "" if daily else "all")
        for target, short in lad.targets(ceiling=1.0)
    ]
    if seasonal_method:
        # Fewer buyers than usual (an event sold out): a third fewer sessions and a third less
        # revenue is no money lost in checkout; half the revenue on those buyers is.
        fewer = Counter(((start, usual / 10 / 0.5), (math.inf, usual / 10 / 0.5 * 2 / 3)))
        cases.append(("fewer buyers", 1 / 3, fewer, "fewer"))
        cases.append(("fewer buyers, and less paid", 2 / 3, fewer, "less paid"))
    for i, (target, short, created, merge) in enumerate(cases):
        # Same week-on-week data for every case, one currency each: one promtool group.
        labels = {"currency": "usd" if daily else f"c{i}"}
        counter = Counter(((start, usual), (math.inf, usual * (1 - short))))
        if daily:
            counter = Counter.linear(daily / 86400 * (1 - short))

        def today_at(t: float, counter: Counter = counter) -> float:
            return counter.at(t) - counter.at(max(0.0, local_midnight(th, t)))

        def model(
            t: float,
            today_at: Callable[[float], float] = today_at,
            counter: Counter = counter,
            created: Counter | None = created,
        ) -> dict[str, float]:
            if not in_business_hours(th, t) or t < step:
                return {}
            expected = _forecast_at(th, t, today_at, daily)
            if expected is None or expected < (alert.min_traffic or 0.0) or expected <= 0:
                return {}
            if created is not None:
                expected *= buyers_share(th, t, created)
            if chance and not _beyond_chance_at(th, t, expected, today_at(t), counter, orders):
                return {}
            value = 1 - today_at(t) / expected
            severity = lad.severity(value)
            return {severity: value} if severity else {}

        input_series: tuple[Series, ...] = (
            counter.series(selector(REVENUE, labels), length, step),
        )
        if chance and (i == 0 or merge != "all"):
            input_series += (orders.series(selector(PAYMENTS, {}), length, step),)
        if created is not None and (i == 0 or merge != "all"):
            input_series += (created.series(selector(CREATED, {}), length, step),)
        scenarios.append(
            Scenario(
                name=target,
                series=input_series,
                labels=labels,
                model=model,
                length_seconds=length,
                step_seconds=step,
                merge=merge,
            )
        )
    return scenarios


def _beyond_chance(th: Thresholds, rec: Recorder, today: str, forecast: str) -> str:
    """For the seasonal forecast: the shortfall must also exceed chance, ``baseline.z``
    standard deviations of a day's revenue made of orders of the usual size (revenue over
    orders in the last day), so a shop of ten orders a day is not paged for two missing."""
    if th.file.forecast.method != "seasonal":
        return ""
    # Read inline: RefundRateHigh records the same day's revenue in the payments file.
    revenue = series.latest_increase(REVENUE, "1d")
    orders = rec.use(series.orders_in(86400.0))
    size = f"({revenue} / on() group_left() {orders})"
    z = num(th.file.baseline.z)
    return f"\nand {forecast} - {today} > {z} * sqrt({forecast} * {size})"


def _beyond_chance_at(
    th: Thresholds, t: float, expected: float, today: float, revenue: Counter, orders: Counter
) -> bool:
    size = (revenue.at(t) - revenue.at(t - 86400)) / (orders.at(t) - orders.at(t - 86400))
    return expected - today > th.file.baseline.z * math.sqrt(expected * size)


def _forecast_at(
    th: Thresholds, t: float, today_at: Callable[[float], float], daily: float
) -> float | None:
    """What ``boxoffice:revenue:forecast_today`` records at ``t`` in the scenarios."""
    if daily:
        midnight = local_midnight(th, t)
        return daily * ((t - midnight) // 60) / 1440
    if th.file.forecast.method == "seasonal":
        return weekly_median(today_at, t, th.file.baseline)
    return today_at(t - WEEK) if t - WEEK >= 0 else None


def average_order_value_anomalous(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """The average order value over the window, against the median of the same window in
    past weeks, either way; only with ``min_traffic`` orders in the window and beyond chance
    (``baseline.z`` standard errors of a mean of that many orders of spread
    ``order_value_cv``), so a small shop's few big orders move nothing."""
    window = alert.window
    lad = ladder(alert)
    w = duration_text(window)
    base = th.file.baseline
    value_series = series.order_value(window)
    value = rec.use(value_series)
    normal = rec.use(series.seasonal(value_series, base, valid=" >= 0"))
    orders = rec.use(series.paid_orders(window))
    deviation = f"abs({value} / ({normal} > 0) - 1)"
    cv = alert.relative["order_value_cv"]
    chance = f"abs({value} - {normal}) > {num(base.z)} * {num(cv)} * {normal} / sqrt({orders})"
    minimum = alert.min_traffic or 0.0
    conditions = {
        sev: f"{cond}\nand {orders} >= {num(minimum)}\nand {chance}"
        for sev, cond in lad.conditions(deviation).items()
    }
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"The average {{currency}} order value over the last {w} is {{value}} away "
                "from this shop's normal for this time of the week (the median of past "
                f"weeks); alerting at {pct(t)}.",
                "percent",
            ),
        ),
        source="postgres",
    )
    per_second = 2000.0 / window  # orders: enough that only the thresholds decide
    # Between two evaluations: the window's value then never lands exactly on a threshold,
    # where floating point decides.
    change = 2 * WEEK + 6 * 3600 + STEP / 2
    length = change + window + span(alert, th.file.escalation.tier3_after)
    usual = 100.0  # order value in past weeks
    cases = [
        (target, per_second, 1 + dev if i % 2 == 0 else 1 - dev)
        for i, (target, dev) in enumerate(lad.targets())
    ]
    # A small shop: its order value doubles, but on too few orders to mean anything.
    cases.append(("small shop", max(minimum, 10.0) * 0.8 / window, 2.0))
    # Past the traffic guard, but a 25% move of a mean of so few orders is within chance.
    cases.append(("within chance", 3 * max(minimum, 10.0) / window, 1.25))
    for i, (name, rate, factor) in enumerate(cases):
        paid = Counter.linear(rate)
        revenue = Counter(((change, rate * usual), (math.inf, rate * usual * factor)))
        labels = {"currency": f"c{i}"}
        build.scenarios.append(
            Scenario(
                name=name,
                series=(
                    paid.series(selector(ORDERS_PAID, _breakdown(labels)), length, STEP),
                    revenue.series(selector(ORDERS_PAID_REVENUE, _breakdown(labels)), length, STEP),
                ),
                labels=labels,
                model=functools.partial(_order_value_model, alert, th, paid, revenue),
                length_seconds=length,
                step_seconds=STEP,
                merge="all",
            )
        )
    return build


def _breakdown(labels: dict[str, str]) -> dict[str, str]:
    return {"city": "Austin", "tier": "ga", "payment_method": "card", "member": "false", **labels}


def _order_value_model(
    alert: Alert, th: Thresholds, paid: Counter, revenue: Counter, t: float
) -> dict[str, float]:
    """What AverageOrderValueAnomalous evaluates to at ``t`` on these counters."""
    window = alert.window

    def value_at(moment: float) -> float | None:
        n = paid.increase(window, moment, STEP)
        return None if not n else (revenue.at(moment) - revenue.at(max(0.0, moment - window))) / n

    now, normal = value_at(t), weekly_median(value_at, t, th.file.baseline)
    orders = paid.increase(window, t, STEP)
    if now is None or not normal or orders is None or orders < (alert.min_traffic or 0.0):
        return {}
    spread = th.file.baseline.z * alert.relative["order_value_cv"] * normal / math.sqrt(orders)
    if abs(now - normal) <= spread:
        return {}
    deviation = abs(now / normal - 1)
    severity = ladder(alert).severity(deviation)
    return {severity: deviation} if severity else {}


BUILDERS: dict[str, Builder] = {
    "SalesVelocitySpike": sales_velocity_spike,
    "NoRecentSales": seasonal.no_recent_sales,
    "RevenueBelowForecast": revenue_below_forecast,
    "CheckoutConversionLow": seasonal.checkout_conversion_low,
    "AverageOrderValueAnomalous": average_order_value_anomalous,
}
