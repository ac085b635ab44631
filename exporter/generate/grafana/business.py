"""The business dashboard (seed 001): where and when tickets sell, where the money comes
from (city, tier, payment method, members vs non-members), the average order value, the
funnel, refunds."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, heatmap, piechart, stat
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import piechart as piechart_model

from exporter.generate import series
from exporter.generate.grafana.kit import (
    Board,
    alert_steps,
    floor_steps,
    legend,
    money_overrides,
    no_steps,
    query,
    reduce_last,
    runbook_links,
    series_panel,
    shown,
)
from exporter.generate.grafana.queries import SELECTOR, PanelQueries, per_tier
from exporter.generate.promql import duration_text
from exporter.generate.rules.alerts.seasonal import COMPLETION_DELAY
from exporter.generate.rules.ruleset import RuleSet
from exporter.generate.series import (
    COMPLETED,
    CREATED,
    DISPUTES,
    ORDERS_PAID,
    ORDERS_PAID_REVENUE,
    ORDERS_PAID_TICKETS,
    REFUNDS,
    REVENUE,
    SOLD,
    by,
    latest,
)

NAME = "business"
TITLE = "boxoffice: business"
PURPOSE = "Sales by city and tier, peak hours, the checkout funnel, refunds and disputes."
REFRESH = "5m"
SINCE = "now-7d"

HOUR, DAY = 3600.0, 86400.0
EXPIRED = "boxoffice_checkout_sessions_expired_total"


def peak_hours() -> str:
    """One series per local hour of day: tickets sold in that hour within the last day.

    Evaluated once a day (the panel's interval), each column holds the 24 hours before it.
    Subquery steps fall on whole UTC hours, which are whole local hours in every zone with a
    whole-hour offset: at the step where the local hour turns h + 1, the increase over the
    last hour is what hour h sold.
    """
    sold = f"sum({by(SOLD)} (increase({SOLD}{{{SELECTOR}}}[1h])))"
    hour = "hour(vector(time()) + boxoffice:timezone_offset_seconds)"
    return "\nor ".join(
        f"label_replace(sum_over_time(({sold} and on() ({hour} == {(h + 1) % 24}))[1d:1h]),"
        f' "hour", "{h:02d}", "", "")'
        for h in range(24)
    )


# The paid-orders breakdowns carry city and tier (not event): the two variables they follow.
BREAKDOWN_SELECTOR = 'city=~"$city", tier=~"$tier"'


def breakdown(metric: str, labels: str, window: float) -> str:
    """Increase of a paid-orders breakdown over ``window``, summed by ``labels``."""
    inner = f"increase({metric}{{{BREAKDOWN_SELECTOR}}}[{duration_text(window)}])"
    return f"sum by ({labels}) ({by(metric)} ({inner}))"


def revenue_all_time() -> stat.Panel:
    """Every paid order's revenue per currency: replicas count once, shops add up."""
    panel = (
        stat.Panel()
        .title("Revenue (all time)")
        .description(
            "Gross revenue of every order ever paid, per currency (all events): the "
            "database's own total, so it can be checked against it."
        )
        .with_target(query(f"sum by (currency) ({latest(REVENUE)})", "{{currency}}", instant=True))
        .reduce_options(reduce_last())
        .thresholds(no_steps())
    )
    money_overrides(panel)
    return panel


def _money_share(title: str, description: str, labels: str, legend_label: str) -> piechart.Panel:
    """A donut of the last day's revenue split by ``labels`` (with currency)."""
    panel = (
        piechart.Panel()
        .title(title)
        .description(description)
        .with_target(
            query(
                breakdown(ORDERS_PAID_REVENUE, f"currency, {labels}", DAY),
                f"{{{{currency}}}} {legend_label}",
                instant=True,
            )
        )
        .reduce_options(reduce_last())
        .pie_type(piechart_model.PieChartType.DONUT)
        .hide_from(shown())
        .thresholds(no_steps())
    )
    money_overrides(panel)
    return panel


def money_sources(board: Board, ruleset: RuleSet, q: PanelQueries) -> None:
    """Where the money comes from (seeds 000-002, issue 18), and the average order value."""
    th = ruleset.thresholds
    board.row("Where the money comes from")
    by_city = (
        bargauge.Panel()
        .title("Revenue by city (24h)")
        .description("Gross revenue of orders paid in the last 24 hours, per city and currency.")
        .with_target(
            query(
                breakdown(ORDERS_PAID_REVENUE, "currency, city", DAY),
                "{{currency}} {{city}}",
                instant=True,
            )
        )
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce_last())
        .thresholds(no_steps())
    )
    money_overrides(by_city)
    board.add(by_city, width=6, height=9)
    board.add(
        _money_share(
            "Revenue by tier (24h)",
            "Share of the last 24 hours' revenue by ticket tier.",
            "tier",
            "{{tier}}",
        ),
        width=6,
        height=9,
    )
    board.add(
        _money_share(
            "Revenue by payment method (24h)",
            "Share of the last 24 hours' revenue by payment method (orders.payment_method; "
            "'unknown' when the app records none).",
            "payment_method",
            "{{payment_method}}",
        ),
        width=6,
        height=9,
    )
    board.add(
        _money_share(
            "Revenue: members vs non-members (24h)",
            "Share of the last 24 hours' revenue paid by members (member=true) and "
            "non-members (orders.is_member).",
            "member",
            "member={{member}}",
        ),
        width=6,
        height=9,
    )
    board.add(
        series_panel(
            "Paid orders per hour by city",
            "Orders paid per hour, summed per city.",
        )
        .with_target(query(breakdown(ORDERS_PAID, "city", HOUR), "{{city}}"))
        .unit("none")
        .legend(legend("lastNotNull", "max", "mean"))
        .thresholds(no_steps()),
        width=8,
        height=8,
    )
    aov = th.alerts["AverageOrderValueAnomalous"]
    window = aov.window
    w = duration_text(window)
    value = series.order_value(window)
    average = (
        series_panel(
            f"Average order value ({w})",
            f"Revenue / paid orders over the last {w} per currency (all cities and tiers), "
            "and the shop's normal for this time of the week (the median of past weeks) that "
            "AverageOrderValueAnomalous compares it with.",
        )
        .with_target(query(q.read(value), "{{currency}}"))
        .with_target(
            query(
                q.read(series.seasonal(value, th.file.baseline, valid=" >= 0")),
                "{{currency}} normal",
            )
        )
        .legend(legend("lastNotNull", "min", "max"))
        .thresholds(no_steps())
        .links(runbook_links(th, "AverageOrderValueAnomalous"))
    )
    money_overrides(average)
    board.add(average, width=8, height=8)
    revenue_by_member = breakdown(ORDERS_PAID_REVENUE, "currency, member", DAY)
    orders_by_member = breakdown(ORDERS_PAID, "currency, member", DAY)
    per_member = (
        stat.Panel()
        .title("Average order value by membership (24h)")
        .description(
            "Revenue / paid orders of the last 24 hours, for members (member=true) and "
            "non-members: what the member programme is worth per order (seed 001)."
        )
        .with_target(
            query(
                f"{revenue_by_member}\n/ {orders_by_member}",
                "{{currency}} member={{member}}",
                instant=True,
            )
        )
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE)
    )
    money_overrides(per_member)
    board.add(per_member, width=4, height=8)
    tickets = breakdown(ORDERS_PAID_TICKETS, "tier", DAY)
    board.add(
        bargauge.Panel()
        .title("Tickets per order by tier (24h)")
        .description("Tickets / paid orders of the last 24 hours, per tier: how many buy together.")
        .with_target(
            query(f"{tickets}\n/ {breakdown(ORDERS_PAID, 'tier', DAY)}", "{{tier}}", instant=True)
        )
        .unit("none")
        .decimals(2)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce_last())
        .thresholds(no_steps()),
        width=4,
        height=8,
    )


def build(board: Board, ruleset: RuleSet, q: PanelQueries) -> None:
    th = ruleset.thresholds
    alerts = th.alerts
    board.row("Sales")
    board.add(
        series_panel(
            "Tickets per hour by city",
            "Tickets in paid orders per hour, summed per city.",
        )
        .with_target(query(f"sum by (city) ({q.scoped(series.increase(SOLD, HOUR))})", "{{city}}"))
        .unit("none")
        .legend(legend("lastNotNull", "max", "mean"))
        .thresholds(no_steps())
        .links(runbook_links(th, "SalesVelocitySpike", "NoRecentSales")),
        width=12,
        height=9,
    )
    revenue = series_panel(
        "Revenue per hour",
        "Gross revenue of paid orders per hour, per currency (all events).",
    )
    revenue = (
        revenue.with_target(query(q.read(series.increase(REVENUE, HOUR)), "{{currency}}"))
        .legend(legend("lastNotNull", "max", "mean"))
        .thresholds(no_steps())
        .links(runbook_links(th, "RevenueBelowForecast"))
    )
    money_overrides(revenue)
    board.add(revenue, width=8, height=9)
    board.add(revenue_all_time(), width=4, height=9)
    money_sources(board, ruleset, q)

    board.row("Tiers and hours")
    board.add(
        piechart.Panel()
        .title("Tier popularity (24h)")
        .description(
            "Share of tickets sold in the last 24 whole hours, by tier (empty until Prometheus "
            "has recorded the top of an hour)."
        )
        .with_target(
            query(
                f"sum by (tier) ({q.scoped(series.increase_by_hours(SOLD, DAY))})",
                "{{tier}}",
                instant=True,
            )
        )
        .unit("none")
        .reduce_options(reduce_last())
        .pie_type(piechart_model.PieChartType.DONUT)
        .hide_from(shown())
        .thresholds(no_steps()),
        width=6,
        height=9,
    )
    board.add(
        bargauge.Panel()
        .title("Tickets sold by tier (all time)")
        .description("Tickets ever paid for, by tier, for the chosen events.")
        .with_target(query(f"sum by (tier) ({per_tier(SOLD)})", "{{tier}}", instant=True))
        .unit("none")
        .decimals(0)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce_last())
        .thresholds(no_steps()),
        width=6,
        height=9,
    )
    board.add(
        heatmap.Panel()
        .title("Peak hours")
        .description(
            f"Tickets sold per local hour of day ({th.file.timezone}); each column is the day "
            "before its time."
        )
        .with_target(query(peak_hours(), "{{hour}}"))
        .interval("1d")
        .calculate(False)
        .hide_from(shown())
        .thresholds(no_steps()),
        width=12,
        height=9,
    )

    board.row("Checkout funnel")
    board.add(
        bargauge.Panel()
        .title("Checkout funnel (24h)")
        .description("Checkout sessions created, completed and expired in the last 24 hours.")
        .with_target(query(q.read(series.increase(CREATED, DAY)), "created", instant=True))
        .with_target(query(q.read(series.increase(COMPLETED, DAY)), "completed", instant=True))
        .with_target(query(q.read(series.increase(EXPIRED, DAY)), "expired", instant=True))
        .unit("none")
        .decimals(0)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce_last())
        .thresholds(no_steps()),
        width=10,
        height=8,
    )
    conversion = alerts["CheckoutConversionLow"]
    window = conversion.window
    baseline = th.file.baseline
    completion = series.completion_ratio(window, COMPLETION_DELAY)
    board.add(
        series_panel(
            f"Checkout conversion ({duration_text(window)})",
            "Completed / created checkout sessions over the CheckoutConversionLow window "
            "(created 5 minutes earlier), and the shop's normal for this hour of the week "
            "(the median of past weeks) that the alert compares it with.",
        )
        .with_target(query(q.read(completion), "completion"))
        .with_target(query(q.read(series.seasonal(completion, baseline, valid=" >= 0")), "normal"))
        .unit("percentunit")
        .max(1)
        .thresholds(floor_steps(conversion, baseline.completion_floor))
        .links(runbook_links(th, "CheckoutConversionLow")),
        width=14,
        height=8,
    )

    board.row("Refunds and disputes")
    refunds = alerts["RefundRateHigh"]
    refund_window = refunds.window
    rw = duration_text(refund_window)
    refunded = (
        series_panel(
            f"Refunded ({rw})",
            f"Refunded amount per {rw}, per currency.",
        )
        .with_target(query(q.read(series.increase(REFUNDS, refund_window)), "{{currency}}"))
        .thresholds(no_steps())
        .links(runbook_links(th, "RefundRateHigh"))
    )
    money_overrides(refunded)
    board.add(refunded, width=8, height=8)
    board.add(
        series_panel(
            f"Refund rate ({rw})",
            "Refunded amount / revenue over the RefundRateHigh window.",
        )
        .with_target(
            query(
                q.read(series.refund_ratio(refund_window)),
                "{{currency}}",
            )
        )
        .unit("percentunit")
        .thresholds(alert_steps(refunds))
        .links(runbook_links(th, "RefundRateHigh")),
        width=6,
        height=8,
    )
    disputes = alerts["DisputeRateHigh"]
    dispute_window = disputes.window
    stripe_refunds = series.increase("boxoffice_stripe_refunds_total", dispute_window)
    stripe_disputes = series.increase(DISPUTES, dispute_window)
    board.add(
        stat.Panel()
        .title("Stripe refunds and disputes")
        .description(
            f"Refunds and disputes Stripe recorded in the last {duration_text(dispute_window)}, "
            "and disputes still open."
        )
        .with_target(query(q.read(stripe_refunds), "refunds", instant=True))
        .with_target(query(q.read(stripe_disputes), "opened", instant=True))
        .with_target(query("max(boxoffice_stripe_disputes_open)", "open now", instant=True))
        .unit("none")
        .thresholds(no_steps())
        .links(runbook_links(th, "DisputeRateHigh")),
        width=5,
        height=8,
    )
    board.add(
        stat.Panel()
        .title("Dispute rate")
        .description("Disputes / charges over the DisputeRateHigh window.")
        .with_target(
            query(
                q.read(series.dispute_ratio(dispute_window)),
                "disputes",
                instant=True,
            )
        )
        .unit("percentunit")
        .thresholds(alert_steps(disputes))
        .links(runbook_links(th, "DisputeRateHigh")),
        width=5,
        height=8,
    )
